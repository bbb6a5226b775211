import { Metadata, status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import { AuraeError, toGrpcCode } from "../errors.js";
import type { Logger } from "../logger.js";

/** The authenticated caller, taken from its client certificate (for authorization later). */
export interface PeerIdentity {
  subject?: string;
  uris: string[];
}

export function peerIdentity(call: { getAuthContext?: () => unknown }): PeerIdentity {
  const ctx = call.getAuthContext?.() as { sslPeerCertificate?: { subject?: Record<string, string>; subjectaltname?: string } } | undefined;
  const cert = ctx?.sslPeerCertificate;
  const uris = (cert?.subjectaltname ?? "")
    .split(/,\s*/)
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
  return { subject: cert?.subject?.CN, uris };
}

/** Converts any thrown value into a gRPC status exactly once. Non-domain errors are INTERNAL and logged. */
export function toServiceError(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  if (err instanceof AuraeError) {
    if (err.kind === "internal") logger.error(`${method} failed: ${err.message}`, { cause: String(err.cause ?? "") });
    return { code: toGrpcCode(err.kind), details: err.message, metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  logger.error(`${method} failed with an unexpected error: ${message}`, {
    stack: err instanceof Error ? err.stack : undefined,
  });
  return { code: status.INTERNAL, details: `internal error in ${method}: ${message}`, metadata: new Metadata() };
}

/** Wraps an async handler as a grpc-js unary handler; the domain never sees callbacks. */
export function unary<Req, Res>(
  logger: Logger,
  method: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    let p: Promise<Res>;
    try {
      p = fn(call.request, call);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err, logger, method) as ServiceError, null),
    );
  };
}

/**
 * Wraps an async server-streaming handler. The handler writes with `call.write` (respecting
 * backpressure itself where it matters) and resolves when the stream is complete; rejections
 * become the stream's status. Cancellation by the client is visible as `call.cancelled`.
 */
export function serverStream<Req, Res>(
  logger: Logger,
  method: string,
  fn: (req: Req, call: ServerWritableStream<Req, Res>) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    let p: Promise<void>;
    try {
      p = fn(call.request, call);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => { if (!call.cancelled) call.end(); },
      (err) => { if (!call.cancelled) call.emit("error", toServiceError(err, logger, method)); },
    );
  };
}

export const GRPC_STATUS = status;
