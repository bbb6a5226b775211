import { ChannelCredentials, makeGenericClientConstructor, type Client, type ServiceDefinition } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { DevPki } from "../../src/pki/pki.js";

const SERVER = join(import.meta.dirname, "floor-server.cjs");
const { FLOOR_SERVICE } = createRequire(import.meta.url)(SERVER) as { FLOOR_SERVICE: ServiceDefinition };

/** A Spawn request to the floor server (floor-server.cjs): argv n times, `concurrency` at once. */
export interface SpawnRequest {
  argv: string[];
  n?: number;
  concurrency?: number;
}

export interface SpawnResponse {
  /** each spawn's time from spawn() to its exit event */
  ms: number[];
  /** wall time from the first spawn to the last exit */
  totalMs: number;
  /** exits other than 0 (a floor that fails is not a floor) */
  failures: number;
  /** the server's RSS in MB after the spawns */
  rssMb: number;
}

/**
 * The floor for any unary RPC: a bare grpc-js unary echo over mTLS on a Unix socket, served by
 * its own Node process (as the daemon is), called from this process. The same server spawns
 * the process floors (floor-server.cjs says why not from this process).
 */
export interface EchoFloor {
  call(payload?: Buffer): Promise<Buffer>;
  /** one RPC in which the server spawns argv (n times, `concurrency` at once) and answers after the exits */
  spawn(req: SpawnRequest): Promise<SpawnResponse>;
  /** the server's own time for one spawn of argv, to its exit (no RPC in it); throws if it fails */
  spawnMs(argv: string[]): Promise<number>;
  /** the server's pid (its RSS is the forking process's size) */
  pid: number;
  close(): Promise<void>;
}

export async function startEchoFloor(pki: DevPki, clientOptions: object): Promise<EchoFloor> {
  const dir = mkdtempSync(join(tmpdir(), "aurae-bench-echo-"));
  const socket = join(dir, "echo.sock");
  const child = spawn(process.execPath, [SERVER, socket, pki.caCrt, pki.serverCrt, pki.serverKey], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((res, rej) => {
    child.stdout!.once("data", res);
    child.once("exit", (c) => rej(new Error(`echo server exited ${c}`)));
  });
  const nova = pki.clients["nova"]!;
  const Ctor = makeGenericClientConstructor(FLOOR_SERVICE, "Floor");
  const client = new Ctor(
    `unix://${socket}`,
    ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(nova.key), readFileSync(nova.crt)),
    clientOptions,
  ) as unknown as Client & {
    echo: (req: Buffer, cb: (e: Error | null, r: Buffer) => void) => void;
    spawn: (req: Buffer, cb: (e: Error | null, r: Buffer) => void) => void;
  };
  const empty = Buffer.alloc(0);
  const spawnRpc = (req: SpawnRequest) =>
    new Promise<SpawnResponse>((res, rej) =>
      client.spawn(Buffer.from(JSON.stringify(req)), (e, r) => (e ? rej(e) : res(JSON.parse(r.toString("utf8")) as SpawnResponse))),
    );
  return {
    pid: child.pid!,
    call: (payload = empty) => new Promise((res, rej) => client.echo(payload, (e, r) => (e ? rej(e) : res(r)))),
    spawn: spawnRpc,
    async spawnMs(argv) {
      const r = await spawnRpc({ argv });
      if (r.failures > 0) throw new Error(`floor ${argv.join(" ")} failed`);
      return r.ms[0]!;
    },
    async close() {
      client.close();
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
