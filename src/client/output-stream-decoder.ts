/**
 * `readOutput`'s decoder: GetSubProcessStream responses decoded from the DATA of their HTTP/2
 * stream as it arrives, in place. A batched response (about 120 kB) arrives in several DATA
 * pieces; instead of copying them into one buffer per response (a fresh 120 kB each: 0.1-0.4
 * ms/MB more for the reader in A/B runs, docs/observe.md), each piece's whole lines are
 * moved to the front of that piece, each followed by "\n", and handed out as a chunk that
 * shares the piece's memory. A line cut by a piece's end is put together in a small buffer of
 * its own and handed out as a chunk of one line.
 *
 * This fast path takes responses whose first field is `items` (field 100, what auraed sends
 * with max_lines_per_message) holding plain LogItems:
 *
 *   GetSubProcessStreamResponse { repeated LogItem items = 100; }
 *   LogItem { string channel = 1; string line = 2; int64 timestamp = 3; uint64 dropped_before = 100; }
 *
 * Any other response (Aurae's one `item` per response, other fields) is gathered whole and
 * decoded by decodeOutputChunks (output-chunk-decoder.ts), which gives what the generated
 * decoder gives. When a field that is not a plain `items` entry turns up inside a response
 * taken by the fast path, the rest of that response is gathered and decoded the same way,
 * after the lines before it; the lines are then what the generated decoder gives, except that
 * a singular `item` following `items` comes after them (the generated decoder puts it first;
 * no server sends that shape). test/unit/client-output-stream-decoder.test.ts checks both.
 */
import { AuraeClientError } from "./errors.js";
import { decodeOutputChunks, plain, plainItem, varintAt, type OutputChunk } from "./output-chunk-decoder.js";
import { status } from "@grpc/grpc-js";
import { wasmRunOfItems, type RunResult } from "./wasm/output-run.js";

const ITEMS_TAG_0 = 0xa2; // field 100, length-delimited: (100 << 3 | 2) as a two-byte varint
const ITEMS_TAG_1 = 0x06;

const enum State {
  /** reading a response's 5-byte prefix */
  Prefix,
  /** at a field of a fast-path response: reading its tag and length */
  FieldHead,
  /** inside an `items` entry that did not fit in one piece: gathering it */
  Item,
  /** gathering a response (or its rest) for decodeOutputChunks */
  Gather,
}

/** a run of at least this many bytes goes to the WebAssembly loop (below it, copying costs more than it saves) */
const WASM_MIN_BYTES = 512;
/** a run that moved fewer lines turns the WebAssembly loop off for the rest of its piece */
const WASM_MIN_LINES = 16;
/** what the WebAssembly loop found */
const run: RunResult = { lines: 0, timestamp: 0, pos: 0, to: 0, left: 0 };

/** what auraedItem found */
let fastStart = 0;
let fastEnd = 0;
let fastTs = 0;

/**
 * Is buf[from, to) a LogItem exactly as auraed writes the common one: channel (under 128
 * bytes), a line of 1 to 16,383 bytes, a timestamp, nothing else? Sets fastStart/fastEnd/fastTs.
 * Anything else (an empty line, a drop count, another order) is for plainItem.
 */
function auraedItem(buf: Buffer, from: number, to: number): boolean {
  let p = from;
  if (buf[p] === 0x0a) {
    const cl = buf[p + 1]!;
    if (cl >= 0x80) return false;
    p += 2 + cl;
  }
  if (p + 2 > to || buf[p] !== 0x12) return false;
  let len = buf[p + 1]!;
  p += 2;
  if (len >= 0x80) {
    const b2 = buf[p]!;
    if (b2 >= 0x80 || p >= to) return false;
    len = (len & 0x7f) | (b2 << 7);
    p++;
  }
  fastStart = p;
  p += len;
  fastEnd = p;
  if (p >= to || buf[p] !== 0x18) return false;
  p++;
  let ts = 0;
  let scale = 1;
  for (let i = 0; i < 7; i++) {
    if (p >= to) return false;
    const byte = buf[p++]!;
    ts += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      fastTs = ts;
      return p === to;
    }
    scale *= 128;
  }
  return false;
}

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Turns the DATA of one GetSubProcessStream call into OutputChunks. */
export class OutputStreamDecoder {
  private state = State.Prefix;
  /** bytes of the current response not yet read */
  private msgLeft = 0;
  /** the prefix, or a field's tag and length, as far as they came */
  private head = Buffer.alloc(16);
  private headHave = 0;
  /** the buffer being gathered (an item, a response, a response's rest) and how full it is */
  private gather: Buffer | undefined;
  private gatherHave = 0;
  // the run of lines moved to the front of the current piece
  private piece: Buffer | undefined;
  private runFrom = 0;
  private runTo = 0;
  private runLines = 0;
  private runDropped = 0;
  private runTs = 0;
  /** the WebAssembly loop is off for the rest of the current piece */
  private wasmOff = false;

