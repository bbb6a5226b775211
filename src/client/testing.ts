import { Server, ServerCredentials, status, type ServiceDefinition, type UntypedServiceImplementation, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as cellsApi from "../api/aurae/cells/v0/cells.js";
import * as discoveryApi from "../api/aurae/discovery/v0/discovery.js";
import * as observeApi from "../api/aurae/observe/v0/observe.js";
import * as vmsApi from "../api/aurae/vms/v0/vms.js";
import * as healthApi from "../api/grpc/health/v1/health.js";
import { AuraeClient } from "./client.js";
import type { AuraeConfig } from "./config.js";

/**
 * A scripted stand-in for auraed, for testing code built on the SDK without a daemon: a real
 * gRPC server with mTLS on a temporary Unix socket, whose handlers you supply per method.
 * Every request is recorded. Unhandled methods answer UNIMPLEMENTED.
 *
 * A handler returns the response (or throws `{ code, details }` to fail); a streaming handler
 * returns an iterable of responses, or writes to `call` itself.
 *
 * @example
 * const fake = await startFakeDaemon({ pki, handlers: { "aurae.cells.v0.CellService/Allocate": (req) => ({ cellName: req.cell.name, cgroupV2: true }) } });
 * const client = fake.client();
 * ...
 * await fake.stop();
 */
export type FakeHandler = (req: any, call: ServerUnaryCall<any, any> | ServerWritableStream<any, any>) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FakeDaemonOptions {
  /** TLS material: the CA that signed both sides, the server pair, and a client pair for client() */
  pki: { caCrt: string; serverCrt: string; serverKey: string; clientCrt: string; clientKey: string };
  /** keyed by "<package.Service>/<Method>" */
  handlers: Record<string, FakeHandler>;
}

export interface FakeDaemon {
  socket: string;
  /** every request received, in order */
  calls: { method: string; request: unknown }[];
  /** a config pointing at this fake */
  config: AuraeConfig;
  client(): AuraeClient;
  stop(): Promise<void>;
}

type Fns = { fromPartial(o: unknown): unknown };
type Mod = Record<string, unknown>;
const SERVICES: [string, ServiceDefinition, Mod][] = [
  ["aurae.cells.v0.CellService", cellsApi.CellServiceService as unknown as ServiceDefinition, cellsApi as Mod],
  ["aurae.discovery.v0.DiscoveryService", discoveryApi.DiscoveryServiceService as unknown as ServiceDefinition, discoveryApi as Mod],
  ["aurae.observe.v0.ObserveService", observeApi.ObserveServiceService as unknown as ServiceDefinition, observeApi as Mod],
  ["aurae.vms.v0.VmService", vmsApi.VmServiceService as unknown as ServiceDefinition, vmsApi as Mod],
  ["grpc.health.v1.Health", healthApi.HealthService as unknown as ServiceDefinition, healthApi as Mod],
];

/** The response message of a method, found by Aurae's naming (`CellServiceAllocateResponse`, `DiscoverResponse`...). */
function responseFns(service: string, rpc: string, mod: Mod): Fns {
  const short = service.split(".").pop()!;
  for (const n of [`${short}${rpc}Response`, `${rpc}Response`, `${short}CheckResponse`]) {
    const f = mod[n] as Fns | undefined;
    if (f && typeof f.fromPartial === "function") return f;
  }
  throw new Error(`no response type for ${service}/${rpc}`);
}

function failure(err: unknown): { code: number; details: string } {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  return typeof e.code === "number"
    ? { code: e.code, details: String(e.details ?? e.message ?? "") }
    : { code: status.INTERNAL, details: String(e.message ?? err) };
}

export async function startFakeDaemon(opts: FakeDaemonOptions): Promise<FakeDaemon> {
  const dir = mkdtempSync(join(tmpdir(), "aurae-fake-"));
  const socket = join(dir, "aurae.sock");
  const calls: FakeDaemon["calls"] = [];
  const server = new Server();
  for (const [service, def, mod] of SERVICES) {
    const impl: UntypedServiceImplementation = {};
    for (const [key, method] of Object.entries(def)) {
      const rpc = method.path.split("/").pop()!;
      const name = `${service}/${rpc}`;
      const res = responseFns(service, rpc, mod);
      if (method.responseStream) {
        impl[key] = async (call: ServerWritableStream<unknown, unknown>) => {
          calls.push({ method: name, request: call.request });
          const h = opts.handlers[name];
          if (!h) return void call.emit("error", { code: status.UNIMPLEMENTED, details: `${name} is not scripted` });
          const write = call.write.bind(call);
          call.write = ((m: unknown, ...rest: unknown[]) => (write as (...a: unknown[]) => boolean)(res.fromPartial(m), ...rest)) as typeof call.write;
          try {
            const out = await h(call.request, call);
            if (out && typeof (out as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function" || Array.isArray(out)) {
              for await (const m of out as AsyncIterable<unknown>) {
                if (call.cancelled) return;
                call.write(m);
              }
              call.end();
            }
          } catch (err) {
            call.emit("error", failure(err));
          }
        };
      } else {
        impl[key] = async (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
          calls.push({ method: name, request: call.request });
          const h = opts.handlers[name];
          if (!h) return cb({ code: status.UNIMPLEMENTED, details: `${name} is not scripted` });
          try {
            cb(null, res.fromPartial((await h(call.request, call)) ?? {}));
          } catch (err) {
            cb(failure(err));
          }
        };
      }
    }
    server.addService(def, impl);
  }
  const creds = ServerCredentials.createSsl(
    readFileSync(opts.pki.caCrt),
    [{ private_key: readFileSync(opts.pki.serverKey), cert_chain: readFileSync(opts.pki.serverCrt) }],
    true,
  );
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, creds, (err) => (err ? reject(err) : resolve())));
  const config: AuraeConfig = {
    auth: { caCrt: opts.pki.caCrt, clientCrt: opts.pki.clientCrt, clientKey: opts.pki.clientKey },
    system: { socket: { kind: "unix", path: socket } },
  };
  const clients: AuraeClient[] = [];
  return {
    socket,
    calls,
    config,
    client() {
      const c = new AuraeClient(config);
      clients.push(c);
      return c;
    },
    async stop() {
      clients.forEach((c) => c.close());
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
