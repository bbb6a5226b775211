import type { LineSink, OutputLine, OutputReader } from "../../platform/output/channel-file.js";

/**
 * Bounded, line-oriented in-memory history of one stream of lines (the daemon's own log), with
 * any number of readers. Executables' output does not come here: it is read from its files
 * (platform/output/channel-file.ts), with the same reader interface.
 *
 * Contract (docs/observe.md):
 * - The writer never blocks and never waits for a reader.
 * - Lines are split on `\n`; a trailing partial line is held until its newline or `end()`.
 *   A line longer than `maxLineBytes` is cut into pieces of at most `maxLineBytes` bytes
 *   (on a UTF-8 character boundary); each piece is delivered as a line of its own.
 *   Bytes that are not UTF-8 become U+FFFD.
 * - History keeps the most recent lines within `maxBytes`, each line counted as its byte length
 *   plus LINE_OVERHEAD_BYTES. Older lines are evicted.
 * - Each reader is a cursor into that shared history (so a reader costs O(1) memory and can
 *   never slow the writer or another reader). A reader that falls behind the history loses
 *   the evicted lines; the count arrives as `droppedBefore` on the next line it gets.
 * - After `end()`, each reader gets the rest of the history and then the end (`null`).
 */
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
/** Accounting cost of one line beyond its text, so that many tiny lines are bounded too. */
export const LINE_OVERHEAD_BYTES = 32;

export interface OutputLogOptions {
  /** history budget in bytes (default 4 MiB) */
  maxBytes?: number;
  /** longest line before it is split (default 64 KiB) */
  maxLineBytes?: number;
  /** clock, milliseconds since the epoch (tests) */
  now?: () => number;
}

const NEWLINE = 0x0a;

export class OutputLog {
  readonly maxBytes: number;
  readonly maxLineBytes: number;
  private readonly now: () => number;

  // History: lines[head..] hold sequence numbers firstSeq..nextSeq-1.
  private lines: string[] = [];
  private times: number[] = [];
  private sizes: number[] = [];
  private head = 0;
  private firstSeq = 0;
  private nextSeq = 0;
  private bytes = 0;

  private partial: Buffer[] = [];
  private partialBytes = 0;
  private ended = false;
  private readonly waiters = new Set<() => void>();

  constructor(opts: OutputLogOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (this.maxLineBytes < 4) throw new RangeError("maxLineBytes must be at least 4");
    this.now = opts.now ?? Date.now;
  }

  /** true once end() was called */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Lines written so far (including evicted ones). */
  get totalLines(): number {
    return this.nextSeq;
  }

  /** Lines evicted from the history so far. */
  get evictedLines(): number {
    return this.firstSeq;
  }

  write(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    const time = this.now();
    const before = this.nextSeq;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      if (this.partialBytes === 0) {
        this.pushBytes(chunk.subarray(start, nl), time);
      } else {
        this.partial.push(chunk.subarray(start, nl));
        this.pushBytes(Buffer.concat(this.partial, this.partialBytes + nl - start), time);
        this.partial = [];
        this.partialBytes = 0;
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      // keep a copy: the caller may reuse its buffer
      const rest = Buffer.from(chunk.subarray(start));
      this.partial.push(rest);
      this.partialBytes += rest.length;
      if (this.partialBytes > this.maxLineBytes) {
        const all = Buffer.concat(this.partial, this.partialBytes);
        const keep = this.pushLong(all, time);
        this.partial = keep.length > 0 ? [keep] : [];
        this.partialBytes = keep.length;
      }
    }
    if (this.nextSeq !== before) this.wake();
  }

  /**
   * Appends one complete line (no newline inside expected; one that is too long is split)
   * with its own timestamp. Used for records that are already lines, like the daemon's log.
   */
  append(line: string, timestamp: number): void {
    if (this.ended) return;
    const size = Buffer.byteLength(line);
    if (size > this.maxLineBytes) this.pushBytes(Buffer.from(line), timestamp);
    else this.pushLine(line, size, timestamp);
    this.wake();
  }

  end(): void {
    if (this.ended) return;
    if (this.partialBytes > 0) {
      this.pushBytes(Buffer.concat(this.partial, this.partialBytes), this.now());
      this.partial = [];
      this.partialBytes = 0;
    }
    this.ended = true;
    this.wake();
  }

