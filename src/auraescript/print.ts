import { format } from "node:util";

function show(value: unknown): string {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return JSON.stringify(value, null, 2);
  return typeof value === "string" ? value : format("%O", value);
}

/**
 * Prints values on one line to stdout, objects as indented JSON (what Aurae's `print` does).
 *
 * @example print("Allocated:", allocated)
 */
export function print(...values: unknown[]): void {
  process.stdout.write(values.map(show).join(" ") + "\n");
}
