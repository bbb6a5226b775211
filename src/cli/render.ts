import { status } from "@grpc/grpc-js";
import { AuraeConfigError } from "../client/config.js";
import { AuraeClientError, statusName } from "../client/errors.js";

/**
 * What a command handler returns: the data (printed as JSON with --json) and how a human reads
 * it. A stream is an async iterable of results, printed one per line as they arrive.
 */
export interface Result {
  data: unknown;
  human: string;
  /** bytes printed as they are instead of `human` (an executable's output, newlines included) */
  raw?: Buffer;
  /** exit status when the command succeeded but the answer is "no" (e.g. health NOT_SERVING) */
  exitCode?: number;
}
export type Output = Result | AsyncIterable<Result>;

/** An error of the CLI itself: bad arguments (exit 2) or a local failure with a stable code name. */
export class CliError extends Error {
  readonly codeName: string;
  readonly exitCode: number;
  constructor(codeName: string, message: string, exitCode?: number) {
    super(message);
    this.name = "CliError";
    this.codeName = codeName;
    this.exitCode = exitCode ?? EXIT_BY_NAME[codeName] ?? EXIT.OTHER;
  }
}

/** Exit statuses, documented in docs/cli.md. */
export const EXIT = {
  OK: 0,
  OTHER: 1,
  USAGE: 2,
  UNAVAILABLE: 3,
  NOT_FOUND: 4,
  ALREADY_EXISTS: 5,
  INVALID_ARGUMENT: 6,
  FAILED_PRECONDITION: 7,
  CONFIG: 8,
  DEADLINE_EXCEEDED: 9,
  UNIMPLEMENTED: 10,
  PERMISSION_DENIED: 11,
  RESOURCE_EXHAUSTED: 12,
  CANCELLED: 130,
} as const;

const EXIT_BY_NAME: Record<string, number> = {
  USAGE: EXIT.USAGE,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  NOT_FOUND: EXIT.NOT_FOUND,
  ALREADY_EXISTS: EXIT.ALREADY_EXISTS,
  INVALID_ARGUMENT: EXIT.INVALID_ARGUMENT,
  OUT_OF_RANGE: EXIT.INVALID_ARGUMENT,
  FAILED_PRECONDITION: EXIT.FAILED_PRECONDITION,
  CONFIG: EXIT.CONFIG,
  DEADLINE_EXCEEDED: EXIT.DEADLINE_EXCEEDED,
  UNIMPLEMENTED: EXIT.UNIMPLEMENTED,
  PERMISSION_DENIED: EXIT.PERMISSION_DENIED,
  UNAUTHENTICATED: EXIT.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: EXIT.RESOURCE_EXHAUSTED,
  CANCELLED: EXIT.CANCELLED,
};

/** The stable code name and message of any error. */
export function describeError(err: unknown): { codeName: string; message: string; exitCode: number } {
  if (err instanceof CliError) return { codeName: err.codeName, message: err.message, exitCode: err.exitCode };
  if (err instanceof AuraeClientError) {
    return { codeName: err.codeName, message: err.details, exitCode: EXIT_BY_NAME[err.codeName] ?? EXIT.OTHER };
  }
  if (err instanceof AuraeConfigError) return { codeName: "CONFIG", message: err.message, exitCode: EXIT.CONFIG };
  // a gRPC ServiceError that did not go through the SDK (should not happen, but never lose the code)
  if (typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "number" && "details" in err) {
    const name = statusName((err as unknown as { code: number }).code);
    return { codeName: name, message: String((err as { details: unknown }).details), exitCode: EXIT_BY_NAME[name] ?? EXIT.OTHER };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { codeName: statusName(status.UNKNOWN), message, exitCode: EXIT.OTHER };
}

/** Prints `error: <CODE>: <message>` on stderr and sets the exit status for the error. */
export function reportError(err: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  const { codeName, message, exitCode } = describeError(err);
  stderr.write(`error: ${codeName}: ${message}\n`);
  process.exitCode = exitCode;
  return exitCode;
}

function isStream(o: Output): o is AsyncIterable<Result> {
  return typeof (o as AsyncIterable<Result>)[Symbol.asyncIterator] === "function";
}

/** JSON that keeps numbers as numbers and turns bigints into strings. */
export function toJson(data: unknown, pretty: boolean): string {
  return JSON.stringify(data, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), pretty ? 2 : undefined);
}

/**
 * Prints a command's output: human text, or with `json` one JSON document (one compact
 * document per line for streams). Returns the exit status.
 */
export async function render(out: Output, opts: { json: boolean; stdout?: NodeJS.WritableStream }): Promise<number> {
  const stdout = opts.stdout ?? process.stdout;
  /** false when stdout's buffer is full: a stream then waits for it to drain (output is not piled up in memory) */
  const print = (r: Result, pretty: boolean): boolean => {
    if (!opts.json && r.raw) return r.raw.length === 0 || stdout.write(r.raw);
    const text = opts.json ? toJson(r.data, pretty) : r.human;
    return text.length === 0 || stdout.write(text.endsWith("\n") ? text : text + "\n");
  };
  if (isStream(out)) {
    let code = 0;
    for await (const r of out) {
      if (!print(r, false)) await drained(stdout);
      if (r.exitCode !== undefined) code = r.exitCode;
    }
    return code;
  }
  print(out, true);
  return out.exitCode ?? 0;
}

/** Resolves once `w` drained, or closed (a reader that went away ends the command elsewhere). */
function drained(w: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      w.off("error", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
    w.on("error", done);
  });
}
