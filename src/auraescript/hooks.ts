/**
 * Module resolve hook for auraescript (registered with node:module `register`). Aurae's
 * scripts import their SDK by a path relative to themselves, ending in
 * `auraescript/gen/<module>.ts` (or without `.ts`). Wherever the script lives and whether or not
 * that file exists, such an import resolves to our module of the same name. The bare name
 * `aurae-ts` resolves to the SDK's public entry.
 */
interface HookData {
  /** file URL of the directory holding our gen modules, with a trailing slash */
  genDir: string;
  /** file URL of the SDK entry module */
  sdkEntry: string;
  /** extension of our modules: ".ts" from sources, ".js" from dist */
  ext: string;
}

export const PROVIDED_MODULES = ["aurae", "cells", "discovery", "observe", "vms", "grpc_health", "helpers"] as const;
const GEN_RE = /(?:^|[/\\])auraescript[/\\]gen[/\\]([A-Za-z0-9_]+?)(?:\.(?:ts|js|mts|mjs))?$/;

let data: HookData | undefined;

export function initialize(d: HookData): void {
  data = d;
}

/** The name of the gen module a specifier asks for, or undefined when it is not such an import. */
export function genModuleName(specifier: string): string | undefined {
  return GEN_RE.exec(specifier)?.[1];
}

/** Where a provided gen module lives. */
export function genModuleUrl(name: string, d: HookData): string {
  return new URL(`${name}${d.ext}`, d.genDir).href;
}

type Resolved = { url: string; format?: string | null; shortCircuit?: boolean };
type NextResolve = (specifier: string, context: unknown) => Promise<Resolved>;

export async function resolve(specifier: string, context: unknown, nextResolve: NextResolve): Promise<Resolved> {
  if (data) {
    if (specifier === "aurae-ts") return { url: data.sdkEntry, shortCircuit: true };
    const name = genModuleName(specifier);
    if (name !== undefined) {
      if ((PROVIDED_MODULES as readonly string[]).includes(name)) return { url: genModuleUrl(name, data), shortCircuit: true };
      try {
        return await nextResolve(specifier, context);
      } catch {
        throw new Error(`auraescript: cannot import '${specifier}': auraescript provides gen/${PROVIDED_MODULES.join(", gen/")}`);
      }
    }
  }
  const res = await nextResolve(specifier, context);
  // Aurae's scripts are ES modules (imports, top-level await) wherever they live, also where
  // the nearest package.json says CommonJS or there is none: load TypeScript files as ESM.
  if (res.url.startsWith("file:") && /\.(ts|tsx)$/.test(new URL(res.url).pathname) && !res.url.includes("/node_modules/")) {
    if (res.format === "commonjs" || res.format === "commonjs-typescript" || res.format == null) return { ...res, format: "module" };
  }
  return res;
}
