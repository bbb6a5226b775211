/**
 * Names of cells and executables.
 *
 * A cell name is a path of DNS labels: "a", "a/b", "a/b/c". Each label is 1-63 characters of
 * [a-zA-Z0-9-], neither starting nor ending with "-"; the whole name is at most 253 characters.
 * "_" is reserved: the daemon's own cells use labels starting with "_" (such as
 * "_executables"), and "_" itself names the process leaf in every cell's cgroup.
 *
 * An executable name is 1-255 characters of [a-zA-Z0-9._-], not starting with "." (it names
 * a cgroup directory).
 */
import { invalidArgument } from "../errors.js";

export const CELL_NAME_MAX = 253;
const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const RESERVED_LABEL = /^_[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,60}[a-zA-Z0-9])?$/;
const EXECUTABLE = /^[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,254}$/;

/** Why `name` is not a valid cell name, or undefined when it is. */
export function cellNameProblem(name: string, opts: { allowReserved?: boolean } = {}): string | undefined {
  if (name === "") return "must not be empty";
  if (name.length > CELL_NAME_MAX) return `is longer than ${CELL_NAME_MAX} characters`;
  const labels = name.split("/");
  for (const label of labels) {
    if (label === "") return "has an empty label (leading, trailing or doubled '/')";
    if (opts.allowReserved && RESERVED_LABEL.test(label)) continue;
    if (label.includes("_")) return `label '${label}' contains '_', which is reserved`;
    if (label.length > 63) return `label '${label.slice(0, 16)}...' is longer than 63 characters`;
    if (!LABEL.test(label)) {
      return `label '${label}' must be 1-63 characters of a-z, A-Z, 0-9 and '-', not starting or ending with '-'`;
    }
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT naming `field` unless `name` is a valid cell name. */
export function checkCellName(action: string, field: string, name: string, opts: { allowReserved?: boolean } = {}): void {
  const problem = cellNameProblem(name, opts);
  if (problem) throw invalidArgument(`${action}: ${field} '${clip(name)}' ${problem}`);
}

export function executableNameProblem(name: string): string | undefined {
  if (name === "") return "must not be empty";
  if (name.length > 255) return "is longer than 255 characters";
  if (!EXECUTABLE.test(name)) return "must be characters of a-z, A-Z, 0-9, '.', '_' and '-', not starting with '.'";
  return undefined;
}

export function checkExecutableName(action: string, field: string, name: string): void {
  const problem = executableNameProblem(name);
  if (problem) throw invalidArgument(`${action}: ${field} '${clip(name)}' ${problem}`);
}

/** The parent's name ("" for a top-level cell). */
export function parentName(name: string): string {
  const i = name.lastIndexOf("/");
  return i < 0 ? "" : name.slice(0, i);
}

/** "a/b/c" -> ["a", "a/b"] */
export function ancestorNames(name: string): string[] {
  const labels = name.split("/");
  const out: string[] = [];
  for (let i = 1; i < labels.length; i++) out.push(labels.slice(0, i).join("/"));
  return out;
}

/** Long user input is shortened in messages. */
export function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
