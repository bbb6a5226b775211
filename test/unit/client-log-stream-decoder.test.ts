import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { GetAuraeDaemonLogStreamResponse, GetSubProcessStreamResponse, type LogItem } from "../../src/api/aurae/observe/v0/observe.js";
import { decodeDaemonLogStreamResponse, decodeSubProcessStreamResponse, responseOf } from "../../src/client/log-stream-decoder.js";
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";

/** Both decoders' answers (or errors) for the same bytes. */
function both(buf: Buffer, kind: "sub" | "daemon"): { ours: unknown; generated: unknown } {
  const run = (f: () => unknown) => {
    try {
      return { value: f() };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  return kind === "sub"
    ? { ours: run(() => decodeSubProcessStreamResponse(buf)), generated: run(() => GetSubProcessStreamResponse.decode(buf)) }
    : { ours: run(() => decodeDaemonLogStreamResponse(buf)), generated: run(() => GetAuraeDaemonLogStreamResponse.decode(buf)) };
}

function same(buf: Buffer, kind: "sub" | "daemon" = "sub"): void {
  const { ours, generated } = both(buf, kind);
  assert.deepStrictEqual(ours, generated, `input ${buf.toString("hex")}`);
}

const items: LogItem[] = [
  { channel: "stdout", line: "hello", timestamp: 1733082000123, droppedBefore: 0 },
  { channel: "stdout", line: "", timestamp: 0, droppedBefore: 0 },
  { channel: "stderr", line: "é ∑ \u0000 \ufffd 😀 \r".repeat(40), timestamp: 2 ** 48 - 1, droppedBefore: 300 },
  { channel: "", line: "x".repeat(70_000), timestamp: 1, droppedBefore: 2 ** 40 },
  { channel: "stdout", line: "\ufeffleading BOM", timestamp: 5, droppedBefore: 1 },
];

test("what auraed sends decodes to the same objects as the generated decoder, one line or many per response", () => {
  for (const batch of [false, true]) {
    for (const buf of encodeLogResponses("stdout", items, batch)) {
      same(buf);
      assert.ok(responseOf(buf, true), "the fast path decodes it (no fallback)");
    }
  }
  const [batch] = encodeLogResponses("stderr", items, true);
  const decoded = decodeSubProcessStreamResponse(batch!);
  assert.equal(decoded.item, undefined);
  assert.deepStrictEqual(decoded.items.map((i) => i.line), items.map((i) => i.line));
  for (const buf of encodeLogResponses("auraed", items, false)) same(buf, "daemon");
});

test("messages written by the generated encoder decode the same, whatever they hold", () => {
  const cases: GetSubProcessStreamResponse[] = [
    { item: undefined, items: [] },
    { item: items[0], items: items.slice(1) },
    { item: { channel: "stdout", line: "big", timestamp: Number.MAX_SAFE_INTEGER, droppedBefore: Number.MAX_SAFE_INTEGER }, items: [] },
    { item: { channel: "stdout", line: "negative", timestamp: -5, droppedBefore: 0 }, items: [] },
    { item: { channel: "stdout", line: "2^49", timestamp: 2 ** 49, droppedBefore: 2 ** 49 }, items: [] },
  ];
  for (const c of cases) {
    const buf = Buffer.from(GetSubProcessStreamResponse.encode(c).finish());
    same(buf);
    same(buf, "daemon");
  }
});

test("unknown fields, repeated fields, other wire types and truncated input behave as in the generated decoder", () => {
  const w = () => new BinaryWriter();
  const item = (f: (x: BinaryWriter) => BinaryWriter) => f(w()).finish();
  const inputs: Uint8Array[] = [
    // an unknown field inside an item, and at the top
    w().uint32(10).bytes(item((x) => x.uint32(18).string("a").uint32(7 << 3).uint32(9))).finish(),
    w().uint32(10).bytes(item((x) => x.uint32(18).string("a"))).uint32(55 << 3).uint32(1).finish(),
    // a field given twice: the last one wins
    w().uint32(10).bytes(item((x) => x.uint32(18).string("first").uint32(18).string("second").uint32(24).uint32(1).uint32(24).uint32(2))).finish(),
    // item given twice
    w().uint32(10).bytes(item((x) => x.uint32(18).string("one"))).uint32(10).bytes(item((x) => x.uint32(18).string("two"))).finish(),
    // line sent with the wrong wire type (varint)
    w().uint32(10).bytes(item((x) => x.uint32(16).uint32(3))).finish(),
    // fixed64 and fixed32 fields, an end-group tag, a zero tag
    w().uint32(10).bytes(item((x) => x.uint32((9 << 3) | 1).fixed64(1).uint32((10 << 3) | 5).fixed32(2))).finish(),
    Uint8Array.from([0x0a, 0x02, 0x12, 0x00, 0x0c]),
    Uint8Array.from([0x0a, 0x00, 0x00, 0x0a, 0x00]),
    // a length past the end, a varint that never ends
    Uint8Array.from([0x0a, 0x05, 0x12, 0x01, 0x61]),
    Uint8Array.from([0x0a, 0x03, 0x18, 0xff, 0xff]),
    Uint8Array.from([0xa2, 0x06, 0x7f]),
    Uint8Array.from([0xa2]),
  ];
  for (const input of inputs) {
    same(Buffer.from(input));
    same(Buffer.from(input), "daemon");
  }
});

test("lines of random bytes (invalid UTF-8 included) and random messages decode as in the generated decoder", () => {
  const writer = (line: Uint8Array) => w2(line);
  const w2 = (line: Uint8Array) => {
    const inner = new BinaryWriter().uint32(10).string("stdout").uint32(18).bytes(line).uint32(24).uint32(1000).finish();
    return Buffer.from(new BinaryWriter().uint32(802).bytes(inner).uint32(10).bytes(inner).finish());
  };
  for (let i = 0; i < 2000; i++) same(writer(randomBytes(1 + (i % 40))));
  for (let i = 0; i < 2000; i++) {
    const raw = randomBytes(1 + (i % 64));
    same(raw);
    same(raw, "daemon");
  }
  // random corruption of a valid batch
  const [valid] = encodeLogResponses("stdout", items.slice(0, 3), true);
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(valid!);
    b[i % b.length] = randomBytes(1)[0]!;
    same(b);
  }
});
