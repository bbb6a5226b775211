/**
 * One output channel (stdout or stderr) of one executable: a file the program writes to
 * directly, and any number of readers reading it line by line at their own pace.
 *
 * Contract (docs/observe.md):
 * - The program never waits for the daemon or a reader: its output is a plain file.
 * - Retention: the newest `retainBytes` stay readable; once the file holds more than that plus
 *   a slack (a quarter of it, at least 64 KiB), the oldest part is freed by punching a hole
 *   (the file keeps its size, its storage shrinks), cut at a line boundary. Lines freed that
 *   way are counted, or estimated from the average line length when a writer outruns
 *   counting by more than max(4 x retention, 64 MiB): the disk stays bounded either way.
 * - A reader starts at the oldest retained line (history) or at the end (live only), reads
 *   lines oldest first, and learns how many lines it missed (`droppedBefore` on the next line
 *   it gets) when it fell behind the retained part.
 * - Lines are split on `\n`. A line longer than `maxLineBytes` is delivered in pieces of at
 *   most `maxLineBytes` bytes cut on UTF-8 character boundaries; bytes that are not UTF-8
 *   become U+FFFD. Lines that are valid UTF-8 (checked a whole read at a time) reach a
 *   LineSink as the file's own bytes, without a detour through strings.
 * - Timestamps are when the daemon first saw the file grow past the line's first byte (from
 *   checkpoints taken at each change; within a burst, the checkpoint just after it).
 * - After `end()` (nothing of the executable can write any more) each reader gets the rest,
 *   a trailing partial line as a last line, and then the end.
 * - A program that truncates its own output file loses what it truncated; readers past the
 *   new end continue from there.
 * - An idle channel holds no file descriptor (thousands of executables must not exhaust the
 *   daemon's): the file is opened while readers read it or while its oldest part is freed.
 */
import { isUtf8 } from "node:buffer";
import fs from "node:fs";
import { punchHole, seekData } from "../libc.js";

export const DEFAULT_RETAIN_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
const READ_CHUNK = 64 * 1024;
const CHECKPOINTS = 256;
/** bytes read per step while counting the lines of a part to free */
const COUNT_CHUNK = 64 * 1024;
/** time one freeing step may count lines before it punches and yields */
const STEP_MS = 4;
/** backlog (beyond the retention) after which freed lines are estimated, not counted */
const HARD_BACKLOG_BYTES = 64 * 1024 * 1024;
/** line length assumed for estimates before any line was counted */
const ESTIMATE_LINE_BYTES = 100;
const NEWLINE = 0x0a;

/** One line as delivered to a reader. */
export interface OutputLine {
  /** the line without its newline */
  line: string;
  /** milliseconds since the epoch */
  timestamp: number;
  /** lines this reader missed just before this one */
  droppedBefore: number;
}

/**
 * Receives a reader's lines as bytes (the observe service's response encoder), so that they need
 * not become strings on the way.
 */
export interface LineSink {
  /**
   * A buffer of at least `minBytes` for the reader to read the file into. A sink may hand out
   * memory of its own (lines passed back in it can then be moved with copyWithin); the reader
   * may pass lines in other buffers too. Its content is valid until the next call.
   */
  readBuffer(minBytes: number): Buffer;
  /**
   * One line: bytes [from, to) of `buf`, valid UTF-8 (invalid bytes already replaced by
   * U+FFFD), without its newline; `buf` is valid only during the call. The sink takes every
   * line it is given; it returns false when it would rather stop (the reader stops after the
   * current line).
   */
  line(buf: Buffer, from: number, to: number, timestamp: number, droppedBefore: number): boolean;
  /**
   * Optional, a faster way to hand over many lines: takes whole lines of `buf` from `from`
   * (every byte of [from, end) is valid UTF-8 and `end` follows a newline), each line starting
   * before `limit`, at most `maxLines`, all with `timestamp` and nothing dropped. It may stop
   * earlier, and does before a line longer than `maxLineBytes`. Returns how many lines it took;
   * `runEnd` is then where the next line starts and `runFull` says the sink would rather stop
   * (as line() returning false).
   */
  readonly lineRun?: (buf: Buffer, from: number, end: number, limit: number, timestamp: number, maxLines: number, maxLineBytes: number) => number;
  readonly runEnd?: number;
  readonly runFull?: boolean;
}

