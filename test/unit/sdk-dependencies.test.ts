import { test } from "node:test";
import assert from "node:assert/strict";
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
