/**
 * Output that exercises the line rules of docs/observe.md, and those rules written out
 * independently of the daemon's code, for tests of the output path at every level.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** An empty output file `stdout` in a directory of its own, removed after the test. */
export function tempOutputFile(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-chan-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, "stdout");
  fs.writeFileSync(f, "");
  return f;
}

/**
 * Multi-byte characters across read boundaries (lines of varying length), bytes that are not
 * UTF-8 (a truncated character, an encoded surrogate), lines far beyond 64 KiB (pieces cut
 * inside runs of 2- and 4-byte characters) and a last line without newline.
 */
export function mixedOutput(lines = 20_000): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < lines; i++) parts.push(Buffer.from(`${i} é€😀${"x".repeat(i % 17)}\n`));
  parts.push(Buffer.from([0x61, 0xff, 0xfe, 0x62, 0xc3, 0x0a, 0xed, 0xa0, 0x80, 0x0a]));
  parts.push(Buffer.from("é".repeat(70_000) + "\n" + "ab" + "😀".repeat(20_000) + "\n"));
  parts.push(Buffer.from("tail without newline €"));
  return Buffer.concat(parts);
}

/**
 * The lines a reader gets for `bytes`: split on \n, each cut into pieces of at most `maxLineBytes`
 * bytes on UTF-8 character boundaries, bytes that are not UTF-8 as U+FFFD, a trailing partial
 * line last.
 */
export function documentedLines(bytes: Buffer, maxLineBytes = 64 * 1024): string[] {
  const dec = new TextDecoder();
  const out: string[] = [];
  const pieces = (b: Buffer) => {
    let off = 0;
    while (b.length - off > maxLineBytes) {
      let cut = off + maxLineBytes;
      for (let back = 0; back < 3 && (b[cut]! & 0xc0) === 0x80; back++) cut--;
      out.push(dec.decode(b.subarray(off, cut)));
      off = cut;
    }
    out.push(dec.decode(b.subarray(off)));
  };
  let start = 0;
  for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, start)) {
    pieces(bytes.subarray(start, nl));
    start = nl + 1;
  }
  if (start < bytes.length) pieces(bytes.subarray(start));
  return out;
}
