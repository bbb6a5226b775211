import { InvalidArgumentError } from "commander";

const SUFFIX: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  ki: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a memory size: bytes (`67108864`) or a binary suffix, as cgroupfs reads them:
 * `64K`, `64M`, `1G`, `1T` (also `Ki`/`KiB`..., case-insensitive), fractions allowed (`1.5G`).
 * Always 1024-based.
 *
 * @example parseBytes("64M") // 67108864
 */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const mult = m ? SUFFIX[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) {
    throw new InvalidArgumentError(`'${text}' is not a size (use bytes or a suffix K, M, G, T: 64M)`);
  }
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${text}' is too large`);
  return n;
}

/** Formats bytes with the largest exact binary suffix (`67108864` -> `64M`). */
export function formatBytes(n: number): string {
  for (const [s, m] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const) {
    if (n >= m && n % m === 0) return `${n / m}${s}`;
  }
  return String(n);
}

/** A commander parser for a non-negative integer within [min, max]. */
export function intArg(min = 0, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text: string) => {
    if (!/^\s*-?\d+\s*$/.test(text)) throw new InvalidArgumentError(`'${text}' is not an integer`);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`'${text}' must be ${min}..${max}`);
    return n;
  };
}

/** A commander parser for memory sizes. */
export function bytesArg(text: string): number {
  return parseBytes(text);
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
