import { Command } from "commander";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { ensureDir } from "../../platform/fs/ensure-dir.js";
import { clientConfigToml, clientPaths, createDevPki, installServerSide, issueClientCert } from "../../pki/pki.js";
import { DEFAULT_SOCKET, expandHome } from "../../client/config.js";
import { example, type Runner } from "../command.js";
import { CliError } from "../render.js";
import { collect, intArg } from "../units.js";

const home = () => process.env["HOME"] || homedir();
export const DEFAULT_PKI_DIR = "~/.aurae/pki";
export const DEFAULT_CONFIG_PATH = "~/.aurae/config";
export const DEFAULT_INSTALL_DIR = "/etc/aurae/pki";

/**
 * Refuses to replace a different existing client config unless `force` (an identical file is
 * fine, so `aer pki create` can be re-run). Checked before anything is written.
 */
export function checkClientConfig(path: string, text: string, force: boolean): void {
  if (!force && existsSync(path) && readFileSync(path, "utf8") !== text) {
    throw new CliError("ALREADY_EXISTS", `config '${path}' exists and differs; pass --force to replace it or --no-write-config to keep it`);
  }
}

/** Writes a client config (mode 0600), creating its directory. */
export function writeClientConfig(path: string, text: string): void {
  ensureDir(dirname(path), 0o700);
  writeFileSync(path, text, { mode: 0o600 });
}

interface CreateOptions {
  dir: string;
  client?: string[];
  install?: string | boolean;
  writeConfig: string | boolean;
  days?: number;
  /** extra DNS names of the server certificate (not --server-name: that is the global option naming the server to verify) */
  dnsName?: string[];
  force?: boolean;
  socket?: string;
}

interface ClientOptions {
  dir: string;
  days?: number;
  writeConfig?: string | boolean;
  force?: boolean;
  socket?: string;
}

/**
 * Runs one step of a pki command; a failure names the step and maps to a stable code:
 * PERMISSION_DENIED (EACCES, EPERM, EROFS), FAILED_PRECONDITION (any other file system error),
 * INVALID_ARGUMENT (a value the PKI refuses, such as a bad client name).
 */
export async function pkiStep<T>(what: string, fn: () => Promise<T> | T, hint = ""): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CliError) throw err;
    const e = err as NodeJS.ErrnoException;
    const message = `${what}: ${e.message}`;
    if (e.code === "EACCES" || e.code === "EPERM" || e.code === "EROFS") throw new CliError("PERMISSION_DENIED", message + hint);
    if (typeof e.code === "string") throw new CliError("FAILED_PRECONDITION", message);
    throw new CliError("INVALID_ARGUMENT", message);
  }
}

