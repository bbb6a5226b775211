import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * The shared libraries an executable loads, as absolute paths (the dynamic loader included),
 * from `ldd`. A static executable has none.
 */
export async function sharedLibraries(executable: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run("ldd", [executable], { timeout: 30_000 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    const text = `${e.stdout ?? ""}${e.stderr ?? ""}`;
    if (/not a dynamic executable|statically linked/.test(text)) return [];
    throw new Error(`ldd ${executable} failed: ${text.trim() || String(err)}`);
  }
  if (/statically linked/.test(stdout)) return [];
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    if (/=>\s*not found/.test(line)) throw new Error(`ldd ${executable}: ${line.trim()}`);
    const m = /=>\s*(\/\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}
