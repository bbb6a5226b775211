import { test } from "node:test";
import assert from "node:assert/strict";
import { genModuleName, initialize, resolve, PROVIDED_MODULES } from "../../src/auraescript/hooks.js";

const data = { genDir: "file:///opt/aurae/dist/auraescript/gen/", sdkEntry: "file:///opt/aurae/dist/client/index.js", ext: ".js" };
initialize(data);

type R = { url: string; format?: string | null; shortCircuit?: boolean };
const failing = async (s: string): Promise<R> => {
  throw new Error(`default resolver: cannot find ${s}`);
};
const passing = (url: string, format: string | null = "module") => async (): Promise<R> => ({ url, format });

test("any path ending in auraescript/gen/<module>.ts names that module, with or without .ts", () => {
  assert.equal(genModuleName("../auraescript/gen/aurae.ts"), "aurae");
  assert.equal(genModuleName("../../aurae/auraescript/gen/cells"), "cells");
  assert.equal(genModuleName("/abs/where/ever/auraescript/gen/grpc_health.ts"), "grpc_health");
  assert.equal(genModuleName("file:///x/auraescript/gen/vms.js"), "vms");
  assert.equal(genModuleName("./auraescript/generated/cells.ts"), undefined);
  assert.equal(genModuleName("../gen/cells.ts"), undefined);
  assert.equal(genModuleName("cells"), undefined);
});

test("each provided module resolves to ours, whether or not the script's gen file exists", async () => {
  for (const m of PROVIDED_MODULES) {
    const r = await resolve(`../auraescript/gen/${m}.ts`, { parentURL: "file:///home/u/examples/x.ts" }, failing);
    assert.deepEqual(r, { url: `file:///opt/aurae/dist/auraescript/gen/${m}.js`, shortCircuit: true });
  }
});

test("the bare name aurae-ts resolves to the SDK entry", async () => {
  assert.equal((await resolve("aurae-ts", {}, failing)).url, data.sdkEntry);
});

test("an unknown gen module that does not exist fails naming what auraescript provides", async () => {
  await assert.rejects(resolve("../auraescript/gen/runtime.ts", {}, failing), /cannot import '..\/auraescript\/gen\/runtime.ts': auraescript provides gen\/aurae, gen\/cells/);
});

test("an unknown gen module that exists is left to the default resolver", async () => {
  const r = await resolve("../auraescript/gen/mine.ts", {}, passing("file:///home/u/auraescript/gen/mine.ts"));
  assert.equal(r.url, "file:///home/u/auraescript/gen/mine.ts");
});

test("TypeScript outside an ESM package loads as an ES module (Aurae scripts use top-level await)", async () => {
  assert.equal((await resolve("./x.ts", {}, passing("file:///tmp/x.ts", "commonjs"))).format, "module");
  assert.equal((await resolve("./x.ts", {}, passing("file:///tmp/x.ts", null))).format, "module");
});

test("other modules pass through untouched", async () => {
  assert.deepEqual(await resolve("./y.cjs", {}, passing("file:///tmp/y.cjs", "commonjs")), { url: "file:///tmp/y.cjs", format: "commonjs" });
  assert.deepEqual(await resolve("dep", {}, passing("file:///p/node_modules/dep/i.ts", "commonjs")), { url: "file:///p/node_modules/dep/i.ts", format: "commonjs" });
});
