import { setTimeout as sleep } from "node:timers/promises";
import { DiscoveryServiceClient } from "../../src/api/aurae/discovery/v0/discovery.js";
import { checkClean } from "../lib/leftovers.js";
import { descendantInfo, pssByName, rssMb, type ProcInfo } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { pool } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const IDLE = "Daemon RSS, idle";
const SHIM = "aurae-shim";

/**
 * Memory, on a fresh daemon of its own:
 * - RSS when idle (after one Discover, settled);
 * - per running executable (`sleep 1000`): the daemon's RSS growth, and the PSS of the
 *   processes each one adds (its aurae-shim, and the program itself), reported separately;
 * - per isolated cell (isolate_process): the daemon's RSS growth and the PSS of the namespace
 *   holder's processes (its shim, unshare, catatonit).
 * PSS (shared pages divided among their sharers) is the fair share of a process that shares
 * its binary's pages with many others; the per-name breakdown goes to the JSON.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const d = await b.startDaemon();
  const pid = d.process.pid!;
  const rows: Row[] = [];
  const cells = cellsClient(d);
  try {
    const disc = new DiscoveryServiceClient(d.target, d.credentials, d.clientOptions);
    await new Promise((res, rej) => disc.discover({}, (e, r) => (e ? rej(e) : res(r))));
    disc.close();
    await sleep(1000);
    const idle = rssMb(pid);
    rows.push({ scenario: IDLE, product: idle, unit: "MB", aim: "<= 70 MB", met: idle <= 70 });
    rows.push(...(await perExecutable(b, cells, pid)));
    rows.push(...(await perIsolatedCell(b, cells, pid)));
  } finally {
    cells.close();
    await d.stop();
    const dirty = await checkClean(d.cgroupParent, d.dir);
    if (dirty) rows.push({ scenario: "memory: cleanup after daemon shutdown", unit: "MB", met: false, aim: "nothing left", note: dirty });
  }
  return rows;
}

/** The processes that appeared below the daemon since `before`. */
function added(pid: number, before: ProcInfo[]): ProcInfo[] {
  const old = new Set(before.map((p) => p.pid));
  return descendantInfo(pid).filter((p) => !old.has(p.pid));
}

const sum = (ps: ProcInfo[]) => ps.reduce((a, p) => a + p.pssMb, 0);
const names = (by: Record<string, number>, per: number) =>
  Object.entries(by)
    .map(([k, v]) => `${k} ${((1024 * v) / per).toFixed(0)} KB`)
    .join(", ");

async function perExecutable(b: BenchContext, cells: ReturnType<typeof cellsClient>, pid: number): Promise<Row[]> {
  const n = b.quick ? 50 : 200;
  const label = `per running executable (${n} x \`sleep 1000\`)`;
  const cell = uniqueName("bench-mem");
  try {
    await cells.allocate({ name: cell });
    await sleep(300);
    const before = rssMb(pid);
    const procs0 = descendantInfo(pid);
    await pool(n, 8, (i) => cells.start(cell, `s${i}`, "sleep 1000"));
    await sleep(1000);
    const after = rssMb(pid);
    const procs = added(pid, procs0);
    const shims = procs.filter((p) => p.comm === SHIM);
    const programs = procs.filter((p) => p.comm !== SHIM);
    const by = pssByName(procs);
    const extra = { n, daemonRssBefore: before, daemonRssAfter: after, processes: procs.length, pssByName: by };
    return [
      {
        scenario: `Daemon RSS growth ${label}`,
        product: (after - before) / n,
        unit: "MB",
        note: `daemon ${before.toFixed(1)} -> ${after.toFixed(1)} MB`,
        extra,
      },
      {
        scenario: `aurae-shim PSS ${label}`,
        product: sum(shims) / n,
        unit: "MB",
        note: `${shims.length} shims for ${n} executables; ${procs.length} processes added in all (${(procs.length / n).toFixed(1)} per executable)`,
      },
      {
        scenario: `Program PSS ${label} (the workload itself)`,
        product: sum(programs) / n,
        unit: "MB",
        note: `${programs.length} processes: ${names(pssByName(programs), n)} per executable`,
      },
    ];
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(`Memory ${label}`, "MB", statusName(err))];
  } finally {
    await cells.free(cell).catch(() => undefined);
  }
}

async function perIsolatedCell(b: BenchContext, cells: ReturnType<typeof cellsClient>, pid: number): Promise<Row[]> {
  const k = b.quick ? 5 : 20;
  const label = `per isolated cell (${k} x isolate_process, no executable)`;
  const isoNames: string[] = [];
  try {
    await sleep(300);
    const before = rssMb(pid);
    const procs0 = descendantInfo(pid);
    for (let i = 0; i < k; i++) {
      const name = uniqueName("bench-memiso");
      await cells.allocate({ name, isolateProcess: true });
      isoNames.push(name);
    }
    await sleep(1000);
    const after = rssMb(pid);
    const procs = added(pid, procs0);
    const by = pssByName(procs);
    return [
      {
        scenario: `Daemon RSS growth ${label}`,
        product: (after - before) / k,
        unit: "MB",
        note: `daemon ${before.toFixed(1)} -> ${after.toFixed(1)} MB`,
        extra: { k, daemonRssBefore: before, daemonRssAfter: after },
      },
      {
        scenario: `Namespace holder PSS ${label}`,
        product: sum(procs) / k,
        unit: "MB",
        note: `${procs.length} processes added (${(procs.length / k).toFixed(1)} per cell): ${names(by, k)} per cell`,
        extra: { processes: procs.length, pssByName: by, rssSum: procs.reduce((a, p) => a + p.rssMb, 0) },
      },
    ];
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(`Memory ${label}`, "MB", statusName(err))];
  } finally {
    for (const name of isoNames) await cells.free(name).catch(() => undefined);
  }
}
