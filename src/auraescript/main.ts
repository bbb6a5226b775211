import { register as registerHooks } from "node:module";
import { existsSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { register as registerTsx } from "tsx/esm/api";
import { reportError } from "../cli/render.js";

const USAGE = `usage: auraescript FILE.ts [ARGS...]

Runs a TypeScript (or JavaScript) file with the Aurae SDK available. Imports of
'<any path>/auraescript/gen/{aurae,cells,discovery,observe,vms,grpc_health,helpers}.ts'
resolve to the SDK, wherever the script lives; so does the bare name 'aurae-ts'.
The script sees its own arguments in process.argv.slice(2).

example:
  auraescript examples/cells.ts
`;

/**
 * Runs one script: registers TypeScript support (tsx) and the gen-module resolve hook, then
 * imports the file. Errors thrown by the script (also unhandled rejections) are printed as
 * `error: <CODE>: <message>` and exit non-zero with the same codes as `aer`.
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const [file, ...args] = argv;
  if (file === undefined || file === "-h" || file === "--help") {
    (file === undefined ? process.stderr : process.stdout).write(USAGE);
    process.exitCode = file === undefined ? 2 : 0;
    return;
  }
  if (file === "--version" || file === "-V") {
    const { readFileSync } = await import("node:fs");
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    process.stdout.write(`auraescript ${pkg.version}\n`);
    return;
  }
  const path = resolvePath(file);
  if (!existsSync(path)) {
    process.stderr.write(`error: INVALID_ARGUMENT: script '${file}': no such file\n`);
    process.exitCode = 2;
    return;
  }
  const onFatal = (err: unknown) => {
    reportError(err);
    process.exit(process.exitCode ?? 1);
  };
  process.on("unhandledRejection", onFatal);
  process.on("uncaughtException", onFatal);

  const self = new URL(import.meta.url);
  const ext = self.pathname.endsWith(".ts") ? ".ts" : ".js";
  registerTsx();
  registerHooks(new URL(`./hooks${ext}`, self), {
    parentURL: import.meta.url,
    data: {
      genDir: new URL("./gen/", self).href,
      sdkEntry: new URL(`../client/index${ext}`, self).href,
      ext,
    },
  });
  process.argv = [process.argv[0]!, path, ...args];
  try {
    await import(pathToFileURL(path).href);
  } catch (err) {
    onFatal(err);
  }
}
