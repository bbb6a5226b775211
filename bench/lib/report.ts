import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem, release } from "node:os";
import { join } from "node:path";
import { fmt, type Summary } from "./stats.js";

/** One row of the results table: a scenario, its figure, its floor and the aim. */
export interface Row {
  scenario: string;
  product: Summary | number;
  floor?: Summary | number;
  unit: "ms" | "MB/s" | "MB" | "ops/s";
  /** human statement of the aim, e.g. "<= 1.3x" */
  aim?: string;
  /** true when the aim holds */
  met?: boolean;
  note?: string;
}

function val(x: Summary | number | undefined, unit: Row["unit"]): string {
  if (x === undefined) return "-";
  if (typeof x === "number") return unit === "ms" ? fmt(x) : `${x.toFixed(1)} ${unit}`;
  return `${fmt(x.p50)} (p90 ${fmt(x.p90)})`;
}

export function ratio(r: Row): number | undefined {
  if (r.floor === undefined) return undefined;
  const p = typeof r.product === "number" ? r.product : r.product.p50;
  const f = typeof r.floor === "number" ? r.floor : r.floor.p50;
  return f === 0 ? undefined : p / f;
}

export function renderTable(rows: Row[]): string {
  const lines = [
    "| scenario | product p50 (p90) | floor p50 (p90) | ratio | aim | met |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const q = ratio(r);
    lines.push(
      `| ${r.scenario} | ${val(r.product, r.unit)} | ${val(r.floor, r.unit)} | ${q === undefined ? "-" : q.toFixed(2) + "x"} | ${r.aim ?? "-"} | ${r.met === undefined ? "-" : r.met ? "yes" : "no"} |`,
    );
  }
  return lines.join("\n");
}

export function machine(): Record<string, unknown> {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model, memBytes: totalmem(), kernel: release(), node: process.version };
}

export function writeResults(dir: string, rows: Row[], extra: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = join(dir, `bench-${stamp}.json`);
  writeFileSync(path, JSON.stringify({ machine: machine(), ...extra, rows: rows.map((r) => ({ ...r, ratio: ratio(r) })) }, null, 2));
  writeFileSync(join(dir, `bench-${stamp}.md`), renderTable(rows) + "\n");
  return path;
}