/** A reader of a line stream (an executable's channel, or the daemon's log). */
export interface OutputReader {
  /** Up to `max` lines available now; empty when none yet; null once ended and drained (or closed). */
  take(max?: number): OutputLine[] | null;
  /**
   * The same lines as `take`, handed to `sink` as UTF-8 bytes: returns how many lines it got
   * (0 when none yet), or null once ended and drained (or closed).
   */
  takeBytes(sink: LineSink, max?: number): number | null;
  /** Resolves when `take` may return something new (or the reader was closed). */
  wait(): Promise<void>;
  /** lines this reader has missed so far */
  readonly dropped: number;
  close(): void;
}

/** Collects lines as OutputLine strings (what `take` returns), reading into a buffer of the caller's. */
class StringLineSink implements LineSink {
  readonly lines: OutputLine[] = [];
  constructor(private readonly buf?: Buffer) {}

  readBuffer(minBytes: number): Buffer {
    return this.buf && this.buf.length >= minBytes ? this.buf : Buffer.allocUnsafe(minBytes);
  }

  line(buf: Buffer, from: number, to: number, timestamp: number, droppedBefore: number): boolean {
    this.lines.push({ line: buf.toString("utf8", from, to), timestamp, droppedBefore });
    return true;
  }
}

export interface ChannelFileOptions {
  retainBytes?: number;
  maxLineBytes?: number;
  now?: () => number;
}

export class ChannelFile {
  readonly path: string;
  readonly retainBytes: number;
  readonly maxLineBytes: number;
  private readonly now: () => number;
  /** open while readers read or the oldest part is being freed; -1 otherwise */
  private fd = -1;
  /** size at the last refresh */
  private size: number;
  /** the first retained byte (a line start, except after a cut inside one huge line) */
  private start: number;
  /** newlines in [0, start) that this daemon counted (0 for what was freed before it adopted the file) */
  private linesBefore = 0;
  private freeing = false;
  /** bytes and lines of what was freed with counting (for estimates) */
  private countedBytes = 0;
  private countedLines = 0;
  /** true once some freed lines were estimated rather than counted */
  estimatedDrops = false;
  /** bumped when the file shrank (the program truncated it), and the size it shrank to */
  private truncations = 0;
  /** @internal */
  truncatedTo = 0;
  private ended = false;
  private released = false;
  private readonly readers = new Set<FileReader>();
  private waiters: (() => void)[] = [];
  // checkpoints: the file had cpSize[i] bytes at cpTime[i]; sizes increase
  private cpSize: Float64Array | undefined;
  private cpTime: Float64Array | undefined;
  private cpCount = 0;
  /** when the daemon opened the channel: the time of anything written before its first look */
  private readonly bornAt: number;
  /** @internal set by timeAt: offsets in [spanFrom, spanUntil) have the time it returned */
  spanFrom = 0;
  /** @internal see spanFrom */
  spanUntil = 0;

  /**
   * Opens an existing output file (created by whoever starts the program). A file with content
   * already (after a daemon restart) keeps its retained part as history, from its first line start.
   */
  constructor(path: string, opts: ChannelFileOptions = {}) {
    this.path = path;
    this.retainBytes = opts.retainBytes ?? DEFAULT_RETAIN_BYTES;
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (this.maxLineBytes < 4) throw new RangeError("maxLineBytes must be at least 4");
    this.now = opts.now ?? Date.now;
    this.bornAt = this.now();
    this.size = fs.statSync(path).size;
    this.start = 0;
    if (this.size > 0) {
      const fd = this.useFd();
      // history starts after the freed part: the block holding the last cut reads as NULs
      const data = seekData(fd, 0) ?? this.size;
      this.start = data === 0 ? 0 : this.firstNonNul(data);
      this.checkpoint(this.size, this.bornAt);
      this.idleFd();
      if (this.size - this.start > this.retainBytes + this.slack()) this.free();
    }
  }

