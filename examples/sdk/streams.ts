import { CellServiceClient, createClient, LogChannelType, ObserveServiceClient } from "aurae-ts";

const i = process.argv.indexOf("--config");
const client = i > 0 ? createClient({ kind: "path", path: process.argv[i + 1]! }) : createClient();
const cells = new CellServiceClient(client);
const observe = new ObserveServiceClient(client);
const name = `sdk-stream-${process.pid}`;
let allocated = false;

try {
  await cells.allocate({ cell: { name } });
  allocated = true;
  const { pid } = await cells.start({ cellName: name, executable: { name: "count", command: "seq 1 5" } });

  // A server stream is an async iterable; this one ends when the process has exited.
  const lines: string[] = [];
  for await (const { item } of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) {
    lines.push(item!.line);
  }
  console.log(`output: ${lines.join(",")}`);

  // The same output as bytes, to forward as it is (what `aer observe output` prints).
  let bytes = 0;
  for await (const chunk of observe.readOutput({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) {
    bytes += chunk.text.length; // chunk.text: Buffer of whole lines, each ending in "\n"
  }
  console.log(`as bytes: ${bytes}`);

  // Endless streams stop when you leave the loop, or through an AbortSignal.
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  let records = 0;
  try {
    for await (const _ of observe.getAuraeDaemonLogStream({}, { signal: ac.signal })) records++;
  } catch (err) {
    if ((err as { codeName?: string }).codeName !== "CANCELLED") throw err;
  }
  console.log(`read ${records} daemon log records until aborted`);
  await cells.stop({ cellName: name, executableName: "count" });
} finally {
  if (allocated) await cells.free({ cellName: name });
  client.close();
}
