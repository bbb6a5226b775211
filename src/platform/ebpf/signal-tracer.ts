import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import koffi from "koffi";

/**
 * Kernel side of the signal stream: loads build/ebpf/signal-generate.bpf.o with libbpf
 * (libbpf.so.1, through koffi), attaches its tp_btf/signal_generate program and delivers each
 * record on the main event loop (the ring buffer's epoll fd is watched with a uv poll handle:
 * no thread and no polling timer). Needs CAP_BPF/CAP_PERFMON (root) and kernel BTF; no tracefs,
 * no mount and no pinned object. Everything is released by stop() or when the process exits.
 */

/** One signal as the kernel generated it. */
export interface RawSignalEvent {
  signal: number;
  /** the kernel's result code (0 delivered, 1 ignored, 2 already pending, ...) */
  result: number;
  /** the target thread, as a pid in the initial pid namespace */
  tid: number;
  /** pid-namespace level of the target (0 = initial namespace) */
  level: number;
  /** the target's thread-group id at pid-namespace levels 0..3 (0 past `level`) */
  tgids: number[];
  /** thread-group id (initial namespace) of the sending task (or of the interrupted task for kernel-generated signals) */
  senderTgid: number;
  /** id (inode number) of the target's cgroup on the cgroup v2 hierarchy */
  cgroupV2Id: bigint;
  /** ids of the target's cgroups on each v1 subsystem, indexed like /proc/cgroups */
  cgroupV1Ids: bigint[];
}

/** eBPF cannot run here; `reason` says why (missing object, library, BTF or privilege). */
export class EbpfUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "EbpfUnavailableError";
  }
}

const MAX_LEVELS = 4;
const MAX_SUBSYS = 16;
export const SIGNAL_OBJECT = "signal-generate.bpf.o";

/** Where build.sh puts the object: $AURAE_EBPF_DIR, else <repo>/build/ebpf (from src/ or dist/). */
export function defaultEbpfDir(): string {
  if (process.env.AURAE_EBPF_DIR) return process.env.AURAE_EBPF_DIR;
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "../../../build/ebpf");
}

interface Libbpf {
  open(path: string, opts: null): unknown;
  load(obj: unknown): number;
  findProgram(obj: unknown, name: string): unknown;
  attach(prog: unknown): unknown;
  mapFd(obj: unknown, name: string): number;
  rbNew(fd: number, cb: unknown, ctx: null, opts: null): unknown;
  rbConsume(rb: unknown): number;
  rbEpollFd(rb: unknown): number;
  rbFree(rb: unknown): void;
  linkDestroy(link: unknown): number;
  objClose(obj: unknown): void;
  lookup(fd: number, key: Buffer, value: Buffer): number;
  setPrint(fn: unknown): unknown;
  vsnprintf(buf: Buffer, n: number, fmt: string, ap: unknown): number;
  sampleFn: KoffiType;
  printFn: KoffiType;
}

type KoffiType = ReturnType<typeof koffi.proto>;
type PollHandle = ReturnType<typeof koffi.node.poll>;

let libbpf: Libbpf | undefined;
let libbpfError: string | undefined;
/** libbpf's own messages of the current load attempt (it prints through a callback) */
let libbpfMessages: string[] = [];

