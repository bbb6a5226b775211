/**
 * Re-adoption at start: rebuilds the cells domain from the state store after a restart (a
 * crash, `kill -9`, or an upgrade with --keep-workloads), so nothing that still runs is lost
 * and nothing stale is reported as running (docs/state.md).
 *
 * Rules, in order:
 * 1. A record that cannot be read (corrupt, truncated, another format) is reported, and
 *    neither it nor the cell or executable its path names is touched: the cell's cgroups (with
 *    everything below them) or the executable's leaf stay as they are.
 * 2. Each recorded cell is adopted, parents first; its cgroups are re-created (empty, with its
 *    limits) when they are gone. A cell whose parent was not adopted is freed like a leftover.
 * 3. Each recorded executable of an adopted cell is adopted: running while its program (same
 *    pid and start time, same boot) runs in its leaf; otherwise ended, with the exit status its
 *    shim recorded, or unknown when the shim died first. A pid now used by another process is
 *    never adopted or signalled.
 * 4. An isolated cell whose namespace holder is gone gets a new one (its processes died with
 *    the old namespaces).
 * 5. Internal cells of other services (VMs, `_vms/...`) are adopted like any cell, with their
 *    executables; the service re-adopts what it recorded and frees the rest (vm-domain.ts).
 * 6. Leftovers: every cgroup under the daemon's parent that no record explains is a leftover.
 *    Its processes are killed, its directories removed, and both are logged. When an unreadable
 *    record's path does not say what it names (a long name stored under a hash), leftovers that
 *    hold processes are left alone instead: they may be that record's.
 */
import path from "node:path";
import { identify, isAlive } from "../../platform/process/identity.js";
import { holderInitPid } from "../../platform/namespaces/holder.js";
import { bootId } from "../../platform/process/identity.js";
import type { Logger } from "../logger.js";
import { CellDomain, HOLDER_NAME, type CellRecord } from "./cell-domain.js";
import { PROCESS_LEAF, SHIMS_CGROUP } from "../../platform/cgroups/driver.js";
import type { LoadedState } from "./store.js";

export interface AdoptionReport {
  cells: number;
  running: number;
  ended: number;
  problems: number;
  leftovers: string[];
}

const within = (name: string, roots: Set<string>) => {
  for (const r of roots) if (name === r || name.startsWith(`${r}/`)) return true;
  return false;
};

