/** Reading a process's credentials from /proc/<pid>/status. */
import fs from "node:fs";

export interface ProcessIds {
  /** real uid */
  uid: number;
  /** real gid */
  gid: number;
  /** supplementary groups */
  groups: number[];
}

/** The ids of a live process, or undefined when it is gone. */
export function readProcessIds(pid: number): ProcessIds | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return undefined;
  }
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\t?(.*)$`, "m").exec(text);
    return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
  };
  const uid = field("Uid")[0];
  const gid = field("Gid")[0];
  if (uid === undefined || gid === undefined) return undefined;
  return { uid, gid, groups: field("Groups") };
}
