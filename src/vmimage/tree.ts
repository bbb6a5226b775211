import { createHash } from "node:crypto";
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/** Packages never needed by the guest daemon at run time (dev tools shipped as dependencies). */
export const EXCLUDED_PACKAGES = new Set(["tsx", "esbuild", "typescript", "@types/node", "undici-types"]);

/** Files inside packages that the runtime never reads. */
const SKIP_FILE = /(\.d\.[cm]?ts|\.map|\.md|\.markdown|(?<!\.d)\.ts|\.tsbuildinfo)$/i;
const SKIP_DIR = new Set(["node_modules", "test", "tests", "__tests__", "doc", "docs", "example", "examples", ".github"]);

export function sha256File(path: string): string {
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/**
 * The package directories a production install of `root` loads: its `dependencies` and
 * `optionalDependencies`, transitively, resolved like Node does (nearest node_modules first),
 * minus EXCLUDED_PACKAGES and optional packages that are not installed.
 */
export function runtimePackages(root: string): string[] {
  const found = new Set<string>();
  const visit = (pkgDir: string, isRoot: boolean) => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})];
    for (const name of names) {
      if (EXCLUDED_PACKAGES.has(name) || name.startsWith("@esbuild/")) continue;
      const dir = resolvePackage(pkgDir, name, root);
      if (!dir) {
        if (pkg.optionalDependencies?.[name] !== undefined) continue;
        throw new Error(`package '${name}' (needed by ${isRoot ? "the daemon" : relative(root, pkgDir)}) is not installed: run npm install`);
      }
      if (found.has(dir)) continue;
      found.add(dir);
      visit(dir, false);
    }
  };
  visit(root, true);
  return [...found].sort();
}

function resolvePackage(from: string, name: string, root: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (!dir.endsWith("/node_modules")) {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) return candidate;
    }
    if (dir === root || dirname(dir) === dir) return undefined;
  }
}

/** Files (relative paths) of a package directory that the guest needs, sorted. */
export function packageFiles(pkgDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIR.has(e.name)) walk(p);
      } else if (!SKIP_FILE.test(e.name) || e.name === "package.json") {
        out.push(relative(pkgDir, p));
      }
    }
  };
  walk(pkgDir);
  return out;
}

/** The daemon's own build output: `.js` (and `.json`) files under dist/, sorted. */
export function distFiles(distDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(c|m)?js$|\.json$/.test(e.name)) out.push(relative(distDir, p));
    }
  };
  walk(distDir);
  return out;
}

/** A content hash over a list of files (path and bytes) below `base`. */
export function hashFiles(base: string, files: string[]): string {
  const h = createHash("sha256");
  for (const f of files) {
    const p = join(base, f);
    const st = lstatSync(p);
    h.update(`${f}\0${st.mode & 0o777}\0`);
    if (st.isFile()) h.update(readFileSync(p));
    h.update("\0");
  }
  return h.digest("hex");
}
