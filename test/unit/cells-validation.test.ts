import { test } from "node:test";
import assert from "node:assert/strict";
import { Cell, CellServiceStartRequest } from "../../src/api/aurae/cells/v0/cells.js";
import { AuraeError } from "../../src/daemon/errors.js";
import { cellNameProblem, executableNameProblem } from "../../src/daemon/cells/names.js";
import { parseAllocateRequest, parseFreeRequest, parseStartRequest, parseStopRequest } from "../../src/daemon/cells/validation.js";

const invalid = (pattern: RegExp) => (e: unknown) => e instanceof AuraeError && e.kind === "invalid_argument" && pattern.test(e.message);

test("cell names are paths of DNS labels", () => {
  for (const ok of ["a", "a/b/c", "ae-1", "A9", "x".repeat(63), "a-b/c-d"]) assert.equal(cellNameProblem(ok), undefined, ok);
  for (const bad of ["", "ae-no_underscore", "parent/bad_child", "a//b", "/a", "a/", "-a", "a-", "a.b", "x".repeat(64), "_executables", "a b"]) {
    assert.notEqual(cellNameProblem(bad), undefined, bad);
  }
  assert.equal(cellNameProblem("_executables", { allowReserved: true }), undefined);
  assert.notEqual(cellNameProblem("_", { allowReserved: true }), undefined);
  assert.notEqual(cellNameProblem(Array(128).fill("a").join("/")), undefined, "longer than 253");
});

test("executable names are safe directory names", () => {
  for (const ok of ["sleeper", "ae_exec-1", "a.b", "_x"]) assert.equal(executableNameProblem(ok), undefined, ok);
  for (const bad of ["", ".", "..", ".hidden", "a/b", "a b", "x".repeat(256)]) assert.notEqual(executableNameProblem(bad), undefined, bad);
});

test("a bad cell name is rejected whole with INVALID_ARGUMENT naming cell.name", () => {
  assert.throws(() => parseAllocateRequest({ cell: Cell.fromPartial({ name: "parent/bad_child" }) }), invalid(/^allocate cell: cell.name 'parent\/bad_child' label 'bad_child' contains '_'/));
  assert.throws(() => parseAllocateRequest({ cell: Cell.fromPartial({ name: "a//b" }) }), invalid(/cell.name 'a\/\/b' has an empty label/));
  assert.throws(() => parseAllocateRequest({ cell: Cell.fromPartial({ name: "x".repeat(64) }) }), invalid(/longer than 63/));
  assert.throws(() => parseAllocateRequest({ cell: undefined }), invalid(/cell is required/));
});

test("limit values the kernel would refuse are rejected naming the field", () => {
  const bad = [
    [{ cpu: { weight: 0 } }, /cell.cpu.weight 0 is outside 1..10000/],
    [{ cpu: { max: 999 } }, /cell.cpu.max 999 µs/],
    [{ cpu: { period: 2_000_000 } }, /cell.cpu.period/],
    [{ cpuset: { cpus: "0-" } }, /cell.cpuset.cpus '0-'/],
    [{ cpuset: { mems: "" } }, /cell.cpuset.mems must not be empty/],
    [{ memory: { max: -5 } }, /cell.memory.max -5 bytes/],
    [{ pids: { max: 5_000_000 } }, /cell.pids.max/],
  ] as const;
  for (const [fields, pattern] of bad) {
    assert.throws(() => parseAllocateRequest({ cell: Cell.fromPartial({ name: "c", ...fields }) }), invalid(pattern), String(pattern));
  }
});

test("a valid request becomes a spec that keeps what the client set", () => {
  const spec = parseAllocateRequest({ cell: Cell.fromPartial({ name: "a/b", cpu: { weight: 5, max: 2000 }, memory: { max: 1024 }, pids: { max: 3 } }) });
  assert.deepEqual(spec, {
    name: "a/b",
    limits: { cpu: { weight: 5, maxUs: 2000, periodUs: undefined }, memory: { minBytes: undefined, lowBytes: undefined, highBytes: undefined, maxBytes: 1024 }, pids: { max: 3 } },
    isolateProcess: false,
    isolateNetwork: false,
  });
});

test("start requires an executable, a name and a non-empty command, naming the field", () => {
  const start = (p: Partial<CellServiceStartRequest>) => parseStartRequest(CellServiceStartRequest.fromPartial(p));
  assert.throws(() => start({ cellName: "a" }), invalid(/in cell 'a': executable is required/));
  assert.throws(() => start({ executable: { name: "", command: "true", description: "" } }), invalid(/executable.name '' must not be empty/));
  assert.throws(() => start({ executable: { name: "x", command: "  ", description: "" } }), invalid(/start executable 'x': executable.command must not be empty/));
  assert.throws(() => start({ cellName: "bad_cell", executable: { name: "x", command: "true", description: "" } }), invalid(/cell_name 'bad_cell'/));
  assert.throws(() => start({ executable: { name: "x", command: "true", description: "" }, uid: 4294967295 }), invalid(/uid 4294967295/));
  assert.deepEqual(start({ cellName: "", executable: { name: "x", command: "true", description: "" } }).cellName, undefined);
});

test("stop and free validate their names", () => {
  assert.throws(() => parseStopRequest({ cellName: "a", executableName: "" }), invalid(/executable_name '' must not be empty/));
  assert.throws(() => parseFreeRequest({ cellName: "a/" }), invalid(/^free cell: cell_name 'a\/'/));
  assert.equal(parseFreeRequest({ cellName: "a/b" }), "a/b");
});
