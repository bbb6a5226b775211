import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { checkClean } from "../lib/leftovers.js";
import { rssMb } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { measure, measureRounds, nowMs, pool, type Summary } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName, type Cells } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

/**
 * Scale, on a fresh daemon of its own: `cells` cells and `exes` running executables
 * (`sleep 100000`, spread evenly over the cells). Reports List latency and Start latency (of
 * `true` in a probe cell, stopped untimed) at that size vs the empty daemon, the daemon's RSS,
 * and the time from SIGTERM to the daemon's exit with everything running. Afterwards the bench
 * checks that nothing of the daemon's is left (and removes it if something is).
 * --quick: 100 cells / 1,000 executables.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const nCells = b.quick ? 100 : 1000;
  const nExes = b.quick ? 1000 : 10000;
  const size = `${nCells} cells / ${nExes} executables`;
  const L = `List latency at ${size} vs empty`;
  const S = `Start latency at ${size} vs empty`;
  const R = `Daemon RSS at ${size}`;
  const T = `Shutdown (SIGTERM to exit) at ${size}`;
  const d = await b.startDaemon({ stopGraceMs: 2000 });
  const fdNote = raiseFdLimit(d.process.pid!, nExes);
  const cells = cellsClient(d, { maxReceiveBytes: 256 * 2 ** 20 });
  const rows: Row[] = [];
  let stopped = false;
  try {
    const probe = uniqueName("bench-probe");
    try {
      await cells.allocate({ name: probe });
    } catch (err) {
      if (!isSkippable(err)) throw err;
      return [L, S, R, T].map((s) => skipRow(s, "ms", statusName(err)));
    }
    const runs = b.runs(100);
    const listEmpty = await measure(runs, () => cells.list());
    const startEmpty = await measureStart(cells, probe, runs);

    // build up: cells first, then executables spread over them, 16 calls in flight
    const names = Array.from({ length: nCells }, (_, i) => `bench-scale-${i}`);
    let t = nowMs();
    await pool(nCells, 16, (i) => cells.allocate({ name: names[i]!, cpu: { max: 100000, period: 100000 }, pids: { max: 1000 } }));
    const allocMs = nowMs() - t;
    let started = 0;
    let startError = "";
    const rssSamples: Array<{ executables: number; rssMb: number }> = [];
    t = nowMs();
    const startOne = async (i: number) => {
      if (startError) return;
      try {
        await cells.start(names[i % nCells]!, `sleep-${i}`, "sleep 100000");
        if (++started % 1000 === 0) rssSamples.push({ executables: started, rssMb: rssMb(d.process.pid!) });
      } catch (err) {
        startError ||= `Start #${i} failed after ${started} running: ${statusName(err)}`;
      }
    };
    // The first executables show what each costs the daemon in file descriptors; the build
    // stops short of the daemon's RLIMIT_NOFILE (which would kill or cripple it) and says so.
    const pid = d.process.pid!;
    const fds0 = fdCount(pid);
    const first = Math.min(nExes, 200);
    await pool(first, 16, (i) => startOne(i));
    const perExe = (fdCount(pid) - fds0) / Math.max(1, started);
    const limit = fdLimit(pid);
    let target = nExes;
    let capNote = "";
    if (perExe > 0 && fds0 + perExe * nExes > limit - 64) {
      target = Math.max(first, Math.floor((limit - 64 - fds0) / perExe));
      capNote = `; capped at ${target} executables: each holds ${perExe.toFixed(1)} fds in the daemon and its RLIMIT_NOFILE is ${limit}`;
    }
    await pool(target - first, 16, (k) => startOne(first + k));
    const buildMs = nowMs() - t;
    process.stderr.write(`bench: scale: ${nCells} cells in ${allocMs.toFixed(0)} ms, ${started} executables in ${buildMs.toFixed(0)} ms${startError ? `; ${startError}` : ""}\n`);
    const reached = `${nCells} cells / ${started} executables`;
    // a dropped connection may mean the daemon died: let its exit event arrive
    if (startError && d.process.exitCode === null && d.process.signalCode === null) await Promise.race([once(d.process, "exit"), sleep(1000)]);
    const samples = `RSS during build: ${rssSamples.map((x) => `${x.executables}: ${x.rssMb.toFixed(0)} MB`).join(", ")}`;
    const death = deathNote(d);
    if (death) {
      stopped = true;
      const note = `daemon died at ${reached}: ${death}${startError ? `; ${startError}` : ""}${fdNote}`;
      process.stderr.write(`bench: scale: ${note}\n`);
      const dirty = await checkClean(d.cgroupParent);
      return [
        { scenario: L, unit: "ms", met: false, note },
        { scenario: S, unit: "ms", aim: "<= 1.5x", met: false, note },
        { scenario: R, unit: "MB", aim: "< 250 MB", met: false, note: `${samples}; ${note}`, extra: { rssSamples } },
        { scenario: T, unit: "ms", aim: "exit 0, nothing left", met: false, note: `${note}${dirty ? `; ${dirty}` : ""}` },
      ];
    }
    const buildNote = `${capNote ? capNote.slice(2) + "; " : ""}built in ${(allocMs / 1000).toFixed(1)} s + ${(buildMs / 1000).toFixed(1)} s${startError ? `; ${startError}` : ""}`;

    const listFull = await measure(Math.max(10, Math.floor(runs / 5)), () => cells.list(), 2);
    const startFull = await measureStart(cells, probe, runs);
    const rss = rssMb(d.process.pid!);
    const listed = countExecutables(await cells.list());

    t = nowMs();
    const code = await d.stop("SIGTERM", 600_000);
    const shutdownMs = nowMs() - t;
    stopped = true;
    const dirty = await checkClean(d.cgroupParent);

    const full = started === nExes;
    rows.push(
      { scenario: L, product: listFull, floor: listEmpty, unit: "ms", note: `at ${reached}; List reported ${listed} executables` },
      {
        scenario: S,
        product: startFull,
        floor: startEmpty,
        unit: "ms",
        aim: "<= 1.5x",
        met: full && startFull.p50 / startEmpty.p50 <= 1.5,
        note: `${full ? buildNote : `only ${reached}: ${buildNote}`}${fdNote}`,
      },
      {
        scenario: R,
        product: rss,
        unit: "MB",
        aim: "< 250 MB",
        met: full && rss < 250,
        note: `${full ? "" : `only ${reached}${capNote}; `}${samples}`,
        extra: { rssSamples },
      },
      {
        scenario: T,
        product: shutdownMs,
        unit: "ms",
        aim: "exit 0, nothing left",
        met: code === 0 && !dirty,
        note: `exit code ${code}${dirty ? `; ${dirty}` : "; nothing left behind"}`,
      },
    );
    return rows;
  } finally {
    cells.close();
    if (!stopped) {
      await d.stop("SIGTERM", 600_000);
      await checkClean(d.cgroupParent);
    }
  }
}

async function measureStart(cells: Cells, cell: string, runs: number): Promise<Summary> {
  let last = "";
  const [s] = await measureRounds(runs, [
    {
      run: async () => {
        last = uniqueName("t");
        await cells.start(cell, last, "true");
      },
      after: () => cells.stop(cell, last),
    },
  ]);
  return s!;
}

/**
 * Each running executable holds two pipe ends (stdout, stderr) in the daemon, so 10,000 need
 * more than this host's default hard RLIMIT_NOFILE (20000). The bench raises the daemon's limit
 * as a service manager would (systemd's LimitNOFILE) and says so in the table.
 */