export function pkiCommand(run: Runner): Command {
  const pki = new Command("pki").description("development PKI: a CA, a server certificate and client certificates, without openssl");

  example(
    pki
      .command("create")
      .description(
        "create (or extend) a PKI in --dir, write a client config pointing at it, optionally install the server side for auraed. " +
          "An existing CA in --dir is reused unless --force.",
      )
      .option("--dir <dir>", "where the PKI lives", DEFAULT_PKI_DIR)
      .option("--client <name>", "client certificate to issue (repeatable; default nova); the config uses the first", collect)
      .option("--install [dir]", `copy ca.crt, _signed.server.crt and server.key to dir (default ${DEFAULT_INSTALL_DIR}; needs root)`)
      .option("--write-config [path]", `client config to write (default ${DEFAULT_CONFIG_PATH}), with the global --socket or ${DEFAULT_SOCKET}`, DEFAULT_CONFIG_PATH)
      .option("--no-write-config", "do not write a client config")
      .option("--dns-name <name>", "extra DNS name in the server certificate, besides server.unsafe.aurae.io and localhost (repeatable)", collect)
      .option("--days <n>", "validity of the issued certificates in days", intArg(1, 36500))
      .option("--force", "make a new CA even if one exists, and replace a different config")
      .action(
        run<CreateOptions>(async (ctx, _a, o) => {
          const dir = resolve(expandHome(o.dir, home()));
          const clients = o.client && o.client.length > 0 ? o.client : ["nova"];
          const socket = ctx.global.socket ?? DEFAULT_SOCKET;
          // everything that can be refused is checked before anything is written
          let config: { path: string; text: string } | undefined;
          if (o.writeConfig !== false) {
            const path = resolve(expandHome(typeof o.writeConfig === "string" ? o.writeConfig : DEFAULT_CONFIG_PATH, home()));
            const first = clientPaths(dir, clients[0]!);
            config = { path, text: clientConfigToml({ caCrt: join(dir, "ca.crt"), clientCrt: first.crt, clientKey: first.key, socket }) };
            checkClientConfig(config.path, config.text, o.force ?? false);
          }
          const made = await pkiStep(`create the PKI in '${dir}'`, () =>
            createDevPki({ dir, clients, serverNames: o.dnsName, days: o.days, force: o.force }),
          );
          let installedTo: string | undefined;
          if (o.install !== undefined && o.install !== false) {
            const target = typeof o.install === "string" ? resolve(o.install) : DEFAULT_INSTALL_DIR;
            await pkiStep(`install the server side into '${target}'`, () => installServerSide(made, target), " (run as root, or --install a directory you can write)");
            installedTo = target;
          }
          if (config) await pkiStep(`write the client config '${config.path}'`, () => writeClientConfig(config.path, config.text));
          const configPath = config?.path;
          const human = [
            `created PKI in ${dir}`,
            `  CA:      ${made.caCrt}`,
            `  server:  ${made.serverCrt} (key ${made.serverKey})`,
            ...Object.entries(made.clients).map(([n, p]) => `  client ${n}: ${p.crt} (key ${p.key})`),
            installedTo ? `installed the server side in ${installedTo}` : `run 'aer pki create --install' as root (or pass --ca-crt/--server-crt/--server-key to auraed) so auraed finds it`,
            configPath ? `wrote client config ${configPath} (socket ${socket})` : "no client config written",
          ].join("\n");
          return { data: { ...made, installedTo: installedTo ?? null, configPath: configPath ?? null, socket }, human };
        }),
      ),
    "aer pki create",
    "sudo aer pki create --install        # then: sudo npx auraed",
    "aer pki create --dir ./pki --client nova --client ops --write-config ./aurae.toml --socket 127.0.0.1:8080",
  );

  example(
    pki
      .command("client")
      .description("issue one more client certificate from the CA in --dir")
      .argument("<name>", "client name (letters, digits, . _ -)")
      .option("--dir <dir>", "where the PKI lives", DEFAULT_PKI_DIR)
      .option("--days <n>", "validity in days", intArg(1, 36500))
      .option("--write-config [path]", "also write a client config for this client (default path ~/.aurae/config)")
      .option("--force", "replace a different existing config")
      .action(
        run<ClientOptions>(async (ctx, [name], o) => {
          const dir = resolve(expandHome(o.dir, home()));
          const caCrt = resolve(dir, "ca.crt");
          if (!existsSync(caCrt)) throw new CliError("NOT_FOUND", `no CA in ${dir} (run 'aer pki create --dir ${o.dir}' first)`);
          let config: { path: string; text: string } | undefined;
          if (o.writeConfig !== undefined && o.writeConfig !== false) {
            const path = resolve(expandHome(typeof o.writeConfig === "string" ? o.writeConfig : DEFAULT_CONFIG_PATH, home()));
            const paths = clientPaths(dir, name!);
            config = { path, text: clientConfigToml({ caCrt, clientCrt: paths.crt, clientKey: paths.key, socket: ctx.global.socket ?? DEFAULT_SOCKET }) };
            checkClientConfig(config.path, config.text, o.force ?? false);
          }
          const pair = await pkiStep(`issue client '${name}' from the CA in '${dir}'`, () => issueClientCert({ dir, name: name!, days: o.days }));
          if (config) await pkiStep(`write the client config '${config.path}'`, () => writeClientConfig(config.path, config.text));
          const configPath = config?.path;
          return {
            data: { name, ...pair, caCrt, configPath: configPath ?? null },
            human: `issued client '${name}': ${pair.crt} (key ${pair.key})${configPath ? `\nwrote client config ${configPath}` : ""}`,
          };
        }),
      ),
    "aer pki client ops",
    "aer pki client ci --dir ./pki --write-config ./ci.toml",
  );
  return example(pki, "aer pki create", "aer pki client ops");
}
