import { setTimeout as sleep } from "node:timers/promises";
import { DiscoveryServiceClient } from "../../src/api/aurae/discovery/v0/discovery.js";
import { checkClean } from "../lib/leftovers.js";
import { rssMb, treeMemory } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { pool } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const IDLE = "Daemon RSS, idle";
const PER_EXE = "Daemon RSS per running executable (200 x `sleep 1000`)";
const PER_ISO = "RSS per isolated cell (daemon + holder processes)";

/**
 * Memory, on a fresh daemon of its own: RSS when idle (after one Discover, settled); the daemon's
 * RSS growth per running executable; and per isolated cell, the growth of the RSS summed over the
 * daemon and all its descendants (namespace holders). PSS figures go to the JSON.
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

    const n = b.quick ? 50 : 200;
    const cell = uniqueName("bench-mem");
    try {
      await cells.allocate({ name: cell });
      const before = rssMb(pid);
      const tree0 = treeMemory(pid);
      await pool(n, 8, (i) => cells.start(cell, `s${i}`, "sleep 1000"));
      await sleep(500);
      const after = rssMb(pid);
      const tree1 = treeMemory(pid);
      rows.push({
        scenario: PER_EXE.replace("200", String(n)),
        product: (after - before) / n,
        unit: "MB",
        note: `daemon ${before.toFixed(1)} -> ${after.toFixed(1)} MB; processes' own PSS ${((tree1.pss - tree0.pss - (after - before)) / n).toFixed(2)} MB each`,
        extra: { n, before, after, tree0, tree1 },
      });
    } catch (err) {
      if (!isSkippable(err)) throw err;
      rows.push(skipRow(PER_EXE, "MB", statusName(err)));
    } finally {
      await cells.free(cell).catch(() => undefined);
    }

    const k = b.quick ? 5 : 20;
    const isoNames: string[] = [];
    try {
      await sleep(300);
      const tree0 = treeMemory(pid);
      for (let i = 0; i < k; i++) {
        const name = uniqueName("bench-memiso");
        await cells.allocate({ name, isolateProcess: true });
        isoNames.push(name);
      }
      await sleep(500);
      const tree1 = treeMemory(pid);
      rows.push({
        scenario: PER_ISO,
        product: (tree1.rss - tree0.rss) / k,
        unit: "MB",
        note: `${k} cells; ${tree1.processes - tree0.processes} processes added; PSS ${((tree1.pss - tree0.pss) / k).toFixed(2)} MB per cell`,
        extra: { k, tree0, tree1 },
      });
    } catch (err) {
      if (!isSkippable(err)) throw err;
      rows.push(skipRow(PER_ISO, "MB", statusName(err)));
    } finally {
      for (const name of isoNames) await cells.free(name).catch(() => undefined);
    }
  } finally {
    cells.close();
    await d.stop();
    const dirty = await checkClean(d.cgroupParent);
    if (dirty) rows.push({ scenario: "memory: cleanup after daemon shutdown", unit: "MB", met: false, aim: "nothing left", note: dirty });
  }
  return rows;
}
