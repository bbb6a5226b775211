/**
 * readOutput's hot loop in WebAssembly (output-run.c): moves a run of auraed-layout `items`
 * entries' lines to the front of their piece of DATA. The response's bytes in the piece are
 * copied into the module's memory, compacted there, and the lines copied back: two memcpys
 * instead of per-line work in JavaScript (28-30 ns per 100-byte line against 43-47 in the
 * SDK's decoder here; docs/observe.md).
 *
 * Loaded on first use from the bytes in output-run-wasm.ts (no file, no native code, no
 * dependency). `AURAE_SDK_WASM=off` in the environment, or a runtime without WebAssembly,
 * leaves the TypeScript loop alone (same result).
 */
import { OUTPUT_RUN_WASM } from "./output-run-wasm.js";

const enum Slot {
  Pos = 0,
  End,
  Left,
  To,
  Lines,
  TsLo,
  TsHi,
  Words,
}

/** what a run found: lines moved, the first one's timestamp, where the piece and response stand */
export interface RunResult {
  lines: number;
  timestamp: number;
  /** where the next entry starts in the piece */
  pos: number;
  /** where the next line goes in the piece */
  to: number;
  /** bytes of the response not yet read */
  left: number;
}

export type RunOfItems = (piece: Buffer, pos: number, to: number, left: number, result: RunResult) => void;

let loaded: RunOfItems | null | undefined;

/** The part of the WebAssembly API used here (this project's TypeScript libs declare none of it). */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Exports };
}
interface Exports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  run(piece: number): number;
  state_ptr(): number;
  __heap_base: { value: number };
}

/** The WebAssembly run, or null when it is off or cannot be had. */
export function wasmRunOfItems(): RunOfItems | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  const wasm = (globalThis as { WebAssembly?: Wasm }).WebAssembly;
  if (process.env.AURAE_SDK_WASM === "off" || !wasm) return loaded;
  try {
    const ex = new wasm.Instance(new wasm.Module(Buffer.from(OUTPUT_RUN_WASM, "base64")), {}).exports;
    const base = ex.__heap_base.value;
    const statePtr = ex.state_ptr();
    let mem = new Uint8Array(ex.memory.buffer);
    let state = new Uint32Array(ex.memory.buffer, statePtr, Slot.Words);
    loaded = (piece, pos, to, left, result) => {
      // the module's memory mirrors the piece from `to`; only the response's bytes from `pos`
      // are copied in ([to, pos) is where the lines go: nothing there is read)
      const end = Math.min(piece.length, pos + left);
      const n = end - to;
      if (base + n > mem.length) {
        ex.memory.grow(Math.ceil((base + n - mem.length) / 65536));
        mem = new Uint8Array(ex.memory.buffer);
        state = new Uint32Array(ex.memory.buffer, statePtr, Slot.Words);
      }
      mem.set(piece.subarray(pos, end), base + (pos - to));
      state[Slot.Pos] = pos - to;
      state[Slot.End] = n;
      state[Slot.Left] = left;
      state[Slot.To] = 0;
      const lines = ex.run(base);
      const moved = state[Slot.To]!;
      if (lines > 0) piece.set(mem.subarray(base, base + moved), to);
      result.lines = lines;
      result.timestamp = state[Slot.TsHi]! * 2 ** 32 + state[Slot.TsLo]!;
      result.pos = to + state[Slot.Pos]!;
      result.to = to + moved;
      result.left = state[Slot.Left]!;
    };
  } catch {
    loaded = null;
  }
  return loaded;
}

/** Tests: load again (the environment is read again). */
export function resetWasmForTests(): void {
  loaded = undefined;
}
