import { test } from "node:test";
import assert from "node:assert/strict";
import { OutputLog, LINE_OVERHEAD_BYTES, type OutputReader } from "../../src/daemon/observe/output-log.js";
import type { OutputLine } from "../../src/daemon/observe/ports.js";

function drain(r: OutputReader): { lines: OutputLine[]; ended: boolean } {
  const lines: OutputLine[] = [];
  for (;;) {
    const b = r.take(1000);
    if (b === null) return { lines, ended: true };
    if (b.length === 0) return { lines, ended: false };
    lines.push(...b);
  }
}

test("lines are split on newlines across any chunking and a partial line waits for its newline", () => {
  const log = new OutputLog();
  const r = log.openReader();
  log.write(Buffer.from("a"));
  log.write(Buffer.from("b\nc"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["ab"]);
  log.write(Buffer.from("d\n\ne\n"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["cd", "", "e"]);
});

test("end flushes a trailing partial line and the reader ends only after it drained", () => {
  const log = new OutputLog();
  const r = log.openReader();
  log.write(Buffer.from("x\ntail"));
  log.end();
  assert.deepEqual(r.take(1)!.map((l) => l.line), ["x"]);
  assert.deepEqual(r.take(1)!.map((l) => l.line), ["tail"]);
  assert.equal(r.take(), null);
});

test("a line longer than maxLineBytes is split into pieces on UTF-8 character boundaries", () => {
  const log = new OutputLog({ maxLineBytes: 8 });
  const r = log.openReader();
  // "aaaaaaa" + "é" (2 bytes) crosses the 8-byte boundary: the cut goes before "é"
  log.write(Buffer.from("aaaaaaaébbbbbbbbbbbbbb\n"));
  const lines = drain(r).lines.map((l) => l.line);
  assert.deepEqual(lines, ["aaaaaaa", "ébbbbbb", "bbbbbbbb"]);
  assert.equal(lines.join(""), "aaaaaaaébbbbbbbbbbbbbb");
  for (const l of lines) assert.ok(Buffer.byteLength(l) <= 8);
});

test("a line of exactly maxLineBytes split across chunks stays one line", () => {
  const log = new OutputLog({ maxLineBytes: 8 });
  const r = log.openReader();
  log.write(Buffer.from("12345678"));
  log.write(Buffer.from("\nnext\n"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["12345678", "next"]);
});

test("a long partial line is delivered in pieces before its newline arrives", () => {
  const log = new OutputLog({ maxLineBytes: 4 });
  const r = log.openReader();
  log.write(Buffer.from("abcdefghij"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["abcd", "efgh"]);
  log.write(Buffer.from("\n"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["ij"]);
});

test("bytes that are not UTF-8 become U+FFFD and NUL bytes pass through", () => {
  const log = new OutputLog();
  const r = log.openReader();
  log.write(Buffer.from([0x61, 0xff, 0x00, 0x62, 0x0a]));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["a\uFFFD\u0000b"]);
});

test("history is bounded and a late reader sees how many lines were evicted before its first line", () => {
  const per = 2 + LINE_OVERHEAD_BYTES; // "NN" lines
  const log = new OutputLog({ maxBytes: per * 10 });
  for (let i = 10; i < 40; i++) log.write(Buffer.from(`${i}\n`));
  const { lines } = drain(log.openReader());
  assert.equal(lines.length, 10);
  assert.equal(lines[0]!.line, "30");
  assert.equal(lines[0]!.droppedBefore, 20);
  assert.ok(lines.slice(1).every((l) => l.droppedBefore === 0));
  assert.equal(log.evictedLines, 20);
});

test("a stalled reader loses only what was evicted, counted on its next line, while another reader gets everything", () => {
  const per = 3 + LINE_OVERHEAD_BYTES;
  const log = new OutputLog({ maxBytes: per * 5 });
  const slow = log.openReader();
  const fast = log.openReader();
  const seen: string[] = [];
  for (let i = 100; i < 120; i++) {
    log.write(Buffer.from(`${i}\n`));
    seen.push(...drain(fast).lines.map((l) => l.line));
  }
  assert.equal(seen.length, 20);
  const late = drain(slow).lines;
  assert.deepEqual(late.map((l) => l.line), ["115", "116", "117", "118", "119"]);
  assert.equal(late[0]!.droppedBefore, 15);
  assert.equal(slow.dropped, 15);
  assert.equal(fast.dropped, 0);
});

test("a reader that only lost lines gets the count with the next line written", () => {
  const log = new OutputLog({ maxBytes: (1 + LINE_OVERHEAD_BYTES) * 2 });
  const r = log.openReader();
  log.write(Buffer.from("a\nb\nc\n")); // "a" evicted
  assert.equal(drain(r).lines[0]!.droppedBefore, 1);
  log.write(Buffer.from("d\ne\nf\n")); // r is at "d": "d" evicted while r waits
  const next = drain(r).lines;
  assert.deepEqual(next.map((l) => l.line), ["e", "f"]);
  assert.equal(next[0]!.droppedBefore, 1);
});

test("wait resolves when a line arrives, when the log ends, and when the reader closes", async () => {
  const log = new OutputLog();
  const r = log.openReader();
  const w1 = r.wait();
  log.write(Buffer.from("x\n"));
  await w1;
  assert.equal(r.take()!.length, 1);
  const w2 = r.wait();
  log.end();
  await w2;
  assert.equal(r.take(), null);
  const r2 = new OutputLog().openReader();
  const w3 = r2.wait();
  r2.close();
  await w3;
  assert.equal(r2.take(), null);
});

test("append adds whole lines with their own timestamps", () => {
  const log = new OutputLog({ maxLineBytes: 4 });
  const r = log.openReader();
  log.append("abc", 42);
  log.append("abcdef", 43);
  assert.deepEqual(drain(r).lines.map((l) => [l.line, l.timestamp]), [["abc", 42], ["abcd", 43], ["ef", 43]]);
});

test("a reader opened without history starts at the next line", () => {
  const log = new OutputLog();
  log.write(Buffer.from("old\n"));
  const r = log.openReader({ history: false });
  log.write(Buffer.from("new\n"));
  assert.deepEqual(drain(r).lines.map((l) => l.line), ["new"]);
});
