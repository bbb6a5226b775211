import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { REPO } from "../helpers/daemon.js";

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test("the committed generated code is exactly what regenerating from api/*.proto produces", () => {
  const out = mkdtempSync(join(tmpdir(), "aurae-gen-"));
  try {
    execFileSync("bash", [join(REPO, "api/gen.sh"), out], { stdio: "pipe" });
    const committed = join(REPO, "src/api");
    const a = files(committed).map((f) => relative(committed, f)).sort();
    const b = files(out).map((f) => relative(out, f)).sort();
    assert.deepEqual(a, b, "the set of generated files differs: run `npm run gen`");
    for (const f of a) {
      assert.equal(readFileSync(join(committed, f), "utf8"), readFileSync(join(out, f), "utf8"), `src/api/${f} is stale: run \`npm run gen\``);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
