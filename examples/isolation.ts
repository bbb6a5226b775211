// A cell with its own pid, mount, uts and ipc namespaces: inside, the hostname is the cell's
// name and /proc shows only the cell's processes.
import { CellServiceClient, LogChannelType, ObserveServiceClient } from "aurae-ts";
import { connect, skipIfMissing, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = unique("ex-isolated");

try {
  try {
    await cells.allocate({ cell: { name, isolateProcess: true } });
  } catch (err) {
    skipIfMissing(err, "process isolation");
  }
  const { pid } = await cells.start({ cellName: name, executable: { name: "look", command: "hostname; ls /proc | grep -c '^[0-9]'" } });
  const lines: string[] = [];
  for await (const { item } of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: name })) {
    lines.push(item!.line);
  }
  console.log(`hostname inside: ${lines[0]}`);
  console.log(`processes visible inside: ${lines[1]}`);
  await cells.stop({ cellName: name, executableName: "look" });
} finally {
  await cells.free({ cellName: name }).catch(() => undefined);
  client.close();
}
