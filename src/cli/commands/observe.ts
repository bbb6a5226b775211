import { Command } from "commander";
import {
  LogChannelType,
  ObserveServiceClient,
  WorkloadType,
  type GetPosixSignalsStreamRequest,
  type GetSubProcessStreamRequest,
  type LogItem,
  type OutputChunk,
} from "../../client/services/observe.js";
import { constants } from "node:os";
import { example, type Runner } from "../command.js";
import type { Result } from "../render.js";
import { intArg } from "../units.js";

const SIGNAL_NAMES: Record<number, string> = Object.fromEntries(Object.entries(constants.signals).map(([k, v]) => [v, k]));

/** A signal number as its name (`15` -> `SIGTERM`), or the number when unknown. */
export function signalName(n: number): string {
  return SIGNAL_NAMES[n] ?? String(n);
}

/** The request for `aer observe output PID [--stderr] [--cell NAME]`. */
export function outputRequest(pid: number, o: { stderr?: boolean; cell?: string }): Partial<GetSubProcessStreamRequest> {
  return {
    processId: pid,
    channelType: o.stderr ? LogChannelType.LOG_CHANNEL_TYPE_STDERR : LogChannelType.LOG_CHANNEL_TYPE_STDOUT,
    ...(o.cell !== undefined ? { cellName: o.cell } : {}),
    // several lines per message (our extension; a daemon without it sends one per message)
    maxLinesPerMessage: OUTPUT_LINES_PER_MESSAGE,
  };
}

/** Lines per response `aer observe output` asks for. */
export const OUTPUT_LINES_PER_MESSAGE = 1024;

/** The request for `aer observe signals [--cell NAME]`. */
export function signalsRequest(o: { cell?: string }): Partial<GetPosixSignalsStreamRequest> {
  return o.cell !== undefined ? { workload: { workloadType: WorkloadType.WORKLOAD_TYPE_CELL, id: o.cell } } : {};
}

/** A log item for humans: the line, with a note when lines were dropped before it. */
export function logLine(item: LogItem | undefined): string {
  if (!item) return "";
  const dropped = item.droppedBefore ? `[${item.droppedBefore} line(s) dropped]\n` : "";
  return dropped + item.line;
}

/** Each LogItem of a log stream, from `item` (one per response) or `items` (our batches). */
async function* items<T extends { item?: LogItem | undefined; items?: LogItem[] }>(stream: AsyncIterable<T>): AsyncGenerator<Result> {
  for await (const res of stream) {
    if (res.item) yield { data: res.item, human: logLine(res.item) };
    for (const item of res.items ?? []) yield { data: item, human: logLine(item) };
  }
}

/** An executable's output as it was written, with a note where the daemon dropped lines. */
async function* chunks(stream: AsyncIterable<OutputChunk>): AsyncGenerator<Result> {
  for await (const c of stream) {
    const raw = c.droppedBefore > 0 ? Buffer.concat([Buffer.from(`[${c.droppedBefore} line(s) dropped]\n`), c.text]) : c.text;
    yield { data: c, human: "", raw };
  }
}

export function observeCommand(run: Runner): Command {
  const observe = new Command("observe").description("stream the daemon's log, executables' output and signals (until the stream ends or Ctrl-C)");

  example(
    observe
      .command("daemon-logs")
      .description("the daemon's log records: a recent backlog first, then live")
      .action(run(async (ctx) => items(new ObserveServiceClient(ctx.client).getAuraeDaemonLogStream({}, ctx.streamCall)))),
    "aer observe daemon-logs",
    "aer observe daemon-logs --json | jq .line",
  );

  example(
    observe
      .command("output")
      .description("an executable's stdout (or stderr): its history, then live lines; ends when the process has exited")
      .argument("<pid>", "the pid cell start returned", intArg(1, 0x7fffffff))
      .option("--stderr", "stream stderr instead of stdout")
      .option("--cell <name>", "the cell owning the pid (needed for namespace pids of isolated cells)")
      .action(
        run<{ stderr?: boolean; cell?: string }>(async (ctx, [pid], o) => {
          const observe = new ObserveServiceClient(ctx.client);
          // --json: a document per line; else the output's bytes as they are, no string per line
          if (ctx.global.json) return items(observe.getSubProcessStream(outputRequest(Number(pid), o), ctx.streamCall));
          return chunks(observe.readOutput(outputRequest(Number(pid), o), ctx.streamCall));
        }),
      ),
    "aer observe output 4242",
    "aer observe output 7 --cell web --stderr",
  );

  example(
    observe
      .command("signals")
      .description("signals generated on the host, or delivered into one cell (eBPF)")
      .option("--cell <name>", "only signals to processes of this cell and its descendants")
      .action(
        run<{ cell?: string }>(async (ctx, _args, o) => {
          const stream = new ObserveServiceClient(ctx.client).getPosixSignalsStream(signalsRequest(o), ctx.streamCall);
          return (async function* (): AsyncGenerator<Result> {
            for await (const res of stream) {
              const s = res.signal;
              if (!s) continue;
              const cell = s.cellName ? ` (cell '${s.cellName}')` : "";
              yield { data: s, human: `${signalName(s.signal)} (${s.signal}) -> pid ${s.processId}${cell}` };
            }
          })();
        }),
      ),
    "aer observe signals",
    "aer observe signals --cell web --json",
  );
  return example(observe, "aer observe daemon-logs", "aer observe output 4242 --stderr", "aer observe signals --cell web");
}
