import { Command } from "commander";
import {
  CellServiceClient,
  type CellServiceAllocateRequest,
  type CellServiceStartRequest,
  type DeepPartial,
} from "../../client/services/cells.js";
import { example, type Runner } from "../command.js";
import { drawCellTree } from "../tree.js";
import { bytesArg, intArg } from "../units.js";

export interface AllocateOptions {
  cpuWeight?: number;
  cpuMax?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memoryMin?: number;
  memoryLow?: number;
  memoryHigh?: number;
  memoryMax?: number;
  pidsMax?: number;
  isolateProcess?: boolean;
  isolateNetwork?: boolean;
}

/** The Allocate request for `aer cell allocate NAME [options]`: controllers only when a flag of theirs is given. */
export function allocateRequest(name: string, o: AllocateOptions): DeepPartial<CellServiceAllocateRequest> {
  const some = (...v: unknown[]) => v.some((x) => x !== undefined);
  return {
    cell: {
      name,
      ...(some(o.cpuWeight, o.cpuMax, o.cpuPeriod) ? { cpu: { weight: o.cpuWeight, max: o.cpuMax, period: o.cpuPeriod } } : {}),
      ...(some(o.cpusetCpus, o.cpusetMems) ? { cpuset: { cpus: o.cpusetCpus, mems: o.cpusetMems } } : {}),
      ...(some(o.memoryMin, o.memoryLow, o.memoryHigh, o.memoryMax)
        ? { memory: { min: o.memoryMin, low: o.memoryLow, high: o.memoryHigh, max: o.memoryMax } }
        : {}),
      ...(o.pidsMax !== undefined ? { pids: { max: o.pidsMax } } : {}),
      isolateProcess: o.isolateProcess ?? false,
      isolateNetwork: o.isolateNetwork ?? false,
    },
  };
}

export interface StartOptions {
  command: string;
  description?: string;
  uid?: number;
  gid?: number;
}

/** The Start request for `aer cell start CELL EXE --command ...`. */
export function startRequest(cell: string, exe: string, o: StartOptions): DeepPartial<CellServiceStartRequest> {
  return {
    cellName: cell,
    executable: { name: exe, command: o.command, description: o.description ?? "" },
    ...(o.uid !== undefined ? { uid: o.uid } : {}),
    ...(o.gid !== undefined ? { gid: o.gid } : {}),
  };
}

export function cellCommand(run: Runner): Command {
  const cell = new Command("cell").description("cells: allocate and free cgroups (with optional namespaces), start and stop executables in them");

  example(
    cell
      .command("allocate")
      .description("allocate a cell; a nested cell (a/b) needs its parent allocated")
      .argument("<name>", "cell name: DNS labels joined by '/', e.g. web or web/api")
      .option("--cpu-weight <n>", "cpu.weight, 1..10000", intArg(1, 10000))
      .option("--cpu-max <us>", "CPU time in microseconds per period (quota)", intArg(0))
      .option("--cpu-period <us>", "period in microseconds (default 100000)", intArg(1))
      .option("--cpuset-cpus <list>", "CPUs, list syntax: 0-3,8")
      .option("--cpuset-mems <list>", "memory nodes, list syntax: 0")
      .option("--memory-min <size>", "memory.min; bytes or 64K/64M/1G/1T (1024-based)", bytesArg)
      .option("--memory-low <size>", "memory.low; bytes or a size suffix", bytesArg)
      .option("--memory-high <size>", "memory.high; bytes or a size suffix", bytesArg)
      .option("--memory-max <size>", "memory.max; bytes or a size suffix", bytesArg)
      .option("--pids-max <n>", "most processes in the cell (extension)", intArg(1))
      .option("--isolate-process", "own pid, mount, uts and ipc namespaces")
      .option("--isolate-network", "own network namespace (only lo)")
      .action(
        run<AllocateOptions>(async (ctx, [name], o) => {
          const res = await new CellServiceClient(ctx.client).allocate(allocateRequest(name!, o), ctx.call);
          return { data: res, human: `allocated cell '${res.cellName}' (cgroup ${res.cgroupV2 ? "v2" : "v1"})` };
        }),
      ),
    "aer cell allocate web --cpu-max 50000 --memory-max 64M --pids-max 100",
    "aer cell allocate web/api --isolate-process",
  );

  example(
    cell
      .command("free")
      .description("free a cell: stop its executables, free its children, remove its cgroups")
      .argument("<name>", "cell name")
      .action(
        run(async (ctx, [name]) => {
          await new CellServiceClient(ctx.client).free({ cellName: name! }, ctx.call);
          return { data: {}, human: `freed cell '${name}'` };
        }),
      ),
    "aer cell free web",
  );

  example(
    cell
      .command("start")
      .description("start an executable in a cell; the command runs with sh -c")
      .argument("<cell>", "cell name")
      .argument("<executable>", "executable name, unique in the cell")
      .requiredOption("--command <command>", "shell command line, e.g. \"sleep 42\"")
      .option("--description <text>", "free text kept with the executable")
      .option("--uid <n>", "user id to run as", intArg(0, 0xffffffff))
      .option("--gid <n>", "group id to run as", intArg(0, 0xffffffff))
      .action(
        run<StartOptions>(async (ctx, [cellName, exe], o) => {
          const res = await new CellServiceClient(ctx.client).start(startRequest(cellName!, exe!, o), ctx.call);
          const host = res.hostPid && res.hostPid !== res.pid ? `, host pid ${res.hostPid}` : "";
          return { data: res, human: `started '${exe}' in cell '${cellName}': pid ${res.pid}${host} (uid ${res.uid}, gid ${res.gid})` };
        }),
      ),
    'aer cell start web srv --command "python3 -m http.server 8000"',
    'aer cell start web job --command "echo hi 1>&2" --uid 1000 --gid 1000',
  );

  example(
    cell
      .command("stop")
      .description("stop an executable (SIGTERM, grace period, SIGKILL) and release its name")
      .argument("<cell>", "cell name")
      .argument("<executable>", "executable name")
      .action(
        run(async (ctx, [cellName, exe]) => {
          await new CellServiceClient(ctx.client).stop({ cellName: cellName!, executableName: exe! }, ctx.call);
          return { data: {}, human: `stopped '${exe}' in cell '${cellName}'` };
        }),
      ),
    "aer cell stop web srv",
  );

  example(
    cell
      .command("list")
      .alias("ls")
      .description("draw the cell tree with each cell's limits and executables")
      .action(
        run(async (ctx) => {
          const res = await new CellServiceClient(ctx.client).list({}, ctx.call);
          return { data: res, human: drawCellTree(res.cells) };
        }),
      ),
    "aer cell list",
    "aer cell list --json",
  );

  return example(cell, "aer cell allocate web --cpu-max 50000", 'aer cell start web srv --command "sleep 60"', "aer cell list");
}

