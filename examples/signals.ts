// Watch the signals delivered into one cell while its executable is stopped (SIGTERM).
import { AuraeClientError, CellServiceClient, ObserveServiceClient, WorkloadType } from "aurae-ts";
import { constants } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, skipWhenMissing, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = unique("ex-signals");
const ac = new AbortController();
let allocated = false;

try {
  await cells.allocate({ cell: { name } });
  allocated = true;
  const stream = observe.getPosixSignalsStream({ workload: { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: name } }, { signal: ac.signal });
  const signals = stream[Symbol.asyncIterator]();
  // The first next() opens the stream. A daemon that cannot trace signals refuses at once
  // (UNAVAILABLE); otherwise start the workload once the stream had a moment to attach.
  const first = signals.next();
  const refused = await Promise.race([first.then(() => undefined, (err: unknown) => err), sleep(300).then(() => undefined)]);
  if (refused) throw refused;

  const { pid } = await cells.start({ cellName: name, executable: { name: "victim", command: "sleep 60" } });
  await cells.stop({ cellName: name, executableName: "victim" });

  const giveUp = setTimeout(() => ac.abort(), 5000);
  let seen = "";
  try {
    for (let r = await first; !r.done; r = await signals.next()) {
      const s = r.value.signal!;
      const signalName = Object.entries(constants.signals).find(([, v]) => v === s.signal)?.[0] ?? String(s.signal);
      console.log(`signal ${signalName} -> pid ${s.processId}`);
      if (s.signal === constants.signals.SIGTERM && s.processId === pid) {
        seen = signalName;
        break; // leaving the loop cancels the stream
      }
    }
  } catch (err) {
    // our own abort after 5 s ends the watch; anything else is a failure
    if (!(ac.signal.aborted && err instanceof AuraeClientError && err.codeName === "CANCELLED")) throw err;
  } finally {
    clearTimeout(giveUp);
    ac.abort();
  }
  console.log(seen ? `saw ${seen} delivered to pid ${pid}` : `no SIGTERM seen for pid ${pid}`);
  if (!seen) process.exitCode = 1;
} catch (err) {
  skipWhenMissing(err, "signal tracing");
} finally {
  if (allocated) await cells.free({ cellName: name });
  client.close();
}
