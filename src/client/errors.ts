import { status, type ServiceError } from "@grpc/grpc-js";

/** gRPC status names by number (`5` -> `"NOT_FOUND"`). */
export const STATUS_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(status)
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => [v as number, k]),
  ),
);

/** The status name of a gRPC code number, `"UNKNOWN"` for numbers gRPC does not define. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? "UNKNOWN";
}

/**
 * The one error every SDK call rejects with: the gRPC status `code` (a number, see
 * `@grpc/grpc-js` `status`), its name `codeName` (`"NOT_FOUND"`) and the daemon's message
 * `details` (`"free cell 'a': not found"`). `method` names the RPC that failed.
 *
 * @example
 * try { await cells.free({ cellName: "nope" }); }
 * catch (e) { if (e instanceof AuraeClientError && e.codeName === "NOT_FOUND") console.log(e.details); }
 */
export class AuraeClientError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly details: string;
  readonly method?: string;
  constructor(code: number, details: string, opts: { method?: string; cause?: unknown } = {}) {
    super(`${statusName(code)}: ${details}`, { cause: opts.cause });
    this.name = "AuraeClientError";
    this.code = code;
    this.codeName = statusName(code);
    this.details = details;
    this.method = opts.method;
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && typeof (err as ServiceError).code === "number" && "details" in err;
}

/**
 * Converts whatever a grpc-js call failed with into an AuraeClientError. This is the only place
 * that translates transport errors.
 */
export function toClientError(err: unknown, method?: string): AuraeClientError {
  if (err instanceof AuraeClientError) return err;
  if (isServiceError(err)) {
    let details = err.details || err.message;
    if (err.code === status.UNAVAILABLE) details = describeUnavailable(details);
    if (err.code === status.DEADLINE_EXCEEDED) details = describeDeadline(details);
    return new AuraeClientError(err.code, details, { method, cause: err });
  }
  if (err instanceof Error && err.name === "AbortError") {
    return new AuraeClientError(status.CANCELLED, "call cancelled by the caller", { method, cause: err });
  }
  return new AuraeClientError(status.UNKNOWN, err instanceof Error ? err.message : String(err), { method, cause: err });
}

/** Makes grpc-js's connection failures say what to check. */
function describeUnavailable(details: string): string {
  if (/ENOENT/.test(details)) return `${details} (is auraed running? the socket does not exist)`;
  if (/ECONNREFUSED/.test(details)) return `${details} (is auraed running?)`;
  if (/EACCES/.test(details)) return `${details} (permission denied on the socket)`;
  return details;
}

/** grpc-js says "Waiting for LB pick" when the deadline passed before any connection was made. */
function describeDeadline(details: string): string {
  if (/Waiting for LB pick/.test(details)) return `${details} (no connection to the daemon was established in time)`;
  return details;
}
