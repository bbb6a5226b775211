/**
 * The cell a cgroup belongs to, from its path relative to the daemon's cgroup parent.
 *
 * Layout assumed (BEHAVIOUR.md section 2): cell `a/b` is the directory `<parent>/a/b`; a cell's own
 * processes sit in the leaf `<cell>/_` (and `<cell>/_/<executable>` on the tracking hierarchy),
 * see docs/cells.md. The cell is therefore the longest leading run of path components that are
 * cell labels; the first component may also be one of the daemon's own `_name` cells.
 */
const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
/** the daemon's own top-level cells (e.g. `_executables`); a bare `_` is a process leaf */
const DAEMON_CELL = /^_[a-zA-Z0-9][a-zA-Z0-9-]*$/;

export function cellOfCgroupPath(relative: string): string | undefined {
  const parts: string[] = [];
  for (const p of relative.split("/")) {
    if (!p) continue;
    if (!(LABEL.test(p) || (parts.length === 0 && DAEMON_CELL.test(p)))) break;
    parts.push(p);
  }
  return parts.length > 0 ? parts.join("/") : undefined;
}

/** true when `cell` is `ancestor` or one of its descendants */
export function isCellWithin(cell: string, ancestor: string): boolean {
  return cell === ancestor || cell.startsWith(ancestor + "/");
}
