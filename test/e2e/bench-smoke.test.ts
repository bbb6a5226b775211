import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { REPO } from "../helpers/daemon.js";

/**
 * A quick smoke run of `npm run bench -- --quick discover start allocate stream`: it must finish
 * within 60 s, print a markdown table with one row per scenario and write the JSON results. Scenarios
 * whose service is not built into the daemon yet show up as skipped rows with the reason; their
 * checks here are skipped (with that reason) rather than failed.
 */
interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runBench(args: string[], timeoutMs: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ["--import", "tsx", "bench/run.ts", ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    c.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      c.kill("SIGTERM");
      reject(new Error(`bench did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    c.once("error", reject);
    c.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The table rows as cells, keyed by the scenario column. */
function tableRows(stdout: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("| ") || line.startsWith("| scenario") || line.startsWith("|---")) continue;
    const cells = line.slice(2, -2).split(" | ");
    rows.set(cells[0]!, cells);
  }
  return rows;
}

test("a quick bench run prints a ratio table and writes its JSON results", { timeout: 90_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip("the bench needs root (cgroups, namespaces)");
  if (!existsSync(`${REPO}/dist/daemon/main.js`)) return t.skip("dist/ is not built: run `npm run build`");
  const started = Date.now();
  const r = await runBench(["--quick", "discover", "start", "allocate", "stream"], 60_000);
  assert.equal(r.code, 0, `bench exited ${r.code}; stderr:\n${r.stderr}`);
  assert.ok(Date.now() - started < 60_000, "a quick run takes under 60 s");
  assert.match(r.stdout, /^\| scenario \| product p50 \(p90\) \| floor p50 \(p90\) \| ratio \| aim \| met \| note \|$/m);
  assert.match(r.stdout, /^machine: \d+ x .*kernel .*node v\d+/m);
  const rows = tableRows(r.stdout);

  const discover = [...rows.entries()].find(([k]) => k.startsWith("Discover"));
  assert.ok(discover, `a Discover row in:\n${r.stdout}`);
  assert.match(discover[1][3]!, /^\d+\.\d\dx$/, "Discover has a ratio to its floor");
  assert.match(discover[1][5]!, /^(yes|\*\*no\*\*)$/, "Discover says whether its aim is met");

  const json = /^results: (.+\.json)$/m.exec(r.stdout)?.[1];
  assert.ok(json && existsSync(json), "the JSON results file exists");
  const data = JSON.parse(readFileSync(json, "utf8")) as { machine: { versions: Record<string, string> }; rows: Array<{ scenario: string }> };
  for (const k of ["node", "kernel", "runc", "crun"]) assert.ok(data.machine.versions[k], `JSON names the ${k} version`);
  assert.equal(data.rows.length, rows.size, "the JSON has every row of the table");

  for (const prefix of ["Start `true` in a cell vs echo", "Allocate+Free", "Output streaming, batched (", "Output streaming, one line per response"]) {
    await t.test(`the '${prefix}' row has a ratio, or says why it was skipped`, (tt) => {
      const row = [...rows.entries()].find(([k]) => k.startsWith(prefix));
      assert.ok(row, `a '${prefix}' row in:\n${r.stdout}`);
      const note = row[1][6] ?? "";
      if (note.startsWith("skipped:")) return tt.skip(note);
      assert.match(row[1][3]!, /^\d+\.\d\dx$/, `'${prefix}' has a ratio`);
      if (prefix.startsWith("Output streaming")) assert.match(note, /delivered 100\.0%, dropped 0 lines/, "the stream delivered everything");
    });
  }
});