  /** true once end() was called */
  get isEnded(): boolean {
    return this.ended;
  }

  /** bytes written so far (including freed ones) */
  get writtenBytes(): number {
    return this.size;
  }

  /** Takes note of new output (call on every change notification): wakes readers, frees the oldest part when over budget. */
  refresh(): void {
    if (this.released) return;
    let size: number;
    try {
      size = this.fd >= 0 ? fs.fstatSync(this.fd).size : fs.statSync(this.path).size;
    } catch {
      return; // removed: its executable is being released
    }
    if (size < this.size) return this.truncated(size);
    if (size === this.size) return;
    this.checkpoint(size, this.now());
    this.size = size;
    this.wake();
    if (size - this.start > this.retainBytes + this.slack() && !this.freeing) this.free();
  }

  /**
   * The program truncated its own output (`> /dev/stdout`, ftruncate): what was beyond `size` is
   * gone; readers past it continue from there. (A truncation followed by more output than was
   * there before, between two looks, cannot be told from growth.)
   */
  private truncated(size: number): void {
    this.size = size;
    this.start = Math.min(this.start, size);
    while (this.cpCount > 0 && this.cpSize![this.cpCount - 1]! > size) this.cpCount--;
    this.truncations++;
    this.truncatedTo = size;
    this.wake();
  }

  /** @internal */
  get truncationCount(): number {
    return this.truncations;
  }

  /** @internal the size at the last look */
  get knownSize(): number {
    return this.size;
  }

  /** Nothing can write any more: readers drain the rest and end. */
  end(): void {
    if (this.ended) return;
    this.refresh();
    this.ended = true;
    this.wake();
  }

  /**
   * A reader at the oldest retained line (lines freed before it are counted as dropped before
   * its first line), or with `{ history: false }` at the current end.
   */
  openReader(opts: { history?: boolean } = {}): OutputReader {
    if (this.released) throw new Error(`output file ${this.path} is closed`);
    this.useFd();
    const r = new FileReader(this, opts.history === false ? this.size : 0);
    this.readers.add(r);
    return r;
  }

  /** The last `maxBytes` of retained output as text (for error messages). */
  tail(maxBytes = 4096): string {
    if (this.released) return "";
    try {
      const fd = this.useFd();
      const size = fs.fstatSync(fd).size;
      const from = Math.max(this.start, size - maxBytes);
      const buf = Buffer.alloc(size - from);
      const n = fs.readSync(fd, buf, 0, buf.length, from);
      return buf.toString("utf8", 0, n);
    } catch {
      return "";
    } finally {
      this.idleFd();
    }
  }

  /** The owner lets go: the file is closed once the last reader has finished. */
  release(): void {
    this.end();
    this.released = true;
    this.idleFd();
  }

  // --- used by readers -------------------------------------------------------------------

  /** @internal */
  get retainedStart(): number {
    return this.start;
  }

  /** @internal */
  get countedLinesBefore(): number {
    return this.linesBefore;
  }

  /** @internal */
  get ending(): boolean {
    return this.ended;
  }

  /** @internal reads at `offset` into `buf`; 0 at the end of what was written */
  readAt(buf: Buffer, offset: number): number {
    if (this.fd < 0) return 0;
    return fs.readSync(this.fd, buf, 0, buf.length, offset);
  }

