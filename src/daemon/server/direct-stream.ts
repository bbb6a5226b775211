import { EventEmitter } from "node:events";
import { constants as h2, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { gunzipSync, inflateSync } from "node:zlib";
import { status as Status, type Server, type ServiceDefinition } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";

/**
 * Serves chosen server-streaming methods on their HTTP/2 streams directly, beside grpc-js on
 * the same listener, same TLS session and same wire format (gRPC over HTTP/2: 5-byte
 * length-prefixed messages, status in trailers).
 *
 * Why: for an output stream of 100-byte lines, grpc-js's per-message path on both ends held
 * the whole service to about half of what Node's own HTTP/2 moves over the same mTLS socket
 * (docs/observe.md has the figures). These methods' responses are already encoded Buffers
 * (src/daemon/observe/log-item-wire.ts), so nothing of grpc-js's serialization is needed:
 * each response is written as its 5-byte prefix and its bytes, without a copy.
 *
 * Every other method, and any request this path does not take (not POST, not
 * application/grpc), goes to grpc-js as before. The handlers are the same functions grpc-js
 * would call: they get a call object with the part of grpc-js's ServerWritableStream they use
 * (request, sendMetadata, write/'drain', end, emit('error', status), 'cancelled', cancelled).
 *
 * grpc-js offers no public way to take one method's HTTP/2 streams, so routing reads grpc-js's
 * HTTP/2 servers from one private field (`http2Servers`, grpc-js 1.10 to 1.14 at least); if
 * it is missing, the methods stay on grpc-js and a warning says so
 * (test/unit/direct-stream.test.ts fails on such a grpc-js).
 */

/**
 * A method served here: its path, how to decode its request, the grpc-js-style handler (which
 * writes encoded responses as Buffers), and what to call once a response's bytes are sent
 * (no longer referenced: their memory may be reused).
 */
export interface DirectMethod {
  path: string;
  decodeRequest: (b: Buffer) => unknown;
  handler: (call: DirectServerStream) => void;
  responseSent?: (bytes: Buffer) => void;
}

/** what a client may send as one request message (also grpc-js's limit: server.ts) */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** The methods of `definition` named in `names` (server-streaming only), as DirectMethods. */
export function directMethods(
  definition: ServiceDefinition,
  implementation: Record<string, unknown>,
  names: string[],
  responseSent?: (bytes: Buffer) => void,
): DirectMethod[] {
  return names.map((name) => {
    const d = definition[name];
    const impl = implementation[name];
    if (!d || !d.responseStream || d.requestStream || typeof impl !== "function") {
      throw new Error(`direct stream '${name}': not a server-streaming method of the service`);
    }
    return {
      path: d.path,
      decodeRequest: d.requestDeserialize,
      responseSent,
      handler: impl as (call: DirectServerStream) => void,
    };
  });
}

/**
 * Routes the methods' streams on every HTTP/2 server `server` has bound so far (call after
 * bindAsync). Returns false, changing nothing, when grpc-js's servers cannot be found.
 */
export function routeDirectStreams(server: Server, methods: DirectMethod[], logger: Logger): boolean {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    logger.warn("direct output streams unavailable: grpc-js's HTTP/2 servers not found; these methods stay on grpc-js", {
      methods: methods.map((m) => m.path),
    });
    return false;
  }
  const byPath = new Map(methods.map((m) => [m.path, m]));
  for (const h2server of servers.keys()) {
    if ((h2server as { [ROUTED]?: boolean })[ROUTED]) continue;
    const grpcListeners = h2server.listeners("stream") as ((...a: unknown[]) => void)[];
    h2server.removeAllListeners("stream");
    h2server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
      const m = byPath.get(headers[":path"] ?? "");
      if (m && headers[":method"] === "POST" && String(headers["content-type"] ?? "").startsWith("application/grpc")) {
        try {
          serve(m, stream, headers, logger);
        } catch (err) {
          // (never expected; a request must not take the daemon down)
          logger.error(`${m.path}: cannot serve a stream: ${(err as Error).message}`);
          if (!stream.destroyed) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
        }
        return;
      }
      for (const l of grpcListeners) l.call(h2server, stream, headers, ...rest);
    });
    (h2server as { [ROUTED]?: boolean })[ROUTED] = true;
  }
  return true;
}

const ROUTED = Symbol("aurae.directStreams");

/** Reads the one request message, then hands the call to the method's handler. */
function serve(m: DirectMethod, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, logger: Logger): void {
  const call = new DirectServerStream(stream, m, headers);
  const parts: Buffer[] = [];
  let size = 0;
  stream.on("data", (b: Buffer) => {
    if (call.cancelled) return;
    size += b.length;
    if (size > MAX_REQUEST_BYTES + 5) {
      call.fail(Status.RESOURCE_EXHAUSTED, `request larger than ${MAX_REQUEST_BYTES} bytes`);
      // the status is on its way; the rest of the request is not wanted
      if (!stream.destroyed) stream.close(h2.NGHTTP2_NO_ERROR);
      return;
    }
    parts.push(b);
  });
  stream.once("end", () => {
    if (call.cancelled || call.finished) return;
    let request: unknown;
    try {
      request = m.decodeRequest(oneMessage(Buffer.concat(parts, size), headers));
    } catch (err) {
      const e = err as { code?: number; message?: string };
      call.fail(e.code ?? Status.INVALID_ARGUMENT, e.code ? e.message ?? "" : `request: cannot be decoded: ${e.message}`);
      return;
    }
    call.request = request;
    try {
      m.handler(call);
    } catch (err) {
      logger.error(`${m.path} failed with an unexpected error: ${(err as Error).message}`);
      call.fail(Status.INTERNAL, `internal error: ${(err as Error).message}`);
    }
  });
}

