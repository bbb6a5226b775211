/**
 * The daemon's record of what it owns, so that a restarted daemon re-adopts it (docs/state.md).
 *
 *   <runtime-dir>/state/
 *     FORMAT                          "aurae-state 1": the layout and record format version
 *     cells/<cell>.json               one per cell, written at Allocate, removed at Free
 *     executables/<cell>~<name>/      one per executable, removed when Stop releases it
 *       executable.json               written once at Start
 *       stdout, stderr                its output (the retained tail)
 *       exit                          written by aurae-shim when the program exits
 *
 * `<cell>` is the cell name with each "/" written "%2F" (encodeURIComponent); a name whose
 * file name would be longer than 200 bytes is stored as "h-<sha256 prefix>" instead (the
 * record inside says which it is). Records are
 * JSON with a `format` field; each is written to a temporary file, then renamed over the old
 * one, so a daemon that dies leaves either the old or the new record, never a torn one. A record
 * that does not parse or does not match its schema is reported and left alone, as is what it
 * names: its name is known from its file name, so nothing of it is touched.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { CellLimits } from "../../platform/cgroups/limits.js";
import { ensureDir } from "../../platform/fs/ensure-dir.js";
import type { ProcessIdentity } from "../../platform/process/identity.js";

export const STATE_FORMAT = 1;
const FORMAT_LINE = `aurae-state ${STATE_FORMAT}`;

export interface StoredCell {
  format: 1;
  name: string;
  limits: CellLimits;
  isolateProcess: boolean;
  isolateNetwork: boolean;
  /** one of the daemon's own cells (labels starting with "_"), hidden from List */
  internal: boolean;
  /** ms since the epoch */
  allocatedAt: number;
}

export interface StoredExecutable {
  format: 1;
  cellName: string;
  name: string;
  command: string;
  description: string;
  /** the program as exec'd (sh -c COMMAND for Start) */
  argv: string[];
  uid: number;
  gid: number;
  /** the pid Start reported (in the cell's pid namespace) */
  pid: number;
  /** the program on the host */
  process: ProcessIdentity;
  /** its aurae-shim on the host */
  shim: ProcessIdentity;
  /** the boot the identities belong to */
  bootId: string;
  /** ms since the epoch */
  startedAt: number;
  /** a process the daemon runs for the cell itself (its namespace holder), hidden from List */
  internal: boolean;
}

/** Something in the store the daemon could not use, and what it names. */
export interface StoreProblem {
  file: string;
  /** the cell (and executable) the file names, as far as its path tells */
  cellName?: string;
  executableName?: string;
  reason: string;
}

export interface LoadedState {
  cells: StoredCell[];
  executables: { record: StoredExecutable; dir: string }[];
  /** executable directories without a record (the daemon died between spawn and record) */
  strays: string[];
  problems: StoreProblem[];
}

const encodeCell = (name: string) => encodeURIComponent(name);
/** Longest file name the store makes itself (filesystems allow 255 bytes). */
const MAX_FILE_NAME = 200;
const hashed = (key: string) => `h-${createHash("sha256").update(key).digest("hex").slice(0, 40)}`;

function cellFileName(name: string): string {
  const plain = encodeCell(name);
  return plain.length + 5 <= MAX_FILE_NAME ? plain : hashed(name);
}

function executableDirName(cellName: string, name: string): string {
  const plain = `${encodeCell(cellName)}~${name}`;
  return plain.length <= MAX_FILE_NAME ? plain : hashed(`${cellName}\0${name}`);
}

/** Every file an executable's directory normally holds. */
const EXECUTABLE_FILES = ["executable.json", "stdout", "stderr", "exit", "exit.tmp", "executable.json.tmp"];

