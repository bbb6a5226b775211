// The floor server: a bare grpc-js mTLS server, as lean as a Node gRPC server gets, with two
// methods (raw bytes, no protobuf):
//   Echo   the request's bytes back: the floor of any unary RPC.
//   Spawn  a JSON request {argv, n?, concurrency?}: spawns argv n times (stdio ignored), at
//          most `concurrency` at once, and answers once all have exited with JSON
//          {ms: each spawn's time from spawn() to its exit event, totalMs: wall time of all,
//          failures: exits other than 0, rssMb: this process's RSS}.
// Process floors are spawned here rather than in the bench process: Node's spawn forks, and a
// fork costs in proportion to the forking process's memory (its page tables are copied), so
// spawning from the bench (100+ MB, and more under tsx) would make floors and peers slower than
// they are. Plain CommonJS so that it runs under bare `node`, without tsx's loader.
// Run: node floor-server.cjs SOCKET CA_CRT SERVER_CRT SERVER_KEY (prints "ready" once bound).
// Required as a module it exports the service definition for clients (floors/echo.ts).
"use strict";
const raw = (path) => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: (b) => b,
  requestDeserialize: (b) => b,
  responseSerialize: (b) => b,
  responseDeserialize: (b) => b,
});
const FLOOR_SERVICE = { echo: raw("/bench.Floor/Echo"), spawn: raw("/bench.Floor/Spawn") };
module.exports = { FLOOR_SERVICE };

if (require.main === module) {
  const { Server, ServerCredentials } = require("@grpc/grpc-js");
  const { spawn } = require("node:child_process");
  const { readFileSync } = require("node:fs");
  const now = () => Number(process.hrtime.bigint()) / 1e6;

  const spawnOnce = (argv) =>
    new Promise((resolve) => {
      const t = now();
      const c = spawn(argv[0], argv.slice(1), { stdio: "ignore" });
      c.once("error", () => resolve({ ms: now() - t, code: -1 }));
      c.once("exit", (code) => resolve({ ms: now() - t, code }));
    });

  const spawnMany = async ({ argv, n = 1, concurrency = 1 }) => {
    const ms = [];
    let failures = 0;
    let next = 0;
    const t = now();
    const worker = async () => {
      while (next < n) {
        next++;
        const r = await spawnOnce(argv);
        ms.push(r.ms);
        if (r.code !== 0) failures++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
    return { ms, totalMs: now() - t, failures, rssMb: process.memoryUsage().rss / 2 ** 20 };
  };

  const [socket, ca, crt, key] = process.argv.slice(2);
  const server = new Server();
  server.addService(FLOOR_SERVICE, {
    echo: (call, cb) => cb(null, call.request),
    spawn: (call, cb) => {
      spawnMany(JSON.parse(call.request.toString("utf8"))).then(
        (r) => cb(null, Buffer.from(JSON.stringify(r))),
        (e) => cb(e),
      );
    },
  });
  const creds = ServerCredentials.createSsl(readFileSync(ca), [{ private_key: readFileSync(key), cert_chain: readFileSync(crt) }], true);
  server.bindAsync(`unix://${socket}`, creds, (e) => {
    if (e) throw e;
    process.stdout.write("ready\n");
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
}
