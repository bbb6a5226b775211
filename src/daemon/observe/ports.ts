/**
 * The contract between the cells service (which owns executables) and the observe service
 * (which streams their output and signals). Cells implements ExecutableDirectory.
 */
import type { OutputReader } from "../../platform/output/channel-file.js";

export type { OutputLine, OutputReader } from "../../platform/output/channel-file.js";

export interface ObservedExecutable {
  cellName: string;
  executableName: string;
  /** the pid Start returned (a namespace pid for isolated cells) */
  pid: number;
  /** the pid on the host */
  hostPid: number;
  /** A reader of one output channel from its oldest retained line; it ends once the executable is gone and drained. */
  openReader(channel: "stdout" | "stderr"): OutputReader;
}

export interface ExecutableDirectory {
  /**
   * The executable Start reported as `pid`. With `cellName`, only that cell is searched.
   * Without it, when more than one executable matches (isolated cells may reuse pids),
   * throws AuraeError("invalid_argument") asking for the cell_name extension field.
   */
  findByPid(pid: number, cellName?: string): ObservedExecutable | undefined;
  /** true when the cell exists */
  hasCell(cellName: string): boolean;
  /**
   * For a host pid, the cell it belongs to (by its cgroup) and the pid as Start would report it,
   * or undefined when the process is not in one of our cells.
   */
  describeHostPid(hostPid: number): { cellName: string; reportedPid: number } | undefined;
}
