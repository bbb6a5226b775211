// A cell with its own pid, mount, uts, ipc and network namespaces: inside, the hostname is the
// cell's name, /proc shows only the cell's processes, and the only network interface is lo.
import { CellServiceClient, LogChannelType, ObserveServiceClient } from "aurae-ts";
import { connect, skipWhenMissing, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = unique("ex-isolated");
let allocated = false;

try {
  await cells.allocate({ cell: { name, isolateProcess: true, isolateNetwork: true } });
  allocated = true;
  const { pid } = await cells.start({
    cellName: name,
    executable: { name: "look", command: "hostname; ls /proc | grep -c '^[0-9]'; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | paste -sd," },
  });
  // pid is the pid inside the cell's namespace; cellName says whose pid it is
  const lines: string[] = [];
  for await (const { item } of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: name })) {
    lines.push(item!.line);
  }
  console.log(`hostname inside: ${lines[0]}`);
  console.log(`processes visible inside: ${lines[1]}`);
  console.log(`network interfaces inside: ${lines[2]}`);
} catch (err) {
  skipWhenMissing(err, "cell isolation");
} finally {
  if (allocated) await cells.free({ cellName: name });
  client.close();
}
