import { createHash, X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import {
  chmodSync, copyFileSync, createReadStream, createWriteStream, existsSync, linkSync, lstatSync, mkdirSync, readFileSync,
  readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { PassThrough } from "node:stream";
import { issueServerCert, SERVER_NAME } from "../pki/pki.js";
import { CpioWriter } from "./cpio.js";
import { defaultKernelPackage, downloadKernelPackage, extractKernelPackage, extractVmlinux } from "./kernel.js";
import { sharedLibraries } from "./libs.js";
import { GUEST_MODULES, resolveModules } from "./modules.js";
import { distFiles, hashFiles, packageFiles, runtimePackages, sha256File } from "./tree.js";

/** aurae-shim, relative to the app directory (built by src/platform/native/build.sh). */
const SHIM = "build/native/aurae-shim";
/** the output streams' C line encoder (same script; needs only libc, which Node brings) */
const LINE_ENCODER = "build/native/liblog-item-wire.so";

/** Bump when the layout of the image changes, so cached images are rebuilt. */
const BUILDER_VERSION = "7";

/**
 * Host tools the guest's isolated cells need (src/platform/namespaces/holder.ts): util-linux's
 * `unshare` (busybox's lacks `--kill-child`) and `catatonit`, copied at their host paths with
 * their libraries. Missing ones are skipped with a note: the guest then refuses isolated cells
 * with FAILED_PRECONDITION, as any host without them does.
 */
export const GUEST_TOOLS = ["/usr/bin/unshare", "/usr/bin/catatonit"];

/** Where the guest finds things; the guest's pid1 boot reads GUEST_MODULE_LIST. */
export const GUEST_APP_DIR = "/opt/aurae";
export const GUEST_MODULE_LIST = "/etc/aurae/modules";
export const GUEST_PKI_DIR = "/etc/aurae/pki";
/** File names the VM service looks for beside each other in an image directory. */
export const IMAGE_KERNEL = "vmlinux";
export const IMAGE_INITRAMFS = "initramfs.img";

export interface BuildProgress {
  step: "kernel" | "modules" | "base" | "tls" | "done";
  message: string;
}

export interface BuildVmImageOptions {
  /** Cache root; images live in `<libraryDir>/vm-images`. */
  libraryDir: string;
  /** The host's CA: the guest's server certificate is signed by it, and the guest verifies clients with it. */
  caCrt: string;
  caKey: string;
  /** A `linux-image-<version>` package; default: what `linux-image-amd64` depends on. */
  kernelPackage?: string;
  /** A kernel .deb to use instead of downloading one. */
  kernelDeb?: string;
  /** Where dist/, bin/auraed.js, package.json and node_modules are; default: this checkout. */
  appDir?: string;
  /** The Node binary the guest runs; default: the one running this code. */
  nodeBinary?: string;
  /** More host executables copied into the guest at the same path, with their libraries (GUEST_TOOLS always are). */
  extraBinaries?: string[];
  /** The static busybox that provides /bin/sh and the usual tools in the guest. */
  busybox?: string;
  /**
   * Compression of the large part of the initramfs; default none: under TCG the guest kernel
   * spends ~1.3 s gunzipping it, which costs more than loading 120 MB uncompressed (the guest
   * then needs about 512 MiB of RAM; gzip lowers that by ~75 MB).
   */
  compression?: "gzip" | "none";
  /** Extra names the guest certificate carries as DNS SANs (server.unsafe.aurae.io is always there). */
  serverNames?: string[];
  /** Point `<libraryDir>/vm-images/current` at the result (the CLI does; tests do not). */
  linkCurrent?: boolean;
  onProgress?: (p: BuildProgress) => void;
}

/** A bootable guest: `qemu -M microvm -kernel <kernel> -initrd <initramfs>`. */
export interface VmImage {
  /** directory holding `vmlinux`, `initramfs.img` and `manifest.json` */
  dir: string;
  kernel: string;
  initramfs: string;
  kernelRelease: string;
  /** content hash naming the image */
  id: string;
  /** true when nothing had to be built */
  cached: boolean;
  initramfsBytes: number;
  /** `<libraryDir>/vm-images/current` when linkCurrent was set: a stable path to this image */
  current?: string;
}

interface BaseImage {
  path: string;
  hash: string;
}

const DEFAULT_APP_DIR = resolve(dirname(new URL(import.meta.url).pathname), "../..");

/**
 * Builds (or reuses) a guest image from this machine's own files: the kernel from Debian's
 * package (uncompressed to `vmlinux` for microvm's PVH entry), and an initramfs holding Node
 * and its libraries, the built daemon with its runtime packages, busybox, the virtio/ext4/ACPI
 * modules and the guest's TLS material (its own key, a certificate signed by the host CA for
 * `server.unsafe.aurae.io`, and the CA certificate to verify clients).
 *
 * Everything is cached under the library dir by content hash of the inputs. The initramfs is
 * two concatenated cpio archives (the kernel unpacks both): a large compressed base that
 * depends only on code, and a small TLS overlay that depends on the CA.
 */
export async function buildVmImage(opts: BuildVmImageOptions): Promise<VmImage> {
  const progress = opts.onProgress ?? (() => {});
  const root = join(opts.libraryDir, "vm-images");
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const appDir = opts.appDir ?? DEFAULT_APP_DIR;
  for (const f of ["dist/daemon/main.js", "bin/auraed.js", "package.json"]) {
    if (!existsSync(join(appDir, f))) throw new Error(`the daemon is not built: ${join(appDir, f)} is missing (run npm run build)`);
  }
  for (const f of [SHIM, LINE_ENCODER]) {
    if (!existsSync(join(appDir, f))) throw new Error(`auraed's native helpers are not built: ${join(appDir, f)} is missing (run src/platform/native/build.sh)`);
  }
  for (const f of [opts.caCrt, opts.caKey]) if (!existsSync(f)) throw new Error(`CA file '${f}' does not exist`);

  // 1. kernel
  let deb = opts.kernelDeb;
  if (!deb) {
    const pkg = opts.kernelPackage ?? (await defaultKernelPackage());
    deb = await downloadKernelPackage(pkg, join(root, "debs"), () => progress({ step: "kernel", message: `downloading ${pkg} (apt-get download)` }));
  }
  const debId = `${basename(deb, ".deb")}-${statSync(deb).size}`;
  const kernelDir = join(root, "kernels", debId);
  if (!existsSync(join(kernelDir, ".complete"))) progress({ step: "kernel", message: `unpacking ${basename(deb)}` });
  const kernel = await extractKernelPackage(deb, kernelDir);
  const vmlinux = join(kernel.root, "vmlinux");
  if (!existsSync(vmlinux)) {
    progress({ step: "kernel", message: "extracting an uncompressed vmlinux for the PVH entry" });
    await extractVmlinux(kernel.bzImage, vmlinux);
  }

  // 2. base initramfs (code only)
  const modules = resolveModules(kernel.modulesDir, GUEST_MODULES);
  progress({ step: "modules", message: `${modules.length} modules: ${modules.map((m) => m.name).join(" ")}` });
  const base = await buildBase({ ...opts, appDir }, root, kernel.release, kernel.modulesDir, modules, debId, progress);

  // 3. TLS overlay + final image
  const caHash = createHash("sha256").update(readFileSync(opts.caCrt)).update(readFileSync(opts.caKey)).update(JSON.stringify(opts.serverNames ?? [])).digest("hex");
  const id = createHash("sha256").update(`${base.hash}\0${caHash}\0${debId}`).digest("hex").slice(0, 24);
  const dir = join(root, "images", id);
  const image = (cached: boolean): VmImage => ({
    dir, kernel: join(dir, IMAGE_KERNEL), initramfs: join(dir, IMAGE_INITRAMFS), kernelRelease: kernel.release, id, cached,
    initramfsBytes: statSync(join(dir, IMAGE_INITRAMFS)).size,
    ...(opts.linkCurrent ? { current: linkCurrent(root, id) } : {}),
  });
  if (existsSync(join(dir, "manifest.json"))) {
    progress({ step: "done", message: `image ${id} (cached) in ${dir}` });
    return image(true);
  }
  progress({ step: "tls", message: "issuing the guest's server certificate" });
  const tmp = join(root, "images", `.tmp-${id}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  try {
    const overlay = await tlsOverlay(opts);
    hardlinkOrCopy(vmlinux, join(tmp, IMAGE_KERNEL));
    const out = createWriteStream(join(tmp, IMAGE_INITRAMFS), { mode: 0o600 });
    await pipeline(createReadStream(base.path), out, { end: false });
    // The kernel looks for the next archive's "070701" only at 4-byte aligned offsets; zeros are skipped.
    const padding = Buffer.alloc((4 - (statSync(base.path).size % 4)) % 4);
    await new Promise<void>((res, rej) => out.end(Buffer.concat([padding, overlay]), (err?: Error | null) => (err ? rej(err) : res())));
    writeFileSync(join(tmp, "manifest.json"), JSON.stringify({
      id, kernelRelease: kernel.release, kernelDeb: basename(deb), base: base.hash, caCrt: resolve(opts.caCrt),
      serverName: SERVER_NAME, modules: modules.map((m) => m.name), builtAt: new Date().toISOString(),
    }, null, 2) + "\n");
    try {
      renameSync(tmp, dir);
    } catch (err) {
      if (!existsSync(join(dir, "manifest.json"))) throw err;
      rmSync(tmp, { recursive: true, force: true }); // built concurrently by someone else
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  progress({ step: "done", message: `image ${id} in ${dir}` });
  return image(false);
}

/** Points `<root>/current` at images/<id> (a new symlink renamed over the old one: never missing). */
function linkCurrent(root: string, id: string): string {
  const link = join(root, "current");
  const tmp = join(root, `.current-${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(join("images", id), tmp);
  renameSync(tmp, link);
  return link;
}

function hardlinkOrCopy(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

async function tlsOverlay(opts: BuildVmImageOptions): Promise<Buffer> {
  const dir = join(tmpdir(), `aurae-vm-tls-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    const pair = await issueServerCert({
      dir, caCrt: opts.caCrt, caKey: opts.caKey, names: [SERVER_NAME, "localhost", ...(opts.serverNames ?? [])],
      ips: ["127.0.0.1", "::1", "10.0.2.15"],
    });
    // A key that does not belong to the certificate would give the guest a certificate nobody trusts.
    if (!new X509Certificate(readFileSync(pair.crt)).verify(new X509Certificate(readFileSync(opts.caCrt)).publicKey)) {
      throw new Error(`CA key '${opts.caKey}' does not belong to CA certificate '${opts.caCrt}'`);
    }
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on("data", (c: Buffer) => chunks.push(c));
    const cpio = new CpioWriter(sink);
    await cpio.dir("etc");
    await cpio.dir("etc/aurae");
    await cpio.dir(GUEST_PKI_DIR, 0o700);
    await cpio.file(`${GUEST_PKI_DIR}/ca.crt`, readFileSync(opts.caCrt));
    await cpio.file(`${GUEST_PKI_DIR}/_signed.server.crt`, readFileSync(pair.crt));
    await cpio.file(`${GUEST_PKI_DIR}/server.key`, readFileSync(pair.key), 0o600);
    await cpio.finish();
    sink.end();
    return Buffer.concat(chunks);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The guest's /init: a shell that hands pid 1 to auraed (exec keeps the pid). */
function initScript(): string {
  return [
    "#!/bin/sh",
    "# Aurae guest init: auraed runs as pid 1 and boots the machine itself (src/daemon/init).",
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root UV_THREADPOOL_SIZE=8",
    "cd /",
    `exec /usr/bin/node ${GUEST_APP_DIR}/dist/daemon/init/guest.js --library-dir /var/lib/aurae --runtime-dir /run/aurae "$@"`,
    "",
  ].join("\n");
}

async function buildBase(
  opts: BuildVmImageOptions & { appDir: string },
  root: string,
  release: string,
  modulesDir: string,
  modules: { name: string; path: string }[],
  debId: string,
  progress: (p: BuildProgress) => void,
): Promise<BaseImage> {
  const appDir = opts.appDir;
  const node = realpathSync(opts.nodeBinary ?? process.execPath);
  const busybox = opts.busybox ?? "/bin/busybox";
  if (!existsSync(busybox)) throw new Error(`busybox not found at '${busybox}' (install busybox-static)`);
  const missingTools = GUEST_TOOLS.filter((b) => !existsSync(b));
  if (missingTools.length > 0) progress({ step: "base", message: `not on this host: ${missingTools.join(", ")}; isolated cells will not start in the guest` });
  const extras = [...new Set([...GUEST_TOOLS, ...(opts.extraBinaries ?? [])])].filter((b) => existsSync(b));
  const packages = runtimePackages(appDir);
  const dist = distFiles(join(appDir, "dist"));
  const compression = opts.compression ?? "none";

  const h = createHash("sha256");
  h.update(`builder ${BUILDER_VERSION}\0kernel ${debId}\0${modules.map((m) => m.path).join(",")}\0${compression}\0`);
  h.update(`node ${sha256File(node)}\0busybox ${sha256File(busybox)}\0`);
  for (const e of extras) h.update(`extra ${e} ${sha256File(realpathSync(e))}\0`);
  h.update(`init ${initScript()}\0dist ${hashFiles(join(appDir, "dist"), dist)}\0`);
  h.update(`app ${hashFiles(appDir, ["package.json", "bin/auraed.js", SHIM, LINE_ENCODER])}\0`);
  for (const p of packages) h.update(`pkg ${p.slice(appDir.length)} ${hashFiles(p, packageFiles(p))}\0`);
  const hash = h.digest("hex").slice(0, 24);
  const path = join(root, "base", `${hash}.cpio${compression === "gzip" ? ".gz" : ""}`);
  if (existsSync(path)) {
    progress({ step: "base", message: `base initramfs ${hash} (cached)` });
    return { path, hash };
  }
  progress({ step: "base", message: `building the base initramfs ${hash} (node, daemon, ${packages.length} packages, modules)` });
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const sink = new PassThrough({ highWaterMark: 1 << 20 });
  const file = createWriteStream(tmp, { mode: 0o600 });
  const done = compression === "gzip" ? pipeline(sink, createGzip({ level: 1 }), file) : pipeline(sink, file);
  const cpio = new CpioWriter(sink);
  const mkdirs = async (p: string) => {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) await cpio.dir(parts.slice(0, i).join("/"));
  };
  try {
    for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "etc/aurae", "proc", "sys", "dev", "run", "tmp", "root", "mnt", "var/lib/aurae"]) {
      await mkdirs(d);
    }
    await cpio.charDevice("dev/console", 5, 1);
    await cpio.symlink("var/run", "/run");
    await cpio.file("init", Buffer.from(initScript()), 0o755);
    // /sbin/init too (not busybox's init), for a kernel told init=/sbin/init
    await cpio.symlink("sbin/init", "/init");
    await cpio.file("etc/passwd", Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
    await cpio.file("etc/group", Buffer.from("root:x:0:\nnogroup:x:65534:\n"));
    await cpio.file("etc/hosts", Buffer.from("127.0.0.1 localhost\n::1 localhost\n"));
    await cpio.file("etc/hostname", Buffer.from("aurae-guest\n"));

    // executables and their libraries, at their host paths; node without its debug symbols
    const nodeCopy = stripped(node, dirname(path));
    const binaries: [string, string][] = [[nodeCopy ?? node, "/usr/bin/node"], ...extras.map((e): [string, string] => [realpathSync(e), e])];
    const libs = new Set<string>();
    for (const [src] of binaries) for (const l of await sharedLibraries(src)) libs.add(l);
    for (const lib of [...libs].sort()) await copyWithLinks(cpio, lib, mkdirs);
    for (const [src, dst] of binaries) {
      await mkdirs(dirname(dst));
      await cpio.copyFrom(src, dst);
    }
    await cpio.copyFrom(busybox, "bin/busybox", statSync(busybox));
    for (const applet of execFileSync(busybox, ["--list-full"], { encoding: "utf8" }).split("\n").filter(Boolean)) {
      if (applet === "bin/busybox" || cpio.has(applet) || applet.startsWith("linuxrc")) continue;
      await mkdirs(dirname(applet));
      await cpio.symlink(applet, "/bin/busybox");
    }

    // kernel modules and the load order pid1 follows
    const guestModDir = `lib/modules/${release}`;
    for (const m of modules) {
      await mkdirs(join(guestModDir, dirname(m.path)));
      await cpio.copyFrom(join(modulesDir, m.path), join(guestModDir, m.path));
    }
    await cpio.file(GUEST_MODULE_LIST.slice(1), Buffer.from(modules.map((m) => `/${guestModDir}/${m.path}`).join("\n") + "\n"));

    // the daemon: package.json, bin/auraed.js, dist/**/*.js, runtime packages
    const app = GUEST_APP_DIR.slice(1);
    await mkdirs(`${app}/bin`);
    await cpio.copyFrom(join(appDir, "package.json"), `${app}/package.json`);
    await cpio.copyFrom(join(appDir, "bin/auraed.js"), `${app}/bin/auraed.js`);
    // the per-executable shim, where src/platform/process/shim.ts looks for it (static: no libraries)
    await mkdirs(join(app, dirname(SHIM)));
    await cpio.copyFrom(join(appDir, SHIM), join(app, SHIM));
    await cpio.copyFrom(join(appDir, LINE_ENCODER), join(app, LINE_ENCODER));
    for (const f of dist) {
      await mkdirs(join(app, "dist", dirname(f)));
      await cpio.copyFrom(join(appDir, "dist", f), join(app, "dist", f));
    }
    for (const p of packages) {
      const rel = p.slice(appDir.length + 1);
      for (const f of packageFiles(p)) {
        await mkdirs(join(app, rel, dirname(f)));
        await cpio.copyFrom(join(p, f), join(app, rel, f));
      }
    }
    await cpio.finish();
    sink.end();
    await done;
    if (nodeCopy) rmSync(nodeCopy, { force: true });
    renameSync(tmp, path);
  } catch (err) {
    sink.destroy();
    rmSync(tmp, { force: true });
    throw err;
  }
  // keep only the newest few base archives
  const bases = readdirSync(dirname(path)).filter((f) => !f.includes(".tmp-")).map((f) => join(dirname(path), f));
  bases.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const old of bases.slice(4)) rmSync(old, { force: true });
  return { path, hash };
}

/** A copy of `binary` without symbols (`strip`, from binutils), or undefined when strip is unavailable. */
function stripped(binary: string, dir: string): string | undefined {
  const out = join(dir, `.node-stripped-${process.pid}`);
  try {
    execFileSync("strip", ["-o", out, binary], { stdio: "ignore", timeout: 120_000 });
    return out;
  } catch {
    rmSync(out, { force: true });
    return undefined;
  }
}

/** Copies a library path and every symlink on the way to the real file. */
async function copyWithLinks(cpio: CpioWriter, path: string, mkdirs: (p: string) => Promise<void>): Promise<void> {
  let p = path;
  for (let i = 0; i < 10; i++) {
    await mkdirs(dirname(p));
    const st = lstatSync(p);
    await cpio.copyFrom(p, p, st);
    if (!st.isSymbolicLink()) return;
    const target = readlinkSync(p);
    p = target.startsWith("/") ? target : join(dirname(p), target);
  }
}
