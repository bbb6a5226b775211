import { spawnWait, unshareArgv } from "../floors/process.js";
import type { Row } from "../lib/report.js";
import { measureRounds, type Contender } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName, type Cells } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

/**
 * Start of `true` inside an isolated cell (isolate_process; and with isolate_network), timed from
 * the call to the response, vs `unshare --pid --fork --mount-proc --uts --ipc [--net] true`
 * spawned from Node to its exit. The cell (and its namespaces) exists before the timed Start, as
 * in use; a second row per variant times the whole life of a one-shot isolated cell
 * (Allocate + Start + Free), which is what the unshare floor itself pays for.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const cells = cellsClient(b.daemon);
  try {
    for (const net of [false, true]) rows.push(...(await variant(b, cells, net)));
  } finally {
    cells.close();
  }
  return rows;
}

async function variant(b: BenchContext, cells: Cells, net: boolean): Promise<Row[]> {
  const label = net ? "isolate_process+isolate_network" : "isolate_process";
  const flags = net ? "--net " : "";
  const main = `Start \`true\` in an ${label} cell vs \`unshare ${flags}... true\``;
  const life = `Allocate+Start+Free of an ${label} cell vs \`unshare ${flags}... true\``;
  const cell = uniqueName(net ? "bench-isonet" : "bench-iso");
  const spec = { name: cell, isolateProcess: true, isolateNetwork: net };
  try {
    await cells.allocate(spec);
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(main, "ms", statusName(err)), skipRow(life, "ms", statusName(err))];
  }
  try {
    let last = "";
    const product: Contender = {
      run: async () => {
        last = uniqueName("t");
        await cells.start(cell, last, "true");
      },
      after: () => cells.stop(cell, last),
    };
    const floor: Contender = { run: () => spawnWait(unshareArgv(net)) };
    let oneShot = "";
    const lifecycle: Contender = {
      run: async () => {
        oneShot = uniqueName(net ? "bench-isonet1" : "bench-iso1");
        await cells.allocate({ ...spec, name: oneShot });
        try {
          await cells.start(oneShot, "t", "true");
        } finally {
          await cells.free(oneShot);
        }
      },
    };
    let sums;
    try {
      sums = await measureRounds(b.runs(200), [product, floor, lifecycle]);
    } catch (err) {
      if (!isSkippable(err)) throw err;
      return [skipRow(main, "ms", statusName(err)), skipRow(life, "ms", statusName(err))];
    }
    const [ps, fs, ls] = sums as [typeof sums[0], typeof sums[0], typeof sums[0]];
    return [
      { scenario: main, product: ps, floor: fs, unit: "ms", aim: "<= 1.5x", met: ps.p50 / fs.p50 <= 1.5 },
      { scenario: life, product: ls, floor: fs, unit: "ms", note: "namespaces created per cell, as unshare creates them per run" },
    ];
  } finally {
    await cells.free(cell).catch(() => undefined);
  }
}