function raiseFdLimit(pid: number, executables: number): string {
  const want = Math.max(65536, executables * 4);
  const cur = Number(/Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))?.[1] ?? 0);
  if (cur >= want) return "";
  try {
    execFileSync("prlimit", [`--pid=${pid}`, `--nofile=${want}:${want}`], { stdio: ["ignore", "ignore", "pipe"] });
    return `; the bench raised the daemon's RLIMIT_NOFILE from ${cur} to ${want} (as LimitNOFILE would)`;
  } catch (err) {
    const why = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split("\n")[0];
    return executables * 2 > cur * 0.9 ? `; the daemon's RLIMIT_NOFILE is ${cur} and could not be raised here (${why})` : "";
  }
}

/** Why the daemon is gone (exit status and its last error records), or "" while it runs. */
function deathNote(d: { process: { exitCode: number | null; signalCode: NodeJS.Signals | null }; logs: string[] }): string {
  if (d.process.exitCode === null && d.process.signalCode === null) return "";
  const errors = [...new Set(d.logs.filter((l) => !/^\s+at /.test(l) && /"level":"(error|fatal)"|Error|EMFILE|ENFILE|uncaught/i.test(l)))].slice(-3);
  return `exit ${d.process.exitCode ?? d.process.signalCode}; last errors: ${(errors.length ? errors : d.logs.slice(-3)).join(" / ").slice(0, 600)}`;
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function fdLimit(pid: number): number {
  return Number(/Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))?.[1] ?? Infinity);
}

function countExecutables(r: { cells: Array<{ executables?: unknown[]; children: unknown[] }> }): number {
  let n = 0;
  const walk = (nodes: Array<{ executables?: unknown[]; children: unknown[] }>) => {
    for (const c of nodes) {
      n += c.executables?.length ?? 0;
      walk(c.children as typeof nodes);
    }
  };
  walk(r.cells);
  return n;
}
