import { AuraeClientError, Cell, CellServiceClient, createClient } from "aurae-ts";

const i = process.argv.indexOf("--config");
const client = i > 0 ? createClient({ kind: "path", path: process.argv[i + 1]! }) : createClient();
const cells = new CellServiceClient(client);
const name = `sdk-demo-${process.pid}`;
let allocated = false;

try {
  // Requests may be partial: missing fields take their proto defaults.
  await cells.allocate({ cell: Cell.fromPartial({ name, cpu: { max: 100_000 }, memory: { max: 128 * 1024 * 1024 } }) });
  allocated = true;
  const { pid } = await cells.start({ cellName: name, executable: { name: "nap", command: "sleep 5" } });
  console.log(`nap runs as pid ${pid}`);
  await cells.stop({ cellName: name, executableName: "nap" });

  // Every failure is an AuraeClientError with the gRPC code, its name and the daemon's message.
  try {
    await cells.stop({ cellName: name, executableName: "nap" });
  } catch (err) {
    if (!(err instanceof AuraeClientError) || err.codeName !== "NOT_FOUND") throw err;
    console.log(`second stop: ${err.codeName} (${err.code}): ${err.details}`);
  }
} finally {
  if (allocated) await cells.free({ cellName: name }); // also stops what still runs in it
  client.close();
}
