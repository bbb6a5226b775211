import type { Command } from "commander";
import type { CommandContext } from "./context.js";
import type { Output } from "./render.js";

/**
 * Every command has this shape: positional arguments and its own options in, data out. The
 * runner (aer.ts) builds the context, calls the handler and renders the output once.
 */
export type Handler<O = Record<string, unknown>> = (ctx: CommandContext, args: string[], opts: O) => Promise<Output>;

/** Wires a handler to a commander action. */
export type Runner = <O>(handler: Handler<O>) => (...actionArgs: unknown[]) => Promise<void>;

/** Adds an "Example:" section to a command's help. */
export function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText("after", `\nExample${lines.length > 1 ? "s" : ""}:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
}