function loadLibbpf(): Libbpf {
  if (libbpf) return libbpf;
  if (libbpfError) throw new EbpfUnavailableError(libbpfError);
  try {
    const lib = koffi.load("libbpf.so.1");
    const libc = koffi.load("libc.so.6");
    const sampleFn = koffi.proto("int aurae_rb_sample(void *ctx, void *data, size_t size)");
    const printFn = koffi.proto("int aurae_libbpf_print(int level, const char *fmt, void *ap)");
    libbpf = {
      open: lib.func("void *bpf_object__open_file(const char *path, void *opts)"),
      load: lib.func("int bpf_object__load(void *obj)"),
      findProgram: lib.func("void *bpf_object__find_program_by_name(void *obj, const char *name)"),
      attach: lib.func("void *bpf_program__attach(void *prog)"),
      mapFd: lib.func("int bpf_object__find_map_fd_by_name(void *obj, const char *name)"),
      rbNew: lib.func("void *ring_buffer__new(int map_fd, aurae_rb_sample *cb, void *ctx, void *opts)"),
      rbConsume: lib.func("int ring_buffer__consume(void *rb)"),
      rbEpollFd: lib.func("int ring_buffer__epoll_fd(void *rb)"),
      rbFree: lib.func("void ring_buffer__free(void *rb)"),
      linkDestroy: lib.func("int bpf_link__destroy(void *link)"),
      objClose: lib.func("void bpf_object__close(void *obj)"),
      lookup: lib.func("int bpf_map_lookup_elem(int fd, void *key, void *value)"),
      setPrint: lib.func("void *libbpf_set_print(aurae_libbpf_print *fn)"),
      vsnprintf: libc.func("int vsnprintf(void *buf, size_t n, const char *fmt, void *ap)"),
      sampleFn,
      printFn,
    } as Libbpf;
    const lb = libbpf;
    // Keep libbpf quiet on stderr; collect warnings and errors for the unavailable reason.
    const printer = koffi.register((level: number, fmt: string, ap: unknown) => {
      if (level > 0) return 0; // LIBBPF_WARN=0 only
      const buf = Buffer.alloc(512);
      const n = lb.vsnprintf(buf, buf.length, fmt, ap);
      const msg = buf.toString("utf8", 0, Math.max(0, Math.min(n, buf.length - 1))).trim();
      if (msg && libbpfMessages.length < 20) libbpfMessages.push(msg);
      return 0;
    }, koffi.pointer(printFn));
    lb.setPrint(printer);
    return lb;
  } catch (err) {
    libbpfError = `libbpf.so.1 cannot be loaded (install the libbpf1 package): ${(err as Error).message}`;
    libbpf = undefined;
    throw new EbpfUnavailableError(libbpfError);
  }
}

function decode(data: unknown): RawSignalEvent {
  const buf = Buffer.from(koffi.view(data, EVENT_SIZE));
  const cgroupV1Ids: bigint[] = [];
  for (let i = 0; i < MAX_SUBSYS; i++) cgroupV1Ids.push(buf.readBigUInt64LE(8 + 8 * i));
  const o = 8 + 8 * MAX_SUBSYS;
  const tgids: number[] = [];
  for (let i = 0; i < MAX_LEVELS; i++) tgids.push(buf.readInt32LE(o + 16 + 4 * i));
  return {
    cgroupV2Id: buf.readBigUInt64LE(0),
    cgroupV1Ids,
    signal: buf.readInt32LE(o),
    result: buf.readInt32LE(o + 4),
    tid: buf.readInt32LE(o + 8),
    level: buf.readInt32LE(o + 12),
    tgids,
    senderTgid: buf.readInt32LE(o + 16 + 4 * MAX_LEVELS),
  };
}
/** sizeof(struct signal_event) in signal-generate.bpf.c */
const EVENT_SIZE = 8 + 8 * MAX_SUBSYS + 4 * 4 + 4 * MAX_LEVELS + 4 + 4;

function describeLoadFailure(code: number): string {
  const errno = -code;
  const detail = libbpfMessages.slice(-3).join("; ");
  const why =
    errno === 1 || errno === 13
      ? "permission denied (needs root, or CAP_BPF and CAP_PERFMON)"
      : errno === 2 || errno === 22 || errno === 95
        ? "the kernel refused the program (BTF or tp_btf/signal_generate unsupported?)"
        : `errno ${errno}`;
  return `loading the signal eBPF program failed: ${why}${detail ? ` (libbpf: ${detail})` : ""}`;
}

export class SignalTracer {
  private stopped = false;
  private constructor(
    private readonly lib: Libbpf,
    private obj: unknown,
    private link: unknown,
    private rb: unknown,
    private readonly callback: unknown,
    private readonly poll: PollHandle,
    private readonly lostFd: number,
  ) {}

