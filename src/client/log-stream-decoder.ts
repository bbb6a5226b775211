/**
 * Fast decoders of the two log stream responses, used as the SDK's `responseDeserialize` for
 * `GetSubProcessStream` and `GetAuraeDaemonLogStream`:
 *
 *   GetSubProcessStreamResponse { LogItem item = 1; repeated LogItem items = 100; }
 *   GetAuraeDaemonLogStreamResponse { LogItem item = 1; }
 *   LogItem { string channel = 1; string line = 2; int64 timestamp = 3; uint64 dropped_before = 100; }
 *
 * They return the same plain objects the generated decoders (ts-proto) return, at a fraction of
 * the cost per line: a tight loop over the bytes, the channel string decoded once per response,
 * integers read as Numbers without 64-bit intermediates. Anything outside the shape auraed
 * sends (unknown fields, other wire types, integers of 2^49 and more, negative timestamps,
 * truncated input) is left to the generated decoder, so every input decodes exactly as it
 * would there (test/unit/client-log-stream-decoder.test.ts compares them).
 */
import {
  GetAuraeDaemonLogStreamResponse,
  GetSubProcessStreamResponse,
  type LogItem,
} from "../api/aurae/observe/v0/observe.js";

/**
 * Buffer's own UTF-8 decoder (what `toString("utf8", from, to)` calls after its argument
 * handling, which costs about as much as decoding a 100-byte line); `toString` where a Node
 * lacks it.
 */
const utf8Slice: (buf: Buffer, from: number, to: number) => string = (() => {
  const direct = (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, from: number, to: number) => string }).utf8Slice;
  return typeof direct === "function" ? (buf, from, to) => direct.call(buf, from, to) : (buf, from, to) => buf.toString("utf8", from, to);
})();

/** read position of the fast path (module state: the decoders never run concurrently) */
let pos = 0;
/** the last channel decoded, and its bytes, to reuse the string */
let lastChannel = "";
let lastChannelBytes: Uint8Array = new Uint8Array(0);

/**
 * An unsigned varint of at most 7 bytes (< 2^49, exact as a Number) at `pos`, advancing `pos`;
 * -1 when it is longer or runs past `end`.
 */
function varint(buf: Uint8Array, end: number): number {
  let b = buf[pos]!;
  if (pos < end && b < 0x80) {
    pos++;
    return b;
  }
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 7; i++) {
    if (pos >= end) return -1;
    b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 128;
  }
  return -1;
}

function channelOf(buf: Buffer, from: number, to: number): string {
  const known = lastChannelBytes;
  const len = to - from;
  if (len === known.length) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (buf[from + i] !== known[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastChannel;
  }
  lastChannel = buf.toString("utf8", from, to);
  lastChannelBytes = Uint8Array.prototype.slice.call(buf, from, to);
  return lastChannel;
}

/** One LogItem in [pos, end); undefined when it is not the plain shape (the caller falls back). */
function item(buf: Buffer, end: number): LogItem | undefined {
  let channel = "";
  let line = "";
  let timestamp = 0;
  let droppedBefore = 0;
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x12 || tag === 0x0a) {
      // line (2) or channel (1): length-delimited text
      const len = varint(buf, end);
      if (len < 0 || pos + len > end) return undefined;
      if (tag === 0x12) line = utf8Slice(buf, pos, pos + len);
      else channel = channelOf(buf, pos, pos + len);
      pos += len;
    } else if (tag === 0x18) {
      timestamp = varint(buf, end);
      if (timestamp < 0) return undefined;
    } else if (tag === 0xa0 && buf[pos] === 0x06) {
      pos++; // dropped_before (100), varint: a two-byte tag
      droppedBefore = varint(buf, end);
      if (droppedBefore < 0) return undefined;
    } else {
      return undefined;
    }
  }
  return { channel, line, timestamp, droppedBefore };
}

/**
 * @internal `{ item, items }` of a response whose every field is `item` (1) or, with
 * `withItems`, `items` (100); undefined for anything else (the generated decoder's job).
 */
export function responseOf(buf: Buffer, withItems: boolean): { item: LogItem | undefined; items: LogItem[] } | undefined {
  const end = buf.length;
  let one: LogItem | undefined;
  const items: LogItem[] = [];
  pos = 0;
  while (pos < end) {
    const tag = buf[pos++]!;
    let many = false;
    if (tag === 0xa2 && withItems && buf[pos] === 0x06) {
      pos++;
      many = true;
    } else if (tag !== 0x0a) {
      return undefined;
    }
    const len = varint(buf, end);
    if (len < 0 || pos + len > end) return undefined;
    const li = item(buf, pos + len);
    if (!li) return undefined;
    if (many) items.push(li);
    else one = li;
  }
  return { item: one, items };
}

/** `GetSubProcessStreamResponse.decode`, faster for what auraed sends. */
export function decodeSubProcessStreamResponse(buf: Buffer): GetSubProcessStreamResponse {
  return responseOf(buf, true) ?? GetSubProcessStreamResponse.decode(buf);
}

/** `GetAuraeDaemonLogStreamResponse.decode`, faster for what auraed sends. */
export function decodeDaemonLogStreamResponse(buf: Buffer): GetAuraeDaemonLogStreamResponse {
  const r = responseOf(buf, false);
  return r ? { item: r.item } : GetAuraeDaemonLogStreamResponse.decode(buf);
}
