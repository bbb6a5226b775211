import { Metadata, status, type CallOptions as GrpcCallOptions, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { AuraeClientError, toClientError } from "./errors.js";

/** Options every SDK method accepts. */
export interface CallOptions {
  /** aborts the call; a unary call then rejects with CANCELLED, a stream ends with CANCELLED */
  signal?: AbortSignal;
  /** the call fails with DEADLINE_EXCEEDED after this many milliseconds (default: the client's `defaultDeadlineMs`, none for streams) */
  deadlineMs?: number;
  /** extra request metadata */
  metadata?: Metadata;
}

/**
 * A server stream: iterate it with `for await`. Leaving the loop early (break, return, throw)
 * cancels the call. Errors arrive as AuraeClientError.
 *
 * @example for await (const res of observe.getAuraeDaemonLogStream({})) console.log(res.item?.line);
 */
export interface AuraeStream<T> extends AsyncIterable<T> {
  /** cancels the call; the iteration then ends with a CANCELLED error */
  cancel(): void;
  /** collects every message until the stream ends */
  toArray(): Promise<T[]>;
}

type UnaryFn = (req: unknown, md: Metadata, opts: Partial<GrpcCallOptions>, cb: (err: ServiceError | null, res: unknown) => void) => { cancel(): void };
type StreamFn = (req: unknown, md: Metadata, opts: Partial<GrpcCallOptions>) => ClientReadableStream<unknown>;

function callOptions(deadlineMs: number | undefined): Partial<GrpcCallOptions> {
  return deadlineMs !== undefined && deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {};
}

function abortedError(method: string): AuraeClientError {
  return new AuraeClientError(status.CANCELLED, "call cancelled by the caller", { method });
}

/** Runs one unary RPC on a grpc-js generic client and returns its response. */
export function unaryCall<Res>(raw: Client, name: string, method: string, req: unknown, opts: CallOptions = {}, defaultDeadlineMs?: number): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(abortedError(method));
      return;
    }
    const fn = (raw as unknown as Record<string, UnaryFn>)[name]!;
    let onAbort: (() => void) | undefined;
    const call = fn.call(raw, req, opts.metadata ?? new Metadata(), callOptions(opts.deadlineMs ?? defaultDeadlineMs), (err, res) => {
      if (onAbort) opts.signal!.removeEventListener("abort", onAbort);
      if (err) reject(toClientError(err, method));
      else resolve(res as Res);
    });
    if (opts.signal) {
      onAbort = () => call.cancel();
      opts.signal.addEventListener("abort", onAbort, { once: true });
    }
  });
}

/** Starts one server-streaming RPC; the call begins when iteration begins. */
export function streamCall<Res>(raw: Client, name: string, method: string, req: unknown, opts: CallOptions = {}): AuraeStream<Res> {
  let call: ClientReadableStream<unknown> | undefined;
  let cancelled = false;
  const start = (): ClientReadableStream<unknown> => {
    const fn = (raw as unknown as Record<string, StreamFn>)[name]!;
    call = fn.call(raw, req, opts.metadata ?? new Metadata(), callOptions(opts.deadlineMs));
    if (cancelled) call.cancel();
    return call;
  };
  const cancel = () => {
    cancelled = true;
    call?.cancel();
  };

  async function* iterate(): AsyncGenerator<Res> {
    if (opts.signal?.aborted) throw abortedError(method);
    const c = start();
    const onAbort = () => c.cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const msg of c) yield msg as Res;
    } catch (err) {
      throw toClientError(err, method);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      // leaving early (break/throw in the loop body) cancels the call; after the end it is a no-op
      c.cancel();
    }
  }

  return asAuraeStream(method, iterate, cancel);
}

/** An AuraeStream over `iterate` (started once, on the first iteration). */
export function asAuraeStream<T>(method: string, iterate: () => AsyncIterator<T>, cancel: () => void): AuraeStream<T> {
  let used = false;
  const stream: AuraeStream<T> = {
    [Symbol.asyncIterator]() {
      if (used) throw new Error(`${method}: a stream can be iterated only once`);
      used = true;
      return iterate();
    },
    cancel,
    async toArray() {
      const out: T[] = [];
      for await (const m of stream) out.push(m);
      return out;
    },
  };
  return stream;
}
