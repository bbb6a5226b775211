import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import {
  AuraeClientError,
  CellServiceClient,
  createClient,
  DiscoveryServiceClient,
  HealthClient,
  HealthCheckResponse_ServingStatus,
  ObserveServiceClient,
  type AuraeClient,
} from "../../src/client/index.js";
import { clientConfigToml } from "../../src/pki/pki.js";
import { REPO, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { runNode } from "../helpers/run.js";

const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
const AER = join(REPO, "bin/aer.js");

/** A TCP port free on `host` right now (the daemon binds it a moment later). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once("error", reject).listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function ipv6Loopback(): boolean {
  try {
    return readFileSync("/proc/net/if_inet6", "utf8").split("\n").some((l) => l.startsWith("00000000000000000000000000000001"));
  } catch {
    return false;
  }
}

async function discovered(client: AuraeClient): Promise<unknown> {
  try {
    return await new DiscoveryServiceClient(client).discover({}, { deadlineMs: 10_000 });
  } finally {
    client.close();
  }
}

const aer = (args: string[]) => runNode(AER, args);

describe("the SDK connects to a live daemon on its Unix socket", () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });

  test("by config file ({kind: 'path'}, and our configPath)", async () => {
    assert.deepEqual(await discovered(createClient({ kind: "path", path: d.configPath })), { healthy: true, version: VERSION });
    assert.deepEqual(await discovered(createClient({ configPath: d.configPath })), { healthy: true, version: VERSION });
  });

  test("by explicit options: Aurae's {kind: 'opts'} with file paths and with PEM contents, and ours", async () => {
    const pair = d.pki.clients["nova"]!;
    const opts = { kind: "opts" as const, ca_crt: d.pki.caCrt, client_crt: pair.crt, client_key: pair.key, socket: d.socket! };
    assert.deepEqual(await discovered(createClient(opts)), { healthy: true, version: VERSION });
    const pem = (p: string) => readFileSync(p, "utf8");
    const fromPem = createClient({ ...opts, ca_crt: pem(d.pki.caCrt), client_crt: pem(pair.crt), client_key: pem(pair.key) });
    assert.deepEqual(await discovered(fromPem), { healthy: true, version: VERSION });
    const ours = createClient({ caCrt: d.pki.caCrt, clientCrt: pair.crt, clientKey: pair.key, socket: d.socket! });
    assert.deepEqual(await discovered(ours), { healthy: true, version: VERSION });
  });

  test("a deadline shorter than a slow call fails it with DEADLINE_EXCEEDED (stop waits out the daemon's grace)", async () => {
    const client = createClient({ kind: "path", path: d.configPath });
    const cells = new CellServiceClient(client);
    const name = `sdk-deadline-${process.pid}`;
    await cells.allocate({ cell: { name } });
    try {
      await cells.start({ cellName: name, executable: { name: "stubborn", command: "trap '' TERM; sleep 60" } });
      await assert.rejects(cells.stop({ cellName: name, executableName: "stubborn" }, { deadlineMs: 300 }), (e: unknown) => {
        assert.ok(e instanceof AuraeClientError);
        assert.equal(e.codeName, "DEADLINE_EXCEEDED");
        assert.equal(e.method, "aurae.cells.v0.CellService/Stop");
        return true;
      });
    } finally {
      await cells.free({ cellName: name });
      client.close();
    }
  });

  test("an AbortSignal cancels a unary call in flight (CANCELLED) and ends a stream", async () => {
    const client = createClient({ kind: "path", path: d.configPath });
    const cells = new CellServiceClient(client);
    const name = `sdk-abort-${process.pid}`;
    await cells.allocate({ cell: { name } });
    try {
      await cells.start({ cellName: name, executable: { name: "stubborn", command: "trap '' TERM; sleep 60" } });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 200);
      await assert.rejects(cells.stop({ cellName: name, executableName: "stubborn" }, { signal: ac.signal }), { codeName: "CANCELLED" });

      const logs = new ObserveServiceClient(client).getAuraeDaemonLogStream({}, { signal: AbortSignal.timeout(300) });
      let n = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of logs) n++;
        })(),
        { codeName: "CANCELLED" },
      );
      assert.ok(n > 0, "the backlog arrived before the abort");
    } finally {
      await cells.free({ cellName: name });
      client.close();
    }
  });

  test("health watch is an async iterable; leaving the loop ends it", async () => {
    const client = createClient({ kind: "path", path: d.configPath });
    try {
      for await (const { status } of new HealthClient(client).watch({ service: "aurae.cells.v0.CellService" })) {
        assert.equal(status, HealthCheckResponse_ServingStatus.SERVING);
        break;
      }
    } finally {
      client.close();
    }
  });
});

for (const family of ["IPv4", "IPv6"] as const) {
  const skip = family === "IPv6" && !ipv6Loopback() ? "no IPv6 loopback (::1) on this machine" : false;
  describe(`the SDK and aer reach a daemon listening on ${family} loopback TCP`, { skip }, () => {
    let d: TestDaemon;
    let socket = "";
    before(async () => {
      const host = family === "IPv4" ? "127.0.0.1" : "::1";
      const port = await freePort(host);
      socket = family === "IPv4" ? `127.0.0.1:${port}` : `[::1]:${port}`;
      d = await startDaemon({ socket });
    });
    after(async () => {
      await d?.stop();
    });

    test(`a config file whose socket is ${family === "IPv4" ? "ip:port" : "[ipv6]:port"}`, async () => {
      assert.ok(readFileSync(d.configPath, "utf8").includes(`socket = "${socket}"`));
      const client = createClient({ kind: "path", path: d.configPath });
      assert.equal(client.target, family === "IPv4" ? `ipv4:${socket}` : `ipv6:${socket}`);
      assert.deepEqual(await discovered(client), { healthy: true, version: VERSION });
    });

    test("aer --socket host:port overrides a config's Unix socket", async () => {
      const pair = d.pki.clients["nova"]!;
      const unixConfig = join(d.dir, "unix-config");
      writeFileSync(unixConfig, clientConfigToml({ caCrt: d.pki.caCrt, clientCrt: pair.crt, clientKey: pair.key, socket: join(d.dir, "no-such.sock") }));
      const without = await aer(["--config", unixConfig, "discovery", "discover"]);
      assert.equal(without.code, 3, without.stderr);
      const r = await aer(["--config", unixConfig, "--socket", socket, "--json", "discovery", "discover"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { healthy: true, version: VERSION });
    });
  });
}
