import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { isUtf8 } from "node:buffer";
import { documentedLines, mixedOutput, tempOutputFile } from "../helpers/output-lines.js";
import { ChannelFile, type LineSink, type OutputLine, type OutputReader } from "../../src/platform/output/channel-file.js";

const tempFile = tempOutputFile;

function drain(r: OutputReader, max = 1000): { lines: OutputLine[]; ended: boolean } {
  const lines: OutputLine[] = [];
  for (;;) {
    const b = r.take(max);
    if (b === null) return { lines, ended: true };
    if (b.length === 0) return { lines, ended: false };
    lines.push(...b);
  }
}

const texts = (ls: OutputLine[]) => ls.map((l) => l.line);

test("lines are split on newlines across any write chunking and a partial line waits for its newline", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, "a");
  fs.appendFileSync(f, "b\nc");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), ["ab"]);
  fs.appendFileSync(f, "d\n\ne\n");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), ["cd", "", "e"]);
  c.release();
});

test("end flushes a trailing partial line and the reader ends only after it drained", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, "x\ntail");
  c.end();
  assert.deepEqual(texts(r.take(1)!), ["x"]);
  assert.deepEqual(texts(r.take(1)!), ["tail"]);
  assert.equal(r.take(), null);
});

test("a line longer than maxLineBytes is split on UTF-8 boundaries, also before its newline arrives", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f, { maxLineBytes: 8 });
  const r = c.openReader();
  fs.appendFileSync(f, "aaaaaaaébbbbbbbbbbbbbb\n");
  c.refresh();
  const lines = texts(drain(r).lines);
  assert.deepEqual(lines, ["aaaaaaa", "ébbbbbb", "bbbbbbbb"]);
  fs.appendFileSync(f, "12345678");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), [], "exactly maxLineBytes waits for its newline");
  fs.appendFileSync(f, "\nabcdefghijkl");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), ["12345678", "abcdefgh"]);
  c.release();
});

test("bytes that are not UTF-8 become U+FFFD and NUL bytes pass through", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, Buffer.from([0x61, 0xff, 0x00, 0x62, 0x0a]));
  c.end();
  assert.deepEqual(texts(drain(r).lines), ["a\ufffd\u0000b"]);
});

test("take returns at most max lines and continues where it stopped", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, Array.from({ length: 10 }, (_, i) => `l${i}\n`).join(""));
  c.end();
  const got: string[] = [];
  for (let b = r.take(3); b !== null; b = r.take(3)) {
    assert.ok(b.length <= 3);
    got.push(...texts(b));
  }
  assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `l${i}`));
});

const settle = () => new Promise((r) => setTimeout(r, 50));

test("retention frees the oldest lines; a reader that fell behind learns how many it missed", async (t) => {
  const f = tempFile(t);
  const retain = 64 * 1024;
  const c = new ChannelFile(f, { retainBytes: retain });
  const slow = c.openReader();
  const line = "y".repeat(99) + "\n";
  const total = 40_000; // 4 MB: far beyond retain + slack (1 MiB)
  const chunk = line.repeat(1000);
  for (let i = 0; i < total / 1000; i++) {
    fs.appendFileSync(f, chunk);
    c.refresh();
    if (i % 10 === 0) await settle(); // freeing runs in steps between events
  }
  await settle();
  // the file keeps its size but not its storage
  assert.equal(fs.statSync(f).size, total * 100);
  assert.ok(fs.statSync(f).blocks * 512 < 2 * 1024 * 1024, `blocks ${fs.statSync(f).blocks}`);
  const { lines } = drain(slow);
  const dropped = lines.reduce((a, l) => a + l.droppedBefore, 0);
  assert.equal(dropped + lines.length, total, "every line is either delivered or counted as dropped");
  assert.ok(lines[0]!.droppedBefore > 0);
  assert.equal(slow.dropped, dropped);
  c.release();
});

test("a late reader gets the retained history with the freed lines counted before its first line", async (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f, { retainBytes: 1000 });
  const n = 30_000;
  fs.appendFileSync(f, Array.from({ length: n }, (_, i) => `${String(i).padStart(9, "0")}\n`).join("")); // 300 kB
  c.refresh();
  await settle();
  fs.appendFileSync(f, "z".repeat(2 * 1024 * 1024) + "\n");
  c.refresh();
  await settle();
  const r = c.openReader();
  const first = r.take(1)!;
  assert.equal(first.length, 1);
  c.release();
  assert.ok(first[0]!.droppedBefore > 0, "lines freed before the reader came are counted");
});

