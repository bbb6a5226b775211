/**
 * The kernel's list syntax for cpus and memory nodes ("0-3,8,10-11"), as sorted, merged
 * ranges. Numbers are bounded (CPU_LIST_MAX) so that a hostile list cannot be expensive.
 */

export type Range = readonly [number, number];

/** Larger than any cpu or node number Linux supports (NR_CPUS max is 8192). */
export const CPU_LIST_MAX = 65535;

const ITEM = /^(\d{1,5})(?:-(\d{1,5}))?$/;

/** Parses a list; throws Error with a reason on bad syntax. The empty string is the empty set. */
export function parseCpuList(text: string): Range[] {
  const s = text.trim();
  if (s === "") return [];
  const ranges: [number, number][] = [];
  for (const item of s.split(",")) {
    const m = ITEM.exec(item);
    if (!m) throw new Error(`'${item}' is not a number or a range a-b`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > CPU_LIST_MAX || b > CPU_LIST_MAX) throw new Error(`'${item}' exceeds ${CPU_LIST_MAX}`);
    if (b < a) throw new Error(`range '${item}' is reversed`);
    ranges.push([a, b]);
  }
  return merge(ranges);
}

function merge(ranges: [number, number][]): Range[] {
  ranges.sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/** True when every member of `inner` is in `outer` (both merged, as parseCpuList returns). */
export function isSubset(inner: readonly Range[], outer: readonly Range[]): boolean {
  return inner.every(([a, b]) => outer.some(([c, d]) => c <= a && b <= d));
}

export function formatCpuList(ranges: readonly Range[]): string {
  return ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(",");
}
