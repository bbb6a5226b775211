import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { PassThrough } from "node:stream";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { formatBytes, parseBytes, intArg } from "../../src/cli/units.js";
import { drawCellTree, cellLimits } from "../../src/cli/tree.js";
import { CliError, describeError, render, EXIT } from "../../src/cli/render.js";
import { AuraeClientError } from "../../src/client/errors.js";
import { AuraeConfigError } from "../../src/client/config.js";
import { bashCompletion, completionTable, zshCompletion } from "../../src/cli/commands/completion.js";
import { buildProgram } from "../../src/cli/aer.js";
import { CellGraphNode } from "../../src/client/services/cells.js";

describe("sizes", () => {
  test("plain bytes and binary suffixes parse as cgroupfs reads them", () => {
    assert.equal(parseBytes("4096"), 4096);
    assert.equal(parseBytes("64K"), 65536);
    assert.equal(parseBytes("64m"), 64 * 1024 ** 2);
    assert.equal(parseBytes("1G"), 1024 ** 3);
    assert.equal(parseBytes("1GiB"), 1024 ** 3);
    assert.equal(parseBytes("1.5Gi"), 1.5 * 1024 ** 3);
    assert.equal(parseBytes("2T"), 2 * 1024 ** 4);
  });
  test("anything else is refused with the value in the message", () => {
    for (const bad of ["", "M", "-1", "1X", "1.2.3", "1 G B"]) assert.throws(() => parseBytes(bad), /is not a size/, bad);
  });
  test("formatBytes uses the largest exact suffix", () => {
    assert.equal(formatBytes(64 * 1024 ** 2), "64M");
    assert.equal(formatBytes(1536), "1536");
    assert.equal(formatBytes(3 * 1024), "3K");
  });
  test("integers are range-checked", () => {
    assert.equal(intArg(1, 10)("10"), 10);
    assert.throws(() => intArg(1, 10)("11"), /must be 1\.\.10/);
    assert.throws(() => intArg()("1.5"), /not an integer/);
  });
});

describe("cell tree", () => {
  test("no cells says so", () => {
    assert.equal(drawCellTree([]), "no cells");
  });
  test("deep trees keep their guides; isolation and pids show as words", () => {
    const node = (name: string, children: CellGraphNode[] = [], extra = {}) => CellGraphNode.fromPartial({ cell: { name, ...extra }, children });
    const out = drawCellTree([
      node("a", [node("a/b", [node("a/b/c")]), node("a/d", [], { isolateProcess: true, isolateNetwork: true, pids: { max: 5 } })]),
      node("z"),
    ]);
    assert.equal(out, ["a", "├── a/b", "│   └── a/b/c", "└── a/d  pids.max=5 isolate-process isolate-network", "z"].join("\n"));
  });
  test("an exited-by-signal executable shows the signal, a namespaced one both pids", () => {
    const out = drawCellTree([
      CellGraphNode.fromPartial({
        cell: { name: "c" },
        executables: [
          { name: "k", command: "sleep 9", pid: 1, hostPid: 500, state: "exited", exitSignal: 9 },
        ],
      }),
    ]);
    assert.equal(out, 'c\n   * k  exited (signal 9)  pid 1 (host 500)  "sleep 9"');
  });
  test("limits list only what is set", () => {
    assert.deepEqual(cellLimits(undefined), []);
    assert.deepEqual(cellLimits({ name: "x", cpu: { weight: 5 }, cpuset: { mems: "0" }, memory: { low: 1024 }, isolateNetwork: false, isolateProcess: false, pids: undefined }), [
      "cpu.weight=5",
      "cpuset.mems=0",
      "memory.low=1K",
    ]);
  });
});

