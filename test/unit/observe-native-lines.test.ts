import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { GetSubProcessStreamResponse } from "../../src/api/aurae/observe/v0/observe.js";
import { LogResponseEncoder, serializeEncoded } from "../../src/daemon/observe/log-item-wire.js";
import { nativeLines, nativeLinesPath, nativeLinesStatus, resetNativeLinesForTests } from "../../src/daemon/observe/native-lines.js";
import { ChannelFile, type OutputReader } from "../../src/platform/output/channel-file.js";
import { documentedLines, mixedOutput, tempOutputFile } from "../helpers/output-lines.js";

// The C encoder (src/daemon/observe/log-item-wire.c) must give exactly the responses the
// TypeScript encoder gives, through the real file reader: same bytes, same boundaries.

const native = nativeLines();
const skip = native ? false : `the C encoder is not loaded: ${nativeLinesStatus()}`;
if (skip) process.stderr.write(`observe-native-lines: skipped: ${skip}\n`);

test("the C encoder is built and loaded where CI runs (scripts/setup.sh builds it)", { skip: !process.env.CI && skip }, () => {
  assert.ok(native, `${nativeLinesPath()}: ${nativeLinesStatus()}`);
});

const tempFile = tempOutputFile;

/** gRPC's framing of messages: each behind its 5-byte prefix */
function framedBytes(msgs: Buffer[]): Buffer {
  return Buffer.concat(msgs.flatMap((m) => [Buffer.from([0, m.length >>> 24, (m.length >>> 16) & 255, (m.length >>> 8) & 255, m.length & 255]), m]));
}

/**
 * Everything a reader gives now, as the responses (copied) of each take, through `enc`; a
 * framed encoder's frames must be those responses framed.
 */
function responses(r: OutputReader, enc: LogResponseEncoder, take: number, out: Buffer[][]): boolean {
  for (;;) {
    const n = r.takeBytes(enc, take);
    if (n === null) return true;
    if (n === 0) return false;
    const msgs = enc.finish();
    if (enc.frames) assert.deepEqual(enc.frames, framedBytes(msgs), "frames are the responses, each behind its prefix");
    out.push(msgs.map((m) => Buffer.from(m)));
    for (const m of msgs) serializeEncoded(m); // as grpc-js does: the arena is reused from now on
  }
}

/** The lines in responses, decoded by the generated decoder. */
function decodedLines(takes: Buffer[][]): string[] {
  const lines: string[] = [];
  for (const msgs of takes) {
    for (const m of msgs) {
      const d = GetSubProcessStreamResponse.decode(m);
      if (d.item) lines.push(d.item.line);
      for (const i of d.items) lines.push(i.line);
    }
  }
  return lines;
}

const forms: Array<[string, boolean | number, number]> = [
  ["one line per response", 0, 256],
  ["1 line per response, batched", 1, 256],
  ["7 lines per response", 7, 256],
  ["1024 lines per response", 1024, 1024],
  ["every line of a take in one response", true, 1000],
];

for (const [maxLineBytes, framed] of [[65536, false], [50, false], [65536, true]] as const) {
  for (const [name, per, take] of forms) {
    test(`C and TypeScript encoders give the same responses: ${name}, mixed output, lines of at most ${maxLineBytes} bytes${framed ? ", framed" : ""}`, { skip }, (t) => {
      const bytes = mixedOutput(20_000);
      const f = tempFile(t);
      let now = 1_733_082_000_000;
      const c = new ChannelFile(f, { maxLineBytes, now: () => now });
      const js = c.openReader();
      const cc = c.openReader();
      const jsEnc = new LogResponseEncoder("stdout", per, { native: false, framed });
      const cEnc = new LogResponseEncoder("stdout", per, { framed });
      assert.equal(jsEnc.lineRun, undefined);
      assert.ok(cEnc.lineRun);
      const a: Buffer[][] = [];
      const b: Buffer[][] = [];
      // written in uneven pieces, each seen at its own time: timestamps change inside reads
      for (let at = 0, i = 0; at < bytes.length; i++) {
        const n = [1, 700, 33_000, 5, 140_000, 9_999][i % 6]!;
        fs.appendFileSync(f, bytes.subarray(at, at + n));
        at += n;
        now += 3;
        c.refresh();
        if (i % 3 === 0) {
          responses(js, jsEnc, take, a);
          responses(cc, cEnc, take, b);
        }
      }
      c.end();
      assert.equal(responses(js, jsEnc, take, a), true);
      assert.equal(responses(cc, cEnc, take, b), true);
      assert.deepEqual(b, a);
      assert.deepEqual(decodedLines(b), documentedLines(bytes, maxLineBytes));
    });
  }
}