/**
 * Writes `data` to `file` atomically: a temporary file renamed over it, so a reader (a
 * restarted daemon) sees the old record or the new one, never a torn one. Not fsync'd: the
 * store guards against the daemon dying, not the machine; after a crash or reboot of the
 * machine nothing it records runs any more (and the runtime dir is usually a tmpfs).
 */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export class StateStore {
  readonly dir: string;
  private readonly cellsDir: string;
  private readonly exesDir: string;

  constructor(runtimeDir: string) {
    this.dir = path.join(runtimeDir, "state");
    this.cellsDir = path.join(this.dir, "cells");
    this.exesDir = path.join(this.dir, "executables");
  }

  /**
   * Creates the store, or checks the format of an existing one. Returns a problem (and the
   * store must then not be written) when it holds another format.
   */
  open(): StoreProblem | undefined {
    ensureDir(this.cellsDir, 0o700);
    ensureDir(this.exesDir, 0o700);
    fs.chmodSync(this.dir, 0o700);
    const formatFile = path.join(this.dir, "FORMAT");
    let text = "";
    try {
      text = fs.readFileSync(formatFile, "utf8").trim();
    } catch {
      // not there yet
    }
    if (text === "") {
      // new, or emptied by a machine crash right after it was first written
      writeFileAtomic(formatFile, `${FORMAT_LINE}\n`);
      return undefined;
    }
    if (text === FORMAT_LINE) return undefined;
    return { file: formatFile, reason: `holds '${text.slice(0, 40)}', this daemon reads '${FORMAT_LINE}'` };
  }

  cellFile(name: string): string {
    return path.join(this.cellsDir, `${cellFileName(name)}.json`);
  }

  executableDir(cellName: string, name: string): string {
    return path.join(this.exesDir, executableDirName(cellName, name));
  }

  saveCell(rec: StoredCell): void {
    writeFileAtomic(this.cellFile(rec.name), JSON.stringify(rec));
  }

  removeCell(name: string): void {
    fs.rmSync(this.cellFile(name), { force: true });
  }

  /** A fresh, empty directory for an executable's files (a stale one is replaced). */
  createExecutableDir(cellName: string, name: string): string {
    const d = this.executableDir(cellName, name);
    fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(d, { mode: 0o700 });
    return d;
  }

  saveExecutable(dir: string, rec: StoredExecutable): void {
    writeFileAtomic(path.join(dir, "executable.json"), JSON.stringify(rec));
  }

  /** Removes an executable's directory: its known files one by one (cheaper than a recursive rm), then anything else. */
  removeExecutable(dir: string): void {
    for (const f of EXECUTABLE_FILES) {
      try {
        fs.unlinkSync(path.join(dir, f));
      } catch {
        // not written (yet), or already gone
      }
    }
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Everything recorded, with what could not be read. */
  load(): LoadedState {
    const problems: StoreProblem[] = [];
    const cells: StoredCell[] = [];
    const executables: LoadedState["executables"] = [];
    const strays: string[] = [];
    for (const f of safeReaddir(this.cellsDir)) {
      const file = path.join(this.cellsDir, f);
      if (f.endsWith(".tmp")) {
        fs.rmSync(file, { force: true }); // an interrupted write: the record it replaced stands
        continue;
      }
      const base = f.endsWith(".json") ? f.slice(0, -5) : f;
      const cellName = base.startsWith("h-") ? undefined : safeDecode(base);
      const rec = readJson(file);
      const why = rec.error ?? cellProblem(rec.value, (n) => cellFileName(n) === base);
      if (why) problems.push({ file, cellName, reason: why });
      else cells.push(rec.value as StoredCell);
    }
    for (const d of safeReaddir(this.exesDir)) {
      const dir = path.join(this.exesDir, d);
      const tilde = d.startsWith("h-") ? -1 : d.indexOf("~");
      const cellName = tilde > 0 ? safeDecode(d.slice(0, tilde)) : undefined;
      const executableName = tilde > 0 ? d.slice(tilde + 1) : undefined;
      const file = path.join(dir, "executable.json");
      if (!fs.existsSync(file)) {
        strays.push(dir);
        continue;
      }
      const rec = readJson(file);
      const why = rec.error ?? executableProblem(rec.value, (c, n) => executableDirName(c, n) === d);
      if (why) problems.push({ file, cellName, executableName, reason: why });
      else executables.push({ record: rec.value as StoredExecutable, dir });
    }
    cells.sort((a, b) => a.name.split("/").length - b.name.split("/").length || (a.name < b.name ? -1 : 1));
    return { cells, executables, strays, problems };
  }
}

function safeReaddir(d: string): string[] {
  try {
    return fs.readdirSync(d).sort();
  } catch {
    return [];
  }
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function readJson(file: string): { value?: unknown; error?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    return { error: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: `is not valid JSON (${text.length} bytes; truncated or corrupt): ${(err as Error).message}` };
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNat = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isIdentity = (v: unknown) => isObj(v) && isNat(v.pid) && (v.pid as number) > 0 && isNat(v.startTime);

function formatProblem(v: Record<string, unknown>): string | undefined {
  if (v.format !== STATE_FORMAT) return `has record format ${JSON.stringify(v.format)}, this daemon reads ${STATE_FORMAT}`;
  return undefined;
}

function cellProblem(v: unknown, matchesPath: (name: string) => boolean): string | undefined {
  if (!isObj(v)) return "is not a JSON object";
  const f = formatProblem(v);
  if (f) return f;
  if (typeof v.name !== "string" || !matchesPath(v.name)) return `names cell ${JSON.stringify(v.name)}, which is not what its file name says`;
  if (!isObj(v.limits)) return "has no limits object";
  if (typeof v.isolateProcess !== "boolean" || typeof v.isolateNetwork !== "boolean" || typeof v.internal !== "boolean") return "lacks its isolation or internal flags";
  return undefined;
}

function executableProblem(v: unknown, matchesPath: (cellName: string, name: string) => boolean): string | undefined {
  if (!isObj(v)) return "is not a JSON object";
  const f = formatProblem(v);
  if (f) return f;
  if (typeof v.cellName !== "string" || typeof v.name !== "string" || !matchesPath(v.cellName, v.name)) {
    return `names executable ${JSON.stringify(v.name)} in cell ${JSON.stringify(v.cellName)}, which is not what its directory says`;
  }
  if (!isIdentity(v.process) || !isIdentity(v.shim)) return "lacks the identity of its process or shim";
  if (typeof v.bootId !== "string" || !isNat(v.pid) || !isNat(v.uid) || !isNat(v.gid)) return "lacks its pid, ids or boot id";
  if (typeof v.command !== "string" || !Array.isArray(v.argv) || typeof v.internal !== "boolean") return "lacks its command";
  return undefined;
}
