import { execFile } from "node:child_process";
import { closeSync, createWriteStream, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The kernel package used when neither a version nor a .deb is given and apt cannot tell. */
export const FALLBACK_KERNEL_PACKAGE = "linux-image-6.1.0-56-amd64";

/** A kernel package unpacked on disk. */
export interface ExtractedKernel {
  /** e.g. `6.1.0-56-amd64` */
  release: string;
  /** the package file it came from */
  deb: string;
  /** the compressed boot image (bzImage) */
  bzImage: string;
  /** root of the unpacked package (holds lib/modules/<release>) */
  root: string;
  modulesDir: string;
}

/** The package `linux-image-amd64` currently depends on, per apt; the fallback if apt cannot say. */
export async function defaultKernelPackage(): Promise<string> {
  try {
    const { stdout } = await run("apt-cache", ["depends", "linux-image-amd64"], { timeout: 20_000 });
    const m = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/.exec(stdout);
    if (m) return m[1]!;
  } catch {
    /* apt-cache missing or lists not updated: use the fallback */
  }
  return FALLBACK_KERNEL_PACKAGE;
}

/**
 * Downloads the kernel package into `cacheDir` with `apt-get download` unless a .deb for it is
 * already there, and returns its path.
 */
export async function downloadKernelPackage(pkg: string, cacheDir: string, onDownload?: () => void): Promise<string> {
  if (!/^linux-image-[0-9][a-z0-9.+-]*$/.test(pkg)) throw new Error(`kernel package '${pkg}' is not a linux-image-<version> package name`);
  mkdirSync(cacheDir, { recursive: true });
  const have = () => readdirSync(cacheDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
  const cached = have();
  if (cached) return join(cacheDir, cached);
  onDownload?.();
  // apt's sandbox user cannot write everywhere; a private temp dir it may write to avoids the warning.
  const tmp = join(cacheDir, `.download-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o777 });
  try {
    await run("apt-get", ["download", "-q", pkg], { cwd: tmp, timeout: 600_000, maxBuffer: 16 << 20 }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`apt-get download ${pkg} failed: ${(err.stderr ?? err.message).trim()}`);
    });
    const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    renameSync(join(tmp, deb), join(cacheDir, deb));
    return join(cacheDir, deb);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Unpacks a kernel .deb into `dir` (once; reused when already complete). */
export async function extractKernelPackage(deb: string, dir: string): Promise<ExtractedKernel> {
  const done = join(dir, ".complete");
  if (!existsSync(done)) {
    rmSync(dir, { recursive: true, force: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await run("dpkg-deb", ["-x", deb, tmp], { timeout: 300_000 }).catch((err: Error & { stderr?: string }) => {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`dpkg-deb -x ${deb} failed: ${(err.stderr ?? err.message).trim()}`);
    });
    writeFileSync(join(tmp, ".complete"), "");
    renameSync(tmp, dir);
  }
  const boot = join(dir, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`kernel package ${deb} holds no boot/vmlinuz-*`);
  const release = vmlinuz.slice("vmlinuz-".length);
  const modulesDir = join(dir, "lib/modules", release);
  if (!existsSync(modulesDir)) throw new Error(`kernel package ${deb} holds no lib/modules/${release}`);
  return { release, deb, bzImage: join(boot, vmlinuz), root: dir, modulesDir };
}

const MAGICS: { name: string; magic: Buffer; cmd: string[] }[] = [
  { name: "xz", magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), cmd: ["xz", "-dc", "--single-stream"] },
  { name: "zstd", magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), cmd: ["zstd", "-dc"] },
  { name: "gzip", magic: Buffer.from([0x1f, 0x8b, 0x08]), cmd: ["gzip", "-dc"] },
];

/**
 * Extracts the uncompressed ELF `vmlinux` from a bzImage: finds the compressed payload by its
 * magic and decompresses it, keeping the first candidate that yields an ELF. QEMU's microvm
 * boots it through its PVH entry point, skipping the in-guest decompression (much faster
 * under TCG).
 */
export async function extractVmlinux(bzImage: string, out: string): Promise<void> {
  const size = statSync(bzImage).size;
  const fd = openSync(bzImage, "r");
  const image = Buffer.alloc(size);
  readSync(fd, image, 0, size, 0);
  closeSync(fd);
  for (const { magic, cmd } of MAGICS) {
    let at = image.indexOf(magic);
    while (at >= 0) {
      const ok = await decompressTo(cmd, image.subarray(at), out);
      if (ok) return;
      at = image.indexOf(magic, at + 1);
    }
  }
  throw new Error(`no ELF kernel found inside '${bzImage}' (tried xz, zstd and gzip payloads)`);
}

function decompressTo(cmd: string[], input: Buffer, out: string): Promise<boolean> {
  return new Promise((resolve) => {
    const tmp = `${out}.tmp-${process.pid}`;
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ["pipe", "pipe", "ignore"] });
    const file = createWriteStream(tmp);
    child.stdout.pipe(file);
    child.stdin.on("error", () => { /* decompressor stopped early: judged by the result */ });
    child.stdin.end(input);
    child.on("error", () => resolve(false));
    let exited = false;
    let closed = false;
    const finish = () => {
      if (!exited || !closed) return;
      const head = Buffer.alloc(4);
      try {
        const f = openSync(tmp, "r");
        readSync(f, head, 0, 4, 0);
        closeSync(f);
      } catch {
        /* empty output */
      }
      if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) && statSync(tmp).size > 1 << 20) {
        renameSync(tmp, out);
        resolve(true);
      } else {
        rmSync(tmp, { force: true });
        resolve(false);
      }
    };
    child.on("exit", () => { exited = true; finish(); });
    file.on("close", () => { closed = true; finish(); });
  });
}
