import { ChannelCredentials, makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DevPki } from "../../src/pki/pki.js";
import { ECHO } from "./echo-def.js";

/**
 * The floor for any unary RPC: a bare grpc-js unary echo over mTLS on a Unix socket, served by
 * its own Node process (as the daemon is), called from this process.
 */
export interface EchoFloor {
  call(payload?: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startEchoFloor(pki: DevPki, clientOptions: object): Promise<EchoFloor> {
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-echo-"));
  const socket = join(dir, "echo.sock");
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "echo-server.ts"), socket, pki.caCrt, pki.serverCrt, pki.serverKey], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((res, rej) => {
    child.stdout!.once("data", res);
    child.once("exit", (c) => rej(new Error(`echo server exited ${c}`)));
  });
  const nova = pki.clients["nova"]!;
  const Ctor = makeGenericClientConstructor(ECHO, "Echo");
  const client = new Ctor(
    `unix://${socket}`,
    ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(nova.key), readFileSync(nova.crt)),
    clientOptions,
  ) as unknown as Client & { echo: (req: Buffer, cb: (e: Error | null, r: Buffer) => void) => void };
  const empty = Buffer.alloc(0);
  return {
    call: (payload = empty) => new Promise((res, rej) => client.echo(payload, (e, r) => (e ? rej(e) : res(r)))),
    async close() {
      client.close();
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
