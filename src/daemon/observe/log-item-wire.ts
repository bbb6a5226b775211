/**
 * Protobuf encoding of the two log stream responses on the hot path, written straight into
 * Buffers (the generated encoder costs several times more per line):
 *
 *   GetSubProcessStreamResponse / GetAuraeDaemonLogStreamResponse { LogItem item = 1; }
 *   GetSubProcessStreamResponse { repeated LogItem items = 100; }   (our batch extension)
 *   LogItem { string channel = 1; string line = 2; int64 timestamp = 3; uint64 dropped_before = 100; }
 *
 * The bytes are what the generated code produces for the same message (checked by
 * test/unit/observe-log-item-wire.test.ts), so any client decodes them.
 *
 * LogResponseEncoder is a LineSink: a reader reads the output file into the encoder's own
 * memory (`readBuffer`), right behind the responses being written, and each line's bytes are
 * moved into place with `copyWithin` (a memmove inside one ArrayBuffer; `Buffer.copy` between two
 * buffers costs several times more per 100-byte line). Lines are never turned into strings.
 *
 * Runs of whole lines are encoded by the C encoder when it is there (`lineRun`, native-lines.ts):
 * the same bytes, without JavaScript's per-line costs.
 *
 * Memory is reused: the responses' memory goes back to a small shared pool once each response
 * was handed on: on the direct HTTP/2 path when its write completed (the path's `responseSent`,
 * which is serializeEncoded below), on grpc-js's path when grpc-js copied it into a frame of its
 * own in the service's `responseSerialize` (serializeEncoded too), synchronously. Fresh memory for
 * every response cost page faults and, above all, garbage collections (large Buffers count as
 * external memory, which V8 collects after a budget of it was allocated).
 */
import type { LineSink, OutputLine } from "../../platform/output/channel-file.js";
import { returnArena, takeArena } from "./arena-pool.js";
import { nativeLines, nativeState, Slot, STARTS_CAP, type EncodeLines } from "./native-lines.js";

/** a batched response is closed once it holds this many bytes (about 1,200 lines of 100 bytes) */
export const BATCH_MESSAGE_BYTES = 128 * 1024;
/** room for responses in an arena (a line longer than what is left moves them to a larger buffer) */
const OUT_BYTES = BATCH_MESSAGE_BYTES + 16 * 1024;

/** per response still to be serialized: its arena and how many of the arena's responses are left */
const owners = new WeakMap<Buffer, { arena: Buffer; pending: number }>();

/**
 * The `responseSerialize` of the log streams: the responses are already encoded. grpc-js copies
 * the bytes right after this returns (synchronously, in the same call), so their arena can be
 * reused from now on.
 */
export function serializeEncoded(msg: Buffer): Buffer {
  const use = owners.get(msg);
  if (use) {
    owners.delete(msg);
    if (--use.pending === 0) returnArena(use.arena);
  }
  return msg;
}

/** Bytes of the unsigned varint encoding of a non-negative safe integer. */
function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 5;
  n = Math.floor(n / 0x800000000);
  while (n > 0) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  // 32-bit steps while they are exact; no `%` on doubles (a slow fmod call each)
  while (n >= 0x80000000) {
    const q = Math.floor(n / 128);
    buf[at++] = (n - q * 128) | 0x80;
    n = q;
  }
  while (n >= 128) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

/**
 * Encodes lines into responses: one response `{ item }` per line (`perResponse` 0 or false,
 * Aurae's form), or `{ items: [...] }` of up to `perResponse` lines each (true: every line
 * given until `finish()`; our extension; a response is also closed at BATCH_MESSAGE_BYTES).
 * `channel` must be ASCII ("stdout", "auraed"...).
 */
export class LogResponseEncoder implements LineSink {
  /** field 1 (channel) of every item: tag, length, text */
  private readonly channelField: Buffer;
  private arena: Buffer | undefined;
  /** where the read area starts in the arena (responses stay below it) */
  private readFrom = 0;
  private readBytes = 0;
  /** the view of the read area handed out (lines in it are moved with copyWithin) */
  private readArea: Buffer | undefined;
  /** where the responses go: the arena, or a larger buffer once they outgrew it */
  private out: Buffer | undefined;
  private at = 0;
  /** start of each response in `out` */
  private starts: number[] = [];
  /** lines in the response being filled (batched) */
  private respLines = 0;
  private readonly batch: boolean;
  private readonly perResponse: number;
  private lastTs = -1;
  private lastTsSize = 0;
  /** the C encoder of runs of lines, if loaded */
  private readonly native: EncodeLines | undefined;
  /** see LineSink.lineRun: undefined without the C encoder */
  readonly lineRun: LineSink["lineRun"];
  runEnd = 0;
  runFull = false;
  /** bytes kept free before each response for its gRPC prefix (5 when framed, else 0) */
  private readonly frame: number;
  /**
   * after finish(), with `framed`: the same responses, each behind its 5-byte gRPC prefix, in
   * one buffer; valid until they were sent (it shares their memory)
   */
  frames: Buffer | undefined;

