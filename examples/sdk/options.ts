import { createClient, formatSocket, HealthClient, loadConfig } from "aurae-ts";

const i = process.argv.indexOf("--config");
const path = i > 0 ? process.argv[i + 1]! : undefined;
const config = loadConfig(path ? { path } : {}); // the same search createClient() does

// Aurae's explicit form: file paths (or PEM contents) and a socket.
const explicit = createClient({
  kind: "opts",
  ca_crt: config.auth.caCrt,
  client_crt: config.auth.clientCrt,
  client_key: config.auth.clientKey,
  socket: formatSocket(config.system.socket),
});

// Our options: a config plus overrides, and a deadline for every unary call.
const tuned = createClient({ config, defaultDeadlineMs: 2_000 });

for (const client of [explicit, tuned]) {
  const { status } = await new HealthClient(client).check({ service: "" }, { deadlineMs: 1_000 });
  console.log(`target ${client.target}: status ${status}`);
  client.close();
}
