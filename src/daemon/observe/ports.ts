/**
 * The contract between the cells service (which owns executables) and the observe service
 * (which streams their output and signals). Cells implements ExecutableDirectory; observe
 * implements OutputLog (observe/output-log.ts) and cells feeds one per channel.
 */

/** One live or finished line as delivered to a reader. */
export interface OutputLine {
  /** the line without its newline; bytes that are not UTF-8 are replaced (U+FFFD) */
  line: string;
  /** milliseconds since the epoch when the daemon read it */
  timestamp: number;
  /** lines this reader missed just before this one (bounded history or a slow reader) */
  droppedBefore: number;
}

/**
 * Bounded, line-oriented output of one channel (stdout or stderr) of one executable.
 * The writer side never blocks; readers get history first, then live lines, then an end.
 */
export interface OutputSink {
  /** raw bytes as read from the executable's pipe (any chunking) */
  write(chunk: Buffer): void;
  /** the executable's side is closed: flush a trailing partial line and end all readers after they drain */
  end(): void;
}

export interface ObservedExecutable {
  cellName: string;
  executableName: string;
  /** the pid Start returned (a namespace pid for isolated cells) */
  pid: number;
  /** the pid on the host */
  hostPid: number;
  stdout: OutputSink;
  stderr: OutputSink;
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

/** Made by the observe service; cells calls it once per channel of each executable it starts. */
export type OutputSinkFactory = (channel: "stdout" | "stderr", owner: { cellName: string; executableName: string }) => OutputSink;
