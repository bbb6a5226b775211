/**
 * The environment an executable starts with: never the daemon's own.
 *
 *   PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
 *   HOME=<the uid's home in /etc/passwd, or "/" when it has none>
 *
 * Nothing else: the shell sets PWD itself.
 */
import fs from "node:fs";

export const EXECUTABLE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The /etc/passwd entry of `uid`, or undefined. */
export function lookupUid(uid: number, passwdPath = "/etc/passwd"): PasswdEntry | undefined {
  let text: string;
  try {
    text = fs.readFileSync(passwdPath, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || Number(f[2]) !== uid || f[2] === "") continue;
    return { name: f[0]!, uid, gid: Number(f[3]), home: f[5] || "/" };
  }
  return undefined;
}

export function executableEnvironment(uid: number): Record<string, string> {
  return { PATH: EXECUTABLE_PATH, HOME: lookupUid(uid)?.home ?? "/" };
}