  /** @internal newlines in [0, offset) as this daemon counts them (offset >= the retained start) */
  linesUpTo(offset: number): number {
    let lines = this.linesBefore;
    const buf = Buffer.allocUnsafe(COUNT_CHUNK);
    for (let at = this.start; at < offset; ) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, offset - at), at);
      if (n === 0) break;
      for (let i = buf.indexOf(NEWLINE, 0); i >= 0 && i < n; i = buf.indexOf(NEWLINE, i + 1)) lines++;
      at += n;
    }
    return lines;
  }

  /**
   * @internal when the file first held more than `offset` bytes, as far as the daemon saw.
   * Sets `spanFrom`/`spanUntil`: every offset in [spanFrom, spanUntil) has the same answer
   * (until the next refresh); an empty span when the answer is "now".
   */
  timeAt(offset: number): number {
    const sizes = this.cpSize;
    this.spanFrom = 0;
    this.spanUntil = 0;
    if (!sizes) return this.now();
    if (offset < 0) return this.bornAt;
    let lo = 0;
    let hi = this.cpCount;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sizes[mid]! > offset) hi = mid;
      else lo = mid + 1;
    }
    if (lo >= this.cpCount) return this.now();
    this.spanFrom = lo > 0 ? sizes[lo - 1]! : 0;
    this.spanUntil = sizes[lo]!;
    return this.cpTime![lo]!;
  }

  /** @internal */
  addWaiter(w: () => void): void {
    this.waiters.push(w);
  }

  /** @internal */
  readerClosed(r: FileReader): void {
    this.readers.delete(r);
    this.idleFd();
  }

  // --- internals -------------------------------------------------------------------------

  private slack(): number {
    return Math.max(64 * 1024, this.retainBytes >> 2);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** The open fd (opened now if needed). */
  private useFd(): number {
    if (this.fd < 0) this.fd = fs.openSync(this.path, fs.constants.O_RDWR);
    return this.fd;
  }

  /** Closes the fd when nothing needs it: no reader, no freeing in progress. */
  private idleFd(): void {
    if (this.fd >= 0 && this.readers.size === 0 && !this.freeing) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
    if (this.released) this.wake();
  }

  private checkpoint(size: number, time: number): void {
    if (!this.cpSize) {
      this.cpSize = new Float64Array(CHECKPOINTS);
      this.cpTime = new Float64Array(CHECKPOINTS);
    }
    if (this.cpCount === CHECKPOINTS) this.thinCheckpoints();
    this.cpSize[this.cpCount] = size;
    this.cpTime![this.cpCount] = time;
    this.cpCount++;
  }

  /** Drops checkpoints of freed bytes, else every other one of the older half. */
  private thinCheckpoints(): void {
    const sizes = this.cpSize!;
    const times = this.cpTime!;
    let first = 0;
    while (first < this.cpCount - 1 && sizes[first]! <= this.start) first++;
    let w = 0;
    if (first > 0) {
      for (let i = first; i < this.cpCount; i++, w++) {
        sizes[w] = sizes[i]!;
        times[w] = times[i]!;
      }
    } else {
      const half = this.cpCount >> 1;
      for (let i = 0; i < this.cpCount; i++) {
        if (i < half && i % 2 === 0) continue;
        sizes[w] = sizes[i]!;
        times[w] = times[i]!;
        w++;
      }
    }
    this.cpCount = w;
  }



  /**
   * Frees the oldest part down to `retainBytes`. Each step counts the lines of what it frees
   * for at most STEP_MS, punches that much and yields, so a large backlog never blocks the
   * event loop for long. A writer that outruns counting (tiny lines at memory speed) is not
   * allowed to fill the disk: beyond a hard backlog the oldest part is freed at once and its
   * lines are estimated from the average line length counted so far (`estimatedDrops`).
   */
  private free(): void {
    this.freeing = true;
    const done = () => {
      this.freeing = false;
      this.idleFd();
    };
    const step = () => {
      if (this.released) return done();
      const target = this.size - this.retainBytes;
      if (target - this.start <= 0) return done();
      let fd: number;
      try {
        fd = this.useFd();
      } catch {
        return done(); // removed meanwhile
      }
      let cut: number;
      let lines: number;
      if (target - this.start > this.hardBacklog()) {
        cut = this.lineStartNear(target);
        lines = Math.max(1, Math.round((cut - this.start) / this.sampleLineBytes(this.start)));
        this.estimatedDrops = true;
      } else {
        const deadline = performance.now() + STEP_MS;
        const buf = Buffer.allocUnsafe(COUNT_CHUNK);
        lines = 0;
        let lastLineStart = -1;
        let at = this.start;
        while (at < target && performance.now() < deadline) {
          const n = fs.readSync(fd, buf, 0, Math.min(buf.length, target - at), at);
          if (n === 0) break;
          for (let i = buf.indexOf(NEWLINE, 0); i >= 0 && i < n; i = buf.indexOf(NEWLINE, i + 1)) {
            lines++;
            lastLineStart = at + i + 1;
          }
          at += n;
        }
        // cut at the last line boundary counted; inside one huge line (no newline in a whole
        // chunk), where counting stopped; a short unfinished line is left for the next time
        if (lastLineStart > this.start) cut = lastLineStart;
        else if (at - this.start >= COUNT_CHUNK) cut = at;
        else return done();
        this.countedBytes += cut - this.start;
        this.countedLines += lines;
      }
      if (cut <= this.start) return done();
      try {
        punchHole(fd, this.start, cut - this.start);
      } catch {
        // a filesystem without holes: the file keeps growing, readers are still bounded
      }
      this.start = cut;
      this.linesBefore += lines;
      if (cut < target) setImmediate(step);
      else done();
    };
    step();
  }

  /** Backlog beyond the retention after which lines are estimated rather than counted. */
  private hardBacklog(): number {
    return Math.max(4 * this.retainBytes, HARD_BACKLOG_BYTES);
  }

  /** The average line length in a short sample at `offset` (for estimating freed lines). */
  private sampleLineBytes(offset: number): number {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const n = fs.readSync(this.useFd(), buf, 0, buf.length, offset);
    let lines = 0;
    for (let i = buf.indexOf(NEWLINE, 0); i >= 0 && i < n; i = buf.indexOf(NEWLINE, i + 1)) lines++;
    if (lines > 0) return n / lines;
    return this.countedLines > 0 ? this.countedBytes / this.countedLines : Math.max(n, ESTIMATE_LINE_BYTES);
  }

  /** The first line start at or after `offset` within a short look, else `offset` itself. */
  private lineStartNear(offset: number): number {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const n = fs.readSync(this.useFd(), buf, 0, buf.length, offset);
    const nl = buf.subarray(0, n).indexOf(NEWLINE);
    return nl >= 0 ? offset + nl + 1 : offset;
  }

  /** The first byte at or after `offset` that is not NUL (a punched block's zeroed head), or the end. */
  private firstNonNul(offset: number): number {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const fd = this.useFd();
    for (let at = offset; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, at);
      if (n === 0) return at;
      for (let i = 0; i < n; i++) if (buf[i] !== 0) return at + i;
      at += n;
    }
  }


}

