// Watch the signals delivered into one cell while its executable is stopped (SIGTERM).
import { CellServiceClient, ObserveServiceClient, WorkloadType } from "aurae-ts";
import { constants } from "node:os";
import { connect, skipIfMissing, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = unique("ex-signals");
const ac = new AbortController();

try {
  await cells.allocate({ cell: { name } });
  const stream = observe.getPosixSignalsStream({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: name } }, { signal: ac.signal });
  const iterator = stream[Symbol.asyncIterator]();
  // the first next() opens the stream; start the workload once the daemon has answered or a moment passed
  const first = iterator.next();
  const failedEarly = await Promise.race([first.then(() => false, (e) => e), new Promise((r) => setTimeout(() => r(false), 300))]);
  if (failedEarly) skipIfMissing(failedEarly, "signal tracing");

  const { pid } = await cells.start({ cellName: name, executable: { name: "victim", command: "sleep 60" } });
  await cells.stop({ cellName: name, executableName: "victim" });

  const timer = setTimeout(() => ac.abort(), 5000);
  let seen = "";
  try {
    for (let r = await first; !r.done; r = await iterator.next()) {
      const s = r.value.signal!;
      const nm = Object.entries(constants.signals).find(([, v]) => v === s.signal)?.[0] ?? String(s.signal);
      console.log(`signal ${nm} -> pid ${s.processId}`);
      if (s.signal === constants.signals.SIGTERM && s.processId === pid) {
        seen = nm;
        break;
      }
    }
  } catch (err) {
    skipIfMissing(err, "signal tracing");
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  console.log(seen ? `saw ${seen} delivered to pid ${pid}` : `no SIGTERM seen for pid ${pid}`);
  if (!seen) process.exitCode = 1;
} finally {
  await cells.free({ cellName: name }).catch(() => undefined);
  client.close();
}
