import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto, randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureDir } from "../platform/fs/ensure-dir.js";

/**
 * A development PKI in Aurae's layout, made without openssl: a CA, a server certificate for
 * `server.unsafe.aurae.io` (and `localhost`), and named client certificates. Keys are ECDSA P-256.
 *
 * Files (Aurae's names): ca.crt, ca.key, server.key, _signed.server.crt,
 * client.<name>.key, _signed.client.<name>.crt.
 *
 * Why @peculiar/x509: it builds certificates with full control of validity and extensions in
 * pure JS on Node's WebCrypto (the tests need expired and foreign-CA certificates), so neither a
 * user nor CI needs the openssl CLI.
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface IssuedPair {
  crt: string;
  key: string;
}

export interface DevPki {
  dir: string;
  caCrt: string;
  caKey: string;
  serverCrt: string;
  serverKey: string;
  clients: Record<string, IssuedPair>;
}

export const SERVER_NAME = "server.unsafe.aurae.io";
export const DEFAULT_PKI_INSTALL_DIR = "/etc/aurae/pki";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

function pemBody(text: string): Buffer {
  return Buffer.from(text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString("hex");
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", key));
}

async function loadCa(caCrt: string, caKey: string): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const cert = new x509.X509Certificate(readFileSync(caCrt, "utf8"));
  const key = await webcrypto.subtle.importKey("pkcs8", pemBody(readFileSync(caKey, "utf8")), ALG, true, ["sign"]);
  return { cert, key };
}

/** Creates a self-signed CA in `dir` (ca.crt, ca.key). */
export async function createCa(opts: { dir: string; days?: number; commonName?: string }): Promise<IssuedPair> {
  ensureDir(opts.dir, 0o700);
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${opts.commonName ?? "Aurae development CA"},O=unsafe.aurae.io`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (opts.days ?? 3650) * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const crt = join(opts.dir, "ca.crt");
  const key = join(opts.dir, "ca.key");
  writeFileSync(crt, cert.toString("pem") + "\n");
  writeSecret(key, await exportKey(keys.privateKey));
  return { crt, key };
}

interface LeafOptions {
  caCrt: string;
  caKey: string;
  commonName: string;
  dnsNames?: string[];
  ips?: string[];
  uris?: string[];
  usage: "server" | "client";
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  crtPath: string;
  keyPath: string;
}

/** Issues a leaf certificate signed by the CA at caCrt/caKey. */
export async function issueLeaf(o: LeafOptions): Promise<IssuedPair> {
  const ca = await loadCa(o.caCrt, o.caKey);
  const keys = await newKeys();
  const now = Date.now();
  const names: x509.JsonGeneralName[] = [
    ...(o.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(o.uris ?? []).map((value) => ({ type: "url" as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(
      [o.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.commonName},O=unsafe.aurae.io`,
    issuer: ca.cert.subject,
    notBefore: o.notBefore ?? new Date(now - 60_000),
    notAfter: o.notAfter ?? new Date(now + (o.days ?? 825) * DAY_MS),
    signingKey: ca.key,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions,
  });
  writeFileSync(o.crtPath, cert.toString("pem") + "\n");
  writeSecret(o.keyPath, await exportKey(keys.privateKey));
  return { crt: o.crtPath, key: o.keyPath };
}

/** Issues `_signed.server.crt` / `server.key` in `dir` for the daemon. */
export async function issueServerCert(opts: {
  dir: string;
  names?: string[];
  ips?: string[];
  days?: number;
  caCrt?: string;
  caKey?: string;
  fileBase?: string;
}): Promise<IssuedPair> {
  const base = opts.fileBase ?? "server";
  return issueLeaf({
    caCrt: opts.caCrt ?? join(opts.dir, "ca.crt"),
    caKey: opts.caKey ?? join(opts.dir, "ca.key"),
    commonName: SERVER_NAME,
    dnsNames: opts.names ?? [SERVER_NAME, "localhost"],
    ips: opts.ips ?? ["127.0.0.1", "::1"],
    usage: "server",
    days: opts.days,
    crtPath: join(opts.dir, `_signed.${base}.crt`),
    keyPath: join(opts.dir, `${base}.key`),
  });
}