  /** true when no response is partly received */
  get idle(): boolean {
    return this.state === State.Prefix && this.headHave === 0;
  }

  /** Decodes one piece of DATA; its chunks go to `out`. The piece's memory becomes theirs. */
  push(b: Buffer, out: OutputChunk[]): void {
    this.piece = b;
    this.wasmOff = false;
    this.runFrom = this.runTo = 0;
    this.runLines = 0;
    let pos = 0;
    const n = b.length;
    while (pos < n) {
      switch (this.state) {
        case State.Prefix: {
          const take = Math.min(5 - this.headHave, n - pos);
          b.copy(this.head, this.headHave, pos, pos + take);
          this.headHave += take;
          pos += take;
          if (this.headHave < 5) break;
          this.headHave = 0;
          if (this.head[0] !== 0) throw new AuraeClientError(status.INTERNAL, "the server sent a compressed response, which was not asked for");
          this.msgLeft = this.head.readUInt32BE(1);
          if (this.msgLeft === 0) break; // an empty response: no lines
          // the fast path when the response starts with `items` (or its first byte is yet to come)
          if (pos < n && b[pos] !== ITEMS_TAG_0) this.startGather(this.msgLeft, [], undefined, out);
          else this.state = State.FieldHead;
          break;
        }
        case State.FieldHead: {
          // fastest: a run of whole items in auraed's exact layout
          if (this.headHave === 0) {
            pos = this.runOfItems(b, pos, out);
            if (pos >= n || this.state !== State.FieldHead) break;
          }
          // fast: the whole head is here
          if (this.headHave === 0 && n - pos >= 7 && b[pos] === ITEMS_TAG_0 && b[pos + 1] === ITEMS_TAG_1) {
            const len = varintAt(b, pos + 2, n);
            if (len >= 0) {
              const headLen = plain.next - pos;
              if (headLen + len > this.msgLeft) throw this.malformed();
              pos = plain.next;
              this.msgLeft -= headLen;
              pos = this.itemAt(b, pos, len, out);
              break;
            }
          }
          // slow: byte by byte into `head`
          const byte = b[pos++]!;
          this.head[this.headHave++] = byte;
          this.msgLeft--;
          const h = this.head;
          if (h[0] !== ITEMS_TAG_0 || (this.headHave >= 2 && h[1] !== ITEMS_TAG_1)) {
            // not an `items` entry: the rest of the response (this field included) is gathered
            const head = [...h.subarray(0, this.headHave)];
            this.headHave = 0;
            this.startGather(this.msgLeft, head, undefined, out);
            break;
          }
          if (this.headHave >= 3 && byte < 0x80) {
            const len = varintAt(h, 2, this.headHave);
            this.headHave = 0;
            if (len < 0 || len > this.msgLeft) throw this.malformed();
            pos = this.itemAt(b, pos, len, out);
          } else if (this.headHave >= 9) throw this.malformed();
          else if (this.msgLeft === 0) throw this.malformed();
          break;
        }
        case State.Item:
        case State.Gather: {
          const g = this.gather!;
          const take = Math.min(g.length - this.gatherHave, n - pos);
          b.copy(g, this.gatherHave, pos, pos + take);
          this.gatherHave += take;
          pos += take;
          if (this.gatherHave < g.length) break;
          this.gather = undefined;
          if (this.state === State.Item) {
            this.state = this.msgLeft > 0 ? State.FieldHead : State.Prefix;
            this.gatheredItem(g, out);
          } else {
            this.gathered(g, out);
          }
          break;
        }
      }
    }
    this.flushRun(out);
    this.piece = undefined;
  }

  /**
   * An `items` entry of `len` bytes starting at b[pos]: taken in place when it is all here, or
   * gathered. Returns the position after what was consumed.
   */
  private itemAt(b: Buffer, pos: number, len: number, out: OutputChunk[]): number {
    if (len > this.msgLeft) throw this.malformed();
    this.msgLeft -= len;
    if (b.length - pos < len) {
      this.gather = Buffer.allocUnsafe(len);
      this.gatherHave = 0;
      this.state = State.Item;
      return pos;
    }
    if (plainItem(b, pos, pos + len)) {
      this.appendLine(b, plain.lineStart, plain.lineEnd, plain.timestamp, plain.droppedBefore, out);
      this.state = this.msgLeft > 0 ? State.FieldHead : State.Prefix;
    } else {
      // not plain: this entry and the rest of the response are decoded whole
      this.startGather(this.msgLeft, [ITEMS_TAG_0, ITEMS_TAG_1, ...varintBytes(len)], b.subarray(pos, pos + len), out);
    }
    return pos + len;
  }