  /**
   * Loads and attaches the program; `onEvent` is called on the main thread for each signal.
   * Throws EbpfUnavailableError naming the reason when eBPF cannot run here.
   */
  static start(onEvent: (e: RawSignalEvent) => void, opts: { objectPath?: string } = {}): SignalTracer {
    const objectPath = opts.objectPath ?? path.join(defaultEbpfDir(), SIGNAL_OBJECT);
    if (!fs.existsSync(objectPath)) {
      throw new EbpfUnavailableError(
        `signal eBPF object ${objectPath} is missing: build it with src/platform/ebpf/build.sh (needs clang-14 and libbpf-dev)`,
      );
    }
    if (!fs.existsSync("/sys/kernel/btf/vmlinux")) {
      throw new EbpfUnavailableError("the kernel has no BTF (/sys/kernel/btf/vmlinux is missing)");
    }
    const lib = loadLibbpf();
    libbpfMessages = [];
    const obj = lib.open(objectPath, null);
    if (!obj) throw new EbpfUnavailableError(`opening ${objectPath} failed: errno ${koffi.errno()}`);
    let link: unknown;
    let rb: unknown;
    let callback: unknown;
    try {
      const rc = lib.load(obj);
      if (rc < 0) throw new EbpfUnavailableError(describeLoadFailure(rc));
      const prog = lib.findProgram(obj, "on_signal_generate");
      if (!prog) throw new EbpfUnavailableError("program on_signal_generate not found in the object");
      link = lib.attach(prog);
      if (!link) throw new EbpfUnavailableError(describeLoadFailure(-koffi.errno()));
      const fd = lib.mapFd(obj, "events");
      const lostFd = lib.mapFd(obj, "lost");
      if (fd < 0 || lostFd < 0) throw new EbpfUnavailableError("maps of the signal eBPF object not found");
      callback = koffi.register((_ctx: unknown, data: unknown, _size: number) => {
        try {
          onEvent(decode(data));
        } catch {
          /* a consumer never breaks the tracer */
        }
        return 0;
      }, koffi.pointer(lib.sampleFn));
      rb = lib.rbNew(fd, callback, null, null);
      if (!rb) throw new EbpfUnavailableError(`creating the ring buffer failed: errno ${koffi.errno()}`);
      const rbNow = rb;
      const poll = koffi.node.poll(lib.rbEpollFd(rb), { readable: true }, () => {
        lib.rbConsume(rbNow);
      });
      // the tracer alone does not keep the daemon alive
      poll.unref();
      return new SignalTracer(lib, obj, link, rb, callback, poll, lostFd);
    } catch (err) {
      if (rb) lib.rbFree(rb);
      if (callback) koffi.unregister(callback as bigint);
      if (link) lib.linkDestroy(link);
      lib.objClose(obj);
      throw err;
    }
  }

  /** Records the kernel could not queue because the ring buffer was full. */
  get lostEvents(): number {
    if (this.stopped) return 0;
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(8);
    return this.lib.lookup(this.lostFd, key, value) === 0 ? Number(value.readBigUInt64LE(0)) : 0;
  }

  /** Delivers what is queued, then detaches the program and frees everything. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.poll.stop();
    this.poll.close();
    this.lib.linkDestroy(this.link);
    this.lib.rbConsume(this.rb);
    this.lib.rbFree(this.rb);
    koffi.unregister(this.callback as bigint);
    this.lib.objClose(this.obj);
    this.link = this.rb = this.obj = undefined;
  }
}

/** Depth of the daemon's own pid namespace (0 = the initial one), from NSpid in /proc/self/status. */
export function ownPidNamespaceLevel(): number {
  try {
    const m = /^NSpid:\s*(.*)$/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
    return m ? m[1]!.trim().split(/\s+/).length - 1 : 0;
  } catch {
    return 0;
  }
}
