import { cgroupfsFloor } from "../floors/cgroupfs.js";
import { startEchoFloor } from "../floors/echo.js";
import type { Row } from "../lib/report.js";
import { fmt, measureRounds } from "../lib/stats.js";
import { cellsClient, orSkip, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CellDomain } from "../../src/daemon/cells/cell-domain.js";
import { StateStore } from "../../src/daemon/cells/store.js";
import { CgroupDriver } from "../../src/platform/cgroups/driver.js";
import { detectCgroupLayout } from "../../src/platform/cgroups/layout.js";

/** A cells domain in this process, under a cgroup parent and runtime dir of its own. */
async function inProcessDomain(): Promise<{ d: CellDomain; close(): Promise<void> }> {
  const driver = new CgroupDriver({ layout: detectCgroupLayout(), parent: `aurae-bench-inproc-${process.pid}` });
  driver.init();
  const dir = mkdtempSync(path.join(os.tmpdir(), "aurae-bench-inproc-"));
  const store = new StateStore(dir);
  store.open();
  const d = new CellDomain({ driver, store, stopGraceMs: 500 });
  return {
    d,
    async close() {
      await d.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const MAIN = "Allocate+Free (cpu, memory, pids limits) vs direct cgroupfs writes";
const INPROC = "Allocate+Free in the cells domain itself (no RPC) vs direct cgroupfs writes";

/**
 * One Allocate and one Free of a cell with cpu max/period, memory max and pids max, timed
 * together, vs the same cgroupfs operations done directly with fs.*Sync (floors/cgroupfs.ts).
 * The aim is absolute: under 1 ms for the pair.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const cells = cellsClient(b.daemon);
  const floor = cgroupfsFloor();
  const echo = await startEchoFloor(b.daemon.pki, b.daemon.clientOptions);
  try {
    return await orSkip([[MAIN, "ms"]], async () => {
      const spec = {
        cpu: { max: 50000, period: 100000 },
        memory: { max: 256 * 2 ** 20 },
        pids: { max: 100 },
      };
      const contenders = [
        {
          run: async () => {
            const name = uniqueName("bench-alloc");
            await cells.allocate({ name, ...spec });
            await cells.free(name);
          },
        },
      ];
      if (floor) {
        contenders.push({ run: async () => floor.allocateFree() });
        // what an Allocate+Free over the wire can cost at least: two RPCs and the writes
        contenders.push({
          run: async () => {
            await echo.call();
            floor.allocateFree();
            await echo.call();
          },
        });
      }
      // The daemon's own share: the same pair through a CellDomain in this process (its cgroups,
      // state records, checks), as the gRPC handler runs it, without the two RPCs.
      const domain = await inProcessDomain();
      contenders.push({
        run: async () => {
          const name = uniqueName("bench-alloc-d");
          await domain.d.allocate({ name, limits: { cpu: { maxUs: 50000, periodUs: 100000 }, memory: { maxBytes: 256 * 2 ** 20 }, pids: { max: 100 } }, isolateProcess: false, isolateNetwork: false });
          await domain.d.free(name);
        },
      });
      const measured = await measureRounds(b.runs(500), contenders).finally(() => domain.close());
      const ps = measured[0];
      const fs = floor ? measured[1] : undefined;
      const wire = floor ? measured[2] : undefined;
      const inproc = measured[contenders.length - 1]!;
      return [
        {
          scenario: MAIN,
          product: ps!,
          floor: fs,
          unit: "ms",
          aim: "< 1 ms",
          met: ps!.p50 < 1,
          note: floor
            ? `floor: mkdir, 3 limit writes (quota, memory, pids), rmdir in ${floor.hierarchies.join(", ")}; 2 echo RPCs + these writes (the least over the wire): ${fmt(wire!.p50)} (p90 ${fmt(wire!.p90)}), product ${(ps!.p50 / wire!.p50).toFixed(2)}x that${wire!.p50 >= 1 ? "; that least is itself over 1 ms in this run: the aim cannot be met here" : ""}`
            : "not this hybrid layout: floor not measured",
          extra: { wireFloor: wire },
        },
        {
          scenario: INPROC,
          product: inproc,
          floor: fs,
          unit: "ms",
          aim: "< 1 ms",
          met: inproc.p50 < 1,
          note: "the daemon's own work per Allocate+Free (validation, cgroups in every hierarchy, the state record written and removed); the row above adds the two RPCs",
        },
      ];
    });
  } finally {
    cells.close();
    floor?.cleanup();
    await echo.close();
  }
}
