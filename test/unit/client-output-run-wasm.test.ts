import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resetWasmForTests, wasmRunOfItems } from "../../src/client/wasm/output-run.js";
import { encodeLogResponses, LogResponseEncoder } from "../../src/daemon/observe/log-item-wire.js";
import type { OutputLine } from "../../src/platform/output/channel-file.js";
import { REPO } from "../helpers/daemon.js";
import { decodeInPieces, frames } from "../helpers/output-chunks.js";

// readOutput's WebAssembly loop (src/client/wasm/output-run.c) must give exactly what the
// TypeScript loop gives: same chunks (text, lines, drops, timestamps), same errors.

/** Decodes `data` cut at `cuts` with the WebAssembly loop on or off: the chunks (copied), or the error's message. */
function decode(data: Buffer, cuts: number[], wasm: boolean): Array<{ text: string; lines: number; droppedBefore: number; timestamp?: number }> | string {
  const before = process.env.AURAE_SDK_WASM;
  process.env.AURAE_SDK_WASM = wasm ? "on" : "off";
  resetWasmForTests();
  try {
    assert.equal(wasmRunOfItems() !== null, wasm);
    const { chunks } = decodeInPieces(data, cuts);
    return chunks.map((c) => ({ text: c.text.toString("latin1"), lines: c.lines, droppedBefore: c.droppedBefore, timestamp: c.timestamp }));
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return (err as Error).message;
  } finally {
    if (before === undefined) delete process.env.AURAE_SDK_WASM;
    else process.env.AURAE_SDK_WASM = before;
    resetWasmForTests();
  }
}

const cutsOf = (len: number, n: number) => Array.from({ length: n }, () => randomInt(0, len));

/**
 * auraed's responses of `lines`: batches of 1,024, then the first `small` lines again in
 * responses of `per` lines each.
 */
function responsesOf(lines: OutputLine[], per: number, small: number): Buffer[] {
  const msgs: Buffer[] = [];
  for (let at = 0; at < lines.length; at += 1024) msgs.push(...encodeLogResponses("stdout", lines.slice(at, at + 1024), true));
  const enc = new LogResponseEncoder("stdout", per, { native: false });
  for (const l of lines.slice(0, small)) {
    const b = Buffer.from(l.line);
    enc.line(b, 0, b.length, l.timestamp, l.droppedBefore);
  }
  msgs.push(...enc.finish().map((m) => Buffer.from(m)));
  return msgs;
}

/** The stream cut at each of `cutSets`: the same chunks with and without WebAssembly. */
function sameBothWays(data: Buffer, cutSets: number[][]): void {
  for (const cuts of cutSets) {
    const js = decode(data, cuts, false);
    assert.ok(Array.isArray(js) && js.length > 0);
    assert.deepEqual(decode(data, cuts, true), js);
  }
}

test("the WebAssembly loop loads", () => {
  resetWasmForTests();
  assert.ok(wasmRunOfItems());
});

test("the committed module is what src/client/wasm/build.sh builds from output-run.c", (t) => {
  const tools = ["/usr/bin/clang-14", "/usr/bin/wasm-ld-14"].filter((f) => !existsSync(f));
  if (tools.length > 0) {
    if (process.env.CI) assert.fail(`missing ${tools.join(", ")} (scripts/setup.sh installs clang-14 and lld-14)`);
    t.skip(`missing ${tools.join(", ")}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "aurae-wasm-"));
  try {
    const out = join(dir, "output-run-wasm.ts");
    execFileSync("bash", [join(REPO, "src/client/wasm/build.sh"), out], { stdio: "pipe" });
    assert.equal(readFileSync(join(REPO, "src/client/wasm/output-run-wasm.ts"), "utf8"), readFileSync(out, "utf8"), "stale: run src/client/wasm/build.sh");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("auraed's responses, cut anywhere: the same chunks with and without WebAssembly", () => {
  // line lengths around the varint steps (127/128, 16383/16384), empty lines, drops, big timestamps
  const lengths = [0, 1, 99, 100, 126, 127, 128, 129, 1000, 16383, 16384, 20000];
  const lines: OutputLine[] = Array.from({ length: 4000 }, (_, i) => {
    const len = i % 13 === 0 ? lengths[(i / 13) % lengths.length]! : 99;
    return {
      line: `${i}:${"l".repeat(len)}`.slice(0, len),
      timestamp: i % 97 === 0 ? 2 ** 48 + i : 1_733_082_000_000 + i,
      droppedBefore: i % 701 === 5 ? i : 0,
    };
  });
  const msgs = responsesOf(lines, 7, 500);
  msgs.push(...encodeLogResponses("stderr", lines.slice(0, 50), false)); // Aurae's one item per response
  const data = frames(msgs);
  sameBothWays(data, [[], Array.from({ length: 400 }, (_, i) => i * 8192 + (i % 3)), cutsOf(data.length, 100), cutsOf(data.length, 3000)]);
});

test("every third line empty, drops, one line per batched response: the same chunks with and without WebAssembly", () => {
  // entries the loop refuses (an empty line has no line field; a drop count) end its runs
  const lines: OutputLine[] = Array.from({ length: 3000 }, (_, i) => ({
    line: i % 3 === 2 ? "" : `${i}`.padEnd(99, "q"),
    timestamp: 1_733_082_000_000 + i,
    droppedBefore: i % 250 === 1 ? 3 : 0,
  }));
  const data = frames(responsesOf(lines, 1, 400));
  sameBothWays(data, [[], Array.from({ length: 60 }, (_, i) => i * 16384), cutsOf(data.length, 200)]);
});

test("damaged responses: the same lines, or the same error, with and without WebAssembly", () => {
  const lines: OutputLine[] = Array.from({ length: 300 }, (_, i) => ({ line: `${i}`.padEnd(99, "z"), timestamp: 1_733_082_000_000, droppedBefore: 0 }));
  const good = frames(encodeLogResponses("stdout", lines, true));
  for (let i = 0; i < 300; i++) {
    const data = Buffer.from(good);
    // a few bytes changed inside the response (never the 5-byte prefix)
    for (let k = 0; k < 1 + (i % 4); k++) data[5 + randomInt(0, data.length - 5)] = i % 2 === 0 ? randomInt(0, 256) : [0x0a, 0x12, 0x18, 0xa2, 0x06, 0x80, 0xff][randomInt(0, 7)]!;
    const cuts = cutsOf(data.length, 1 + (i % 5));
    assert.deepEqual(decode(data, cuts, true), decode(data, cuts, false), `case ${i}`);
  }
  for (let i = 0; i < 200; i++) {
    const body = Buffer.concat([Buffer.from([0xa2, 0x06, 0x7f]), randomBytes(600 + i)]);
    const data = frames([body]);
    assert.deepEqual(decode(data, [], true), decode(data, [], false), `random ${i}`);
  }
});