test("C and TypeScript encoders give the same responses when a reader falls behind retention (dropped lines)", { skip }, (t) => {
  const f = tempFile(t);
  let now = 1000;
  const c = new ChannelFile(f, { retainBytes: 64 * 1024, now: () => now });
  const js = c.openReader();
  const cc = c.openReader();
  const jsEnc = new LogResponseEncoder("stderr", 1024, { native: false });
  const cEnc = new LogResponseEncoder("stderr", 1024);
  const a: Buffer[][] = [];
  const b: Buffer[][] = [];
  const line = "z".repeat(99) + "\n";
  for (let i = 0; i < 30; i++) {
    now += 10;
    fs.appendFileSync(f, (String(i) + line).repeat(1000));
    c.refresh();
    if (i % 4 === 0) {
      responses(js, jsEnc, 512, a);
      responses(cc, cEnc, 512, b);
    }
  }
  c.end();
  responses(js, jsEnc, 512, a);
  responses(cc, cEnc, 512, b);
  assert.ok(js.dropped > 0, "lines were dropped");
  assert.equal(cc.dropped, js.dropped);
  assert.deepEqual(b, a);
});

test("100-byte lines in 128 KiB responses: the C encoder fills each response as far as the TypeScript one", { skip }, (t) => {
  const f = tempFile(t);
  const c = new ChannelFile(f, { now: () => 1_733_082_000_000 });
  fs.writeFileSync(f, ("y".repeat(99) + "\n").repeat(20_000));
  c.refresh();
  c.end();
  const a: Buffer[][] = [];
  const b: Buffer[][] = [];
  responses(c.openReader(), new LogResponseEncoder("stdout", 1024, { native: false }), 1024, a);
  responses(c.openReader(), new LogResponseEncoder("stdout", 1024), 1024, b);
  assert.deepEqual(b, a);
  assert.equal(decodedLines(b).length, 20_000);
});

/** The encoder with its lineRun counted: how many lines the C encoder took. */
function counted(enc: LogResponseEncoder): { enc: LogResponseEncoder; taken: () => number } {
  const run = enc.lineRun!;
  let taken = 0;
  Object.defineProperty(enc, "lineRun", {
    value: (...a: Parameters<typeof run>) => {
      const n = run(...a);
      taken += n;
      return n;
    },
  });
  return { enc, taken: () => taken };
}

for (const [name, per] of [["one line per response", 0], ["1024 lines per response", 1024], ["3 lines per response", 3]] as const) {
  test(`ASCII lines at the varint steps, empty lines, no timestamp: the C encoder takes them and matches (${name})`, { skip }, (t) => {
    const f = tempFile(t);
    let now = 0; // a timestamp of 0 is left out of the item
    const c = new ChannelFile(f, { now: () => now });
    const lengths = [0, 1, 99, 100, 110, 111, 112, 113, 126, 127, 128, 129, 130, 1000, 16370, 16383, 16384, 16385, 70_000];
    const lines = Array.from({ length: 3000 }, (_, i) => "a".repeat(lengths[i % lengths.length]!));
    const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(""));
    const js = c.openReader();
    const cc = c.openReader();
    const jsEnc = new LogResponseEncoder("stdout", per, { native: false, framed: true });
    const cEnc = counted(new LogResponseEncoder("stdout", per, { framed: true }));
    const a: Buffer[][] = [];
    const b: Buffer[][] = [];
    for (let at = 0, i = 0; at < bytes.length; i++) {
      fs.appendFileSync(f, bytes.subarray(at, at + 300_000));
      at += 300_000;
      now = i % 2 === 0 ? 0 : 1_733_082_000_000 + i; // with and without timestamps
      c.refresh();
      responses(js, jsEnc, 1024, a);
      responses(cc, cEnc.enc, 1024, b);
    }
    c.end();
    responses(js, jsEnc, 1024, a);
    responses(cc, cEnc.enc, 1024, b);
    assert.deepEqual(b, a);
    assert.equal(decodedLines(b).length, documentedLines(bytes).length);
    // the lines up to 64 KiB went through the C encoder, but for those that complete a partial
    // line held from the read before (longer ones are cut into pieces by the TypeScript path)
    const short = lines.filter((l) => l.length <= 65536).length;
    assert.ok(cEnc.taken() > 0.9 * short, `the C encoder took ${cEnc.taken()} of ${short} lines`);
  });
}

test("AURAED_NATIVE_LINES=off leaves the TypeScript encoder alone", (t) => {
  const before = process.env.AURAED_NATIVE_LINES;
  t.after(() => {
    if (before === undefined) delete process.env.AURAED_NATIVE_LINES;
    else process.env.AURAED_NATIVE_LINES = before;
    resetNativeLinesForTests();
  });
  process.env.AURAED_NATIVE_LINES = "off";
  resetNativeLinesForTests();
  assert.equal(nativeLines(), undefined);
  assert.match(nativeLinesStatus(), /AURAED_NATIVE_LINES=off/);
  assert.equal(new LogResponseEncoder("stdout", 1024).lineRun, undefined);
});
