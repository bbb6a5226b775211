/**
 * Server-streaming calls read straight off an HTTP/2 stream (Node's http2 over the same mTLS
 * material), for the output stream (`readOutput`, `getSubProcessStream`). The wire is plain gRPC
 * (a request of one length-prefixed message, responses the same, the status in the trailers),
 * so any gRPC server answers it; only the client side differs from grpc-js.
 *
 * Why: grpc-js takes each response through its message pipeline (copied into a buffer of its
 * own, the HTTP/2 stream paused until the application took the message): measured, this held
 * a 100-byte-line output stream to about half of what the same socket carries with Node's
 * HTTP/2 alone (docs/observe.md). Here the DATA goes to a StreamDecoder as it arrives (the
 * output decoder works on it in place), and the stream is paused only when the reader falls
 * behind.
 *
 * One HTTP/2 session per AuraeClient (DirectSession), opened on first use, reopened after it
 * closed, and not keeping the process alive while no stream is open.
 */
import { connect as h2connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { connect as tlsConnect } from "node:tls";
import { status, type Metadata } from "@grpc/grpc-js";
import type { AuraeSocket } from "./config.js";
import { AuraeClientError } from "./errors.js";
import { asAuraeStream, type AuraeStream, type CallOptions } from "./call.js";

/** What a session needs: where, and the TLS material. */
export interface DirectTarget {
  socket: AuraeSocket;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  serverName: string;
  /** the HTTP/2 receive window (stream and connection), bytes */
  window: number;
}

/** decoded items not yet taken by the reader before the stream is paused */
const QUEUE_HIGH = 64;

/** Turns a stream's DATA, piece by piece, into its items (gRPC messages, or what they hold). */
export interface StreamDecoder<T> {
  /** decodes one piece (which the decoder may keep and change); items go to `out` */
  push(data: Buffer, out: T[]): void;
  /** true when no message is partly received */
  readonly idle: boolean;
}

/** A StreamDecoder of whole messages, each turned into items by `decode`. */
export function messageDecoder<T>(decode: (msg: Buffer) => T[]): StreamDecoder<T> {
  const splitter = new MessageSplitter();
  return {
    push(data, out) {
      splitter.push(data, (msg) => {
        for (const item of decode(msg)) out.push(item);
      });
    },
    get idle() {
      return splitter.idle;
    },
  };
}

/** The client's one HTTP/2 session for direct streams. */
export class DirectSession {
  private session: ClientHttp2Session | undefined;
  private open = 0;
  private closed = false;

  constructor(private readonly target: DirectTarget) {}

  /** The session, connecting it if needed. */
  get(): ClientHttp2Session {
    if (this.closed) throw new AuraeClientError(status.UNAVAILABLE, "the client is closed");
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const t = this.target;
    const s = t.socket;
    const session = h2connect(`https://${t.serverName}`, {
      createConnection: () =>
        tlsConnect({
          ...(s.kind === "unix" ? { path: s.path } : { host: s.scopeId ? `${s.host}%${s.scopeId}` : s.host, port: s.port }),
          ca: t.ca,
          cert: t.cert,
          key: t.key,
          servername: t.serverName,
          ALPNProtocols: ["h2"],
        }),
      settings: { initialWindowSize: t.window, enablePush: false },
    });
    session.on("connect", () => session.setLocalWindowSize(t.window));
    // errors reach the streams; a broken session is replaced on the next call
    session.on("error", () => undefined);
    session.on("close", () => {
      if (this.session === session) this.session = undefined;
    });
    session.unref();
    this.session = session;
    return session;
  }

  /** Counts a stream in (the session keeps the process alive while one is open) or out. */
  track(delta: 1 | -1): void {
    this.open += delta;
    if (this.open === 1 && delta === 1) this.session?.ref();
    if (this.open === 0) this.session?.unref();
  }

  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = undefined;
  }
}

/** Request headers from call metadata (binary `-bin` values base64, as gRPC sends them). */
function metadataHeaders(md: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!md) return out;
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString("base64") : String(v);
  return out;
}

/** A status from headers or trailers, or undefined when they carry none. */
function statusOf(h: IncomingHttpHeaders): { code: number; details: string } | undefined {
  const code = h["grpc-status"];
  if (code === undefined) return undefined;
  let details = String(h["grpc-message"] ?? "");
  try {
    details = decodeURIComponent(details);
  } catch {
    // not percent-encoded as the protocol says: shown as sent
  }
  return { code: Number(code), details };
}

/** Splits an HTTP/2 stream's DATA into gRPC messages (5-byte prefix, then the bytes). */
export class MessageSplitter {
  private head = Buffer.alloc(5);
  private headHave = 0;
  private body: Buffer | undefined;
  private bodyHave = 0;

  /** Calls `out` with each message completed by `b`; throws on a compressed message. */
  push(b: Buffer, out: (msg: Buffer) => void): void {
    let off = 0;
    while (off < b.length) {
      if (this.body) {
        const n = Math.min(b.length - off, this.body.length - this.bodyHave);
        b.copy(this.body, this.bodyHave, off, off + n);
        this.bodyHave += n;
        off += n;
        if (this.bodyHave === this.body.length) {
          const msg = this.body;
          this.body = undefined;
          out(msg);
        }
        continue;
      }
      if (this.headHave === 0 && b.length - off >= 5) {
        // the usual case: the prefix is here, and often the whole message
        const len = this.lengthAt(b, off);
        if (b.length - off - 5 >= len) {
          out(b.subarray(off + 5, off + 5 + len));
          off += 5 + len;
          continue;
        }
        this.startBody(len);
        off += 5;
        continue;
      }
      const n = Math.min(5 - this.headHave, b.length - off);
      b.copy(this.head, this.headHave, off, off + n);
      this.headHave += n;
      off += n;
      if (this.headHave === 5) {
        this.headHave = 0;
        const len = this.lengthAt(this.head, 0);
        if (len === 0) out(Buffer.alloc(0));
        else this.startBody(len);
      }
    }
  }