class FileReader implements OutputReader {
  private offset: number;
  /** newlines before `offset`, in the file's counting (0 = its first byte ever) */
  private lineNo = 0;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private droppedTotal = 0;
  private pendingDropped = 0;
  private closed = false;
  private done = false;
  /** take()'s read buffer (takeBytes reads into the sink's) */
  private buf: Buffer | undefined;
  /** the file's truncation count this reader has caught up with */
  private truncations: number;
  private peekBuf: Buffer | undefined;
  /** resolves a pending wait() (close() resolves it too) */
  private waiting: (() => void) | undefined;
  // during takeBytes: where lines go, how many went, whether the sink asked to stop
  private sink: LineSink | undefined;
  private count = 0;
  private full = false;
  // timestamps: offsets in [tsFrom, tsUntil) have tsValue (valid during one takeBytes)
  private tsFrom = 0;
  private tsUntil = 0;
  private tsValue = 0;

  constructor(private readonly file: ChannelFile, offset: number) {
    // From 0 (history), take() counts what was freed before the retained start as dropped.
    this.offset = offset > 0 ? Math.max(offset, file.retainedStart) : 0;
    this.lineNo = offset > 0 ? file.linesUpTo(this.offset) : 0;
    this.truncations = file.truncationCount;
  }

  get dropped(): number {
    return this.droppedTotal;
  }