/** Throws unless `name` can name a client certificate (it becomes a file name and a SPIFFE path). */
export function checkClientName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/.test(name)) {
    throw new Error(`client name '${name}' is invalid: use letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)`);
  }
}

/** Where the files of client `name` live in a PKI directory (Aurae's names). */
export function clientPaths(dir: string, name: string): IssuedPair {
  return { crt: join(dir, `_signed.client.${name}.crt`), key: join(dir, `client.${name}.key`) };
}

/** Issues `_signed.client.<name>.crt` / `client.<name>.key` in `dir`. */
export async function issueClientCert(opts: {
  dir: string;
  name: string;
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  caCrt?: string;
  caKey?: string;
}): Promise<IssuedPair> {
  checkClientName(opts.name);
  return issueLeaf({
    caCrt: opts.caCrt ?? join(opts.dir, "ca.crt"),
    caKey: opts.caKey ?? join(opts.dir, "ca.key"),
    commonName: opts.name,
    uris: [`spiffe://unsafe.aurae.io/client/${opts.name}`],
    usage: "client",
    days: opts.days,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    crtPath: clientPaths(opts.dir, opts.name).crt,
    keyPath: clientPaths(opts.dir, opts.name).key,
  });
}

/**
 * Creates a complete development PKI in `dir`. An existing CA is reused unless `force` is set,
 * so adding clients later keeps earlier certificates valid.
 */
export async function createDevPki(opts: {
  dir: string;
  clients?: string[];
  serverNames?: string[];
  days?: number;
  force?: boolean;
}): Promise<DevPki> {
  // refuse bad names before anything is written
  for (const name of opts.clients ?? []) checkClientName(name);
  ensureDir(opts.dir, 0o700);
  const caCrt = join(opts.dir, "ca.crt");
  const caKey = join(opts.dir, "ca.key");
  if (opts.force || !existsSync(caCrt) || !existsSync(caKey)) {
    await createCa({ dir: opts.dir, days: opts.days ? Math.max(opts.days, 3650) : undefined });
  }
  const server = await issueServerCert({
    dir: opts.dir,
    names: opts.serverNames ? [SERVER_NAME, "localhost", ...opts.serverNames] : undefined,
    days: opts.days,
  });
  const clients: Record<string, IssuedPair> = {};
  for (const name of opts.clients ?? ["nova"]) {
    clients[name] = await issueClientCert({ dir: opts.dir, name, days: opts.days });
  }
  return { dir: opts.dir, caCrt, caKey, serverCrt: server.crt, serverKey: server.key, clients };
}

/** Copies what the daemon reads by default (ca.crt, server.key, _signed.server.crt) into targetDir. */
export async function installServerSide(pki: DevPki, targetDir = DEFAULT_PKI_INSTALL_DIR): Promise<void> {
  ensureDir(targetDir, 0o755);
  copyFileSync(pki.caCrt, join(targetDir, "ca.crt"));
  copyFileSync(pki.serverCrt, join(targetDir, "_signed.server.crt"));
  copyFileSync(pki.serverKey, join(targetDir, "server.key"));
  chmodSync(join(targetDir, "server.key"), 0o600);
}

/** Aurae's client config format. */
export function clientConfigToml(opts: { caCrt: string; clientCrt: string; clientKey: string; socket: string }): string {
  const q = (s: string) => JSON.stringify(s);
  return [
    "[auth]",
    `ca_crt = ${q(opts.caCrt)}`,
    `client_crt = ${q(opts.clientCrt)}`,
    `client_key = ${q(opts.clientKey)}`,
    "",
    "[system]",
    `socket = ${q(opts.socket)}`,
    "",
  ].join("\n");
}
