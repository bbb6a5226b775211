/** Child process entry: a bare grpc-js mTLS echo server. argv: socket caCrt serverCrt serverKey */
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { ECHO } from "./echo-def.js";

const [socket, ca, crt, key] = process.argv.slice(2) as [string, string, string, string];
const server = new Server();
server.addService(ECHO, { echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request) });
const creds = ServerCredentials.createSsl(readFileSync(ca), [{ private_key: readFileSync(key), cert_chain: readFileSync(crt) }], true);
server.bindAsync(`unix://${socket}`, creds, (e) => {
  if (e) throw e;
  process.stdout.write("ready\n");
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