  take(max = 1024): OutputLine[] | null {
    this.buf ??= Buffer.allocUnsafe(READ_CHUNK);
    const sink = new StringLineSink(this.buf);
    return this.takeBytes(sink, max) === null ? null : sink.lines;
  }

  takeBytes(sink: LineSink, max = 1024): number | null {
    if (this.closed || this.done) return null;
    const f = this.file;
    if (this.truncations !== f.truncationCount) {
      this.truncations = f.truncationCount;
      if (this.offset > f.truncatedTo) {
        this.offset = f.truncatedTo;
        this.partial = [];
        this.partialBytes = 0;
        this.lineNo = f.linesUpTo(this.offset);
      }
    }
    if (this.offset < f.retainedStart) this.skipFreed();
    this.sink = sink;
    this.count = 0;
    this.full = false;
    this.tsUntil = 0;
    try {
      let atEnd = false;
      while (this.count < max && !this.full) {
        const buf = sink.readBuffer(READ_CHUNK);
        const got = f.readAt(buf, this.offset);
        if (got === 0) {
          atEnd = true;
          break;
        }
        const consumed = this.splitLines(buf, got, max);
        this.offset += consumed;
        if (got < buf.length && consumed === got) {
          atEnd = true; // reached the end
          break;
        }
      }
      if (this.count === 0 && atEnd && f.ending && f.readAt(this.peek(), this.offset) === 0) {
        if (this.partialBytes > 0) {
          this.flushPartial(this.offset - this.partialBytes);
          return this.count;
        }
        this.done = true;
        this.release();
        return null;
      }
      return this.count;
    } finally {
      this.sink = undefined;
    }
  }

