import { closeSync, lstatSync, openSync, readSync, readlinkSync, type Stats } from "node:fs";
import type { Writable } from "node:stream";

/**
 * A streaming writer of `newc` cpio archives (the format the Linux kernel unpacks as an
 * initramfs). Entries are written in call order; parents must come before children.
 * Ownership is always root:root; mtimes are 0 so that equal inputs give equal archives.
 */
export class CpioWriter {
  private ino = 1;
  private offset = 0;
  private readonly seen = new Set<string>();

  constructor(private readonly out: Writable) {}

  /** Bytes written so far. */
  get size(): number {
    return this.offset;
  }

  has(path: string): boolean {
    return this.seen.has(norm(path));
  }

  async dir(path: string, mode = 0o755): Promise<void> {
    await this.entry(path, 0o040000 | mode, Buffer.alloc(0));
  }

  async file(path: string, data: Buffer, mode = 0o644): Promise<void> {
    await this.entry(path, 0o100000 | mode, data);
  }

  async symlink(path: string, target: string): Promise<void> {
    await this.entry(path, 0o120000 | 0o777, Buffer.from(target));
  }

  /** A character device node (e.g. /dev/console 5:1, which the kernel opens for init's stdio). */
  async charDevice(path: string, major: number, minor: number, mode = 0o600): Promise<void> {
    await this.entry(path, 0o020000 | mode, Buffer.alloc(0), { rmajor: major, rminor: minor });
  }

  /**
   * Copies a host file, symlink or directory entry (not recursive) to `path`, keeping its
   * permission bits. Regular files are streamed in chunks.
   */
  async copyFrom(hostPath: string, path: string, st: Stats = lstatSync(hostPath)): Promise<void> {
    const perm = st.mode & 0o7777;
    if (st.isSymbolicLink()) return this.symlink(path, readlinkSync(hostPath));
    if (st.isDirectory()) return this.dir(path, perm);
    if (!st.isFile()) throw new Error(`cpio: cannot copy '${hostPath}': not a regular file, directory or symlink`);
    const name = norm(path);
    if (this.seen.has(name)) return;
    this.seen.add(name);
    await this.write(header(name, 0o100000 | perm, st.size, this.ino++, {}));
    const fd = openSync(hostPath, "r");
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      let left = st.size;
      while (left > 0) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, left), null);
        if (n <= 0) throw new Error(`cpio: '${hostPath}' shrank while being read`);
        await this.write(Buffer.from(chunk.subarray(0, n)));
        left -= n;
      }
    } finally {
      closeSync(fd);
    }
    await this.write(Buffer.alloc(pad4(st.size)));
  }

  /** Writes the trailer; the archive is complete afterwards (the stream is not ended). */
  async finish(): Promise<void> {
    await this.write(header("TRAILER!!!", 0, 0, 0, { nlink: 1 }));
    await this.write(Buffer.alloc(pad(this.offset, 512)));
  }

  private async entry(path: string, mode: number, data: Buffer, dev: { rmajor?: number; rminor?: number } = {}): Promise<void> {
    const name = norm(path);
    if (this.seen.has(name)) return;
    this.seen.add(name);
    await this.write(Buffer.concat([header(name, mode, data.length, this.ino++, dev), data, Buffer.alloc(pad4(data.length))]));
  }

  private write(buf: Buffer): Promise<void> {
    this.offset += buf.length;
    return new Promise((resolve, reject) => {
      const ok = this.out.write(buf, (err) => (err ? reject(err) : undefined));
      if (ok) resolve();
      else this.out.once("drain", resolve);
    });
  }
}

function norm(path: string): string {
  const p = path.replace(/^\/+/, "").replace(/\/+$/, "");
  return p === "" ? "." : p;
}

function pad(n: number, to: number): number {
  return (to - (n % to)) % to;
}

function pad4(n: number): number {
  return pad(n, 4);
}

function header(name: string, mode: number, size: number, ino: number, o: { nlink?: number; rmajor?: number; rminor?: number }): Buffer {
  const hex = (v: number) => v.toString(16).padStart(8, "0");
  const isDir = (mode & 0o170000) === 0o040000;
  const fields = [
    ino, mode, 0, 0, o.nlink ?? (isDir ? 2 : 1), 0, size, 0, 0, o.rmajor ?? 0, o.rminor ?? 0, Buffer.byteLength(name) + 1, 0,
  ];
  const head = "070701" + fields.map(hex).join("");
  const nameBuf = Buffer.from(name + "\0");
  return Buffer.concat([Buffer.from(head, "latin1"), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length))]);
}
