import type { Cell, CellGraphNode, ExecutableStatus } from "../client/services/cells.js";
import { formatBytes } from "./units.js";

/** The limits of a cell as `key=value` words (`cpu.max=400000 memory.max=64M`), only those set. */
export function cellLimits(cell: Cell | undefined): string[] {
  if (!cell) return [];
  const out: string[] = [];
  const add = (k: string, v: unknown, f: (x: never) => string = String) => {
    if (v !== undefined && v !== null) out.push(`${k}=${f(v as never)}`);
  };
  add("cpu.weight", cell.cpu?.weight);
  add("cpu.max", cell.cpu?.max);
  add("cpu.period", cell.cpu?.period);
  add("cpuset.cpus", cell.cpuset?.cpus);
  add("cpuset.mems", cell.cpuset?.mems);
  for (const k of ["min", "low", "high", "max"] as const) add(`memory.${k}`, cell.memory?.[k], formatBytes);
  add("pids.max", cell.pids?.max);
  if (cell.isolateProcess) out.push("isolate-process");
  if (cell.isolateNetwork) out.push("isolate-network");
  return out;
}

/** One executable as a line: `sleeper  running  pid 123  "sleep 42"`. */
export function executableLine(e: ExecutableStatus): string {
  let state = e.state || "unknown";
  if (e.state === "exited") {
    if (e.exitSignal !== undefined && e.exitSignal !== 0) state = `exited (signal ${e.exitSignal})`;
    else if (e.exitCode !== undefined) state = `exited (${e.exitCode})`;
  }
  const pid = e.hostPid && e.hostPid !== e.pid ? `pid ${e.pid} (host ${e.hostPid})` : `pid ${e.pid}`;
  return `${e.name}  ${state}  ${pid}  ${JSON.stringify(e.command)}`;
}

/**
 * Draws the cell tree with box-drawing characters, each cell with its limits and its
 * executables (marked with `*`).
 *
 * @example
 * web  cpu.max=50000
 * ├── web/api
 * │   * srv  running  pid 812  "sleep 60"
 * └── web/db
 */
export function drawCellTree(nodes: CellGraphNode[]): string {
  if (nodes.length === 0) return "no cells";
  const lines: string[] = [];
  const walk = (node: CellGraphNode, prefix: string, connector: string, childPrefix: string) => {
    const limits = cellLimits(node.cell);
    lines.push(`${prefix}${connector}${node.cell?.name ?? "?"}${limits.length ? "  " + limits.join(" ") : ""}`);
    const inner = prefix + childPrefix;
    for (const e of node.executables ?? []) {
      lines.push(`${inner}${node.children.length > 0 ? "│ " : "  "} * ${executableLine(e)}`);
    }
    node.children.forEach((c, i) => {
      const last = i === node.children.length - 1;
      walk(c, inner, last ? "└── " : "├── ", last ? "    " : "│   ");
    });
  };
  for (const n of nodes) walk(n, "", "", "");
  return lines.join("\n");
}
