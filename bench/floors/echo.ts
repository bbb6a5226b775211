import { Server, ServerCredentials, ChannelCredentials, makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DevPki } from "../../src/pki/pki.js";

/** A bare grpc-js unary echo over mTLS on a Unix socket: the floor for any unary RPC. */
const ECHO = {
  echo: {
    path: "/bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

export interface EchoFloor {
  call(payload?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startEchoFloor(pki: DevPki, clientOptions: object): Promise<EchoFloor> {
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-echo-"));
  const socket = join(dir, "echo.sock");
  const server = new Server();
  server.addService(ECHO, { echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request) });
  const creds = ServerCredentials.createSsl(
    readFileSync(pki.caCrt),
    [{ private_key: readFileSync(pki.serverKey), cert_chain: readFileSync(pki.serverCrt) }],
    true,
  );
  await new Promise<void>((res, rej) => server.bindAsync(`unix://${socket}`, creds, (e) => (e ? rej(e) : res())));
  const nova = pki.clients["nova"]!;
  const Ctor = makeGenericClientConstructor(ECHO, "Echo");
  const client = new Ctor(
    `unix://${socket}`,
    ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(nova.key), readFileSync(nova.crt)),
    clientOptions,
  ) as Client & { echo: (req: Buffer, cb: (e: Error | null, r: Buffer) => void) => void };
  const empty = Buffer.alloc(0);
  return {
    call: (payload = empty) => new Promise((res, rej) => client.echo(payload, (e, r) => (e ? rej(e) : res(r)))),
    async close() {
      client.close();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
