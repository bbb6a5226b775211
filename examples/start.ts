// Start an executable in a cell, find it in the list, stop it.
import { CellServiceClient } from "aurae-ts";
import { connect, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const name = unique("ex-start");
let allocated = false;

try {
  await cells.allocate({ cell: { name } });
  allocated = true;
  const started = await cells.start({ cellName: name, executable: { name: "sleeper", command: "sleep 30", description: "sleeps" } });
  console.log(`started sleeper: pid ${started.pid}`);

  const { cells: tree } = await cells.list();
  const exe = tree.find((n) => n.cell?.name === name)?.executables.find((e) => e.name === "sleeper");
  console.log(`listed: ${exe?.name} ${exe?.state} pid ${exe?.pid}`);

  await cells.stop({ cellName: name, executableName: "sleeper" });
  console.log("stopped sleeper");
} finally {
  if (allocated) await cells.free({ cellName: name });
  client.close();
}
