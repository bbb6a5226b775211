// Stream an executable's stdout and stderr: the history first, then live lines; each stream
// ends once the process has exited and its output is drained.
import { CellServiceClient, LogChannelType, ObserveServiceClient } from "aurae-ts";
import { connect, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = unique("ex-output");
let allocated = false;

try {
  await cells.allocate({ cell: { name } });
  allocated = true;
  const { pid } = await cells.start({
    cellName: name,
    executable: { name: "talker", command: "for i in 1 2 3; do echo out $i; echo err $i 1>&2; sleep 0.1; done" },
  });
  const read = async (channelType: LogChannelType) => {
    const lines: string[] = [];
    for await (const { item } of observe.getSubProcessStream({ processId: pid, channelType, cellName: name })) lines.push(item!.line);
    return lines;
  };
  const [out, err] = await Promise.all([read(LogChannelType.LOG_CHANNEL_TYPE_STDOUT), read(LogChannelType.LOG_CHANNEL_TYPE_STDERR)]);
  console.log(`stdout: ${out.join(" | ")}`);
  console.log(`stderr: ${err.join(" | ")}`);
  await cells.stop({ cellName: name, executableName: "talker" });
} finally {
  if (allocated) await cells.free({ cellName: name });
  client.close();
}
