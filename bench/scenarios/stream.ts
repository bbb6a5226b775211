import { spawn } from "node:child_process";
import { cpuMs } from "../lib/proc.js";
import type { Row } from "../lib/report.js";
import { nowMs, summarize } from "../lib/stats.js";
import { cellsClient, isSkippable, observeClient, skipRow, statusName, uniqueName } from "../lib/wire.js";
import type { BenchContext } from "../run.js";

const MAIN = "Output streaming: 100-byte lines to one GetSubProcessStream reader vs a pipe into Node";
const CPU = "Daemon CPU per MB streamed vs the pipe reader's CPU per MB";
/** lines per response in the batched form (extension field max_lines_per_message) */
const PER_MESSAGE = 1024;

/** 99 characters and a newline: 100-byte lines. */
const LINE = "x".repeat(99);

/**
 * An executable writes `bytes` of 100-byte lines (`yes | head -c`), read by one
 * GetSubProcessStream reader; floor: the same command spawned from Node with stdout piped into a
 * Node reader counting bytes and lines. Both are timed from the first byte received to the end of
 * the stream (the command first sleeps 100 ms so that the reader is attached before output
 * starts). The daemon's CPU (utime+stime from /proc) is read before Start and after the end.
 * MB = 10^6 bytes.
 */
export async function run(b: BenchContext): Promise<Row[]> {
  const d = b.daemon;
  const bytes = b.quick ? 10_000_000 : 200_000_000;
  const runs = b.quick ? 2 : 3;
  const command = `sleep 0.1; yes ${LINE} | head -c ${bytes}`;
  const cells = cellsClient(d);
  const observe = observeClient(d);
  const cell = uniqueName("bench-stream");
  try {
    await cells.allocate({ name: cell });
  } catch (err) {
    cells.close();
    observe.close();
    if (!isSkippable(err)) throw err;
    return [skipRow(MAIN, "MB/s", statusName(err)), skipRow(CPU, "ms/MB", statusName(err))];
  }
  const product: number[] = [];
  const floor: number[] = [];
  const productCpu: number[] = [];
  const floorCpu: number[] = [];
  const clientCpu: number[] = [];
  const wallMs: number[] = [];
  let delivered = 0;
  let dropped = 0;
  try {
    for (let i = 0; i < runs; i++) {
      // product
      const name = uniqueName("stream");
      const cpu0 = cpuMs(d.process.pid!);
      const client0 = process.cpuUsage();
      const started = await cells.start(cell, name, command);
      const timeoutMs = Math.max(60_000, bytes / 1000); // at least 1 MB/s
      const r = await withTimeout(observe.drain(started.pid, cell, "stdout", Number(process.env.BENCH_PER_MESSAGE ?? 0)), timeoutMs, `stream of ${bytes} bytes did not end within ${timeoutMs} ms`);
      const cpu1 = cpuMs(d.process.pid!);
      const client = process.cpuUsage(client0);
      clientCpu.push((client.user + client.system) / 1000 / (bytes / 1e6));
      wallMs.push(r.endAt - r.firstAt);
      await cells.stop(cell, name).catch(() => undefined);
      const mb = r.bytes / 1e6;
      product.push(mb / ((r.endAt - r.firstAt) / 1000));
      productCpu.push((cpu1 - cpu0) / (bytes / 1e6));
      delivered += r.bytes;
      dropped += r.dropped;
      // floor
      const f = await pipeFloor(command);
      floor.push(f.bytes / 1e6 / ((f.endAt - f.firstAt) / 1000));
      floorCpu.push(f.cpuMs / (bytes / 1e6));
      if (f.bytes !== bytes) throw new Error(`pipe floor read ${f.bytes} bytes, expected ${bytes}`);
    }
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return [skipRow(MAIN, "MB/s", statusName(err)), skipRow(CPU, "ms/MB", statusName(err))];
  } finally {
    await cells.free(cell).catch(() => undefined);
    cells.close();
    observe.close();
  }
  const ps = summarize(product);
  const fs = summarize(floor);
  const expected = bytes * runs;
  const note = `${runs} runs of ${bytes / 1e6} MB; delivered ${((100 * delivered) / expected).toFixed(1)}%, dropped ${dropped} lines (reported by the daemon)`;
  return [
    { scenario: MAIN, product: ps, floor: fs, unit: "MB/s", aim: ">= 0.5x", met: ps.p50 / fs.p50 >= 0.5 && delivered === expected, note, extra: { bytes, runs, delivered, dropped } },
    {
      scenario: CPU,
      product: summarize(productCpu),
      floor: summarize(floorCpu),
      unit: "ms/MB",
      note: `per MB the executable wrote (the daemon reads all of it); floor: CPU of this Node process reading the pipe; the stream's reader (this process) used ${summarize(clientCpu).p50.toFixed(1)} ms/MB; daemon busy ${((100 * summarize(productCpu).p50 * (bytes / 1e6)) / summarize(wallMs).p50).toFixed(0)}% of the stream's wall time`,
    },
  ];
}

export async function pipeFloor(command: string): Promise<{ bytes: number; lines: number; firstAt: number; endAt: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const c = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "ignore"] });
  let bytes = 0;
  let lines = 0;
  let firstAt = 0;
  c.stdout!.on("data", (chunk: Buffer) => {
    if (bytes === 0) firstAt = nowMs();
    bytes += chunk.length;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
  });
  await new Promise<void>((res, rej) => {
    c.once("error", rej);
    c.stdout!.once("end", res);
  });
  const endAt = nowMs();
  const cpu = process.cpuUsage(cpu0);
  return { bytes, lines, firstAt, endAt, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, rej) => {
      timer = setTimeout(() => rej(new Error(message)), ms);
    }),
  ]);
}
