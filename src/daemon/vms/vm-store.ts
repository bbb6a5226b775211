/**
 * The VM service's records in the daemon's state store (docs/state.md): one file per VM,
 * `<runtime>/state/vms/<id>.json`, written atomically (a temporary file renamed over it) at
 * each change a restarted daemon needs to know of: allocated, running (with what finds the
 * run again: the QEMU executable's name in the VM's cell and the forwarded port), stopped,
 * freed. The QEMU process itself is an executable of the cells domain, recorded and re-adopted
 * there; this record says which VM it is.
 */
import fs from "node:fs";
import path from "node:path";
import { ensureDir } from "../../platform/fs/ensure-dir.js";
import { writeFileAtomic } from "../cells/store.js";
import type { Accelerator } from "../../platform/qemu/argv.js";
import type { VmSpec } from "./spec.js";

export const VM_RECORD_FORMAT = 1;

export interface StoredVmRun {
  /** QEMU's executable name in the VM's cell (`qemu-<run>`) */
  executable: string;
  /** the host port forwarded to the guest's auraed */
  port: number;
  accel: Accelerator;
}

export interface StoredVm {
  format: typeof VM_RECORD_FORMAT;
  spec: VmSpec;
  /** how many runs were started (the next QEMU executable's number) */
  runs: number;
  /** present while the VM runs */
  run?: StoredVmRun;
}

export interface LoadedVms {
  vms: StoredVm[];
  /** ids (from file names) whose record could not be read: their cells are left alone */
  problems: Array<{ id: string; file: string; error: string }>;
}

export class VmStore {
  readonly dir: string;

  constructor(runtimeDir: string) {
    this.dir = path.join(runtimeDir, "state", "vms");
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  save(rec: StoredVm): void {
    ensureDir(this.dir, 0o700);
    writeFileAtomic(this.file(rec.spec.id), JSON.stringify(rec));
  }

  remove(id: string): void {
    fs.rmSync(this.file(id), { force: true });
    fs.rmSync(`${this.file(id)}.tmp`, { force: true });
  }

  load(): LoadedVms {
    const out: LoadedVms = { vms: [], problems: [] };
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const name of names.sort()) {
      const file = path.join(this.dir, name);
      if (name.endsWith(".json.tmp")) {
        fs.rmSync(file, { force: true }); // a write that never got renamed: the record before it stands
        continue;
      }
      if (!name.endsWith(".json")) continue;
      const id = name.slice(0, -".json".length);
      let value: unknown;
      try {
        value = JSON.parse(fs.readFileSync(file, "utf8"));
      } catch (err) {
        out.problems.push({ id, file, error: (err as Error).message });
        continue;
      }
      const problem = vmRecordProblem(value, id);
      if (problem) out.problems.push({ id, file, error: problem });
      else out.vms.push(value as StoredVm);
    }
    return out;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNat = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isStr = (v: unknown) => typeof v === "string";

/** What is wrong with a loaded record named `id`, or undefined. */
export function vmRecordProblem(v: unknown, id: string): string | undefined {
  if (!isObj(v)) return "not a JSON object";
  if (v.format !== VM_RECORD_FORMAT) return `format ${JSON.stringify(v.format)}, expected ${VM_RECORD_FORMAT}`;
  const s = v.spec;
  if (!isObj(s) || s.id !== id) return `spec.id does not match the file name '${id}'`;
  if (!isNat(s.memMiB) || !isNat(s.vcpus) || !isStr(s.kernel) || !isStr(s.initramfs)) return "spec: memMiB, vcpus, kernel or initramfs missing";
  if (!Array.isArray(s.kernelArgs) || !s.kernelArgs.every(isStr)) return "spec.kernelArgs is not a list of strings";
  if (!Array.isArray(s.drives) || !s.drives.every((d) => isObj(d) && isStr(d.imagePath) && isStr(d.vmPath) && isStr(d.fsType) && typeof d.readOnly === "boolean")) {
    return "spec.drives is malformed";
  }
  if (!isNat(v.runs)) return "runs is not a count";
  if (v.run !== undefined) {
    const r = v.run;
    if (!isObj(r) || !isStr(r.executable) || !isNat(r.port) || (r.accel !== "kvm" && r.accel !== "tcg")) return "run is malformed";
  }
  return undefined;
}
