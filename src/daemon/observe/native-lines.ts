/**
 * The output streams' line encoder in C (log-item-wire.c, built by
 * src/platform/native/build.sh into build/native/liblog-item-wire.so), bound with koffi. It
 * encodes a run of whole lines in one call, the same bytes as LogResponseEncoder.line gives
 * one line at a time; the per-line work in TypeScript (a native call to find each newline,
 * another to move each line, varint arithmetic on doubles) was most of the daemon's CPU per MB
 * of output (docs/observe.md has the figures).
 *
 * Optional: when the library is missing (not built, or a copy of the daemon without it) or
 * `AURAED_NATIVE_LINES=off` is set, `nativeLines()` is undefined and the TypeScript encoder does
 * all the work, with the same result.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import koffi from "koffi";

/** Slots of the state array (see the enum in log-item-wire.c). */
export const enum Slot {
  Pos = 0,
  End,
  Limit,
  At,
  Cap,
  PerResponse,
  Open,
  RespLines,
  MaxLines,
  MaxLineBytes,
  BatchBytes,
  NStarts,
  StartsCap,
  Stop,
  Frame,
  Starts = 16,
}

/** room for response starts per call (a call stops when it is full; with one response per line, that is 8,192 lines) */
export const STARTS_CAP = 8192;

/**
 * The state array of every call (calls are synchronous and the daemon has one thread, so one
 * array serves every stream).
 */
export const nativeState = new Int32Array(Slot.Starts + STARTS_CAP);

export type EncodeLines = (out: Buffer, input: Buffer, state: Int32Array, channel: Buffer, channelLength: number, timestamp: number) => number;

/** Where build.sh puts the library: $AURAE_LOG_WIRE_LIB, else <repo>/build/native/liblog-item-wire.so (from src/ or dist/). */
export function nativeLinesPath(): string {
  if (process.env.AURAE_LOG_WIRE_LIB) return process.env.AURAE_LOG_WIRE_LIB;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  return path.join(root, "build/native/liblog-item-wire.so");
}

let loaded: { fn: EncodeLines | undefined; why: string } | undefined;

/** The C encoder, or undefined (see nativeLinesStatus for why). Loaded once. */
export function nativeLines(): EncodeLines | undefined {
  return load().fn;
}

/** "native" when the C encoder is in use, else why not (for the daemon's startup log). */
export function nativeLinesStatus(): string {
  const l = load();
  return l.fn ? "native" : l.why;
}

function load(): { fn: EncodeLines | undefined; why: string } {
  if (loaded) return loaded;
  const file = nativeLinesPath();
  if (process.env.AURAED_NATIVE_LINES === "off") {
    loaded = { fn: undefined, why: "off (AURAED_NATIVE_LINES=off)" };
  } else if (!fs.existsSync(file)) {
    loaded = { fn: undefined, why: `${file} is missing (src/platform/native/build.sh builds it)` };
  } else {
    try {
      const lib = koffi.load(file);
      const fn = lib.func(
        "int32_t aurae_encode_lines(uint8_t *out, const uint8_t *input, int32_t *state, const uint8_t *channel, int32_t chlen, double ts)",
      ) as EncodeLines;
      loaded = { fn, why: "native" };
    } catch (err) {
      loaded = { fn: undefined, why: `${file} could not be loaded: ${(err as Error).message}` };
    }
  }
  return loaded;
}

/** Tests: forget what was loaded, so that the environment is read again. */
export function resetNativeLinesForTests(): void {
  loaded = undefined;
}
