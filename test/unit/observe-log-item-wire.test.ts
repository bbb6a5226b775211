import { test } from "node:test";
import assert from "node:assert/strict";
import { GetAuraeDaemonLogStreamResponse, GetSubProcessStreamResponse } from "../../src/api/aurae/observe/v0/observe.js";
import { BATCH_MESSAGE_BYTES, LogResponseEncoder, encodeLogResponses, serializeEncoded } from "../../src/daemon/observe/log-item-wire.js";
import type { OutputLine } from "../../src/platform/output/channel-file.js";

const lines: OutputLine[] = [
  { line: "hello", timestamp: 1733082000123, droppedBefore: 0 },
  { line: "", timestamp: 1, droppedBefore: 0 },
  { line: "é ∑ \u0000 \ufffd 😀".repeat(40), timestamp: 2 ** 52 + 7, droppedBefore: 300 },
  { line: "x".repeat(200_000), timestamp: 0, droppedBefore: 2 ** 40 },
];

test("one response per line is byte for byte what the generated encoder writes", () => {
  const ours = encodeLogResponses("stdout", lines, false);
  assert.equal(ours.length, lines.length);
  lines.forEach((l, i) => {
    const item = { channel: "stdout", line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore };
    assert.deepEqual(ours[i], Buffer.from(GetSubProcessStreamResponse.encode({ item, items: [] }).finish()));
    assert.deepEqual(GetAuraeDaemonLogStreamResponse.decode(ours[i]!).item, item);
  });
});

test("a batch is one response whose items decode to the lines in order", () => {
  const [buf, ...rest] = encodeLogResponses("stderr", lines, true);
  assert.equal(rest.length, 0);
  const items = lines.map((l) => ({ channel: "stderr", line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore }));
  assert.deepEqual(buf, Buffer.from(GetSubProcessStreamResponse.encode({ item: undefined, items }).finish()));
  const decoded = GetSubProcessStreamResponse.decode(buf!);
  assert.equal(decoded.item, undefined);
  assert.deepEqual(decoded.items, items);
});

test("batches of N lines: responses of N items each (the last fewer), byte for byte the generated encoder's", () => {
  const many: OutputLine[] = Array.from({ length: 10 }, (_, i) => ({ line: `line ${i}`, timestamp: 1733082000000 + i, droppedBefore: i === 4 ? 2 : 0 }));
  const enc = new LogResponseEncoder("stdout", 3);
  for (const l of many) {
    const b = Buffer.from(l.line);
    assert.equal(enc.line(b, 0, b.length, l.timestamp, l.droppedBefore), true);
  }
  const out = enc.finish();
  assert.deepEqual(out.map((m) => GetSubProcessStreamResponse.decode(m).items.length), [3, 3, 3, 1]);
  out.forEach((m, r) => {
    const items = many.slice(r * 3, r * 3 + 3).map((l) => ({ channel: "stdout", line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore }));
    assert.deepEqual(m, Buffer.from(GetSubProcessStreamResponse.encode({ item: undefined, items }).finish()));
  });
  for (const m of out) serializeEncoded(m);
});

/** Feeds lines the way a reader does: read into the encoder's buffer, lines passed as ranges of it. */
function encodeThroughReadBuffer(enc: LogResponseEncoder, text: string[], ts: number): number {
  const bytes = Buffer.from(text.map((l) => l + "\n").join(""));
  let given = 0;
  let off = 0;
  while (off < bytes.length) {
    const rb = enc.readBuffer(64 * 1024);
    const n = bytes.copy(rb, 0, off, off + rb.length);
    let start = 0;
    let more = true;
    for (let nl = rb.indexOf(10, start); more && nl >= 0 && nl < n; nl = rb.indexOf(10, start)) {
      more = enc.line(rb, start, nl, ts, 0);
      given++;
      start = nl + 1;
    }
    off += start;
    if (!more) break;
  }
  return given;
}

test("lines read into the encoder's own buffer encode like the generated encoder; a batch closes near 128 KiB", () => {
  const text = Array.from({ length: 3000 }, (_, i) => `${i} ${"é".repeat(i % 50)} ${"x".repeat(60)}`);
  const enc = new LogResponseEncoder("stdout", true);
  const ts = 1733082000123;
  let done = 0;
  while (done < text.length) {
    const n = encodeThroughReadBuffer(enc, text.slice(done), ts);
    const [msg, ...none] = enc.finish();
    assert.equal(none.length, 0);
    assert.ok(msg!.length <= BATCH_MESSAGE_BYTES + 200, `one response stays near the batch size (${msg!.length})`);
    const items = text.slice(done, done + n).map((line) => ({ channel: "stdout", line, timestamp: ts, droppedBefore: 0 }));
    assert.deepEqual(msg, Buffer.from(GetSubProcessStreamResponse.encode({ item: undefined, items }).finish()));
    done += n;
  }
  assert.ok(done === text.length);
});

test("one response per line from the encoder's buffer, and lines that outgrow it", () => {
  const enc = new LogResponseEncoder("stderr", false);
  const text = ["a", "", "ü".repeat(100), "b"];
  encodeThroughReadBuffer(enc, text, 7);
  const big = Buffer.from("y".repeat(300_000));
  enc.line(big, 0, big.length, 8, 3); // does not fit the arena: the responses move to a larger buffer
  const msgs = enc.finish();
  const items = [...text.map((line) => ({ line, timestamp: 7, droppedBefore: 0 })), { line: big.toString(), timestamp: 8, droppedBefore: 3 }];
  assert.equal(msgs.length, items.length);
  items.forEach((it, i) => assert.deepEqual(msgs[i], Buffer.from(GetSubProcessStreamResponse.encode({ item: { channel: "stderr", ...it }, items: [] }).finish())));
  assert.deepEqual(enc.finish(), [], "nothing more");
});

test("a response's bytes stay as they are until grpc-js serialized it; then its memory is reused", () => {
  const enc = new LogResponseEncoder("stdout", true);
  encodeThroughReadBuffer(enc, ["first"], 1);
  const [a] = enc.finish();
  const copyOfA = Buffer.from(a!);
  for (let i = 0; i < 50; i++) {
    encodeThroughReadBuffer(enc, [`other ${i}`], 2);
    enc.finish(); // never serialized: kept, not reused
  }
  assert.deepEqual(a, copyOfA, "a response not serialized yet is never overwritten");
  assert.equal(serializeEncoded(a!), a, "serializing passes the bytes through");
  encodeThroughReadBuffer(enc, ["second"], 3);
  const [b] = enc.finish();
  assert.equal(b!.buffer, a!.buffer, "the serialized response's memory was reused");
  assert.deepEqual(GetSubProcessStreamResponse.decode(b!).items.map((i) => i.line), ["second"]);
});