describe("errors and exit statuses", () => {
  test("each gRPC code has its documented exit status", () => {
    const cases: [number, number][] = [
      [status.UNAVAILABLE, 3], [status.NOT_FOUND, 4], [status.ALREADY_EXISTS, 5], [status.INVALID_ARGUMENT, 6],
      [status.OUT_OF_RANGE, 6], [status.FAILED_PRECONDITION, 7], [status.DEADLINE_EXCEEDED, 9], [status.UNIMPLEMENTED, 10],
      [status.PERMISSION_DENIED, 11], [status.UNAUTHENTICATED, 11], [status.RESOURCE_EXHAUSTED, 12], [status.INTERNAL, 1], [status.UNKNOWN, 1],
    ];
    for (const [code, exit] of cases) assert.equal(describeError(new AuraeClientError(code, "m")).exitCode, exit, String(code));
  });
  test("config errors are CONFIG (8), usage errors USAGE (2), anything else UNKNOWN (1)", () => {
    assert.deepEqual(describeError(new AuraeConfigError("config 'x': bad")), { codeName: "CONFIG", message: "config 'x': bad", exitCode: 8 });
    assert.equal(describeError(new CliError("USAGE", "u")).exitCode, EXIT.USAGE);
    assert.deepEqual(describeError(new Error("boom")), { codeName: "UNKNOWN", message: "boom", exitCode: 1 });
  });
  test("docs/cli.md's exit status table is what aer does, for every code it names", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../docs/cli.md"), "utf8");
    const table = doc.slice(doc.indexOf("| exit | code |"), doc.indexOf("\n\n", doc.indexOf("| exit | code |")));
    const rows = [...table.matchAll(/^\| (\d+) \| (.*) \|$/gm)];
    assert.ok(rows.length >= 12, table);
    let checked = 0;
    for (const [, exit, text] of rows) {
      for (const [, name] of text!.matchAll(/`([A-Z_]+)`/g)) {
        const code = (status as unknown as Record<string, number>)[name!];
        const got = code !== undefined ? describeError(new AuraeClientError(code, "m")).exitCode : new CliError(name!, "m").exitCode;
        assert.equal(got, Number(exit), `${name} is documented as exit ${exit}`);
        checked++;
      }
    }
    assert.ok(checked >= 16, `only ${checked} codes checked`);
  });

  test("a stream renders one compact JSON document per line", async () => {
    const out = new PassThrough();
    let s = "";
    out.on("data", (b) => (s += b));
    const code = await render(
      (async function* () {
        yield { data: { a: 1 }, human: "a" };
        yield { data: { b: [2] }, human: "b" };
      })(),
      { json: true, stdout: out },
    );
    assert.equal(code, 0);
    assert.equal(s, '{"a":1}\n{"b":[2]}\n');
  });

  test("raw bytes print as they are, and a stream waits for a slow stdout instead of piling up", async () => {
    const out = new PassThrough({ highWaterMark: 1024 });
    let produced = 0;
    let maxAhead = 0;
    const chunk = Buffer.from("y".repeat(999) + "\n");
    const rendering = render(
      (async function* () {
        for (let i = 0; i < 200; i++) {
          produced++;
          maxAhead = Math.max(maxAhead, out.writableLength);
          yield { data: {}, human: "not this", raw: chunk };
        }
      })(),
      { json: false, stdout: out },
    );
    // a slow reader: what is buffered, every millisecond
    const got: Buffer[] = [];
    let bytes = 0;
    while (bytes < 200 * chunk.length) {
      await new Promise((r) => setTimeout(r, 1));
      for (let b: Buffer | null; (b = out.read() as Buffer | null) !== null; ) {
        got.push(b);
        bytes += b.length;
      }
    }
    assert.equal(await rendering, 0);
    assert.ok(Buffer.concat(got).equals(Buffer.concat(Array.from({ length: 200 }, () => chunk))), "the bytes come out unchanged");
    assert.ok(maxAhead <= 4 * chunk.length, `render kept at most a few chunks unwritten (${maxAhead} bytes)`);
  });
});

describe("shell completion", () => {
  const program = buildProgram({ stdout: new PassThrough(), stderr: new PassThrough() }, { code: 0 });
  const table = completionTable(program);

  test("the table knows every command and its options", () => {
    assert.deepEqual(table.words[""]!.slice(0, 7), ["cell", "observe", "vm", "discovery", "health", "pki", "completion"]);
    assert.ok(table.words["cell allocate"]!.includes("--memory-max"));
    assert.ok(table.words["cell allocate"]!.includes("--config"), "global options are offered in subcommands");
    assert.ok(table.valued.includes("--memory-max") && !table.valued.includes("--isolate-process"));
  });

  test("the bash script is valid bash and completes subcommands and options", () => {
    const script = bashCompletion(table);
    execFileSync("bash", ["-n"], { input: script });
    const complete = (line: string[]) =>
      spawnSync("bash", ["-c", `${script}\nCOMP_WORDS=(${line.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${line.length - 1}; _aer; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: "utf8" }).stdout.trim().split("\n");
    assert.deepEqual(complete(["aer", "ce"]), ["cell"]);
    assert.deepEqual(complete(["aer", "cell", "a"]), ["allocate"]);
    assert.ok(complete(["aer", "--json", "cell", "allocate", "web", "--memory-m"]).includes("--memory-max"));
    assert.deepEqual(complete(["aer", "--socket", "x", "vm", "l"]), ["list"]);
    assert.deepEqual(complete(["aer", "cell", "allocate", "web", "--memory-max", ""]), [""], "a value is not completed from the word list");
    const dir = mkdtempSync(join(tmpdir(), "aurae-completion-"));
    try {
      writeFileSync(join(dir, "my.toml"), "");
      const files = spawnSync("bash", ["-c", `${script}\nCOMP_WORDS=(aer --config m); COMP_CWORD=2; _aer; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: "utf8", cwd: dir });
      assert.equal(files.stdout, "my.toml\n", "a path option completes file names");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const noZsh = spawnSync("zsh", ["--version"]).error ? "zsh is not installed here (scripts/setup.sh installs it)" : false;

  test("the zsh script is valid zsh", { skip: noZsh }, () => {
    execFileSync("zsh", ["-n"], { input: zshCompletion(table) });
  });

  test("the zsh script offers the words of the command being typed, and files after a path option", { skip: noZsh }, () => {
    // outside a completion widget `words` and `CURRENT` are plain parameters; compadd and _files are stubbed to print
    const offered = (line: string[]) =>
      spawnSync(
        "zsh",
        ["-f", "-c", `compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }\n_files() { print -- '<files>'; }\neval "$AER_COMPLETION"\nwords=(${line.map((w) => `'${w}'`).join(" ")}); CURRENT=${line.length}; _aer`],
        { encoding: "utf8", env: { ...process.env, AER_COMPLETION: zshCompletion(table) } },
      ).stdout.trim().split("\n").filter((w) => w !== "");
    assert.deepEqual(offered(["aer", ""]), table.words[""]);
    assert.deepEqual(offered(["aer", "cell", ""]), table.words["cell"]);
    assert.deepEqual(offered(["aer", "--socket", "x", "vm", ""]), table.words["vm"]);
    assert.ok(offered(["aer", "--json", "cell", "allocate", "web", "--m"]).includes("--memory-max"));
    assert.deepEqual(offered(["aer", "--config", ""]), ["<files>"]);
    assert.deepEqual(offered(["aer", "cell", "allocate", "web", "--memory-max", ""]), [], "a value is not completed from the word list");
  });
});
