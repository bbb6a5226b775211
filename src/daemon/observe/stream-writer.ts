import type { ServerWritableStream } from "@grpc/grpc-js";

/** A call that takes several messages as one buffer of gRPC frames (DirectServerStream). */
interface FramesCall<T> {
  writeFrames(frames: Buffer, msgs: T[]): boolean;
}

/**
 * Writes messages to a server stream without piling them up: after `call.write` reports a full
 * buffer, `ready()` waits for 'drain'. Ends (closed = true) when the client cancels or the call
 * fails; `closed` then resolves every pending wait so the producer can stop promptly.
 */
export class StreamWriter<T> {
  private isClosed = false;
  private full = false;
  private readonly wakers = new Set<() => void>();
  private readonly closers: (() => void)[] = [];

  constructor(private readonly call: ServerWritableStream<unknown, T>) {
    const close = () => this.close();
    call.on("cancelled", close);
    call.on("close", close);
    call.on("error", close);
    call.on("drain", () => {
      this.full = false;
      this.wake();
    });
    if (call.cancelled || call.destroyed) this.isClosed = true;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Queues one message; returns false when the caller should await ready() before the next. */
  write(msg: T): boolean {
    if (this.isClosed) return false;
    if (!this.call.write(msg)) this.full = true;
    return !this.full;
  }

  /**
   * Queues messages: as one buffer of ready-made gRPC frames (`frames`: the same messages,
   * each behind its 5-byte prefix) when the call takes frames (the direct HTTP/2 path), else
   * one by one. Returns false when the caller should await ready() before more.
   */
  writeMany(msgs: T[], frames: Buffer | undefined): boolean {
    if (this.isClosed) return false;
    if (frames && this.takesFrames) {
      if (!(this.call as unknown as FramesCall<T>).writeFrames(frames, msgs)) this.full = true;
      return !this.full;
    }
    let ok = true;
    for (const m of msgs) ok = this.write(m);
    return ok;
  }

  /** true when the call takes a buffer of ready-made frames (the direct HTTP/2 path): worth encoding them so */
  get takesFrames(): boolean {
    return typeof (this.call as unknown as Partial<FramesCall<T>>).writeFrames === "function";
  }

  /** Resolves when more messages may be written, or when the stream closed. */
  ready(): Promise<void> {
    if (!this.full || this.isClosed) return Promise.resolve();
    return new Promise((resolve) => this.wakers.add(resolve));
  }

  /** Resolves when `p` resolves or the stream closes, whichever comes first. */
  race(p: Promise<void>): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakers.add(resolve);
      p.then(() => {
        this.wakers.delete(resolve);
        resolve();
      });
    });
  }

  /** Runs `fn` once when the stream closes (or right away if it is closed). */
  onClose(fn: () => void): void {
    if (this.isClosed) fn();
    else this.closers.push(fn);
  }

  private close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.wake();
    for (const fn of this.closers.splice(0)) fn();
  }

  private wake(): void {
    const ws = [...this.wakers];
    this.wakers.clear();
    for (const w of ws) w();
  }
}