test("a live-only reader starts at the current end", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  fs.appendFileSync(f, "old\n");
  c.refresh();
  const r = c.openReader({ history: false });
  fs.appendFileSync(f, "new\n");
  c.end();
  assert.deepEqual(texts(drain(r).lines), ["new"]);
});

test("timestamps come from when the daemon saw the file grow", (t) => {
  const f = tempFile(t);
  let now = 1000;
  const c = new ChannelFile(f, { now: () => now });
  const r = c.openReader();
  now = 2000;
  fs.appendFileSync(f, "first\n");
  c.refresh();
  now = 3000;
  fs.appendFileSync(f, "second\nthird\n");
  c.refresh();
  now = 9000;
  const lines = drain(r).lines;
  assert.deepEqual(lines.map((l) => [l.line, l.timestamp]), [["first", 2000], ["second", 3000], ["third", 3000]]);
  c.release();
});

test("wait resolves when output arrives, when the channel ends, and when the reader closes", async (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  let woke = false;
  const w = r.wait().then(() => { woke = true; });
  await new Promise((res) => setImmediate(res));
  assert.equal(woke, false);
  fs.appendFileSync(f, "x\n");
  c.refresh();
  await w;
  assert.deepEqual(texts(drain(r).lines), ["x"]);
  const ended = r.wait();
  c.end();
  await ended;
  const r2 = c.openReader();
  r2.close();
  await r2.wait();
  assert.equal(r2.take(), null);
  c.release();
});

test("an adopted file with a freed head starts its history at the first whole line", (t) => {
  const f = tempFile(t);
  const c1 = new ChannelFile(f, { retainBytes: 4096 });
  fs.appendFileSync(f, "partial-line-" + "p".repeat(3 * 1024 * 1024) + "\nkept-1\nkept-2\n");
  c1.refresh();
  c1.release();
  // a new daemon opens the same file
  const c2 = new ChannelFile(f, { retainBytes: 4096 });
  const r = c2.openReader();
  c2.end();
  const lines = texts(drain(r).lines);
  assert.deepEqual(lines.slice(-2), ["kept-1", "kept-2"]);
  assert.ok(!lines.some((l) => l.startsWith("partial-line-")), "no fragment of the freed line");
});

test("a reader keeps reading after the owner released the channel; the file closes after the last reader", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, "a\nb\n");
  c.release();
  fs.unlinkSync(f);
  assert.deepEqual(texts(drain(r).lines), ["a", "b"]);
  assert.equal(r.take(), null);
});

test("a program that truncates its output: readers past the new end continue from it", (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f);
  const r = c.openReader();
  fs.appendFileSync(f, "line1\nline2\nline3\n");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), ["line1", "line2", "line3"]);
  fs.truncateSync(f, 0); // `echo x > /dev/stdout` as root does this
  c.refresh();
  fs.appendFileSync(f, "after1\nafter2\n");
  c.refresh();
  assert.deepEqual(texts(drain(r).lines), ["after1", "after2"]);
  c.release();
});

test("an adopted file starts its history at the first retained line, not one later", async (t) => {
  const f = tempFile(t);
  const c1 = new ChannelFile(f, { retainBytes: 64 * 1024 });
  const n = 50_000; // 500 kB of numbered lines
  fs.appendFileSync(f, Array.from({ length: n }, (_, i) => `line-${String(i).padStart(4, "0")}\n`).join(""));
  c1.refresh();
  await settle();
  const r1 = c1.openReader();
  const first1 = drain(r1).lines.find((l) => l.line.startsWith("line-"))!.line;
  r1.close();
  c1.release();
  const c2 = new ChannelFile(f, { retainBytes: 64 * 1024 });
  const r2 = c2.openReader();
  c2.end();
  const lines = texts(drain(r2).lines);
  assert.equal(lines[0], first1, "the same first line as before the restart");
  assert.equal(lines.at(-1), `line-${n - 1}`);
  assert.ok(lines.every((l) => /^line-\d+$/.test(l)), "no fragment, no NUL bytes");
});