export async function adopt(domain: CellDomain, state: LoadedState, logger?: Logger): Promise<AdoptionReport> {
  const report: AdoptionReport = { cells: 0, running: 0, ended: 0, problems: state.problems.length, leftovers: [] };
  const { driver, store } = domain;
  const untouchableCells = new Set<string>();
  const untouchableLeaves = new Set<string>();
  for (const p of state.problems) {
    const what = p.executableName ? `executable '${p.executableName}' in cell '${p.cellName}'` : p.cellName ? `cell '${p.cellName}'` : "nothing it names";
    logger?.error(`state: ${p.file} ${p.reason}; leaving it and ${what} untouched`);
    if (p.cellName && p.executableName) untouchableLeaves.add(`${p.cellName}/${PROCESS_LEAF}/${p.executableName}`);
    else if (p.cellName) untouchableCells.add(p.cellName);
  }

  // 2. cells, parents first
  for (const c of state.cells) {
    if (within(c.name, untouchableCells)) {
      untouchableCells.add(c.name);
      continue;
    }
    const parentName = c.name.includes("/") ? c.name.slice(0, c.name.lastIndexOf("/")) : "";
    const parent = parentName ? domain.cells.get(parentName) : undefined;
    if (parentName && !parent) {
      logger?.warn(`state: cell '${c.name}' has no adopted parent '${parentName}': freeing it as a leftover`);
      store.removeCell(c.name);
      continue;
    }
    const limits = c.limits;
    try {
      if (!driver.cellExists(c.name)) {
        driver.createCell(c.name, limits);
        logger?.warn(`state: cell '${c.name}' had lost its cgroups: re-created them`);
      }
    } catch (err) {
      logger?.error(`state: cannot re-create the cgroups of cell '${c.name}': ${(err as Error).message}; dropping its record`);
      store.removeCell(c.name);
      continue;
    }
    const record: CellRecord = {
      name: c.name,
      spec: { name: c.name, limits, isolateProcess: c.isolateProcess, isolateNetwork: c.isolateNetwork },
      internal: c.internal,
      parent,
      children: new Map(),
      executables: new Map(),
      starting: new Set(),
      pending: new Set(),
      processLeaf: driver.cellDirs(c.name).some((d) => driver.hasDir(path.join(d, PROCESS_LEAF))),
      ready: Promise.resolve(),
      freeing: undefined,
    };
    domain.cells.set(c.name, record);
    parent?.children.set(c.name, record);
    report.cells++;
  }

  // 3. executables
  const boot = bootId();
  for (const dir of state.strays) {
    logger?.warn(`state: ${dir} has no record (the daemon stopped while starting it): removing it`);
    store.removeExecutable(dir);
  }
  for (const { record: rec, dir } of state.executables) {
    const cell = domain.cells.get(rec.cellName);
    if (!cell) {
      if (within(rec.cellName, untouchableCells)) continue;
      logger?.warn(`state: executable '${rec.name}' belongs to cell '${rec.cellName}', which is not adopted: removing its record`);
      store.removeExecutable(dir);
      continue;
    }
    if (rec.bootId !== boot) {
      logger?.info(`state: executable '${rec.name}' in cell '${rec.cellName}' ran in an earlier boot: removing its record`);
      store.removeExecutable(dir);
      continue;
    }
    let exe;
    try {
      exe = domain.executableFromRecord(rec, dir);
    } catch (err) {
      // e.g. its output file is missing: report it and leave it and its leaf alone
      logger?.error(`state: ${dir} cannot be adopted: ${(err as Error).message}; leaving it and executable '${rec.name}' in cell '${rec.cellName}' untouched`);
      untouchableLeaves.add(`${rec.cellName}/${PROCESS_LEAF}/${rec.name}`);
      report.problems++;
      continue;
    }
    if (rec.internal && rec.name === HOLDER_NAME) {
      cell.holder = exe;
      const initPid = isAlive(exe.identity) ? holderInitPid(exe.hostPid, { process: cell.spec.isolateProcess, network: cell.spec.isolateNetwork }) : undefined;
      cell.nsInit = initPid === undefined ? undefined : identify(initPid);
      if (cell.nsInit) domain.watchHolder(cell, exe);
      continue;
    }
    cell.executables.set(rec.name, exe);
    if (exe.state === "running") report.running++;
    else report.ended++;
    logger?.debug("state: adopted executable", { cell: rec.cellName, name: rec.name, pid: rec.pid, state: exe.state });
  }

  // 4. isolated cells need a live holder
  for (const cell of domain.cells.values()) {
    if (!cell.spec.isolateProcess && !cell.spec.isolateNetwork) continue;
    if (cell.holder && cell.nsInit && isAlive(cell.holder.identity)) continue;
    if (cell.holder) {
      cell.holder.release();
      store.removeExecutable(cell.holder.dir);
      cell.holder = undefined;
    }
    // a holder the earlier daemon started but did not record still sits in the leaf
    try {
      const killed = await driver.removeLeftover(`${cell.name}/${PROCESS_LEAF}/${HOLDER_NAME}`);
      if (killed.length) logger?.warn(`state: cell '${cell.name}' had an unrecorded namespace holder: killed pids ${killed.join(", ")}`);
    } catch (err) {
      logger?.error(`state: cell '${cell.name}': cannot clear its old namespace holder: ${(err as Error).message}`);
    }
    try {
      await domain.startHolder(cell, `re-adopt cell '${cell.name}'`);
      logger?.warn(`state: cell '${cell.name}' had lost its namespaces: started a new namespace holder`);
    } catch (err) {
      logger?.error(`state: cell '${cell.name}': ${(err as Error).message}`);
    }
  }

  // 5. other services' internal cells: kept for their service (see the rule above)

  // 6. leftovers (when an unreadable record does not say what it names, only empty ones: it may be theirs)
  const careful = state.problems.some((p) => !p.cellName);
  const explained = new Set<string>([SHIMS_CGROUP]);
  for (const c of domain.cells.values()) {
    explained.add(c.name);
    explained.add(`${c.name}/${PROCESS_LEAF}`);
    for (const e of c.executables.keys()) explained.add(`${c.name}/${PROCESS_LEAF}/${e}`);
    if (c.holder) explained.add(`${c.name}/${PROCESS_LEAF}/${HOLDER_NAME}`);
  }
  const removed = new Set<string>();
  for (const rel of driver.subtree()) {
    if (explained.has(rel) || untouchableLeaves.has(rel) || within(rel, untouchableCells) || within(rel, removed)) continue;
    if (careful && driver.populated(rel)) {
      logger?.warn(`state: cgroup '${rel}' has no record but holds processes, and an unreadable record may name it: leaving it`);
      removed.add(rel);
      continue;
    }
    try {
      const pids = await driver.removeLeftover(rel);
      removed.add(rel);
      report.leftovers.push(rel);
      logger?.warn(`state: cgroup '${rel}' had no record: removed it${pids.length ? `, killed pids ${pids.join(", ")}` : ""}`);
    } catch (err) {
      logger?.error(`state: failed to remove leftover cgroup '${rel}': ${(err as Error).message}`);
    }
  }
  return report;
}
