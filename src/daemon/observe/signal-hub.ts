import { AuraeError, unavailable } from "../errors.js";
import type { RawSignalEvent } from "../../platform/ebpf/signal-tracer.js";
import { EbpfUnavailableError } from "../../platform/ebpf/signal-tracer.js";
import { cellOfCgroupPath, isCellWithin } from "./cell-of-cgroup.js";
import type { ExecutableDirectory } from "./ports.js";

/** A signal as the observe service reports it. */
export interface ObservedSignal {
  signal: number;
  /** the target process as Start reports pids (a namespace pid inside an isolated cell) */
  pid: number;
  /** the target's cell, "" when it is not in one of ours */
  cellName: string;
}

/** The kernel side: started on the first subscriber, stopped after the last. */
export interface SignalSource {
  stop(): void;
}
export type StartSignalSource = (onEvent: (e: RawSignalEvent) => void) => SignalSource;

export interface SignalHubOptions {
  start: StartSignalSource;
  /** the cgroup of an event relative to the daemon's cgroup parent (see CgroupIndex) */
  resolveCgroup: (e: RawSignalEvent) => string | undefined;
  directory: ExecutableDirectory;
  /** depth of the daemon's pid namespace: pids are reported as the daemon sees them */
  daemonPidLevel?: number;
  /** signals queued per subscriber before the oldest are dropped (default 4096) */
  queueLimit?: number;
}

export interface SignalSubscription {
  /** queued signals (oldest first), [] when none, null once closed */
  take(max?: number): ObservedSignal[] | null;
  wait(): Promise<void>;
  /** signals this subscriber lost because it fell more than queueLimit behind */
  readonly dropped: number;
  close(): void;
}

export const DEFAULT_SIGNAL_QUEUE_LIMIT = 4096;

/**
 * Shares one kernel signal source among all subscribers. Each event is translated once
 * (cell by the target's cgroup as the kernel saw it, falling back on the directory; pid as
 * Start reports it) and offered to every subscriber whose filter matches.
 */
export class SignalHub {
  private source: SignalSource | undefined;
  private readonly subs = new Set<Subscriber>();
  private readonly queueLimit: number;
  private readonly level: number;
  private closed = false;

  constructor(private readonly opts: SignalHubOptions) {
    this.queueLimit = opts.queueLimit ?? DEFAULT_SIGNAL_QUEUE_LIMIT;
    this.level = opts.daemonPidLevel ?? 0;
  }

  /** Signals to every process (no cell) or to processes of `cellName` and its descendants. */
  subscribe(filter: { cellName?: string } = {}): SignalSubscription {
    if (this.closed) throw unavailable("signal stream: the daemon is shutting down");
    if (!this.source) {
      try {
        this.source = this.opts.start((e) => this.dispatch(e));
      } catch (err) {
        if (err instanceof EbpfUnavailableError) throw unavailable(`signal stream: eBPF is unavailable: ${err.reason}`);
        if (err instanceof AuraeError) throw err;
        throw unavailable(`signal stream: eBPF is unavailable: ${(err as Error).message}`);
      }
    }
    const sub = new Subscriber(this.queueLimit, filter.cellName, () => {
      this.subs.delete(sub);
      if (this.subs.size === 0) this.stopSource();
    });
    this.subs.add(sub);
    return sub;
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  get running(): boolean {
    return this.source !== undefined;
  }

  /** Ends every subscription and releases the kernel side. */
  shutdown(): void {
    this.closed = true;
    for (const s of [...this.subs]) s.close();
    this.stopSource();
  }

  /** Exposed for tests: translation of one kernel record. */
  translate(e: RawSignalEvent): ObservedSignal | undefined {
    if (e.level < this.level) return undefined; // not visible from the daemon's pid namespace
    const hostPid = e.tgids[this.level] ?? 0;
    if (hostPid <= 0) return undefined;
    const inner = e.level < e.tgids.length ? e.tgids[e.level]! : hostPid;
    let cellName = cellFromCgroup(this.opts.resolveCgroup(e));
    let pid = e.level > this.level ? inner : hostPid;
    let known: { cellName: string; reportedPid: number } | undefined;
    try {
      known = this.opts.directory.describeHostPid(hostPid);
    } catch {
      known = undefined;
    }
    if (known && (!cellName || known.cellName === cellName)) {
      cellName = known.cellName;
      pid = known.reportedPid;
    }
    return { signal: e.signal, pid, cellName: cellName ?? "" };
  }

  private dispatch(e: RawSignalEvent): void {
    if (this.subs.size === 0) return;
    const s = this.translate(e);
    if (!s) return;
    for (const sub of this.subs) sub.offer(s);
  }

  private stopSource(): void {
    const src = this.source;
    this.source = undefined;
    src?.stop();
  }
}

function cellFromCgroup(rel: string | undefined): string | undefined {
  return rel === undefined ? undefined : cellOfCgroupPath(rel);
}

class Subscriber implements SignalSubscription {
  private queue: ObservedSignal[] = [];
  private head = 0;
  private droppedCount = 0;
  private closed = false;
  private waiter: (() => void) | undefined;

  constructor(private readonly limit: number, private readonly cell: string | undefined, private readonly onClose: () => void) {}

  get dropped(): number {
    return this.droppedCount;
  }

  offer(s: ObservedSignal): void {
    if (this.closed) return;
    if (this.cell !== undefined && !(s.cellName && isCellWithin(s.cellName, this.cell))) return;
    if (this.queue.length - this.head >= this.limit) {
      this.head++;
      this.droppedCount++;
    }
    this.queue.push(s);
    this.wake();
  }

  take(max = 256): ObservedSignal[] | null {
    if (this.closed) return null;
    const out = this.queue.slice(this.head, this.head + max);
    this.head += out.length;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  wait(): Promise<void> {
    if (this.closed || this.head < this.queue.length) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.wake();
    this.onClose();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