  wait(): Promise<void> {
    if (this.closed || this.done || this.file.ending) return Promise.resolve();
    // something may already be there (written after our last read, before this wait)
    if (this.file.readAt(this.peek(), this.offset) > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.file.addWaiter(() => {
        if (this.waiting === resolve) this.waiting = undefined;
        resolve();
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /**
   * Hands the lines of one read (`n` bytes of `buf`, at this.offset) to the sink, holding a
   * trailing partial line; returns how many bytes it consumed (less than `n` when max or the
   * sink stopped it). `buf` goes to the sink as it is (a sink knows its own read buffer).
   */
  private splitLines(buf: Buffer, n: number, max: number): number {
    const last = n > 0 ? buf.lastIndexOf(NEWLINE, n - 1) : -1;
    // The lines wholly inside this read are all valid UTF-8 when their bytes together are (a
    // newline never sits inside a multi-byte character): one check for all of them. A first
    // line that completes a held partial one is checked on its own.
    const from = this.partialBytes > 0 && last >= 0 ? buf.indexOf(NEWLINE) + 1 : 0;
    const valid = last > from && isUtf8(buf.subarray(from, last));
    const sink = this.sink!;
    const run = valid ? sink.lineRun : undefined;
    let start = 0;
    while (start <= last) {
      if (run !== undefined && start >= from && this.partialBytes === 0 && this.pendingDropped === 0) {
        // the lines from here that share a timestamp, in one call
        const ts = this.timeAt(this.offset + start);
        const limit = this.tsUntil > this.offset + start ? this.tsUntil - this.offset : last + 1;
        const got = run(buf, start, last + 1, limit, ts, max - this.count, this.file.maxLineBytes);
        if (got > 0) {
          this.count += got;
          this.lineNo += got;
          start = sink.runEnd!;
          if (sink.runFull) this.full = true;
          if (this.count >= max || this.full) return start;
          continue;
        }
      }
      const nl = buf.indexOf(NEWLINE, start);
      this.pushLine(buf, start, nl, this.offset + start, valid);
      start = nl + 1;
      this.lineNo++;
      if (this.count >= max || this.full) return start;
    }
    if (start < n) this.holdPartial(buf, start, n, this.offset + start);
    return n;
  }

  /** a one-byte buffer: is there anything at this.offset? */
  private peek(): Buffer {
    return (this.peekBuf ??= Buffer.allocUnsafe(1));
  }

  private release(): void {
    this.buf = undefined;
    this.partial = [];
    this.file.readerClosed(this);
  }

  /** We fell behind what is retained: count what was freed and continue at the retained start. */
  private skipFreed(): void {
    const f = this.file;
    let lost = Math.max(0, f.countedLinesBefore - this.lineNo);
    if (this.partialBytes > 0) {
      // the rest of our partial line was freed: it is lost too
      this.partial = [];
      this.partialBytes = 0;
      if (lost === 0) lost = 1;
    }
    this.pendingDropped += lost;
    this.offset = f.retainedStart;
    this.lineNo = f.countedLinesBefore;
  }

  private timeAt(offset: number): number {
    if (offset >= this.tsFrom && offset < this.tsUntil) return this.tsValue;
    const f = this.file;
    const t = f.timeAt(offset);
    this.tsFrom = f.spanFrom;
    this.tsUntil = f.spanUntil;
    this.tsValue = t;
    return t;
  }

  /** Hands one line (or piece) to the sink: bytes [from, to) of `buf`, `valid` when known to be UTF-8. */
  private emit(buf: Buffer, from: number, to: number, offset: number, valid: boolean): void {
    const dropped = this.pendingDropped;
    this.droppedTotal += dropped;
    this.pendingDropped = 0;
    this.count++;
    const ts = this.timeAt(offset);
    let more: boolean;
    if (valid || isUtf8(buf.subarray(from, to))) {
      more = this.sink!.line(buf, from, to, ts, dropped);
    } else {
      const fixed = Buffer.from(buf.toString("utf8", from, to)); // U+FFFD for what is not UTF-8
      more = this.sink!.line(fixed, 0, fixed.length, ts, dropped);
    }
    if (!more) this.full = true;
  }

  private pushLine(buf: Buffer, from: number, to: number, offset: number, valid: boolean): void {
    if (this.partialBytes === 0) {
      this.pushBytes(buf, from, to, offset, valid);
      return;
    }
    const whole = Buffer.concat([...this.partial, buf.subarray(from, to)]);
    const lineOffset = offset - this.partialBytes;
    this.partial = [];
    this.partialBytes = 0;
    this.pushBytes(whole, 0, whole.length, lineOffset, false);
  }

  private holdPartial(buf: Buffer, from: number, to: number, offset: number): void {
    this.partial.push(Buffer.from(buf.subarray(from, to)));
    this.partialBytes += to - from;
    if (this.partialBytes > this.file.maxLineBytes) {
      const all = Buffer.concat(this.partial);
      const lineOffset = offset + (to - from) - all.length;
      const rest = this.pushLong(all, 0, all.length, lineOffset, false);
      this.partial = rest < all.length ? [all.subarray(rest)] : [];
      this.partialBytes = all.length - rest;
    }
  }

  private flushPartial(offset: number): void {
    const all = Buffer.concat(this.partial);
    this.partial = [];
    this.partialBytes = 0;
    this.pushBytes(all, 0, all.length, offset, false);
  }

  private pushBytes(buf: Buffer, from: number, to: number, offset: number, valid: boolean): void {
    if (to - from > this.file.maxLineBytes) {
      const rest = this.pushLong(buf, from, to, offset, valid);
      this.emit(buf, rest, to, offset + rest - from, valid);
      return;
    }
    this.emit(buf, from, to, offset, valid);
  }

  /**
   * Emits pieces of at most maxLineBytes (cut on a UTF-8 boundary) of buf[from, to) while more
   * than that remain; returns where the rest starts.
   */
  private pushLong(buf: Buffer, from: number, to: number, offset: number, valid: boolean): number {
    const max = this.file.maxLineBytes;
    let off = from;
    while (to - off > max) {
      let cut = off + max;
      let back = 0;
      while (back < 3 && cut > off && (buf[cut]! & 0xc0) === 0x80) {
        cut--;
        back++;
      }
      if (cut === off) cut = off + max;
      this.emit(buf, off, cut, offset + off - from, valid);
      off = cut;
    }
    return off;
  }
}
