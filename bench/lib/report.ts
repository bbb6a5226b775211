import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem, release } from "node:os";
import { join } from "node:path";
import { fmt, type Summary } from "./stats.js";

/** One row of the results table: a scenario, its figure, its floor and the aim. */
export interface Row {
  scenario: string;
  /** absent when the scenario was skipped (see note) */
  product?: Summary | number;
  floor?: Summary | number;
  unit: "ms" | "MB/s" | "MB" | "ops/s" | "ms/MB";
  /** human statement of the aim, e.g. "<= 1.3x" */
  aim?: string;
  /** true when the aim holds */
  met?: boolean;
  note?: string;
  /** further figures for the JSON file (not printed in the table) */
  extra?: Record<string, unknown>;
}

function val(x: Summary | number | undefined, unit: Row["unit"]): string {
  if (x === undefined) return "-";
  if (typeof x === "number") return one(x, unit);
  return `${one(x.p50, unit)} (p90 ${one(x.p90, unit)})`;
}

function one(x: number, unit: Row["unit"]): string {
  if (unit === "ms") return fmt(x);
  if (unit === "ms/MB") return `${x.toFixed(2)} ms/MB`;
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ${unit}`;
}

export function ratio(r: Row): number | undefined {
  if (r.floor === undefined || r.product === undefined) return undefined;
  const p = typeof r.product === "number" ? r.product : r.product.p50;
  const f = typeof r.floor === "number" ? r.floor : r.floor.p50;
  return f === 0 ? undefined : p / f;
}

export function renderTable(rows: Row[]): string {
  const lines = [
    "| scenario | product p50 (p90) | floor p50 (p90) | ratio | aim | met | note |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const q = ratio(r);
    lines.push(
      `| ${r.scenario} | ${val(r.product, r.unit)} | ${val(r.floor, r.unit)} | ${q === undefined ? "-" : q.toFixed(2) + "x"} | ${r.aim ?? "-"} | ${r.met === undefined ? "-" : r.met ? "yes" : "**no**"} | ${(r.note ?? "").replace(/\|/g, "\\|").replace(/\n/g, " ")} |`,
    );
  }
  return lines.join("\n");
}

/** /proc/loadavg's first three fields (1, 5 and 15 minute load averages). */
export function loadavg(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

function firstLine(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0]!.trim();
  } catch {
    return undefined;
  }
}

export function machine(): Record<string, unknown> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memBytes: totalmem(),
    kernel: release(),
    node: process.version,
    loadavg: loadavg(),
    versions: {
      node: process.version,
      kernel: release(),
      runc: firstLine("runc", ["--version"]) ?? "absent",
      crun: firstLine("crun", ["--version"]) ?? "absent",
      unshare: firstLine("unshare", ["--version"]) ?? "absent",
      grpcJs: firstLine(process.execPath, ["-p", "require('@grpc/grpc-js/package.json').version"]) ?? "unknown",
    },
  };
}

export function writeResults(dir: string, rows: Row[], extra: Record<string, unknown> & { loads?: Record<string, string> }): string {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = join(dir, `bench-${stamp}.json`);
  const m = machine();
  writeFileSync(path, JSON.stringify({ machine: m, ...extra, rows: rows.map((r) => ({ ...r, ratio: ratio(r) })) }, null, 2));
  writeFileSync(join(dir, `bench-${stamp}.md`), `${describe(m, extra.loads)}\n\n${renderTable(rows)}\n`);
  return path;
}

/**
 * One line naming the machine and the peers' versions, printed above the table; `loads` are
 * the load averages seen at the start of each scenario (and at the end).
 */
export function describe(m: Record<string, unknown> = machine(), loads: Record<string, string> = {}): string {
  const v = m["versions"] as Record<string, string>;
  const during = Object.entries(loads).map(([k, l]) => `${k} ${l}`).join("; ");
  return `machine: ${m["cpus"]} x ${m["cpuModel"]}, ${Math.round(Number(m["memBytes"]) / 2 ** 30)} GiB, kernel ${v["kernel"]}, node ${v["node"]}, grpc-js ${v["grpcJs"]}, ${v["runc"]}, ${v["crun"]}, load (1/5/15 min) at the end ${m["loadavg"]}${during ? `; at the start of each scenario: ${during}` : ""}`;
}
