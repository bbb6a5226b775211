/**
 * Shared by the vms-*.test.ts files: the guest image for the test PKI (built once, cached
 * under .cache/vm-test by content), promise wrappers for grpc-js calls, and clients for a
 * guest's auraed reached through its forwarded port.
 */
import { credentials, Metadata, type CallOptions, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CellServiceClient } from "../../src/api/aurae/cells/v0/cells.js";
import { DiscoveryServiceClient } from "../../src/api/aurae/discovery/v0/discovery.js";
import { LogChannelType, ObserveServiceClient } from "../../src/api/aurae/observe/v0/observe.js";
import { buildVmImage, type VmImage } from "../../src/vmimage/build.js";
import { testPki } from "./pki.js";

export const REPO = path.resolve(import.meta.dirname, "../..");
export const VM_CACHE = path.join(REPO, ".cache/vm-test");

const has = (p: string) => fs.existsSync(p);
const onPath = (bin: string) => ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].some((d) => has(path.join(d, bin)));

/** Why VM tests cannot run here, or false. */
export function vmSkipReason(): string | false {
  if (process.getuid?.() !== 0) return "needs root";
  if (!onPath("qemu-system-x86_64")) return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  if (!has("/bin/busybox")) return "busybox is not installed (apt-get install busybox-static)";
  if (!has(path.join(REPO, "dist/daemon/init/guest.js"))) return "dist/ is not built (npm run build)";
  if (!onPath("apt-get") || !onPath("dpkg-deb")) return "needs apt-get and dpkg-deb to fetch the guest kernel";
  return false;
}

let image: Promise<VmImage> | undefined;

/** The guest image for this process's test PKI (kernel download and base initramfs cached). */
export function testImage(): Promise<VmImage> {
  image ??= testPki().then((pki) =>
    buildVmImage({
      libraryDir: VM_CACHE,
      caCrt: pki.caCrt,
      caKey: pki.caKey,
      onProgress: (p) => { if (p.step !== "done") process.stderr.write(`# vm image: ${p.message}\n`); },
    }),
  );
  return image;
}

/** Removes this process's final image (the per-CA TLS overlay); the cached kernel and base stay. */
export async function removeTestImage(): Promise<void> {
  if (!image) return;
  const img = await image.catch(() => undefined);
  if (img) fs.rmSync(img.dir, { recursive: true, force: true });
}

/**
 * Promise form of a grpc-js unary call (typed from the method's last overload, the one with
 * metadata and options). Default deadline 180 s: a hung call fails the test instead of hanging it.
 */
export function call<Req, Res>(
  client: object,
  method: (req: Req, metadata: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  options: Partial<CallOptions> = { deadline: Date.now() + 180_000 },
): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, new Metadata(), options, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

export async function guestCredentials(): Promise<ChannelCredentials> {
  const pki = await testPki();
  const nova = pki.clients["nova"]!;
  return credentials.createSsl(fs.readFileSync(pki.caCrt), fs.readFileSync(nova.key), fs.readFileSync(nova.crt));
}

export const GUEST_OPTIONS = { "grpc.ssl_target_name_override": "server.unsafe.aurae.io", "grpc.default_authority": "server.unsafe.aurae.io" };

export interface GuestClients {
  discovery: InstanceType<typeof DiscoveryServiceClient>;
  cells: InstanceType<typeof CellServiceClient>;
  observe: InstanceType<typeof ObserveServiceClient>;
  close(): void;
}

/** Clients of a guest's auraed at host:port (the address Start returned), over mTLS. */
export async function guestClients(address: string): Promise<GuestClients> {
  const creds = await guestCredentials();
  const discovery = new DiscoveryServiceClient(address, creds, GUEST_OPTIONS);
  const cells = new CellServiceClient(address, creds, GUEST_OPTIONS);
  const observe = new ObserveServiceClient(address, creds, GUEST_OPTIONS);
  return { discovery, cells, observe, close: () => { discovery.close(); cells.close(); observe.close(); } };
}

/** The stdout lines of a guest process, until its stream ends (the process exited). */
export function processOutput(observe: InstanceType<typeof ObserveServiceClient>, pid: number, timeoutMs = 60_000, cellName?: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const stream = observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName }, { deadline: Date.now() + timeoutMs });
    stream.on("data", (r: { item?: { line: string } }) => { if (r.item) lines.push(r.item.line.replace(/\n$/, "")); });
    stream.on("end", () => resolve(lines));
    stream.on("error", (e: Error) => reject(e));
  });
}

/** A small ext4 image holding hello.txt, made with mkfs.ext4 -d. */
export function makeExt4Image(file: string, content: string): void {
  const src = `${file}.d`;
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, "hello.txt"), content);
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", src, file, "8M"], { stdio: "ignore" });
  fs.rmSync(src, { recursive: true, force: true });
}

/** Pids of running qemu-system processes whose command line mentions `needle`. */
export function qemuProcesses(needle: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
      if (cmd.startsWith("qemu-system") && cmd.includes(needle)) out.push(Number(p));
    } catch {
      /* exited */
    }
  }
  return out;
}
