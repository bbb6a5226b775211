import { cgroupJoinCost } from "../floors/cgroup-join.js";
import { startEchoFloor } from "../floors/echo.js";
import { makeBundle, ociPeers } from "../floors/oci.js";
import { rssMb } from "../lib/proc.js";
import { startContender } from "../lib/start-contender.js";
import type { Row } from "../lib/report.js";
import { measureRounds, type Contender } from "../lib/stats.js";
import { cellsClient, orSkip, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const MAIN = "Start `true` in a cell vs echo RPC + Node spawn(/bin/true) in the floor server";

/**
 * Executable Start of `true` in a (non-isolated) cell, timed from the call to the response,
 * vs the floor: one RPC to the bare grpc-js mTLS floor server in which it does Node
 * `spawn('/bin/true')` and answers at its exit (the echo RPC plus the spawn, in a server as
 * lean as a Node gRPC server gets). Peers: `runc run` and `crun run` of a busybox bundle
 * running `true`, spawned by the floor server and timed there, to exit. Each executable is
 * stopped (untimed) after its Start so that names do not pile up.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const d = b.daemon;
  const cells = cellsClient(d);
  const cell = uniqueName("bench-start");
  const bundle = makeBundle();
  const peers = ociPeers(bundle.dir);
  const echo = await startEchoFloor(d.pki, d.clientOptions);
  let allocated = false;
  try {
    return await orSkip([[MAIN, "ms"]], async () => {
      await cells.allocate({ name: cell });
      allocated = true;
      const product = startContender(cells, cell);
      let floorRss = 0;
      const floor: Contender = {
        run: async () => {
          const r = await echo.spawn({ argv: ["/bin/true"] });
          if (r.failures) throw new Error("the floor's /bin/true failed");
          floorRss = r.rssMb;
        },
      };
      const working: typeof peers = [];
      for (const p of peers) {
        // a peer that does not run here is reported, not fatal
        const r = await echo.spawn({ argv: p.argv() }).catch(() => undefined);
        if (r && r.failures === 0) working.push(p);
        else process.stderr.write(`bench: peer ${p.name} failed; left out\n`);
      }
      const sums = await measureRounds(b.runs(300), [product, floor, ...working.map((p) => ({ run: () => echo.spawnMs(p.argv()), selfTimed: true }))]);
      const [ps, fs] = [sums[0]!, sums[1]!];
      const rows: Row[] = [
        {
          scenario: MAIN,
          product: ps,
          floor: fs,
          unit: "ms",
          aim: "<= 2x",
          met: ps.p50 / fs.p50 <= 2,
          note: `RSS of the forking process: daemon ${rssMb(d.process.pid!).toFixed(0)} MB, floor server ${floorRss.toFixed(0)} MB`,
        },
      ];
      working.forEach((p, i) =>
        rows.push({
          scenario: `Start \`true\` in a cell vs \`${p.name} run\` of busybox true (peer)`,
          product: ps,
          floor: sums[2 + i]!,
          unit: "ms",
          note: `peer ${p.version}, spawned by the floor server and timed there to its exit; ratio < 1: faster than the peer`,
        }),
      );
      for (const p of peers.filter((p) => !working.includes(p)))
        rows.push({ scenario: `Start \`true\` vs \`${p.name} run\` (peer)`, unit: "ms", note: `skipped: ${p.name} does not run here` });
      const join = await cgroupJoinCost(b.runs(100));
      if (join)
        rows.push({
          scenario: "(info) a process joining a cgroup: first cgroup.procs write after 50 ms without one vs right after another",
          product: join.afterIdle,
          floor: join.backToBack,
          unit: "ms",
          note: "every Start makes 7 such writes (the shim 1, the program 6 on this hybrid host); the first after a quiet spell waits for an RCU grace period (cgroup_threadgroup_rwsem), which spawn() and unshare never pay",
        });
      return rows;
    });
  } finally {
    if (allocated) await cells.free(cell).catch(() => undefined);
    cells.close();
    await echo.close();
    for (const p of peers) p.cleanup();
    bundle.cleanup();
  }
}