  /**
   * A reader positioned at the oldest line ever written: it first gets the history, with the
   * lines already evicted counted as `droppedBefore` of its first line, then live lines.
   * With `{ history: false }` it starts at the next line written.
   */
  openReader(opts: { history?: boolean } = {}): OutputReader {
    return new Cursor(this, opts.history === false ? this.nextSeq : 0);
  }

  /** @internal used by readers */
  readFrom(seq: number, max: number, out: OutputLine[]): { next: number; dropped: number; end: boolean } {
    let dropped = 0;
    if (seq < this.firstSeq) {
      dropped = this.firstSeq - seq;
      seq = this.firstSeq;
    }
    const stop = Math.min(this.nextSeq, seq + max);
    let first = true;
    for (let s = seq; s < stop; s++) {
      const i = this.head + (s - this.firstSeq);
      out.push({ line: this.lines[i]!, timestamp: this.times[i]!, droppedBefore: first ? dropped : 0 });
      first = false;
    }
    const end = this.ended && stop === this.nextSeq;
    // a reader that only lost lines (nothing left to deliver) reports them on its next line
    if (stop === seq) return { next: seq - dropped, dropped: 0, end };
    return { next: stop, dropped, end };
  }

  /** @internal */
  hasAfter(seq: number): boolean {
    return seq < this.nextSeq || this.ended;
  }

  /** @internal */
  addWaiter(w: () => void): void {
    this.waiters.add(w);
  }

  /** @internal */
  removeWaiter(w: () => void): void {
    this.waiters.delete(w);
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private pushBytes(buf: Buffer, time: number): void {
    if (buf.length > this.maxLineBytes) {
      const rest = this.pushLong(buf, time);
      this.pushLine(rest.toString("utf8"), rest.length, time);
      return;
    }
    this.pushLine(buf.toString("utf8"), buf.length, time);
  }

  /**
   * Emits pieces of at most maxLineBytes (cut at a UTF-8 boundary) while more than
   * maxLineBytes remain, and returns the remainder (1..maxLineBytes bytes).
   */
  private pushLong(buf: Buffer, time: number): Buffer {
    let off = 0;
    while (buf.length - off > this.maxLineBytes) {
      let cut = off + this.maxLineBytes;
      // back up to the start of a UTF-8 character (at most 3 continuation bytes)
      let back = 0;
      while (back < 3 && cut > off && (buf[cut]! & 0xc0) === 0x80) {
        cut--;
        back++;
      }
      if (cut === off) cut = off + this.maxLineBytes;
      this.pushLine(buf.toString("utf8", off, cut), cut - off, time);
      off = cut;
    }
    return buf.subarray(off);
  }

  private pushLine(line: string, size: number, time: number): void {
    this.lines.push(line);
    this.times.push(time);
    const cost = size + LINE_OVERHEAD_BYTES;
    this.sizes.push(cost);
    this.bytes += cost;
    this.nextSeq++;
    while (this.bytes > this.maxBytes && this.nextSeq - this.firstSeq > 1) this.evictOne();
  }

  private evictOne(): void {
    this.bytes -= this.sizes[this.head]!;
    this.lines[this.head] = "";
    this.head++;
    this.firstSeq++;
    if (this.head >= 4096 && this.head * 2 >= this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.times = this.times.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}

class Cursor implements OutputReader {
  private seq: number;
  private closed = false;
  private droppedTotal = 0;
  private waiter: (() => void) | undefined;

  constructor(private readonly log: OutputLog, start: number) {
    this.seq = start;
  }

  get dropped(): number {
    return this.droppedTotal;
  }

  take(max = 1024): OutputLine[] | null {
    if (this.closed) return null;
    const out: OutputLine[] = [];
    const r = this.log.readFrom(this.seq, max, out);
    this.seq = r.next;
    this.droppedTotal += r.dropped;
    if (out.length === 0 && r.end) return null;
    return out;
  }

  takeBytes(sink: LineSink, max = 1024): number | null {
    const lines = this.take(max);
    if (lines === null) return null;
    for (const l of lines) {
      const b = Buffer.from(l.line);
      sink.line(b, 0, b.length, l.timestamp, l.droppedBefore);
    }
    return lines.length;
  }

  wait(): Promise<void> {
    if (this.closed || this.log.hasAfter(this.seq)) return Promise.resolve();
    return new Promise((resolve) => {
      const w = () => {
        this.waiter = undefined;
        resolve();
      };
      this.waiter = w;
      this.log.addWaiter(w);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.waiter;
    if (w) {
      this.log.removeWaiter(w);
      w();
    }
  }
}
