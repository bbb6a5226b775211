import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./daemon.js";

/**
 * Why the daemon cannot trace signals here, or undefined when the eBPF object is built (as
 * scripts/setup.sh does on every machine of ours): then signal tests must run, not skip.
 */
export function ebpfMissing(): string | undefined {
  const object = join(process.env["AURAE_EBPF_DIR"] ?? join(REPO, "build/ebpf"), "signal-generate.bpf.o");
  return existsSync(object) ? undefined : `${object} is not built (src/platform/ebpf/build.sh)`;
}
