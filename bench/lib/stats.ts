/** Percentiles and timing helpers for benchmarks. All durations in milliseconds. */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  mean: number;
  min: number;
}

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, p50: at(0.5), p90: at(0.9), mean: s.reduce((a, b) => a + b, 0) / s.length, min: s[0]! };
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Runs `fn` `warmup` times unmeasured, then `runs` times measured (sequentially). */
export async function measure(runs: number, fn: () => Promise<unknown>, warmup = Math.min(20, runs)): Promise<Summary> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = nowMs();
    await fn();
    samples.push(nowMs() - t);
  }
  return summarize(samples);
}

/**
 * Measures product and floor interleaved in rounds, so drift on a shared machine hits both alike.
 */
export async function measurePair(
  runs: number,
  product: () => Promise<unknown>,
  floor: () => Promise<unknown>,
  warmup = Math.min(20, runs),
): Promise<{ product: Summary; floor: Summary }> {
  for (let i = 0; i < warmup; i++) {
    await product();
    await floor();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = nowMs();
    await product();
    a.push(nowMs() - t);
    t = nowMs();
    await floor();
    b.push(nowMs() - t);
  }
  return { product: summarize(a), floor: summarize(b) };
}

export const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

/**
 * One contender of an interleaved measurement: `run` is timed, `after` (cleanup) is not. With
 * `selfTimed`, `run` resolves with its own duration in ms (measured where the work happens,
 * e.g. in the floor server) and that is the sample.
 */
export interface Contender {
  run: () => Promise<unknown>;
  after?: () => Promise<unknown>;
  selfTimed?: boolean;
}

/**
 * Measures several contenders interleaved in rounds (each round runs each once), so drift on a
 * shared machine hits all alike. Each round runs them in a new random order, so that no
 * contender always follows the same one (what ran just before can matter: e.g. a Start is
 * slower after a quiet spell without cgroup joins, see floors/cgroup-join.ts). Returns one
 * summary per contender, in the order given.
 */
export async function measureRounds(runs: number, contenders: Contender[], warmup = Math.min(10, runs)): Promise<Summary[]> {
  const samples: number[][] = contenders.map(() => []);
  const order = contenders.map((_, k) => k);
  for (let i = 0; i < warmup + runs; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const r = Math.floor(Math.random() * (j + 1));
      [order[j], order[r]] = [order[r]!, order[j]!];
    }
    for (const k of order) {
      const c = contenders[k]!;
      const t = nowMs();
      const r = await c.run();
      const dt = c.selfTimed ? (r as number) : nowMs() - t;
      if (i >= warmup) samples[k]!.push(dt);
      if (c.after) await c.after();
    }
  }
  return samples.map(summarize);
}

/** Runs `fn(i)` for i in [0, n) with at most `concurrency` in flight; rejects on the first error. */
export async function pool(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}