/** The request body's one length-prefixed message (decompressed if it was compressed). */
function oneMessage(body: Buffer, headers: IncomingHttpHeaders): Buffer {
  const fail = (code: number, message: string) => Object.assign(new Error(message), { code });
  if (body.length < 5) throw fail(Status.INVALID_ARGUMENT, "request: no message received");
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) {
    throw fail(Status.INVALID_ARGUMENT, body.length < 5 + len ? "request: message cut short" : "request: more than one message for a unary request");
  }
  const msg = body.subarray(5);
  if (body[0] === 0) return msg;
  const enc = String(headers["grpc-encoding"] ?? "identity");
  if (enc === "gzip") return gunzipSync(msg, { maxOutputLength: MAX_REQUEST_BYTES });
  if (enc === "deflate") return inflateSync(msg, { maxOutputLength: MAX_REQUEST_BYTES });
  throw fail(Status.UNIMPLEMENTED, `request: compression '${enc}' is not supported`);
}

/** grpc-timeout (e.g. "100m", "5S") in milliseconds, or undefined. */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as "H"];
  return n * unit;
}

/**
 * grpc-message's encoding: percent-encoding of every byte outside printable ASCII, and of '%'
 * (the gRPC HTTP/2 protocol's rule).
 */
export function encodeGrpcMessage(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const RESPONSE_HEADERS = {
  [h2.HTTP2_HEADER_STATUS]: 200,
  [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
};

/**
 * One call of a direct method: the subset of grpc-js's ServerWritableStream the handlers use.
 * Events: 'drain' (may write again), 'cancelled' (the client left, or the deadline passed),
 * 'close' (the stream is gone), 'error' (emitted by the handler with a status: sent as the
 * call's status).
 */
export class DirectServerStream extends EventEmitter {
  request: unknown;
  cancelled = false;
  /** a status was sent (or the stream is gone): nothing more goes out */
  finished = false;
  readonly destroyed = false;
  private headersSent = false;
  private pendingStatus: { code: number; details: string } | undefined;
  private readonly deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly method: DirectMethod,
    headers: IncomingHttpHeaders,
  ) {
    super();
    const gone = () => {
      if (this.deadline) clearTimeout(this.deadline);
      if (!this.finished) {
        this.finished = true;
        this.cancel();
      }
      this.emit("close");
    };
    stream.once("close", gone);
    stream.on("aborted", () => this.cancel());
    stream.on("error", () => this.cancel());
    stream.on("drain", () => this.emit("drain"));
    stream.on("wantTrailers", () => {
      const s = this.pendingStatus ?? { code: Status.OK, details: "" };
      stream.sendTrailers({ "grpc-status": String(s.code), ...(s.details ? { "grpc-message": encodeGrpcMessage(s.details) } : {}) });
    });
    // a handler's emit('error', status) ends the call with that status
    this.on("error", (e: { code?: number; details?: string }) => this.fail(e?.code ?? Status.UNKNOWN, e?.details ?? ""));
    const timeout = parseGrpcTimeout(headers["grpc-timeout"]);
    if (timeout !== undefined) {
      this.deadline = setTimeout(() => {
        this.fail(Status.DEADLINE_EXCEEDED, "deadline exceeded");
        this.cancel();
      }, timeout);
      this.deadline.unref();
    }
  }

  /** The peer's client certificate (as grpc-js's getAuthContext gives it). */
  getAuthContext(): { sslPeerCertificate?: unknown } {
    const socket = this.stream.session?.socket as { getPeerCertificate?: () => unknown } | undefined;
    return { sslPeerCertificate: socket?.getPeerCertificate?.() };
  }

  /** Sends the response headers now (tells the client the stream is set up). */
  sendMetadata(): void {
    if (this.headersSent || this.finished) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
  }

  /** Queues one response; false when the caller should wait for 'drain'. */
  write(bytes: Buffer): boolean {
    const sent = this.method.responseSent;
    if (this.finished) {
      sent?.(bytes);
      return false;
    }
    this.sendMetadata();
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(bytes.length, 1);
    this.stream.cork();
    this.stream.write(prefix);
    const ok = this.stream.write(bytes, sent ? () => sent(bytes) : undefined);
    this.stream.uncork();
    return ok;
  }

  /**
   * Queues several responses already framed for the wire (`frames`: each of `msgs` behind its
   * 5-byte prefix, one buffer) in one write; false when the caller should wait for 'drain'.
   * `responseSent` gets each of `msgs` once the write completed.
   */
  writeFrames(frames: Buffer, msgs: Buffer[]): boolean {
    const sent = this.method.responseSent;
    if (this.finished) {
      if (sent) for (const m of msgs) sent(m);
      return false;
    }
    this.sendMetadata();
    return this.stream.write(frames, sent ? () => msgs.forEach((m) => sent(m)) : undefined);
  }

  /** Ends the call with status OK (or the status a failure set). */
  end(): void {
    if (this.finished) return;
    this.sendMetadata();
    this.finished = true;
    this.stream.end();
  }

  /** Ends the call with a status: in the trailers, or as a trailers-only response. */
  fail(code: number, details: string): void {
    if (this.finished) return;
    if (this.headersSent) {
      this.pendingStatus = { code, details };
      this.end();
      return;
    }
    this.finished = true;
    this.headersSent = true;
    if (this.stream.destroyed) return;
    this.stream.respond(
      { ...RESPONSE_HEADERS, "grpc-status": String(code), ...(details ? { "grpc-message": encodeGrpcMessage(details) } : {}) },
      { endStream: true },
    );
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit("cancelled");
  }
}
