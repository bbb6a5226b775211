import { once } from "node:events";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { checkClean } from "../lib/leftovers.js";
import { children, descendants, fdUsage, inState, inotifyWatches, pidUsage, rssMb } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { startContender } from "../lib/start-contender.js";
import { measure, measureRounds, nowMs, pool, type Summary } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName, type Cells } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

/**
 * Scale, on a fresh daemon of its own: `cells` cells and `exes` running executables
 * (`exec sleep 100000`, spread evenly over the cells). Reports List latency and Start latency
 * (of `true` in a probe cell, stopped untimed) at that size vs the empty daemon, the daemon's
 * RSS, the kernel resources it holds (pids, fds, inotify watches, zombies), and the time from
 * SIGTERM to the daemon's exit with everything running. Afterwards the bench checks that nothing
 * of the daemon's is left: cgroups, processes (in them or naming its runtime dir), state records.
 * --quick: 100 cells / 1,000 executables.
 *
 * Each executable is two processes (its aurae-shim and `sleep`: `exec` keeps `sh` from staying
 * as a third), so 10,000 take 20,000 pids of a machine whose pid_max may be 32768 and which
 * other work shares: the build stops short of leaving fewer than PID_RESERVE pids free, and
 * short of the daemon's RLIMIT_NOFILE should executables hold descriptors in it, and says so.
 */
const PID_RESERVE = 2048;
const COMMAND = "exec sleep 100000";

