import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { GetSubProcessStreamResponse, type LogItem } from "../../src/api/aurae/observe/v0/observe.js";
import type { OutputChunk } from "../../src/client/output-chunk-decoder.js";
import { OutputStreamDecoder } from "../../src/client/output-stream-decoder.js";
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";
import { decodeInPieces, frames, linesOf, sampleItems, writeItem, type ChunkLine } from "../helpers/output-chunks.js";

type Line = ChunkLine;

/** `data` fed in pieces cut at `cuts` */
const decode = decodeInPieces;

function randomCuts(len: number, n: number): number[] {
  return Array.from({ length: n }, () => randomInt(0, Math.max(1, len)));
}


/** The generated decoder's items of each response, in order. */
function generatedItems(msgs: Uint8Array[]): LogItem[] {
  return msgs.flatMap((m) => {
    const r = GetSubProcessStreamResponse.decode(m);
    return [...(r.item ? [r.item] : []), ...r.items];
  });
}

/** Lines without chunk boundaries: every line with its own drop count (chunks start at each drop). */
function flat(lines: Line[]): Array<[string, number]> {
  return lines.map((l) => [l.line, l.droppedBefore]);
}


test("auraed's responses, cut anywhere, give their lines in order with their drop counts and timestamps", () => {
  const lines = Array.from({ length: 3000 }, (_, i) => ({ channel: "stdout", line: `${i}`.padEnd(i % 7 === 0 ? 300 : 99, "y"), timestamp: 1733082000000 + i, droppedBefore: i % 500 === 17 ? i : 0 }));
  for (const batch of [true, false]) {
    const msgs = [...encodeLogResponses("stdout", sampleItems, batch), ...encodeLogResponses("stdout", lines.slice(0, 1024), batch), ...encodeLogResponses("stdout", lines.slice(1024), batch)];
    const data = frames(msgs);
    const want = generatedItems(msgs).map((it) => [it.line, Number(it.droppedBefore)] as [string, number]);
    for (const cuts of [[], [1], [5], [6], [7], Array.from({ length: 200 }, (_, i) => i * 16384), randomCuts(data.length, 50), randomCuts(data.length, 2000)]) {
      const { chunks, idle } = decode(data, cuts);
      assert.ok(idle, "the stream ends between responses");
      const got = linesOf(chunks);
      assert.deepEqual(flat(got), want, `cuts ${cuts.slice(0, 5).join(",")}...`);
      // a chunk's timestamp is its first line's
      const all = generatedItems(msgs);
      got.forEach((l, i) => {
        if (l.timestamp !== undefined) assert.equal(l.timestamp, Number(all[i]!.timestamp));
      });
    }
  }
});

test("the lines of one piece share its memory: one chunk per run between drops", () => {
  const lines = Array.from({ length: 1024 }, (_, i) => ({ channel: "stdout", line: `${i}`.padEnd(99, "y"), timestamp: 1733082000000, droppedBefore: 0 }));
  const data = frames(encodeLogResponses("stdout", lines, true));
  const d = new OutputStreamDecoder();
  const piece = Buffer.from(data);
  const chunks: OutputChunk[] = [];
  d.push(piece, chunks);
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0]!.lines, 1024);
  assert.equal(chunks[0]!.text.buffer, piece.buffer, "no copy");
  assert.equal(chunks[0]!.text.toString(), lines.map((l) => `${l.line}\n`).join(""));
});

test("other shapes are decoded as the generated decoder does (a singular item after items comes after them)", () => {
  const item = writeItem;
  const cases: Array<{ msg: Buffer; order: "same" | "item-last" }> = [];
  let w = new BinaryWriter();
  item(w, 1, "first");
  item(w, 1, "second"); // a repeated singular message merges: the last line wins
  cases.push({ msg: Buffer.from(w.finish()), order: "same" });
  w = new BinaryWriter();
  item(w, 1, "single");
  item(w, 100, "batched", 3);
  cases.push({ msg: Buffer.from(w.finish()), order: "same" });
  w = new BinaryWriter();
  item(w, 100, "a");
  w.uint32((7 << 3) | 0).uint32(9); // unknown field
  item(w, 100, "b");
  cases.push({ msg: Buffer.from(w.finish()), order: "same" });
  w = new BinaryWriter();
  item(w, 100, "a");
  w.uint32((100 << 3) | 2).fork().uint32(0x12).string("line").uint32((9 << 3) | 2).string("unknown inside").join();
  item(w, 100, "c");
  cases.push({ msg: Buffer.from(w.finish()), order: "same" });
  w = new BinaryWriter();
  item(w, 100, "batched");
  item(w, 1, "single");
  cases.push({ msg: Buffer.from(w.finish()), order: "item-last" });
  for (const { msg, order } of cases) {
    const r = GetSubProcessStreamResponse.decode(msg);
    const want = order === "same" ? generatedItems([msg]) : [...r.items, r.item!];
    const data = frames([msg, msg]);
    for (let cut = 0; cut <= data.length; cut++) {
      const { chunks, idle } = decode(data, [cut]);
      assert.ok(idle);
      assert.deepEqual(
        flat(linesOf(chunks)),
        [...want, ...want].map((it) => [it.line, Number(it.droppedBefore)]),
        `${msg.toString("hex")} cut at ${cut}`,
      );
    }
  }
});

test("a stream cut inside a response is not idle; a compressed response is refused", () => {
  const data = frames(encodeLogResponses("stdout", sampleItems, true));
  assert.equal(decode(data.subarray(0, data.length - 1), []).idle, false);
  assert.equal(decode(data.subarray(0, 3), []).idle, false);
  const compressed = Buffer.from(data);
  compressed[0] = 1;
  assert.throws(() => decode(compressed, []), /compressed/);
});

test("random responses decode to the generated decoder's lines, or fail as it fails", () => {
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    // half of them start like auraed's batched form, to reach the streamed path
    const body = randomBytes(1 + (i % 40));
    const msg = i % 2 === 0 ? Buffer.concat([Buffer.from([0xa2, 0x06, body.length]), body]) : body;
    // compared as the lines' bytes (sorted), their count and the drops: a random line may hold
    // "\n", and a random `item` after `items` comes last (see the module); bytes that are not
    // UTF-8 as the generated decoder's strings have them (U+FFFD: we pass bytes through)
    const summary = (text: Buffer, lines: number, dropped: number) => ({ bytes: [...Buffer.from(text.toString("utf8"))].sort((a, b) => a - b).join(","), lines, dropped });
    let want: ReturnType<typeof summary> | "error";
    try {
      const its = generatedItems([msg]);
      want = summary(Buffer.from(its.map((it) => `${it.line}\n`).join("")), its.length, its.reduce((n, it) => n + Number(it.droppedBefore), 0));
      decoded++;
    } catch {
      want = "error";
    }
    let got: ReturnType<typeof summary> | "error";
    try {
      const { chunks, idle } = decode(frames([msg]), randomCuts(msg.length + 5, 3));
      assert.ok(idle);
      got = summary(Buffer.concat(chunks.map((c) => c.text)), chunks.reduce((n, c) => n + c.lines, 0), chunks.reduce((n, c) => n + c.droppedBefore, 0));
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      got = "error";
    }
    assert.deepEqual(got, want, msg.toString("hex"));
  }
  assert.ok(decoded > 100, "many random inputs decode");
});