  /**
   * `framed`: leave room before each response for the 5-byte prefix gRPC puts before a message
   * on the wire, so that finish() can also hand out all of them as one ready-to-send buffer
   * (`frames`; the direct HTTP/2 path sends it in one write). `native: false` keeps the C
   * encoder out (tests).
   */
  constructor(channel: string, perResponse: boolean | number, opts: { native?: boolean; framed?: boolean } = {}) {
    this.perResponse = perResponse === true ? Infinity : perResponse === false ? 0 : perResponse;
    this.batch = this.perResponse > 0;
    const ch = Buffer.from(channel, "latin1");
    if (ch.length >= 128) throw new RangeError("channel name too long");
    this.channelField = ch.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, ch.length]), ch]);
    this.frame = opts.framed ? 5 : 0;
    this.native = opts.native === false ? undefined : nativeLines();
    this.lineRun = this.native ? (buf, from, end, limit, ts, maxLines, maxLineBytes) => this.encodeRun(buf, from, end, limit, ts, maxLines, maxLineBytes) : undefined;
  }

  /** true when nothing was encoded since the last finish() */
  get empty(): boolean {
    return this.at === 0;
  }

  readBuffer(minBytes: number): Buffer {
    if (!this.arena || this.readBytes < minBytes) {
      this.readBytes = Math.max(minBytes, this.readBytes);
      this.newArena();
    }
    return (this.readArea ??= this.arena!.subarray(this.readFrom, this.readFrom + this.readBytes));
  }

  line(buf: Buffer, from: number, to: number, timestamp: number, droppedBefore: number): boolean {
    const len = to - from;
    const ts = Math.floor(timestamp);
    let body = this.channelField.length;
    if (len > 0) body += 1 + varintSize(len) + len;
    if (ts > 0) {
      if (ts !== this.lastTs) {
        this.lastTs = ts;
        this.lastTsSize = varintSize(ts);
      }
      body += 1 + this.lastTsSize;
    }
    if (droppedBefore > 0) body += 2 + varintSize(droppedBefore);
    let total = (this.batch ? 2 : 1) + varintSize(body) + body;
    // does this line open a response (and so need room for its prefix too)?
    let opens = true;
    if (this.batch) {
      const open = this.starts.length > 0 ? this.starts[this.starts.length - 1]! : -1;
      opens = open < 0 || this.respLines >= this.perResponse || this.at - open >= BATCH_MESSAGE_BYTES;
    }
    if (opens) total += this.frame;
    if (!this.out) this.newArena();
    if (this.at + total > (this.out === this.arena ? this.readFrom : this.out!.length)) this.grow(total);
    const out = this.out!;
    let at = this.at;
    if (opens) {
      at += this.frame;
      this.starts.push(at);
      this.respLines = 0;
    }
    if (this.batch) {
      this.respLines++;
      out[at++] = 0xa2; // field 100 (items), length-delimited: (100 << 3 | 2) as a two-byte varint
      out[at++] = 0x06;
    } else {
      out[at++] = 0x0a; // field 1 (item), length-delimited
    }
    at = writeVarint(out, at, body);
    const ch = this.channelField;
    for (let i = 0; i < ch.length; i++) out[at++] = ch[i]!;
    if (len > 0) {
      out[at++] = 0x12; // field 2 (line), length-delimited
      at = writeVarint(out, at, len);
      // (identity, not .buffer/.byteOffset: those getters cost more than the copy)
      if (buf === this.readArea && out === this.arena) {
        out.copyWithin(at, this.readFrom + from, this.readFrom + to); // a line read into our read area
      } else {
        buf.copy(out, at, from, to);
      }
      at += len;
    }
    if (ts > 0) {
      out[at++] = 0x18; // field 3 (timestamp), varint
      at = writeVarint(out, at, ts);
    }
    if (droppedBefore > 0) {
      out[at++] = 0xa0; // field 100 (dropped_before), varint: (100 << 3) as a two-byte varint
      out[at++] = 0x06;
      at = writeVarint(out, at, droppedBefore);
    }
    this.at = at;
    return at < BATCH_MESSAGE_BYTES;
  }

  /**
   * A run of whole lines through the C encoder (LineSink.lineRun): the same bytes as line() for
   * each, same response boundaries, same stop once the buffer holds 128 KiB. It stops early
   * (and the reader hands the next line to line()) where line() has work the C encoder does
   * not do: a line that does not fit in the buffer, one longer than maxLineBytes.
   */
  private encodeRun(buf: Buffer, from: number, end: number, limit: number, timestamp: number, maxLines: number, maxLineBytes: number): number {
    this.runEnd = from;
    this.runFull = false;
    if (from < 0 || end > buf.length || from >= end) return 0;
    if (!this.out) this.newArena();
    const out = this.out!;
    const st = nativeState;
    const open = this.batch && this.starts.length > 0 ? this.starts[this.starts.length - 1]! : -1;
    st[Slot.Pos] = from;
    st[Slot.End] = end;
    st[Slot.Limit] = Math.min(limit, end);
    st[Slot.At] = this.at;
    st[Slot.Cap] = out === this.arena ? this.readFrom : out.length;
    st[Slot.PerResponse] = this.batch ? Math.min(this.perResponse, 0x7fffffff) : 0;
    st[Slot.Open] = open;
    st[Slot.RespLines] = this.respLines;
    st[Slot.MaxLines] = Math.min(maxLines, 0x7fffffff);
    st[Slot.MaxLineBytes] = maxLineBytes;
    st[Slot.BatchBytes] = BATCH_MESSAGE_BYTES;
    st[Slot.StartsCap] = STARTS_CAP;
    st[Slot.Frame] = this.frame;
    const n = this.native!(out, buf, st, this.channelField, this.channelField.length, Math.floor(timestamp));
    if (n > 0) {
      this.at = st[Slot.At]!;
      this.respLines = st[Slot.RespLines]!;
      const opened = st[Slot.NStarts]!;
      for (let i = 0; i < opened; i++) this.starts.push(st[Slot.Starts + i]!);
      this.runEnd = st[Slot.Pos]!;
      this.runFull = st[Slot.Stop] === 1;
    }
    return n;
  }

  /**
   * The responses encoded since the last call (none when no line came); starts afresh. Their
   * memory is reused once grpc-js serialized them (serializeEncoded): write them to a call whose
   * service uses serializeEncoded, or not at all.
   */
  finish(): Buffer[] {
    const out = this.out;
    this.frames = undefined;
    if (!out || this.at === 0) return [];
    const f = this.frame;
    const starts = this.starts;
    const msgs = starts.map((s, i) => out.subarray(s, i + 1 < starts.length ? starts[i + 1]! - f : this.at));
    if (f > 0) {
      for (let i = 0; i < starts.length; i++) {
        const s = starts[i]!;
        out[s - 5] = 0; // not compressed
        out.writeUInt32BE(msgs[i]!.length, s - 4);
      }
      this.frames = out.subarray(starts[0]! - 5, this.at);
    }
    this.starts = [];
    this.respLines = 0;
    if (out === this.arena) {
      const use = { arena: out, pending: msgs.length };
      for (const m of msgs) owners.set(m, use);
    } else if (this.arena) {
      returnArena(this.arena); // the responses outgrew it: only the read area was used
    }
    this.arena = undefined;
    this.readArea = undefined;
    this.out = undefined;
    this.at = 0;
    return msgs;
  }

  /** Lets go of memory while there is nothing to encode (a stream waiting for output holds none). */
  release(): void {
    this.frames = undefined;
    if (this.at > 0) return;
    if (this.arena) returnArena(this.arena);
    this.arena = undefined;
    this.readArea = undefined;
    this.out = undefined;
  }

  private newArena(): void {
    const keep = this.out && this.out !== this.arena ? this.out : undefined;
    this.arena = takeArena(OUT_BYTES + this.readBytes);
    this.readFrom = OUT_BYTES;
    this.readArea = undefined;
    if (!keep) {
      if (this.at > 0 && this.out) this.out.copy(this.arena, 0, 0, this.at);
      this.out = this.arena;
    }
  }

  /** Moves the responses to a buffer with room for `need` more bytes (the read area stays where it is). */
  private grow(need: number): void {
    const old = this.out!;
    const bigger = Buffer.allocUnsafe(Math.max(2 * (this.at + need), OUT_BYTES));
    old.copy(bigger, 0, 0, this.at);
    this.out = bigger;
  }
}

/**
 * Encodes lines as responses: one response `{ item }` per line (batch false, Aurae's form), or
 * one response `{ items: [...] }` for all of them.
 */
export function encodeLogResponses(channel: string, lines: OutputLine[], batch: boolean): Buffer[] {
  const enc = new LogResponseEncoder(channel, batch);
  for (const l of lines) {
    const b = Buffer.from(l.line);
    enc.line(b, 0, b.length, l.timestamp, l.droppedBefore);
  }
  return enc.finish();
}
