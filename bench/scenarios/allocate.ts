import { cgroupfsFloor } from "../floors/cgroupfs.js";
import { startEchoFloor } from "../floors/echo.js";
import type { Row } from "../lib/report.js";
import { fmt, measureRounds } from "../lib/stats.js";
import { cellsClient, orSkip, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const MAIN = "Allocate+Free (cpu, memory, pids limits) vs direct cgroupfs writes";

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
      const [ps, fs, wire] = await measureRounds(b.runs(500), contenders);
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
      ];
    });
  } finally {
    cells.close();
    floor?.cleanup();
    await echo.close();
  }
}
