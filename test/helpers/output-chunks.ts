import assert from "node:assert/strict";
import type { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { LogItem } from "../../src/api/aurae/observe/v0/observe.js";
import type { OutputChunk } from "../../src/client/output-chunk-decoder.js";
import { OutputStreamDecoder } from "../../src/client/output-stream-decoder.js";

/** A line of OutputChunks; the first line of each chunk carries its drop count and timestamp. */
export type ChunkLine = { line: string; droppedBefore: number; timestamp?: number };

/** What the chunks say, as lines (checking that each chunk ends in "\n" and counts its lines). */
export function linesOf(chunks: OutputChunk[]): ChunkLine[] {
  const out: ChunkLine[] = [];
  for (const c of chunks) {
    const text = c.text.toString("utf8");
    assert.ok(text.endsWith("\n"), "a chunk ends with a newline");
    const lines = text.slice(0, -1).split("\n");
    assert.equal(lines.length, c.lines, "lines counts the chunk's lines");
    lines.forEach((line, i) => out.push(i === 0 ? { line, droppedBefore: c.droppedBefore, timestamp: c.timestamp } : { line, droppedBefore: 0 }));
  }
  return out;
}

/**
 * LogItems of every kind the daemon sends: empty lines, multi-byte characters, a long line,
 * drops, timestamps from 0 to 2^48 (lines without "\n": the daemon splits on it).
 */
export const sampleItems: LogItem[] = [
  { channel: "stdout", line: "hello", timestamp: 1733082000123, droppedBefore: 0 },
  { channel: "stdout", line: "", timestamp: 0, droppedBefore: 0 },
  { channel: "stdout", line: "é ∑ \u0000 \ufffd 😀 \r".repeat(40), timestamp: 2 ** 48 - 1, droppedBefore: 300 },
  { channel: "stdout", line: "x".repeat(70_000), timestamp: 1, droppedBefore: 0 },
  { channel: "stdout", line: "after", timestamp: 5, droppedBefore: 1 },
  { channel: "stdout", line: "", timestamp: 6, droppedBefore: 0 },
];

/** Writes a LogItem (channel "stdout", `line`, `dropped` if any) as field `field` of a response. */
export function writeItem(w: BinaryWriter, field: number, line: string, dropped = 0): void {
  w.uint32((field << 3) | 2).fork();
  w.uint32(0x0a).string("stdout").uint32(0x12).string(line);
  if (dropped) w.uint32((100 << 3) | 0).uint64(dropped);
  w.join();
}

/** gRPC framing of responses: the DATA of a stream */
export function frames(msgs: Uint8Array[]): Buffer {
  return Buffer.concat(
    msgs.flatMap((m) => {
      const p = Buffer.alloc(5);
      p.writeUInt32BE(m.length, 1);
      return [p, Buffer.from(m)];
    }),
  );
}

/** `data` fed to an OutputStreamDecoder in pieces cut at `cuts` (copies: the decoder changes its pieces). */
export function decodeInPieces(data: Buffer, cuts: number[]): { chunks: OutputChunk[]; idle: boolean } {
  const d = new OutputStreamDecoder();
  const chunks: OutputChunk[] = [];
  let from = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < data.length).sort((a, b) => a - b), data.length]) {
    if (c <= from) continue;
    d.push(Buffer.from(data.subarray(from, c)), chunks);
    from = c;
  }
  return { chunks, idle: d.idle };
}
