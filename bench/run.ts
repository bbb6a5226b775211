/**
 * `npm run bench`: measures the product side by side with floors and peers in the same run and
 * prints a markdown table of ratios; writes every figure as JSON under bench/results/.
 * Usage: npm run bench [-- scenario ...] [--quick] [--profile DIR]
 *   --quick        fewer runs and smaller sizes (a smoke run)
 *   --profile DIR  the daemons write CPU profiles to DIR on exit (lib/cpu-profile.cjs)
 */
import { join, resolve } from "node:path";
import { startDaemon, type StartOptions, type TestDaemon } from "../test/helpers/daemon.js";
import { checkClean } from "./lib/leftovers.js";
import { describe, loadavg, renderTable, writeResults, type Row } from "./lib/report.js";

export interface BenchContext {
  /** the shared daemon, started once for the scenarios that do not need a fresh one */
  daemon: TestDaemon;
  quick: boolean;
  /** scales a run count down in --quick mode */
  runs(n: number): number;
  /** a fresh daemon of the scenario's own (the caller stops it), with the run's profiling options */
  startDaemon(opts?: StartOptions): Promise<TestDaemon>;
}

type Scenario = () => Promise<{ run(b: BenchContext): Promise<Row[]> }>;

/** In run order; all run by default. */
const SCENARIOS: Record<string, Scenario> = {
  discover: () => import("./scenarios/discover.js"),
  start: () => import("./scenarios/start.js"),
  isolated: () => import("./scenarios/isolated.js"),
  allocate: () => import("./scenarios/allocate.js"),
  stream: () => import("./scenarios/stream.js"),
  throughput: () => import("./scenarios/throughput.js"),
  memory: () => import("./scenarios/memory.js"),
  scale: () => import("./scenarios/scale.js"),
};

function parseArgs(argv: string[]): { quick: boolean; profileDir?: string; names: string[] } {
  const names: string[] = [];
  let quick = false;
  let profileDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") quick = true;
    else if (a === "--profile") profileDir = resolve(argv[++i] ?? "bench/results/profiles");
    else if (a.startsWith("--")) throw new Error(`unknown flag ${a}; usage: npm run bench [-- scenario ...] [--quick] [--profile DIR]`);
    else names.push(a);
  }
  return { quick, profileDir, names };
}

async function main(): Promise<number> {
  const { quick, profileDir, names } = parseArgs(process.argv.slice(2));
  const selected = names.length > 0 ? names : Object.keys(SCENARIOS);
  const unknown = selected.filter((n) => !SCENARIOS[n]);
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const env = profileDir
    ? { NODE_OPTIONS: `--require ${join(import.meta.dirname, "lib/cpu-profile.cjs")}`, AURAE_BENCH_PROF_DIR: profileDir }
    : undefined;
  const start = (opts: StartOptions = {}) => startDaemon({ stopGraceMs: 1000, ...opts, env: { ...env, ...opts.env } });
  const daemon = await start();
  const b: BenchContext = { daemon, quick, runs: (n) => (quick ? Math.max(10, Math.floor(n / 20)) : n), startDaemon: start };
  const rows: Row[] = [];
  /** the load average at the start of each scenario: the machine is shared */
  const loads: Record<string, string> = {};
  let failed = 0;
  const t0 = Date.now();
  try {
    for (const name of selected) {
      loads[name] = loadavg();
      process.stderr.write(`bench: ${name}... (load ${loads[name]})\n`);
      const t = Date.now();
      try {
        const mod = await SCENARIOS[name]!();
        rows.push(...(await mod.run(b)));
      } catch (err) {
        failed++;
        process.stderr.write(`bench: ${name} failed: ${(err as Error).stack ?? err}\n`);
        rows.push({ scenario: `${name}: FAILED`, unit: "ms", met: false, note: `error: ${(err as Error).message ?? err}` });
      }
      process.stderr.write(`bench: ${name} took ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
    }
  } finally {
    await daemon.stop();
    const dirty = await checkClean(daemon.cgroupParent, daemon.dir);
    if (dirty) rows.push({ scenario: "cleanup after daemon shutdown", unit: "ms", aim: "nothing left", met: false, note: dirty });
  }
  console.log(describe(undefined, loads));
  console.log("");
  console.log(renderTable(rows));
  const path = writeResults(join(import.meta.dirname, "results"), rows, { quick, scenarios: selected, seconds: (Date.now() - t0) / 1000, profileDir, loads });
  console.log(`\nresults: ${path}${profileDir ? `\nprofiles: ${profileDir}` : ""}`);
  return failed;
}

process.exitCode = (await main()) > 0 ? 1 : 0;