  /** true when no message is partly received */
  get idle(): boolean {
    return !this.body && this.headHave === 0;
  }

  private lengthAt(b: Buffer, off: number): number {
    if (b[off] !== 0) throw new AuraeClientError(status.INTERNAL, "the server sent a compressed response, which was not asked for");
    return b.readUInt32BE(off + 1);
  }

  private startBody(len: number): void {
    this.body = Buffer.allocUnsafe(len);
    this.bodyHave = 0;
  }
}

/**
 * Starts one server-streaming call on `session`: `request` is the encoded request message,
 * `makeDecoder` gives the decoder of its DATA (messageDecoder for whole messages). The call
 * begins when iteration begins; leaving the loop early cancels it.
 */
export function directStreamCall<T>(
  session: DirectSession,
  path: string,
  method: string,
  request: Uint8Array,
  makeDecoder: () => StreamDecoder<T>,
  opts: CallOptions = {},
): AuraeStream<T> {
  let stream: ClientHttp2Stream | undefined;
  let cancelled = false;
  const cancel = () => {
    cancelled = true;
    stream?.close(h2.NGHTTP2_CANCEL);
  };

  async function* iterate(): AsyncGenerator<T> {
    const fail = (code: number, details: string, cause?: unknown) => new AuraeClientError(code, details, { method, cause });
    if (opts.signal?.aborted || cancelled) throw fail(status.CANCELLED, "call cancelled by the caller");
    let queue: T[] = [];
    let head = 0;
    let ended: AuraeClientError | null | undefined; // undefined: running; null: OK
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const finish = (e: AuraeClientError | null) => {
      if (ended !== undefined) return;
      ended = e;
      notify();
    };

    let s: ClientHttp2Stream;
    try {
      const headers: Record<string, string> = {
        [h2.HTTP2_HEADER_METHOD]: "POST",
        [h2.HTTP2_HEADER_PATH]: path,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
        te: "trailers",
        ...metadataHeaders(opts.metadata),
      };
      if (opts.deadlineMs !== undefined && opts.deadlineMs > 0) headers["grpc-timeout"] = `${Math.ceil(opts.deadlineMs)}m`;
      s = session.get().request(headers);
    } catch (err) {
      if (err instanceof AuraeClientError) throw err;
      throw fail(status.UNAVAILABLE, `cannot open a stream: ${(err as Error).message}`, err);
    }
    stream = s;
    session.track(1);
    let deadline: NodeJS.Timeout | undefined;
    if (opts.deadlineMs !== undefined && opts.deadlineMs > 0) {
      deadline = setTimeout(() => {
        finish(fail(status.DEADLINE_EXCEEDED, `no end within ${opts.deadlineMs} ms`));
        s.close(h2.NGHTTP2_CANCEL);
      }, opts.deadlineMs);
    }
    const onAbort = () => cancel();
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(request.length, 1);
    s.end(Buffer.concat([prefix, request]));

    const decoder = makeDecoder();
    let result: { code: number; details: string } | undefined;
    s.on("response", (h) => {
      const httpStatus = Number(h[h2.HTTP2_HEADER_STATUS]);
      if (httpStatus !== 200) {
        finish(fail(httpStatus === 404 ? status.UNIMPLEMENTED : status.UNKNOWN, `the server answered HTTP ${httpStatus}`));
        s.close(h2.NGHTTP2_CANCEL);
        return;
      }
      result = statusOf(h); // a trailers-only response carries its status here
    });
    s.on("data", (b: Buffer) => {
      try {
        decoder.push(b, queue);
      } catch (err) {
        finish(err instanceof AuraeClientError ? err : fail(status.INTERNAL, `cannot decode a response: ${(err as Error).message}`, err));
        s.close(h2.NGHTTP2_CANCEL);
        return;
      }
      if (queue.length - head >= QUEUE_HIGH) s.pause();
      notify();
    });
    s.on("trailers", (h) => {
      result = statusOf(h) ?? result;
    });
    s.on("error", (err: Error) => {
      const code = (err as { code?: string }).code;
      finish(fail(status.UNAVAILABLE, `${err.message}${code === "ENOENT" ? " (is auraed running? the socket does not exist)" : ""}`, err));
    });
    s.on("close", () => {
      if (cancelled) return finish(fail(status.CANCELLED, "call cancelled by the caller"));
      if (!result) return finish(fail(status.UNAVAILABLE, `the stream closed without a status (HTTP/2 code ${s.rstCode})`));
      if (result.code !== status.OK) return finish(fail(result.code, result.details));
      if (!decoder.idle) return finish(fail(status.INTERNAL, "the stream ended inside a response"));
      finish(null);
    });

    try {
      for (;;) {
        if (head < queue.length) {
          const item = queue[head++]!;
          if (head === queue.length) {
            queue = [];
            head = 0;
          }
          if (queue.length - head < QUEUE_HIGH / 2 && s.isPaused()) s.resume();
          yield item;
          continue;
        }
        if (ended !== undefined) {
          if (ended) throw ended;
          return;
        }
        if (s.isPaused()) s.resume();
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      if (deadline) clearTimeout(deadline);
      opts.signal?.removeEventListener("abort", onAbort);
      if (!s.closed) s.close(h2.NGHTTP2_CANCEL);
      session.track(-1);
    }
  }

  return asAuraeStream(method, iterate, cancel);
}
