import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuraeConfigError,
  defaultConfigSearchPaths,
  formatSocket,
  loadConfig,
  parseConfig,
  parseSocket,
} from "../../src/client/config.js";
import { resolveClientConfig } from "../../src/client/client.js";
import { socketTarget } from "../../src/client/transport.js";

const tmp = mkdtempSync(join(tmpdir(), "aurae-client-config-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function toml(socket: string, auth = { ca: "~/.aurae/pki/ca.crt", crt: "~/.aurae/pki/_signed.client.nova.crt", key: "~/.aurae/pki/client.nova.key" }): string {
  return `[auth]\nca_crt = "${auth.ca}"\nclient_crt = "${auth.crt}"\nclient_key = "${auth.key}"\n\n[system]\nsocket = "${socket}"\n`;
}

describe("socket forms", () => {
  test("an absolute path is a Unix socket", () => {
    assert.deepEqual(parseSocket("/var/run/aurae/aurae.sock"), { kind: "unix", path: "/var/run/aurae/aurae.sock" });
  });
  test("a path with ~ is expanded against HOME", () => {
    assert.deepEqual(parseSocket("~/aurae.sock", "/home/nova"), { kind: "unix", path: "/home/nova/aurae.sock" });
  });
  test("unix:// URLs are Unix sockets", () => {
    assert.deepEqual(parseSocket("unix:///run/a.sock"), { kind: "unix", path: "/run/a.sock" });
  });
  test("ip:port is IPv4 TCP", () => {
    assert.deepEqual(parseSocket("127.1.2.3:1234"), { kind: "tcp", host: "127.1.2.3", port: 1234, family: 4 });
  });
  test("host:port is a name resolved by DNS", () => {
    assert.deepEqual(parseSocket("localhost:8080"), { kind: "tcp", host: "localhost", port: 8080, family: "name" });
  });
  test("[ipv6]:port is IPv6 TCP without a scope", () => {
    assert.deepEqual(parseSocket("[fe80::2]:8080"), { kind: "tcp", host: "fe80::2", port: 8080, family: 6 });
  });
  test("[fe80::2%iface]:port carries the interface as scope id", () => {
    assert.deepEqual(parseSocket("[fe80::2%eth0]:8080"), { kind: "tcp", host: "fe80::2", port: 8080, family: 6, scopeId: "eth0" });
  });
  test("Aurae's [fe80::2]:8080%4 form carries a numeric scope id", () => {
    assert.deepEqual(parseSocket("[fe80::2]:8080%4"), { kind: "tcp", host: "fe80::2", port: 8080, family: 6, scopeId: "4" });
  });
  test("a port out of range is refused, naming the socket", () => {
    assert.throws(() => parseSocket("127.0.0.1:70000"), (e: Error) => e instanceof AuraeConfigError && /127\.0\.0\.1:70000.*port/.test(e.message));
  });
  test("an empty socket is refused", () => {
    assert.throws(() => parseSocket("  "), AuraeConfigError);
  });
  test("each form becomes the grpc-js target that reaches it", () => {
    assert.equal(socketTarget(parseSocket("/run/a.sock")), "unix:///run/a.sock");
    assert.equal(socketTarget(parseSocket("10.0.0.1:8080")), "ipv4:10.0.0.1:8080");
    assert.equal(socketTarget(parseSocket("[::1]:8080")), "ipv6:[::1]:8080");
    assert.equal(socketTarget(parseSocket("[fe80::2]:8080%4")), "ipv6:[fe80::2%4]:8080");
    assert.equal(socketTarget(parseSocket("node1.example:8080")), "dns:node1.example:8080");
  });
  test("formatSocket writes back what parseSocket reads", () => {
    for (const s of ["/run/a.sock", "10.0.0.1:8080", "[::1]:8080", "[fe80::2%eth0]:8080", "node1:9"]) {
      assert.equal(formatSocket(parseSocket(s)), s);
    }
  });
});

describe("config text", () => {
  test("Aurae's TOML parses with ~ expanded in every path", () => {
    const c = parseConfig(toml("/var/run/aurae/aurae.sock"), { home: "/home/nova" });
    assert.deepEqual(c.auth, {
      caCrt: "/home/nova/.aurae/pki/ca.crt",
      clientCrt: "/home/nova/.aurae/pki/_signed.client.nova.crt",
      clientKey: "/home/nova/.aurae/pki/client.nova.key",
    });
    assert.deepEqual(c.system.socket, { kind: "unix", path: "/var/run/aurae/aurae.sock" });
  });
  test("relative paths are relative to the config file's directory", () => {
    const c = parseConfig(toml("aurae.sock", { ca: "pki/ca.crt", crt: "pki/c.crt", key: "pki/c.key" }), { source: "/etc/aurae/config" });
    assert.equal(c.auth.caCrt, "/etc/aurae/pki/ca.crt");
    assert.deepEqual(c.system.socket, { kind: "unix", path: "/etc/aurae/aurae.sock" });
    assert.equal(c.source, "/etc/aurae/config");
  });
  test("a TCP socket in the file parses as TCP", () => {
    assert.deepEqual(parseConfig(toml("[fe80::2]:8080%4")).system.socket, { kind: "tcp", host: "fe80::2", port: 8080, family: 6, scopeId: "4" });
  });
  test("invalid TOML is reported with the file and the parser's reason", () => {
    assert.throws(
      () => parseConfig("[auth\nca_crt = 1", { source: "/x/config" }),
      (e: Error) => e instanceof AuraeConfigError && e.path === "/x/config" && /^config '\/x\/config': invalid TOML: \S/.test(e.message),
    );
  });
  test("a missing table or key is named", () => {
    assert.throws(() => parseConfig('[auth]\nca_crt="a"\nclient_crt="b"\nclient_key="c"\n', { source: "/c" }), /config '\/c': missing \[system\] table/);
    assert.throws(() => parseConfig('[auth]\nca_crt="a"\nclient_crt="b"\n[system]\nsocket="/s"', { source: "/c" }), /missing auth\.client_key/);
    assert.throws(() => parseConfig('[auth]\nca_crt=1\nclient_crt="b"\nclient_key="c"\n[system]\nsocket="/s"'), /auth\.ca_crt must be a non-empty string/);
  });
  test("an empty file is reported as empty", () => {
    assert.throws(() => parseConfig("\n", { source: "/c" }), /config '\/c': the file is empty/);
  });
});

describe("config search", () => {
  const home = join(tmp, "home");
  const etc = join(tmp, "etc/aurae/config");
  const varLib = join(tmp, "var/lib/aurae/config");
  const paths = [join(home, ".aurae/config"), etc, varLib];
  mkdirSync(join(home, ".aurae"), { recursive: true });
  mkdirSync(join(tmp, "etc/aurae"), { recursive: true });
  mkdirSync(join(tmp, "var/lib/aurae"), { recursive: true });
  const clear = () => paths.forEach((p) => rmSync(p, { force: true }));

  test("the default search order is Aurae's: $HOME/.aurae/config, /etc/aurae/config, /var/lib/aurae/config", () => {
    assert.deepEqual(defaultConfigSearchPaths("/home/nova"), ["/home/nova/.aurae/config", "/etc/aurae/config", "/var/lib/aurae/config"]);
  });
  test("$HOME/.aurae/config wins when present", () => {
    clear();
    writeFileSync(paths[0]!, toml("/home.sock"));
    writeFileSync(etc, toml("/etc.sock"));
    writeFileSync(varLib, toml("/var.sock"));
    const c = loadConfig({ searchPaths: paths, home });
    assert.deepEqual(c.system.socket, { kind: "unix", path: "/home.sock" });
    assert.equal(c.source, paths[0]);
  });
  test("/etc/aurae/config is used when there is none in $HOME", () => {
    clear();
    writeFileSync(etc, toml("/etc.sock"));
    writeFileSync(varLib, toml("/var.sock"));
    assert.deepEqual(loadConfig({ searchPaths: paths, home }).system.socket, { kind: "unix", path: "/etc.sock" });
  });
  test("/var/lib/aurae/config is the last resort", () => {
    clear();
    writeFileSync(varLib, toml("/var.sock"));
    assert.deepEqual(loadConfig({ searchPaths: paths, home }).system.socket, { kind: "unix", path: "/var.sock" });
  });
  test("no file anywhere is an error listing every place searched", () => {
    clear();
    assert.throws(() => loadConfig({ searchPaths: paths, home }), (e: Error) => e instanceof AuraeConfigError && paths.every((p) => e.message.includes(p)));
  });
  test("a broken file is reported by its path and the parse error, not skipped", () => {
    clear();
    writeFileSync(paths[0]!, "[auth]\nca_crt = ");
    writeFileSync(etc, toml("/etc.sock"));
    assert.throws(
      () => loadConfig({ searchPaths: paths, home }),
      (e: Error) => e instanceof AuraeConfigError && e.path === paths[0] && e.message.startsWith(`config '${paths[0]}': invalid TOML`),
    );
  });
  test("an unreadable config (a directory in its place) is reported by its path", () => {
    clear();
    mkdirSync(paths[0]!);
    try {
      assert.throws(() => loadConfig({ searchPaths: paths, home }), (e: Error) => e instanceof AuraeConfigError && e.path === paths[0] && e.message.startsWith(`config '${paths[0]}': `));
    } finally {
      rmSync(paths[0]!, { recursive: true });
    }
  });
  test("an explicit path that does not exist is an error naming it", () => {
    assert.throws(() => loadConfig({ path: join(tmp, "nope") }), (e: Error) => e instanceof AuraeConfigError && e.message === `config '${join(tmp, "nope")}': no such file`);
  });
});

describe("createClient argument shapes", () => {
  const cfgPath = join(tmp, "shapes.toml");
  writeFileSync(cfgPath, toml("/from-file.sock", { ca: "/p/ca.crt", crt: "/p/c.crt", key: "/p/c.key" }));

  test("{kind: 'path'} reads that file", () => {
    assert.deepEqual(resolveClientConfig({ kind: "path", path: cfgPath }).system.socket, { kind: "unix", path: "/from-file.sock" });
  });
  test("{path} without kind is inferred as a path, as in Aurae", () => {
    assert.deepEqual(resolveClientConfig({ path: cfgPath } as never).system.socket, { kind: "unix", path: "/from-file.sock" });
  });
  test("{kind: 'opts'} takes Aurae's option names", () => {
    const c = resolveClientConfig({ kind: "opts", ca_crt: "/a/ca.crt", client_crt: "/a/c.crt", client_key: "/a/c.key", socket: "127.0.0.1:8080" });
    assert.deepEqual(c.auth, { caCrt: "/a/ca.crt", clientCrt: "/a/c.crt", clientKey: "/a/c.key" });
    assert.deepEqual(c.system.socket, { kind: "tcp", host: "127.0.0.1", port: 8080, family: 4 });
  });
  test("{kind: 'opts'} without a socket names the missing option", () => {
    assert.throws(() => resolveClientConfig({ kind: "opts", ca_crt: "a", client_crt: "b", client_key: "c" } as never), /'socket' is required/);
  });
  test("plain options override the file's socket and keep its TLS material", () => {
    const c = resolveClientConfig({ configPath: cfgPath, socket: "[::1]:9000" });
    assert.equal(c.auth.caCrt, "/p/ca.crt");
    assert.deepEqual(c.system.socket, { kind: "tcp", host: "::1", port: 9000, family: 6 });
  });
  test("an unknown kind is refused", () => {
    assert.throws(() => resolveClientConfig({ kind: "nope" } as never), /unknown kind 'nope'/);
  });
});