test("a writer that outruns counting cannot fill the disk: beyond the hard backlog lines are estimated", async (t) => {
  const f = tempFile(t);
  const retain = 64 * 1024;
  const c = new ChannelFile(f, { retainBytes: retain });
  const r = c.openReader();
  // 80 MB of 2-byte lines in one go, as `yes` writes: beyond the 64 MiB hard backlog
  const chunk = Buffer.from("y\n".repeat(4 * 1024 * 1024));
  const fd = fs.openSync(f, "a");
  for (let i = 0; i < 10; i++) fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  const t0 = performance.now();
  c.refresh();
  const blockedMs = performance.now() - t0;
  await settle();
  assert.ok(blockedMs < 100, `one refresh blocked the loop for ${blockedMs.toFixed(0)} ms`);
  assert.ok(fs.statSync(f).blocks * 512 < 4 * 1024 * 1024, `storage left: ${fs.statSync(f).blocks * 512} bytes`);
  assert.equal(c.estimatedDrops, true);
  const got = drain(r).lines;
  const dropped = got.reduce((a, l) => a + l.droppedBefore, 0);
  const total = (10 * chunk.length) / 2;
  assert.ok(Math.abs(dropped + got.length - total) / total < 0.01, `estimated ${dropped + got.length} of ${total} lines`);
  c.release();
});

/** A sink like the observe service's: reads into its own buffer, collects the lines' bytes. */
class BytesSink implements LineSink {
  readonly lines: Buffer[] = [];
  readonly meta: Array<[number, number]> = [];
  private readonly own = Buffer.alloc(64 * 1024 + 7);
  constructor(private readonly stopEvery = 0) {}
  readBuffer(min: number): Buffer {
    return min <= this.own.length ? this.own : Buffer.alloc(min);
  }
  line(buf: Buffer, from: number, to: number, timestamp: number, droppedBefore: number): boolean {
    this.lines.push(Buffer.from(buf.subarray(from, to)));
    this.meta.push([timestamp, droppedBefore]);
    return this.stopEvery === 0 || this.lines.length % this.stopEvery !== 0;
  }
}

for (const maxLineBytes of [65536, 50]) test(`takeBytes hands over the same lines as take, as valid UTF-8 bytes, across read boundaries (lines of at most ${maxLineBytes} bytes)`, (t) => {
  const bytes = mixedOutput(30_000);
  const expected = documentedLines(bytes, maxLineBytes);
  const f = tempFile(t);
  fs.writeFileSync(f, bytes);
  const c = new ChannelFile(f, { maxLineBytes });
  const asText = c.openReader();
  const asBytes = c.openReader();
  const stopping = c.openReader();
  c.end();
  assert.deepEqual(texts(drain(asText).lines), expected);
  const sink = new BytesSink();
  for (let n = asBytes.takeBytes(sink, 1000); n !== null; n = asBytes.takeBytes(sink, 1000)) assert.ok(n <= 1000 + 3000);
  for (const b of sink.lines) assert.ok(isUtf8(b), `valid UTF-8: ${b.toString("hex").slice(0, 40)}`);
  assert.deepEqual(sink.lines.map((b) => b.toString("utf8")), expected);
  // a sink that asks to stop after every 7th line: nothing lost, nothing repeated
  const partial = new BytesSink(7);
  let takes = 0;
  for (let n = stopping.takeBytes(partial, 1000); n !== null; n = stopping.takeBytes(partial, 1000)) {
    takes++;
    // (the pieces a long line is cut into in one read go out together: with 50-byte pieces, many)
    if (maxLineBytes === 65536) assert.ok(n <= 7 + 2, `a take stops at the sink's request (${n})`);
  }
  if (maxLineBytes === 65536) assert.ok(takes >= expected.length / 9);
  assert.deepEqual(partial.lines.map((b) => b.toString("utf8")), expected);
});

test("takeBytes reports timestamps and dropped lines like take", (t) => {
  const f = tempFile(t);
  let now = 1000;
  const c = new ChannelFile(f, { retainBytes: 64 * 1024, now: () => now });
  const r = c.openReader();
  const line = "z".repeat(99) + "\n";
  for (let i = 0; i < 30; i++) {
    now += 10;
    fs.appendFileSync(f, line.repeat(1000)); // 3 MB in all, far beyond retain + slack
    c.refresh();
  }
  c.end();
  const sink = new BytesSink();
  while (r.takeBytes(sink, 512) !== null);
  const dropped = sink.meta.reduce((a, [, d]) => a + d, 0);
  assert.ok(dropped > 0);
  assert.equal(dropped + sink.lines.length, 30_000, "every line delivered or counted");
  assert.equal(r.dropped, dropped);
  const times = sink.meta.map(([ts]) => ts);
  assert.deepEqual([...times].sort((a, b) => a - b), times, "timestamps in order");
  assert.equal(times.at(-1), 1300, "the last lines carry the time the daemon saw them");
});
