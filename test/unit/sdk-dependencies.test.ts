import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "../..");

/**
 * Every module a source file reaches through its static and dynamic imports: the repository's
 * own files, and the npm packages (by package name) and node: builtins it imports.
 */
function importGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    // preProcessFile reads import and export declarations and import() calls, not comments
    for (const { fileName: spec } of ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      else if (spec.startsWith("node:")) packages.add(spec);
      else packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
    }
  };
  visit(join(ROOT, entry));
  return { files: [...files].map((f) => relative(ROOT, f)).sort(), packages: [...packages].filter((p) => !p.startsWith("node:")).sort() };
}

const declared = Object.keys((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies);

test("the SDK entry needs only grpc-js, protobuf's wire runtime and a TOML parser", () => {
  const { files, packages } = importGraph("src/client/index.ts");
  assert.deepEqual(packages, ["@bufbuild/protobuf", "@grpc/grpc-js", "smol-toml"]);
  assert.deepEqual(files.filter((f) => !f.startsWith("src/client/") && !f.startsWith("src/api/")), [], "the SDK reaches no daemon, platform, CLI or PKI code");
});

test("aer adds commander and the PKI's x509 library; auraescript adds tsx; nothing they need is undeclared", () => {
  const aer = importGraph("src/cli/aer.ts").packages;
  assert.deepEqual(aer, ["@bufbuild/protobuf", "@grpc/grpc-js", "@peculiar/x509", "commander", "reflect-metadata", "smol-toml"]);
  const auraescript = new Set([...importGraph("src/auraescript/main.ts").packages, ...importGraph("src/auraescript/gen/aurae.ts").packages]);
  assert.ok(auraescript.has("tsx"));
  for (const p of [...aer, ...auraescript]) assert.ok(declared.includes(p), `${p} is used but not in dependencies`);
});

test("the SDK ships alone as @aurae-ts/sdk: only its code, only its three dependencies", () => {
  const pkgDir = join(ROOT, "packages/sdk");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { dependencies: Record<string, string>; files: string[] };
  assert.deepEqual(Object.keys(pkg.dependencies).sort(), ["@bufbuild/protobuf", "@grpc/grpc-js", "smol-toml"]);
  // the versions are the root package's, so both install the same
  const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const [name, range] of Object.entries(pkg.dependencies)) assert.equal(range, root.dependencies[name], name);
  const packed = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: pkgDir, encoding: "utf8" })) as { files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes("dist/client/index.js") && files.includes("dist/api/aurae/cells/v0/cells.js"), "built (npm ci runs prepare)");
  assert.deepEqual(files.filter((f) => !/^(dist\/(client|api)\/|package\.json$|README\.md$)/.test(f)), []);
  // every bare import in what ships is one of the declared dependencies
  for (const f of files.filter((x) => x.endsWith(".js"))) {
    for (const { fileName: spec } of ts.preProcessFile(readFileSync(join(pkgDir, f), "utf8"), true, true).importedFiles) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
      assert.ok(name in pkg.dependencies, `${f} imports ${spec}`);
    }
  }
});