  /** A gathered `items` entry: its line is a chunk of its own, or the response's rest is gathered. */
  private gatheredItem(g: Buffer, out: OutputChunk[]): void {
    if (!plainItem(g, 0, g.length)) {
      this.startGather(this.msgLeft, [ITEMS_TAG_0, ITEMS_TAG_1, ...varintBytes(g.length)], g, out);
      return;
    }
    this.flushRun(out);
    // the line moves to the front of its own buffer (its framing is at least two bytes: room for "\n")
    const len = plain.lineEnd - plain.lineStart;
    g.copyWithin(0, plain.lineStart, plain.lineEnd);
    g[len] = 0x0a;
    out.push({ text: g.subarray(0, len + 1), lines: 1, droppedBefore: plain.droppedBefore, timestamp: plain.timestamp });
  }

  /**
   * Consecutive `items` entries wholly in b from `pos`, each as auraed writes them (channel,
   * line, timestamp, in that order, no drop count): their lines join the run. Stops at anything
   * else, which the general path then takes. Returns where it stopped.
   */
  private runOfItems(b: Buffer, pos: number, out: OutputChunk[]): number {
    const n = b.length;
    let left = this.msgLeft;
    const wasm = !this.wasmOff && Math.min(n, pos + left) - pos >= WASM_MIN_BYTES ? wasmRunOfItems() : null;
    if (wasm !== null) {
      wasm(b, pos, this.runTo, left, run);
      // a short run (empty lines, drop counts, odd entries) would make every next entry a
      // copy of the rest: the TypeScript loop takes the rest of this piece
      if (run.lines < WASM_MIN_LINES) this.wasmOff = true;
      if (run.lines > 0) {
        if (this.runLines === 0) {
          this.runDropped = 0;
          this.runTs = run.timestamp;
        }
        this.runLines += run.lines;
        this.runTo = run.to;
        pos = run.pos;
        left = run.left;
      }
    }
    while (left > 0 && n - pos >= 4 && b[pos] === ITEMS_TAG_0 && b[pos + 1] === ITEMS_TAG_1) {
      let len = b[pos + 2]!;
      let h = 3;
      if (len >= 0x80) {
        const b3 = b[pos + 3]!;
        if (b3 >= 0x80) break;
        len = (len & 0x7f) | (b3 << 7);
        h = 4;
      }
      const end = pos + h + len;
      if (end > n || h + len > left || !auraedItem(b, pos + h, end)) break;
      left -= h + len;
      this.appendLine(b, fastStart, fastEnd, fastTs, 0, out);
      pos = end;
    }
    this.msgLeft = left;
    if (left === 0) this.state = State.Prefix;
    return pos;
  }

  /** A line of the current piece, at [from, to), joins the run (moved to runTo). */
  private appendLine(b: Buffer, from: number, to: number, timestamp: number, droppedBefore: number, out: OutputChunk[]): void {
    if (droppedBefore > 0 && this.runLines > 0) {
      this.flushRun(out);
    }
    if (this.runLines === 0) {
      this.runDropped = droppedBefore;
      this.runTs = timestamp;
    }
    if (from !== this.runTo) b.copyWithin(this.runTo, from, to);
    this.runTo += to - from;
    b[this.runTo++] = 0x0a;
    this.runLines++;
  }

  private flushRun(out: OutputChunk[]): void {
    if (this.runLines > 0) {
      out.push({ text: this.piece!.subarray(this.runFrom, this.runTo), lines: this.runLines, droppedBefore: this.runDropped, timestamp: this.runTs });
    }
    this.runFrom = this.runTo;
    this.runLines = 0;
  }

  /**
   * Gathers `left` more bytes of the current response behind `head` and `first` (bytes of it
   * already read), for decodeOutputChunks; decodes at once when nothing more is to come.
   */
  private startGather(left: number, head: number[], first: Buffer | undefined, out: OutputChunk[]): void {
    const g = Buffer.allocUnsafe(head.length + (first?.length ?? 0) + left);
    for (let i = 0; i < head.length; i++) g[i] = head[i]!;
    if (first) first.copy(g, head.length);
    this.msgLeft = 0;
    if (left === 0) {
      this.gathered(g, out);
      return;
    }
    this.gather = g;
    this.gatherHave = g.length - left;
    this.state = State.Gather;
  }

  /** A response, or its rest, gathered whole: decoded after the lines before it. */
  private gathered(g: Buffer, out: OutputChunk[]): void {
    this.state = State.Prefix;
    this.flushRun(out);
    for (const c of decodeOutputChunks(g)) out.push(c);
  }

  private malformed(): AuraeClientError {
    return new AuraeClientError(status.INTERNAL, "cannot decode a GetSubProcessStream response: malformed field");
  }
}
