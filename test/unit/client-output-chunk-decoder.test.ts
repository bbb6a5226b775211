import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { GetSubProcessStreamResponse, type LogItem } from "../../src/api/aurae/observe/v0/observe.js";
import { decodeOutputChunks } from "../../src/client/output-chunk-decoder.js";
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";
import { linesOf, sampleItems, writeItem } from "../helpers/output-chunks.js";


/** What the generated decoder says of the same bytes, in the same form. */
function expected(buf: Buffer): Array<{ line: string; droppedBefore: number; timestamp?: number }> {
  const res = GetSubProcessStreamResponse.decode(buf);
  const items: LogItem[] = [...(res.item ? [res.item] : []), ...res.items];
  let first = true;
  return items.map((it) => {
    const mark = first || Number(it.droppedBefore) > 0;
    first = false;
    return mark ? { line: it.line, droppedBefore: Number(it.droppedBefore), timestamp: Number(it.timestamp) } : { line: it.line, droppedBefore: 0 };
  });
}


test("the bytes of what auraed sends are its lines, each with a newline, one chunk per run between drops", () => {
  for (const batch of [false, true]) {
    for (const buf of encodeLogResponses("stdout", sampleItems, batch)) {
      const want = expected(buf);
      const chunks = decodeOutputChunks(Buffer.from(buf));
      assert.deepEqual(linesOf(chunks), want);
    }
  }
  const [one] = encodeLogResponses("stdout", sampleItems, true);
  const chunks = decodeOutputChunks(Buffer.from(one!));
  // drops before lines 3 and 5 start new chunks; the first chunk holds lines 1-2
  assert.deepEqual(
    chunks.map((c) => [c.lines, c.droppedBefore, c.timestamp]),
    [
      [2, 0, 1733082000123],
      [2, 300, 2 ** 48 - 1],
      [2, 1, 5],
    ],
  );
  assert.equal(Buffer.concat(chunks.map((c) => c.text)).toString(), sampleItems.map((i) => `${i.line}\n`).join(""));
});

test("1,024 lines of 100 bytes, as the batched stream carries them, come out byte for byte", () => {
  const lines = Array.from({ length: 1024 }, (_, i) => ({ channel: "stdout", line: `${i}`.padEnd(99, "y"), timestamp: 1733082000000 + i, droppedBefore: 0 }));
  const [buf] = encodeLogResponses("stdout", lines, true);
  const chunks = decodeOutputChunks(buf!);
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.lines, 1024);
  assert.equal(chunks[0]!.text.toString(), lines.map((l) => `${l.line}\n`).join(""));
});

test("other shapes (repeated item, unknown fields, item and items together) give what the generated decoder gives", () => {
  const item = writeItem;
  const cases: Buffer[] = [];
  let w = new BinaryWriter();
  item(w, 1, "first");
  item(w, 1, "second"); // a repeated singular message merges: the last line wins
  cases.push(Buffer.from(w.finish()));
  w = new BinaryWriter();
  item(w, 1, "single");
  item(w, 100, "batched", 3);
  cases.push(Buffer.from(w.finish()));
  w = new BinaryWriter();
  item(w, 100, "a");
  w.uint32((7 << 3) | 0).uint32(9); // unknown field
  item(w, 100, "b");
  cases.push(Buffer.from(w.finish()));
  w = new BinaryWriter();
  w.uint32((100 << 3) | 2).fork().uint32(0x12).string("line").uint32((9 << 3) | 2).string("unknown inside").join();
  cases.push(Buffer.from(w.finish()));
  for (const buf of cases) assert.deepEqual(linesOf(decodeOutputChunks(Buffer.from(buf))), expected(buf), buf.toString("hex"));
});

test("random bytes decode as the generated decoder does, or fail as it fails", () => {
  // compared as text and dropped counts (a random line may hold a newline or bytes that are not UTF-8)
  const generated = (buf: Buffer) => {
    const res = GetSubProcessStreamResponse.decode(buf);
    const all = [...(res.item ? [res.item] : []), ...res.items];
    return { text: all.map((it) => `${it.line}\n`).join(""), dropped: all.reduce((n, it) => n + Number(it.droppedBefore), 0) };
  };
  const ours = (buf: Buffer) => {
    const chunks = decodeOutputChunks(buf);
    return { text: Buffer.concat(chunks.map((c) => c.text)).toString("utf8"), dropped: chunks.reduce((n, c) => n + c.droppedBefore, 0) };
  };
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    const buf = randomBytes(1 + (i % 40));
    const run = (f: (b: Buffer) => unknown) => {
      try {
        return f(Buffer.from(buf));
      } catch {
        return "error";
      }
    };
    const want = run(generated);
    if (want !== "error") decoded++;
    assert.deepEqual(run(ours), want, buf.toString("hex"));
  }
  assert.ok(decoded > 0, "some random inputs decode");
});
