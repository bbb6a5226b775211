import { startEchoFloor, type EchoFloor } from "../floors/echo.js";
import { unshareArgv } from "../floors/process.js";
import type { Row } from "../lib/report.js";
import { startContender } from "../lib/start-contender.js";
import { measureRounds, fmt, nowMs, summarize, type Contender } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName, type Cells } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

/**
 * Start of `true` inside an isolated cell (isolate_process; and with isolate_network), timed from
 * the call to the response, vs `unshare --pid --fork --mount-proc --uts --ipc [--net] true`
 * spawned from Node to its exit (by the floor server, timed there: floors/floor-server.cjs).
 * The cell (and its namespaces) exists before the timed Start, as in use; a Start in a plain
 * cell in the same rounds tells what isolation itself adds. A one-shot isolated cell's whole
 * life (Allocate + Start + Free) is timed in the same rounds, which is what the unshare floor
 * itself pays for; its Allocate alone is issue 4's "cell allocation" (aim < 15 ms), with
 * Allocate + Free and Free in that row's note.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const cells = cellsClient(b.daemon);
  const echo = await startEchoFloor(b.daemon.pki, b.daemon.clientOptions);
  const plain = uniqueName("bench-iso-plain");
  try {
    await cells.allocate({ name: plain });
    for (const net of [false, true]) rows.push(...(await variant(b, cells, echo, plain, net)));
  } catch (err) {
    if (!isSkippable(err)) throw err;
    rows.push(skipRow("isolated", "ms", statusName(err)));
  } finally {
    await cells.free(plain).catch(() => undefined);
    cells.close();
    await echo.close();
  }
  return rows;
}

async function variant(b: BenchContext, cells: Cells, echo: EchoFloor, plainCell: string, net: boolean): Promise<Row[]> {
  const label = net ? "isolate_process+isolate_network" : "isolate_process";
  const flags = net ? "--net " : "";
  const main = `Start \`true\` in an ${label} cell vs \`unshare ${flags}... true\``;
  const life = `Allocate+Start+Free of an ${label} cell vs \`unshare ${flags}... true\``;
  const alloc = `Allocate of an ${label} cell (namespace holder ready)`;
  const cell = uniqueName(net ? "bench-isonet" : "bench-iso");
  const spec = { name: cell, isolateProcess: true, isolateNetwork: net };
  try {
    await cells.allocate(spec);
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(main, "ms", statusName(err)), skipRow(alloc, "ms", statusName(err)), skipRow(life, "ms", statusName(err))];
  }
  try {
    const product = startContender(cells, cell);
    const floor: Contender = { run: () => echo.spawnMs(unshareArgv(net)), selfTimed: true };
    // the same Start in a plain cell, in the same rounds: what isolation itself adds
    const plain = startContender(cells, plainCell);
    // the one-shot cell's steps, each timed (the first `warmup` rounds dropped, as measureRounds does)
    const steps = { allocate: [] as number[], start: [] as number[], free: [] as number[], allocateFree: [] as number[] };
    const lifecycle: Contender = {
      run: async () => {
        const oneShot = uniqueName(net ? "bench-isonet1" : "bench-iso1");
        const t0 = nowMs();
        await cells.allocate({ ...spec, name: oneShot });
        const t1 = nowMs();
        try {
          await cells.start(oneShot, "t", "true");
        } finally {
          const t2 = nowMs();
          await cells.free(oneShot);
          const t3 = nowMs();
          steps.allocate.push(t1 - t0);
          steps.start.push(t2 - t1);
          steps.free.push(t3 - t2);
          steps.allocateFree.push(t1 - t0 + (t3 - t2));
        }
      },
    };
    const runs = b.runs(200);
    const warmup = Math.min(10, runs);
    let sums;
    try {
      sums = await measureRounds(runs, [product, floor, lifecycle, plain], warmup);
    } catch (err) {
      if (!isSkippable(err)) throw err;
      return [skipRow(main, "ms", statusName(err)), skipRow(alloc, "ms", statusName(err)), skipRow(life, "ms", statusName(err))];
    }
    const [ps, fs, ls, pl] = sums as [typeof sums[0], typeof sums[0], typeof sums[0], typeof sums[0]];
    const [as, ss, frees, afs] = [steps.allocate, steps.start, steps.free, steps.allocateFree].map((x) => summarize(x.slice(warmup)));
    return [
      {
        scenario: main,
        product: ps,
        floor: fs,
        unit: "ms",
        aim: "<= 1.5x",
        met: ps.p50 / fs.p50 <= 1.5,
        note: `Start in a plain cell in the same rounds: ${fmt(pl.p50)} (p90 ${fmt(pl.p90)}), the isolated one ${(ps.p50 / pl.p50).toFixed(2)}x that`,
        extra: { plainStart: pl },
      },
      {
        scenario: alloc,
        product: as!,
        floor: fs,
        unit: "ms",
        aim: "< 15 ms",
        met: as!.p50 < 15,
        note: `Allocate+Free ${fmt(afs!.p50)} (p90 ${fmt(afs!.p90)}), Free alone ${fmt(frees!.p50)} (p90 ${fmt(frees!.p90)}); floor column: the unshare run`,
        extra: { allocateFree: afs, free: frees },
      },
      {
        scenario: life,
        product: ls,
        floor: fs,
        unit: "ms",
        note: `namespaces created per cell, as unshare creates them per run; Start in the fresh cell ${fmt(ss!.p50)} (p90 ${fmt(ss!.p90)})`,
        extra: { start: ss },
      },
    ];
  } finally {
    await cells.free(cell).catch(() => undefined);
  }
}
