/**
 * The cell a cgroup belongs to, from its path relative to the daemon's cgroup parent.
 *
 * Layout assumed (BEHAVIOUR.md section 2): cell `a/b` is the directory `<parent>/a/b`; a cell's own
 * processes may sit in a leaf whose name is not a cell label (such as `_`). The cell is therefore
 * the longest leading run of path components that are valid cell labels.
 */
const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

export function cellOfCgroupPath(relative: string): string | undefined {
  const parts: string[] = [];
  for (const p of relative.split("/")) {
    if (!p) continue;
    if (!LABEL.test(p)) break;
    parts.push(p);
  }
  return parts.length > 0 ? parts.join("/") : undefined;
}

/** true when `cell` is `ancestor` or one of its descendants */
export function isCellWithin(cell: string, ancestor: string): boolean {
  return cell === ancestor || cell.startsWith(ancestor + "/");
}
