import { Command, CommanderError, Option } from "commander";
import { readFileSync } from "node:fs";
import type { AuraeClient } from "../client/client.js";
import { AuraeClientError } from "../client/errors.js";
import { cellCommand } from "./commands/cell.js";
import { completionCommand } from "./commands/completion.js";
import { discoveryCommand } from "./commands/discovery.js";
import { healthCommand } from "./commands/health.js";
import { observeCommand } from "./commands/observe.js";
import { pkiCommand } from "./commands/pki.js";
import { vmCommand } from "./commands/vm.js";
import type { Handler, Runner } from "./command.js";
import { CommandContext, type GlobalOptions } from "./context.js";
import { CliError, EXIT, render, reportError, type Output } from "./render.js";
import { intArg } from "./units.js";

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export interface AerIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** builds the client from the global options (tests inject one) */
  clientFactory?: (g: GlobalOptions) => AuraeClient;
  /** aborts running calls and streams (default: SIGINT/SIGTERM) */
  signal?: AbortSignal;
}

/**
 * Builds the `aer` program. Each command group lives in its own file; this wires them to one
 * runner that creates the context, runs the handler and renders the result or the error.
 */
export function buildProgram(io: AerIo, exit: { code: number }): Command {
  const program = new Command("aer");
  const signal = io.signal ?? new AbortController().signal;

  const run: Runner = <O,>(handler: Handler<O>) =>
    async (...actionArgs: unknown[]) => {
      const cmd = actionArgs[actionArgs.length - 1] as Command;
      const positional = actionArgs.slice(0, -2).map((a) => (Array.isArray(a) ? a.join(" ") : String(a)));
      const opts = cmd.opts() as O;
      const global = cmd.optsWithGlobals() as GlobalOptions;
      const ctx = new CommandContext(global, signal, io.clientFactory);
      const interrupted = (err: unknown) => signal.aborted && err instanceof AuraeClientError && err.codeName === "CANCELLED";
      const fail = (err: unknown) => {
        const prev = process.exitCode;
        exit.code = reportError(err, io.stderr);
        process.exitCode = prev;
      };
      let out: Output;
      try {
        out = await handler(ctx, positional, opts);
      } catch (err) {
        // an interrupted unary call did not finish: that is a failure (130), not an answer
        fail(interrupted(err) ? new CliError("CANCELLED", "interrupted before the daemon answered") : err);
        ctx.close();
        return;
      }
      try {
        exit.code = await render(out, { json: global.json ?? false, stdout: io.stdout });
      } catch (err) {
        // a stream the user interrupted ends normally
        if (interrupted(err)) exit.code = EXIT.OK;
        else fail(err);
      } finally {
        ctx.close();
      }
    };

  program
    .description("aer: the command line of an Aurae node (auraed) over mTLS")
    .version(version(), "-V, --version")
    .addOption(new Option("-c, --config <path>", "client config (default: $HOME/.aurae/config, /etc/aurae/config, /var/lib/aurae/config)"))
    .addOption(new Option("-s, --socket <socket>", "daemon socket, overriding the config: a path, host:port or [ipv6]:port"))
    .addOption(new Option("--server-name <name>", "TLS server name to verify (default server.unsafe.aurae.io)"))
    .addOption(new Option("--json", "print JSON: one document, or one per line for streams"))
    .addOption(new Option("--timeout-ms <ms>", "deadline of each call in milliseconds (streams run until they end or Ctrl-C)").argParser(intArg(1)))
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, "error: USAGE: ")),
    })
    .exitOverride();

  program.addHelpText(
    "after",
    `
Examples:
  $ aer pki create                           # PKI in ~/.aurae/pki and ~/.aurae/config
  $ aer cell allocate web --cpu-max 50000 --memory-max 64M
  $ aer cell start web srv --command "sleep 60"
  $ aer cell list
  $ aer observe output 4242
  $ aer --json discovery discover

Exit status: 0 ok, 1 other error, 2 usage, 3 unavailable, 4 not found, 5 already exists,
6 invalid argument, 7 failed precondition, 8 client config, 9 deadline exceeded,
10 unimplemented, 11 permission denied, 12 resource exhausted, 130 interrupted (see docs/cli.md).
`,
  );

  for (const c of [cellCommand(run), observeCommand(run), vmCommand(run), discoveryCommand(run), healthCommand(run), pkiCommand(run), completionCommand(run, () => program)]) {
    program.addCommand(c);
  }
  // every command reports usage errors the same way and never calls process.exit itself
  const configure = (cmd: Command) => {
    cmd.exitOverride().showHelpAfterError("(run with --help for usage)").configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, "error: USAGE: ")),
    });
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

/**
 * Runs `aer` with `argv` (without node and script) and resolves with the exit status.
 *
 * @example process.exitCode = await runAer(["cell", "list", "--json"]);
 */
export async function runAer(argv: string[], io: Partial<AerIo> = {}): Promise<number> {
  const full: AerIo = { stdout: io.stdout ?? process.stdout, stderr: io.stderr ?? process.stderr, clientFactory: io.clientFactory, signal: io.signal };
  const exit = { code: 0 };
  const program = buildProgram(full, exit);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; a group without a subcommand prints its help and exits 2
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      if (err.code === "commander.help" || err.code === "commander.executeSubCommandAsync") return EXIT.USAGE;
      return EXIT.USAGE;
    }
    throw err;
  }
  return exit.code;
}

/**
 * The `aer` binary. SIGINT/SIGTERM end streams cleanly (exit 0) and interrupt a unary call
 * (exit 130); a second signal exits at once. When the command is done, stdout and stderr are
 * flushed and the process exits: a connection attempt that grpc-js cannot cancel (a peer that
 * accepts but never finishes the TLS handshake) must not keep `aer` alive.
 */
export async function main(): Promise<void> {
  const ac = new AbortController();
  let interrupted = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted++;
    if (interrupted > 1) process.exit(EXIT.CANCELLED);
    ac.abort(new Error(sig));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // a reader that went away (`aer observe daemon-logs | head -1`) ends the command, not an EPIPE crash
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    ac.abort(err);
  });
  const code = await runAer(process.argv.slice(2), { signal: ac.signal });
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** Resolves once everything written to `stream` so far has been handed to the OS (or the stream failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise((resolve) => stream.write("", () => resolve()));
}
