import { status } from "@grpc/grpc-js";

/**
 * The one error type of the daemon's domain. Each carries a stable kind that maps to exactly
 * one gRPC status code (see toGrpcCode), and a lowercase message that names the object:
 * `free cell 'a/b': not found`.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "unavailable"
  | "unimplemented"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "internal";

export class AuraeError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = "AuraeError";
  }
}

export const invalidArgument = (m: string) => new AuraeError("invalid_argument", m);
export const notFound = (m: string) => new AuraeError("not_found", m);
export const alreadyExists = (m: string) => new AuraeError("already_exists", m);
export const failedPrecondition = (m: string) => new AuraeError("failed_precondition", m);
export const unavailable = (m: string) => new AuraeError("unavailable", m);
export const unimplemented = (m: string) => new AuraeError("unimplemented", m);
export const internal = (m: string, cause?: unknown) => new AuraeError("internal", m, { cause });

const CODES: Record<ErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  unimplemented: status.UNIMPLEMENTED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};

export function toGrpcCode(kind: ErrorKind): status {
  return CODES[kind];
}
