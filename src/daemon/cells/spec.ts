/** Validated requests, as the cells domain takes them (never raw proto). */
import type { CellLimits } from "../../platform/cgroups/limits.js";

export interface CellSpec {
  /** full name, e.g. "a/b" */
  name: string;
  limits: CellLimits;
  isolateProcess: boolean;
  isolateNetwork: boolean;
}

export interface StartSpec {
  /** undefined: the daemon's executables cell */
  cellName?: string;
  name: string;
  /** a shell command line, run with `sh -c` */
  command: string;
  description: string;
  uid?: number;
  gid?: number;
}

export interface StartResult {
  /** the pid as seen from the cell (equal to hostPid until cells get pid namespaces) */
  pid: number;
  hostPid: number;
  uid: number;
  gid: number;
}

export type ExecutableState = "running" | "exited";

export interface ExecutableView {
  name: string;
  command: string;
  description: string;
  pid: number;
  hostPid: number;
  state: ExecutableState;
  exitCode?: number;
  exitSignal?: number;
  uid: number;
  gid: number;
}

export interface CellView {
  spec: CellSpec;
  children: CellView[];
  executables: ExecutableView[];
}
