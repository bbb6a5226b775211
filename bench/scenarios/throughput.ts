import { startEchoFloor } from "../floors/echo.js";
import { cpuMs } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { nowMs, pool, summarize } from "../lib/stats.js";
import { cellsClient, isSkippable, skipRow, statusName, uniqueName, type Cells } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const MAIN = "Starts/s of `true` with 16 concurrent clients vs 16-way concurrent Node spawns";
const CONCURRENCY = 16;

/**
 * 16 clients, each with a connection of its own, Start `true` in one cell as fast as they can
 * until `n` Starts have been answered; Starts/s = n / wall time. Floor: 16 concurrent loops of
 * Node `spawn('/bin/true')` to exit, `n` in all, in the floor server (timed there; see
 * floors/floor-server.cjs for why not in this process). Rounds alternate product and floor.
 * Between rounds (untimed) every executable is stopped, so that names do not pile up. The
 * daemon's CPU (utime+stime) over each product round, per Start, goes to the note.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const n = b.quick ? 64 : 800;
  const rounds = b.quick ? 2 : 3;
  const clients: Cells[] = Array.from({ length: CONCURRENCY }, () => cellsClient(b.daemon, { separate: true }));
  const admin = clients[0]!;
  const cell = uniqueName("bench-tput");
  try {
    await admin.allocate({ name: cell });
  } catch (err) {
    for (const c of clients) c.close();
    if (!isSkippable(err)) throw err;
    return [skipRow(MAIN, "ops/s", statusName(err))];
  }
  const product: number[] = [];
  const floor: number[] = [];
  const daemonCpu: number[] = [];
  const echo = await startEchoFloor(b.daemon.pki, b.daemon.clientOptions);
  try {
    // warm every connection
    await Promise.all(clients.map((c) => c.list()));
    for (let r = 0; r < rounds; r++) {
      const names: string[] = [];
      const t = nowMs();
      const cpu0 = cpuMs(b.daemon.process.pid!);
      await pool(n, CONCURRENCY, async (i) => {
        const name = uniqueName("tp");
        names.push(name);
        await clients[i % CONCURRENCY]!.start(cell, name, "true");
      });
      product.push(n / ((nowMs() - t) / 1000));
      daemonCpu.push((cpuMs(b.daemon.process.pid!) - cpu0) / n);
      await pool(names.length, CONCURRENCY, (i) => clients[i % CONCURRENCY]!.stop(cell, names[i]!));
      const f = await echo.spawn({ argv: ["/bin/true"], n, concurrency: CONCURRENCY });
      if (f.failures) throw new Error(`${f.failures} of the floor's /bin/true failed`);
      floor.push(n / (f.totalMs / 1000));
    }
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(MAIN, "ops/s", statusName(err))];
  } finally {
    await echo.close();
    await admin.free(cell).catch(() => undefined);
    for (const c of clients) c.close();
  }
  return [
    {
      scenario: MAIN,
      product: summarize(product),
      floor: summarize(floor),
      unit: "ops/s",
      note: `${rounds} rounds of ${n}; p90 column is the 90th percentile round (higher is better); daemon CPU per Start ${summarize(daemonCpu).p50.toFixed(2)} ms, all its threads (were it all on its one main thread: at most ${(1000 / summarize(daemonCpu).p50).toFixed(0)} Starts/s)`,
      extra: { daemonCpuMsPerStart: summarize(daemonCpu) },
    },
  ];
}