export async function run(b: BenchContext): Promise<Row[]> {
  const nCells = b.quick ? 100 : 1000;
  const nExes = b.quick ? 1000 : 10000;
  const size = `${nCells} cells / ${nExes} executables`;
  const L = `List latency at ${size} vs empty`;
  const S = `Start latency at ${size} vs empty`;
  const R = `Daemon RSS at ${size}`;
  const T = `Shutdown (SIGTERM to exit) at ${size}`;
  const d = await b.startDaemon({ stopGraceMs: 2000 });
  const pid = d.process.pid!;
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
    const rssEmpty = rssMb(pid);

    // build up: cells first, then executables spread over them, 16 calls in flight
    const names = Array.from({ length: nCells }, (_, i) => `bench-scale-${i}`);
    let t = nowMs();
    await pool(nCells, 16, (i) => cells.allocate({ name: names[i]!, cpu: { max: 100000, period: 100000 }, pids: { max: 1000 } }));
    const allocMs = nowMs() - t;
    let started = 0;
    let startError = "";
    const progress: Array<{ executables: number; rssMb: number; seconds: number }> = [];
    t = nowMs();
    const startOne = async (i: number) => {
      if (startError) return;
      try {
        await cells.start(names[i % nCells]!, `sleep-${i}`, COMMAND);
        if (++started % 1000 === 0) progress.push({ executables: started, rssMb: rssMb(pid), seconds: (nowMs() - t) / 1000 });
      } catch (err) {
        startError ||= `Start #${i} failed after ${started} running: ${statusName(err)}`;
      }
    };
    // The first executables show what each costs in pids (machine-wide) and in the daemon's
    // file descriptors; the rest of the build stays within both budgets.
    const pids0 = pidUsage();
    const procs0 = descendants(pid).length;
    const fds0 = fdUsage(pid);
    const first = Math.min(nExes, 200);
    await pool(first, 16, (i) => startOne(i));
    await sleep(200); // processes of the calls just answered are all there
    const pidsPerExe = (descendants(pid).length - procs0) / Math.max(1, started);
    const fdsPerExe = (fdUsage(pid).fds - fds0.fds) / Math.max(1, started);
    let target = nExes;
    const caps: string[] = [];
    const pidRoom = pids0.pidMax - PID_RESERVE - pids0.tasks;
    if (pidsPerExe > 0 && pidsPerExe * nExes > pidRoom) {
      target = Math.min(target, Math.max(first, Math.floor(pidRoom / pidsPerExe)));
      caps.push(`capped at ${target} executables: each takes ${pidsPerExe.toFixed(2)} pids, ${pids0.tasks} were in use of pid_max ${pids0.pidMax} and ${PID_RESERVE} stay free for the machine`);
    }
    if (fdsPerExe >= 0.05 && fds0.fds + fdsPerExe * nExes > fds0.limit - 64) {
      target = Math.min(target, Math.max(first, Math.floor((fds0.limit - 64 - fds0.fds) / fdsPerExe)));
      caps.push(`capped at ${target} executables: each holds ${fdsPerExe.toFixed(2)} fds in the daemon and its RLIMIT_NOFILE is ${fds0.limit}`);
    }
    await pool(target - first, 16, (k) => startOne(first + k));
    const buildMs = nowMs() - t;
    process.stderr.write(`bench: scale: ${nCells} cells in ${allocMs.toFixed(0)} ms, ${started} executables in ${buildMs.toFixed(0)} ms${startError ? `; ${startError}` : ""}\n`);
    const reached = `${nCells} cells / ${started} executables`;
    // a dropped connection may mean the daemon died: let its exit event arrive
    if (startError && d.process.exitCode === null && d.process.signalCode === null) await Promise.race([once(d.process, "exit"), sleep(1000)]);
    const during = `RSS during build: ${progress.map((x) => `${x.executables}: ${x.rssMb.toFixed(0)} MB at ${x.seconds.toFixed(0)} s`).join(", ")}`;
    const capNote = caps.join("; ");
    const death = deathNote(d);
    if (death) {
      stopped = true;
      const note = `daemon died at ${reached}: ${death}${startError ? `; ${startError}` : ""}`;
      process.stderr.write(`bench: scale: ${note}\n`);
      const dirty = await checkClean(d.cgroupParent, d.dir);
      return [
        { scenario: L, unit: "ms", met: false, note },
        { scenario: S, unit: "ms", aim: "<= 1.5x", met: false, note },
        { scenario: R, unit: "MB", aim: "< 250 MB", met: false, note: `${during}; ${note}`, extra: { progress } },
        { scenario: T, unit: "ms", aim: "exit 0, nothing left", met: false, note: `${note}${dirty ? `; ${dirty}` : ""}` },
      ];
    }

    // what the daemon holds at this size
    const pidsFull = pidUsage();
    const fdsFull = fdUsage(pid);
    const watches = inotifyWatches(pid);
    const zombies = inState(children(pid), "Z").length;
    const held = {
      pidsBefore: pids0.tasks,
      pidsAtSize: pidsFull.tasks,
      processesPerExecutable: (descendants(pid).length - procs0) / Math.max(1, started),
      pidMax: pidsFull.pidMax,
      pidHeadroom: pidsFull.pidMax - pidsFull.tasks,
      fdsEmpty: fds0.fds,
      fdsAtSize: fdsFull.fds,
      fdLimit: fdsFull.limit,
      inotifyWatches: watches,
      zombieChildren: zombies,
    };
    const heldNote = `pids in use ${held.pidsBefore} -> ${held.pidsAtSize} (the daemon's descendants: ${held.processesPerExecutable.toFixed(2)} processes per executable; pid_max ${held.pidMax}, ${held.pidHeadroom} left); daemon fds ${held.fdsEmpty} -> ${held.fdsAtSize} (limit ${held.fdLimit}); ${watches} inotify watches; ${zombies} zombie children`;
    const buildNote = `${capNote ? capNote + "; " : ""}built in ${(allocMs / 1000).toFixed(1)} s + ${(buildMs / 1000).toFixed(1)} s${startError ? `; ${startError}` : ""}`;

    const listFull = await measure(Math.max(10, Math.floor(runs / 5)), () => cells.list(), 2);
    const startFull = await measureStart(cells, probe, runs);
    const rss = rssMb(pid);
    const listed = countExecutables(await cells.list());

    // shutdown with everything running: SIGTERM to exit, then what is left
    t = nowMs();
    d.process.kill("SIGTERM");
    const killer = setTimeout(() => d.process.kill("SIGKILL"), 600_000);
    if (d.process.exitCode === null && d.process.signalCode === null) await once(d.process, "exit");
    clearTimeout(killer);
    const shutdownMs = nowMs() - t;
    const code = d.process.exitCode;
    const records = stateRecords(join(d.dir, "run", "state"));
    const dirty = await checkClean(d.cgroupParent, d.dir);
    await d.stop(); // removes its directory
    stopped = true;
    const pidsAfter = pidUsage().tasks;

    const full = started === nExes;
    const leftover = [dirty, records ? `${records} state records left` : ""].filter(Boolean).join("; ");
    rows.push(
      { scenario: L, product: listFull, floor: listEmpty, unit: "ms", note: `at ${reached}; List reported ${listed} executables` },
      {
        scenario: S,
        product: startFull,
        floor: startEmpty,
        unit: "ms",
        aim: "<= 1.5x",
        met: full && startFull.p50 / startEmpty.p50 <= 1.5,
        note: `${full ? "" : `only ${reached}: `}${buildNote}; daemon RSS ${rssEmpty.toFixed(0)} MB empty, ${rss.toFixed(0)} MB at size`,
      },
      {
        scenario: R,
        product: rss,
        unit: "MB",
        aim: "< 250 MB",
        met: full && rss < 250,
        note: `${full ? "" : `only ${reached}; `}${(((rss - rssEmpty) * 1024) / Math.max(1, started)).toFixed(1)} KB per executable over ${rssEmpty.toFixed(0)} MB empty; ${during}; ${heldNote}`,
        extra: { progress, held, rssEmpty },
      },
      {
        scenario: T,
        product: shutdownMs,
        unit: "ms",
        aim: "exit 0, nothing left",
        met: code === 0 && !leftover,
        note: `exit code ${code}; ${leftover || "nothing left behind (cgroups, processes, state records)"}; pids in use after: ${pidsAfter}`,
      },
    );
    return rows;
  } finally {
    cells.close();
    if (!stopped) {
      await d.stop("SIGTERM", 600_000);
      await checkClean(d.cgroupParent, d.dir);
    }
  }
}

async function measureStart(cells: Cells, cell: string, runs: number): Promise<Summary> {
  const [s] = await measureRounds(runs, [startContender(cells, cell)]);
  return s!;
}

/** Cell and executable records a graceful shutdown left in the state store (0 when none). */
function stateRecords(stateDir: string): number {
  let n = 0;
  for (const sub of ["cells", "executables"]) {
    const dir = join(stateDir, sub);
    if (existsSync(dir)) n += readdirSync(dir).length;
  }
  return n;
}

/** Why the daemon is gone (exit status and its last error records), or "" while it runs. */
function deathNote(d: { process: { exitCode: number | null; signalCode: NodeJS.Signals | null }; logs: string[] }): string {
  if (d.process.exitCode === null && d.process.signalCode === null) return "";
  const errors = [...new Set(d.logs.filter((l) => !/^\s+at /.test(l) && /"level":"(error|fatal)"|Error|EMFILE|ENFILE|uncaught/i.test(l)))].slice(-3);
  return `exit ${d.process.exitCode ?? d.process.signalCode}; last errors: ${(errors.length ? errors : d.logs.slice(-3)).join(" / ").slice(0, 600)}`;
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
