/**
 * Summarises a .cpuprofile (from `npm run bench -- --profile DIR`): the functions with the most
 * self time, and the most inclusive time (self + callees), with their share of all samples;
 * with --callers NAME, the call stacks (5 frames up) in which the function NAME spent its self
 * time (a native frame such as a koffi call shows only as its type's name).
 * Usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [top=25] [filter]
 *        node --import tsx bench/profile-summary.ts FILE.cpuprofile --callers NAME [top=8]
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const args = process.argv.slice(2);
const callersOf = args[1] === "--callers" ? args[2] : undefined;
const [file, topArg, filter] = callersOf ? [args[0], args[3] ?? "8", undefined] : args;
if (!file || (args[1] === "--callers" && !callersOf)) throw new Error("usage: profile-summary FILE.cpuprofile [top] [filter] | FILE.cpuprofile --callers NAME [top]");
const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const top = Number(topArg ?? 25);
/** file URLs are shown relative to the repository this script is in */
const REPO_URL = `${pathToFileURL(dirname(import.meta.dirname)).href}/`;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map<number, number>();
p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const label = (n: Node) => {
  const url = n.callFrame.url.replace(REPO_URL, "").replace(/.*node_modules\//, "nm/");
  return `${n.callFrame.functionName || "(anonymous)"} ${url}:${n.callFrame.lineNumber + 1}`;
};
const self = new Map<string, number>();
const incl = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  self.set(label(n), (self.get(label(n)) ?? 0) + us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    incl.set(l, (incl.get(l) ?? 0) + us);
  }
}
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms sampled)`);
  [...m.entries()]
    .filter(([k]) => !filter || k.includes(filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .forEach(([k, us]) => console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`));
};
if (callersOf) {
  const stacks = new Map<string, number>();
  for (const [id, us] of selfUs) {
    if (byId.get(id)!.callFrame.functionName !== callersOf) continue;
    const frames: string[] = [];
    for (let cur = parent.get(id); cur !== undefined && frames.length < 5; cur = parent.get(cur)) frames.push(label(byId.get(cur)!));
    const key = frames.join(" < ");
    stacks.set(key, (stacks.get(key) ?? 0) + us);
  }
  show(`self time of ${callersOf} by caller`, stacks);
} else {
  show("self", self);
  show("inclusive", incl);
}
