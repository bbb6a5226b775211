import { test, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clientConfigToml, createDevPki, installServerSide, issueClientCert, SERVER_NAME } from "../../src/pki/pki.js";
import { parseConfig } from "../../src/client/config.js";

const tmp = mkdtempSync(join(tmpdir(), "aurae-pki-unit-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const cert = (path: string) => new X509Certificate(readFileSync(path));
const DAY_MS = 86_400_000;

test("createDevPki makes a CA, a server certificate for server.unsafe.aurae.io and localhost, and named clients, all signed by the CA", async () => {
  const dir = join(tmp, "a");
  const pki = await createDevPki({ dir, clients: ["nova", "ops"], serverNames: ["node1.example"] });
  const ca = cert(pki.caCrt);
  assert.equal(ca.ca, true);
  assert.ok(ca.verify(ca.publicKey), "the CA is self-signed");

  const server = cert(pki.serverCrt);
  assert.ok(server.verify(ca.publicKey), "the server certificate is signed by the CA");
  assert.equal(server.ca, false);
  for (const name of [SERVER_NAME, "localhost", "node1.example"]) assert.equal(server.checkHost(name), name, name);
  assert.equal(server.checkIP("127.0.0.1"), "127.0.0.1");
  assert.equal(server.checkHost("other.example"), undefined);
  assert.ok(server.checkPrivateKey(createPrivateKey(readFileSync(pki.serverKey))), "server.key belongs to the certificate");
  assert.deepEqual(server.keyUsage, ["1.3.6.1.5.5.7.3.1"], "serverAuth only");

  for (const name of ["nova", "ops"]) {
    const c = cert(pki.clients[name]!.crt);
    assert.ok(c.verify(ca.publicKey), `client ${name} is signed by the CA`);
    assert.match(c.subject, new RegExp(`CN=${name}`));
    assert.equal(c.subjectAltName, `URI:spiffe://unsafe.aurae.io/client/${name}`);
    assert.deepEqual(c.keyUsage, ["1.3.6.1.5.5.7.3.2"], "clientAuth only");
    assert.ok(c.checkPrivateKey(createPrivateKey(readFileSync(pki.clients[name]!.key))));
    assert.equal(statSync(pki.clients[name]!.key).mode & 0o777, 0o600);
  }
  assert.equal(statSync(pki.caKey).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

test("re-running keeps the CA, so earlier certificates stay valid; force makes a new one", async () => {
  const dir = join(tmp, "b");
  const first = await createDevPki({ dir });
  const caBefore = readFileSync(first.caCrt, "utf8");
  const again = await createDevPki({ dir, clients: ["later"] });
  assert.equal(readFileSync(again.caCrt, "utf8"), caBefore);
  assert.ok(cert(again.clients["later"]!.crt).verify(cert(first.caCrt).publicKey));
  const forced = await createDevPki({ dir, force: true });
  assert.notEqual(readFileSync(forced.caCrt, "utf8"), caBefore);
});

test("days sets the validity of issued certificates", async () => {
  const dir = join(tmp, "c");
  const pki = await createDevPki({ dir, days: 2 });
  const leaf = cert(pki.clients["nova"]!.crt);
  const span = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  assert.ok(span > 1.9 * DAY_MS && span < 2.1 * DAY_MS, `${leaf.validFrom} .. ${leaf.validTo}`);
});

test("a bad client name is refused before anything is written", async () => {
  const dir = join(tmp, "d");
  await assert.rejects(createDevPki({ dir, clients: ["ok", "../escape"] }), /client name '\.\.\/escape' is invalid/);
  assert.throws(() => statSync(dir), { code: "ENOENT" });
  await assert.rejects(issueClientCert({ dir: join(tmp, "a"), name: "" }), /client name '' is invalid/);
});

test("installServerSide copies what auraed reads by default, the key private, the CA key not at all", async () => {
  const pki = await createDevPki({ dir: join(tmp, "e") });
  const target = join(tmp, "etc-aurae-pki");
  await installServerSide(pki, target);
  assert.equal(readFileSync(join(target, "ca.crt"), "utf8"), readFileSync(pki.caCrt, "utf8"));
  assert.equal(readFileSync(join(target, "_signed.server.crt"), "utf8"), readFileSync(pki.serverCrt, "utf8"));
  assert.equal(statSync(join(target, "server.key")).mode & 0o777, 0o600);
  assert.throws(() => statSync(join(target, "ca.key")), { code: "ENOENT" });
});

test("the client config it writes is Aurae's format and reads back", () => {
  const text = clientConfigToml({ caCrt: "/p/ca.crt", clientCrt: "/p/_signed.client.nova.crt", clientKey: "/p/client.nova.key", socket: "[::1]:8080" });
  assert.equal(
    text,
    '[auth]\nca_crt = "/p/ca.crt"\nclient_crt = "/p/_signed.client.nova.crt"\nclient_key = "/p/client.nova.key"\n\n[system]\nsocket = "[::1]:8080"\n',
  );
  const c = parseConfig(text);
  assert.deepEqual(c.system.socket, { kind: "tcp", host: "::1", port: 8080, family: 6 });
  assert.equal(c.auth.clientKey, "/p/client.nova.key");
});
