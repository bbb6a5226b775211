/**
 * `npm run bench`: measures the product side by side with floors and peers in the same run and
 * prints a markdown table of ratios; writes every figure as JSON under bench/results/.
 * Usage: npm run bench [-- scenario ...] [--quick]
 */
import { join } from "node:path";
import { startDaemon, type TestDaemon } from "../test/helpers/daemon.js";
import { renderTable, writeResults, type Row } from "./lib/report.js";

export interface BenchContext {
  daemon: TestDaemon;
  quick: boolean;
  /** scales a run count down in --quick mode */
  runs(n: number): number;
}

const SCENARIOS: Record<string, () => Promise<{ run(b: BenchContext): Promise<Row[]> }>> = {
  discover: () => import("./scenarios/discover.js"),
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const names = args.filter((a) => !a.startsWith("--"));
  const selected = names.length > 0 ? names : Object.keys(SCENARIOS);
  const unknown = selected.filter((n) => !SCENARIOS[n]);
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const daemon = await startDaemon({ stopGraceMs: 1000 });
  const b: BenchContext = { daemon, quick, runs: (n) => (quick ? Math.max(10, Math.floor(n / 20)) : n) };
  const rows: Row[] = [];
  try {
    for (const name of selected) {
      process.stderr.write(`bench: ${name}...\n`);
      const mod = await SCENARIOS[name]!();
      rows.push(...(await mod.run(b)));
    }
  } finally {
    await daemon.stop();
  }
  console.log(renderTable(rows));
  const path = writeResults(join(import.meta.dirname, "results"), rows, { quick, scenarios: selected });
  console.log(`\nresults: ${path}`);
}

await main();
