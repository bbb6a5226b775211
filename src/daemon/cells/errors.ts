/**
 * Platform failures translated into AuraeError, once, with the action they interrupted:
 * `allocate cell 'a': cell.cpu.max 500 µs is outside 1000..17592186044415 µs`.
 */
import { AuraeError, failedPrecondition, internal, invalidArgument, unavailable } from "../errors.js";
import { CgroupFsError } from "../../platform/cgroups/cgroupfs.js";
import { CgroupLimitError } from "../../platform/cgroups/limits.js";

export function toAuraeError(action: string, err: unknown): AuraeError {
  if (err instanceof AuraeError) return err;
  if (err instanceof CgroupLimitError) {
    return err.reason === "invalid" ? invalidArgument(`${action}: cell.${err.message}`) : failedPrecondition(`${action}: cell.${err.message}`);
  }
  if (err instanceof CgroupFsError) {
    switch (err.code) {
      case "EEXIST":
        return failedPrecondition(`${action}: cgroup ${err.path} already exists (left behind by an earlier daemon?)`);
      case "EBUSY":
      case "ENOTEMPTY":
        return failedPrecondition(`${action}: cgroup ${err.path} is still in use`);
      case "ENOSPC":
      case "EAGAIN":
        return new AuraeError("resource_exhausted", `${action}: the kernel refused: ${err.message}`);
      case "EACCES":
      case "EPERM":
      case "EROFS":
        return unavailable(`${action}: no permission for cgroups: ${err.message}`);
      default:
        return internal(`${action}: ${err.message}`, err);
    }
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EAGAIN" || code === "ENOMEM" || code === "EMFILE" || code === "ENFILE" || code === "ENOSPC") {
    return new AuraeError("resource_exhausted", `${action}: ${(err as Error).message}`);
  }
  return internal(`${action}: ${err instanceof Error ? err.message : String(err)}`, err);
}
