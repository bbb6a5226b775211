/**
 * Protobuf encoding of the two log stream responses on the hot path, written straight into
 * one Buffer (the generated encoder costs several times more per line):
 *
 *   GetSubProcessStreamResponse / GetAuraeDaemonLogStreamResponse { LogItem item = 1; }
 *   GetSubProcessStreamResponse { repeated LogItem items = 100; }   (our batch extension)
 *   LogItem { string channel = 1; string line = 2; int64 timestamp = 3; uint64 dropped_before = 100; }
 *
 * The bytes are what the generated code produces for the same message (checked by
 * test/unit/observe-log-item-wire.test.ts), so any client decodes them.
 */
import type { OutputLine } from "../../platform/output/channel-file.js";

/** Bytes of the unsigned varint encoding of a non-negative safe integer. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 128) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/** Size of one encoded LogItem body (without its own tag and length). */
function itemSize(channelBytes: number, lineBytes: number, timestamp: number, dropped: number): number {
  let size = 0;
  if (channelBytes > 0) size += 1 + varintSize(channelBytes) + channelBytes;
  if (lineBytes > 0) size += 1 + varintSize(lineBytes) + lineBytes;
  if (timestamp > 0) size += 1 + varintSize(timestamp);
  if (dropped > 0) size += 2 + varintSize(dropped);
  return size;
}

function writeItem(buf: Buffer, at: number, channel: string, channelBytes: number, l: OutputLine, lineBytes: number): number {
  if (channelBytes > 0) {
    buf[at++] = 0x0a; // field 1, length-delimited
    at = writeVarint(buf, at, channelBytes);
    at += buf.write(channel, at, "latin1");
  }
  if (lineBytes > 0) {
    buf[at++] = 0x12; // field 2, length-delimited
    at = writeVarint(buf, at, lineBytes);
    at += buf.write(l.line, at, lineBytes, "utf8");
  }
  if (l.timestamp > 0) {
    buf[at++] = 0x18; // field 3, varint
    at = writeVarint(buf, at, Math.floor(l.timestamp));
  }
  if (l.droppedBefore > 0) {
    buf[at++] = 0xa0; // field 100, varint: (100 << 3) as a two-byte varint
    buf[at++] = 0x06;
    at = writeVarint(buf, at, l.droppedBefore);
  }
  return at;
}

/**
 * Encodes lines as responses: one response `{ item }` per line (batch 0, Aurae's form), or one
 * response `{ items: [...] }` for all of them. `channel` must be ASCII ("stdout", "auraed"...).
 */
export function encodeLogResponses(channel: string, lines: OutputLine[], batch: boolean): Buffer[] {
  const channelBytes = channel.length;
  const lineBytes = lines.map((l) => Buffer.byteLength(l.line));
  const sizes = lines.map((l, i) => itemSize(channelBytes, lineBytes[i]!, Math.floor(l.timestamp), l.droppedBefore));
  if (!batch) {
    return lines.map((l, i) => {
      const body = sizes[i]!;
      const buf = Buffer.allocUnsafe(1 + varintSize(body) + body);
      buf[0] = 0x0a; // field 1 (item)
      const at = writeVarint(buf, 1, body);
      writeItem(buf, at, channel, channelBytes, l, lineBytes[i]!);
      return buf;
    });
  }
  let total = 0;
  for (const s of sizes) total += 2 + varintSize(s) + s;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < lines.length; i++) {
    buf[at++] = 0xa2; // field 100 (items), length-delimited: (100 << 3 | 2) as a two-byte varint
    buf[at++] = 0x06;
    at = writeVarint(buf, at, sizes[i]!);
    at = writeItem(buf, at, channel, channelBytes, lines[i]!, lineBytes[i]!);
  }
  return [buf];
}
