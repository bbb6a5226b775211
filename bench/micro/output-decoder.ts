/**
 * Microbenchmark of readOutput's decoder alone (src/client/output-stream-decoder.ts): 200
 * batched responses of 1,024 100-byte lines, as auraed encodes them, cut into ~8 KiB pieces as
 * HTTP/2 hands them over, decoded ROUNDS times; prints ns per line and ms per MB of each round
 * and the min and median. Run it with the WebAssembly loop and without, alternately:
 *
 *   node --import tsx bench/micro/output-decoder.ts
 *   AURAE_SDK_WASM=off node --import tsx bench/micro/output-decoder.ts
 */
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";
import { OutputStreamDecoder } from "../../src/client/output-stream-decoder.js";
import type { OutputChunk } from "../../src/client/output-chunk-decoder.js";

const ROUNDS = Number(process.env.ROUNDS ?? 30);
const lines = Array.from({ length: 1024 }, () => ({ line: "x".repeat(99), timestamp: Date.now(), droppedBefore: 0 }));
const msg = encodeLogResponses("stdout", lines, true)[0]!;
const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
framed.writeUInt32BE(msg.length, 1);
const whole = Buffer.concat(Array(200).fill(framed));

/** fresh copies of the stream cut into pieces of about 8 KiB (the decoder changes its pieces) */
function pieces(): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < whole.length; ) {
    const n = Math.min(whole.length - at, 8183 + ((at / 8183) % 3 | 0) * 7);
    out.push(Buffer.from(whole.subarray(at, at + n)));
    at += n;
  }
  return out;
}

const perLine: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const ps = pieces();
  const dec = new OutputStreamDecoder();
  const out: OutputChunk[] = [];
  let count = 0;
  let bytes = 0;
  const t = performance.now();
  for (const p of ps) {
    out.length = 0;
    dec.push(p, out);
    for (const c of out) {
      count += c.lines;
      bytes += c.text.length;
    }
  }
  const ms = performance.now() - t;
  perLine.push((ms * 1e6) / count);
  console.log(`round ${round}: ${count} lines, ${((ms * 1e6) / count).toFixed(1)} ns/line, ${(ms / (bytes / 1e6)).toFixed(3)} ms/MB`);
}
const sorted = [...perLine].sort((a, b) => a - b);
console.log(`WebAssembly ${process.env.AURAE_SDK_WASM === "off" ? "off" : "on"}: min ${sorted[0]!.toFixed(1)} ns/line, median ${sorted[sorted.length >> 1]!.toFixed(1)} ns/line`);
