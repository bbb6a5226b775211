import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { credentials as grpcCredentials, ChannelCredentials, type ServiceError, status } from "@grpc/grpc-js";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscoveryServiceClient, type DiscoverResponse } from "../../src/api/aurae/discovery/v0/discovery.js";
import { createDevPki, issueClientCert } from "../../src/pki/pki.js";
import { freeLoopbackPort, startDaemon, CLIENT_OPTIONS, type TestDaemon } from "../helpers/daemon.js";
import { testPki } from "../helpers/pki.js";

function discover(target: string, creds: ChannelCredentials, timeoutMs = 5000): Promise<DiscoverResponse> {
  const client = new DiscoveryServiceClient(target, creds, CLIENT_OPTIONS);
  return new Promise<DiscoverResponse>((resolve, reject) => {
    client.discover({}, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** Inodes of the TCP sockets a process has in LISTEN state. */
function listeningTcpInodes(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* fd closed meanwhile */ }
  }
  const out: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[3] === "0A" && inodes.has(cols[9]!)) out.push(`${table}:${cols[1]}`);
    }
  }
  return out;
}

let d: TestDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

test("a good client's Discover succeeds over the Unix socket with the daemon's real version", async () => {
  const res = await discover(d.target, d.credentials);
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  assert.deepEqual(res, { healthy: true, version: pkg.version });
});

test("the default start listens on no TCP port at all (127.0.0.1:8080 and [::1]:8080 stay free)", async () => {
  assert.deepEqual(listeningTcpInodes(d.process.pid!), []);
});

test("a plaintext client gets a transport failure, never a response", async () => {
  await assert.rejects(discover(d.target, grpcCredentials.createInsecure(), 3000), (err: ServiceError) => {
    assert.equal(err.code, status.UNAVAILABLE);
    return true;
  });
});

test("a client with a certificate from another CA is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "aurae-foreign-"));
  try {
    const foreign = await createDevPki({ dir, clients: ["mallory"] });
    const pair = foreign.clients["mallory"]!;
    // trusts our server CA, but presents a certificate signed by the foreign CA
    const pki = await testPki();
    const creds = ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(pair.key), readFileSync(pair.crt));
    await assert.rejects(discover(d.target, creds, 3000), (err: ServiceError) => err.code === status.UNAVAILABLE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a client without any certificate is refused", async () => {
  const pki = await testPki();
  const creds = ChannelCredentials.createSsl(readFileSync(pki.caCrt));
  await assert.rejects(discover(d.target, creds, 3000), (err: ServiceError) => err.code === status.UNAVAILABLE);
});

test("a client with an expired certificate is refused", async () => {
  const pki = await testPki();
  const dir = mkdtempSync(join(tmpdir(), "aurae-expired-"));
  try {
    const pair = await issueClientCert({
      dir,
      name: "expired",
      caCrt: pki.caCrt,
      caKey: pki.caKey,
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const creds = ChannelCredentials.createSsl(readFileSync(pki.caCrt), readFileSync(pair.key), readFileSync(pair.crt));
    await assert.rejects(discover(d.target, creds, 3000), (err: ServiceError) => err.code === status.UNAVAILABLE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a good client's Discover succeeds over TCP when --socket host:port is given", async () => {
  const port = await freeLoopbackPort();
  const tcp = await startDaemon({ socket: `127.0.0.1:${port}` });
  try {
    const res = await discover(tcp.target, tcp.credentials);
    assert.equal(res.healthy, true);
    assert.equal(listeningTcpInodes(tcp.process.pid!).length, 1);
  } finally {
    assert.equal(await tcp.stop(), 0);
  }
});
