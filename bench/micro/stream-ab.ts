/**
 * A/B of readOutput with and without the SDK's WebAssembly loop, in one process against one
 * daemon (root): per round, the pipe floor of the stream scenario, then a 200 MB batched stream
 * read as bytes with the loop on and one with it off (in alternating order). Prints MB/s, the
 * ratio to that round's floor, and the daemon's and the reader's CPU per MB of each stream.
 * The first round warms up both. `npm run bench -- stream` is the scenario itself; this only
 * isolates the reader's loop.
 *
 *   node --import tsx bench/micro/stream-ab.ts [rounds=4]
 */
import { startDaemon } from "../../test/helpers/daemon.js";
import { resetWasmForTests } from "../../src/client/wasm/output-run.js";
import { cellsClient, observeClient, uniqueName } from "../lib/wire.js";
import { cpuMs } from "../lib/proc.js";
import { pipeFloor } from "../scenarios/stream.js";

const rounds = Number(process.argv[2] ?? 4);
const bytes = 200_000_000;
const command = `sleep 0.1; yes ${"x".repeat(99)} | head -c ${bytes}`;
const d = await startDaemon({ args: ["--output-retention", String(256 * 1024 * 1024)], stopGraceMs: 1000 });
const cells = cellsClient(d);
const observe = observeClient(d);
const cell = uniqueName("stream-ab");
try {
  await cells.allocate({ name: cell });
  for (let round = 0; round < rounds; round++) {
    const f = await pipeFloor(command);
    const floor = f.bytes / 1e6 / ((f.endAt - f.firstAt) / 1000);
    console.log(`round ${round}${round === 0 ? " (warm-up)" : ""}: pipe floor ${floor.toFixed(0)} MB/s`);
    for (const wasm of round % 2 === 0 ? ["on", "off"] : ["off", "on"]) {
      process.env.AURAE_SDK_WASM = wasm;
      resetWasmForTests();
      const name = uniqueName("s");
      const daemon0 = cpuMs(d.process.pid!);
      const reader0 = process.cpuUsage();
      const started = await cells.start(cell, name, command);
      const r = await observe.drainBytes(started.pid, cell, "stdout", 1024);
      const reader = process.cpuUsage(reader0);
      const mb = r.bytes / 1e6;
      const mbps = mb / ((r.endAt - r.firstAt) / 1000);
      console.log(
        `  WebAssembly ${wasm.padEnd(3)} ${mbps.toFixed(0)} MB/s, ${(mbps / floor).toFixed(2)}x; daemon ${((cpuMs(d.process.pid!) - daemon0) / mb).toFixed(2)} ms/MB, reader ${((reader.user + reader.system) / 1000 / mb).toFixed(2)} ms/MB${r.bytes === bytes ? "" : `; only ${r.bytes} bytes`}`,
      );
      await cells.stop(cell, name);
    }
  }
} finally {
  await cells.free(cell).catch(() => undefined);
  cells.close();
  observe.close();
  await d.stop();
}
