import { status, type ServiceError } from "@grpc/grpc-js";
import {
  CellServiceClient,
  type Cell,
  type CellServiceListResponse,
  type CellServiceStartResponse,
} from "../../src/api/aurae/cells/v0/cells.js";
import { LogChannelType, type LogItem } from "../../src/api/aurae/observe/v0/observe.js";
import { createClient, ObserveServiceClient as SdkObserveServiceClient } from "../../src/client/index.js";
import type { TestDaemon } from "../../test/helpers/daemon.js";
import type { Row } from "./report.js";
import { nowMs } from "./stats.js";

/**
 * Promise wrappers over the generated grpc-js clients (the wire API, not the SDK), an output
 * stream reader through the SDK, and the rule for skipping a scenario whose service has not landed.
 */
export interface Cells {
  allocate(cell: Partial<Cell> & { name: string }): Promise<void>;
  free(cellName: string): Promise<void>;
  start(cellName: string | undefined, name: string, command: string): Promise<CellServiceStartResponse>;
  stop(cellName: string | undefined, executableName: string): Promise<void>;
  list(): Promise<CellServiceListResponse>;
  close(): void;
}

/**
 * `separate`: a connection of its own (grpc-js otherwise shares one per target and options);
 * `maxReceiveBytes`: raises the 4 MiB default for large List answers.
 */
export function cellsClient(d: TestDaemon, opts: { separate?: boolean; maxReceiveBytes?: number } = {}): Cells {
  const options: Record<string, string | number> = { ...d.clientOptions };
  if (opts.separate) options["grpc.use_local_subchannel_pool"] = 1;
  if (opts.maxReceiveBytes) options["grpc.max_receive_message_length"] = opts.maxReceiveBytes;
  const c = new CellServiceClient(d.target, d.credentials, options);
  const call = <T>(f: (cb: (e: ServiceError | null, r: T) => void) => void) =>
    new Promise<T>((res, rej) => f((e, r) => (e ? rej(e) : res(r))));
  return {
    allocate: (cell) =>
      call((cb) =>
        c.allocate({ cell: { cpu: undefined, cpuset: undefined, memory: undefined, pids: undefined, isolateProcess: false, isolateNetwork: false, ...cell } }, cb),
      ).then(() => undefined),
    free: (cellName) => call((cb) => c.free({ cellName }, cb)).then(() => undefined),
    start: (cellName, name, command) => call((cb) => c.start({ cellName, executable: { name, command, description: "" } }, cb)),
    stop: (cellName, executableName) => call((cb) => c.stop({ cellName, executableName }, cb)).then(() => undefined),
    list: () => call((cb) => c.list({}, cb)),
    close: () => c.close(),
  };
}

export interface StreamResult {
  bytes: number;
  lines: number;
  dropped: number;
  /** responses received */
  messages: number;
  /** ms timestamps (nowMs) of the first item and of the end of the stream */
  firstAt: number;
  endAt: number;
}

export interface Observe {
  /**
   * Reads one channel of an executable to the end of its stream, counting bytes (line + "\n"; ASCII lines),
   * lines, responses and the dropped counts the daemon reports. `perMessage` > 0 asks for that
   * many lines per response (extension max_lines_per_message); 0 is Aurae's one line per response.
   */
  drain(pid: number, cellName: string | undefined, channel?: "stdout" | "stderr", perMessage?: number): Promise<StreamResult>;
  /**
   * The same, read as bytes (the SDK's readOutput, what `aer observe output` prints from): no
   * string or object per line; lines counted by the decoder, bytes by each chunk's length.
   */
  drainBytes(pid: number, cellName: string | undefined, channel?: "stdout" | "stderr", perMessage?: number): Promise<StreamResult>;
  close(): void;
}

/**
 * A reader through the SDK (src/client: the typed ObserveServiceClient with its response
 * decoder, the client `aer observe output` uses) on a connection of its own.
 */
/** A GetSubProcessStream request for one channel of `pid`. */
function request(pid: number, cellName: string | undefined, channel: "stdout" | "stderr", maxLinesPerMessage: number | undefined) {
  const channelType = channel === "stdout" ? LogChannelType.LOG_CHANNEL_TYPE_STDOUT : LogChannelType.LOG_CHANNEL_TYPE_STDERR;
  return { processId: pid, channelType, cellName, maxLinesPerMessage };
}

export function observeClient(d: TestDaemon, opts: { channelOptions?: Record<string, string | number> } = {}): Observe {
  const client = createClient({ configPath: d.configPath, channelOptions: { "grpc.use_local_subchannel_pool": 1, ...opts.channelOptions } });
  const c = new SdkObserveServiceClient(client);
  return {
    async drain(pid, cellName, channel = "stdout", perMessage = 0) {
      const r: StreamResult = { bytes: 0, lines: 0, dropped: 0, messages: 0, firstAt: 0, endAt: 0 };
      // the benchmarks' lines are ASCII: characters are bytes (Buffer.byteLength would add about
      // 35 ns per line to the reader, a quarter of what decoding the line costs)
      const count = (item: LogItem) => {
        r.bytes += item.line.length + 1;
        r.lines++;
        r.dropped += item.droppedBefore;
      };
      const stream = c.getSubProcessStream(request(pid, cellName, channel, perMessage || undefined));
      for await (const m of stream) {
        if (r.messages++ === 0) r.firstAt = nowMs();
        if (m.item) count(m.item);
        for (const item of m.items) count(item);
      }
      r.endAt = nowMs();
      return r;
    },
    async drainBytes(pid, cellName, channel = "stdout", perMessage = 1024) {
      const r: StreamResult = { bytes: 0, lines: 0, dropped: 0, messages: 0, firstAt: 0, endAt: 0 };
      const stream = c.readOutput(request(pid, cellName, channel, perMessage));
      for await (const chunk of stream) {
        if (r.messages++ === 0) r.firstAt = nowMs();
        r.bytes += chunk.text.length;
        r.lines += chunk.lines;
        r.dropped += chunk.droppedBefore;
      }
      r.endAt = nowMs();
      return r;
    },
    close: () => client.close(),
  };
}

/** The statuses that mean "this service (or facility) has not landed here": skip, don't fail. */
export function isSkippable(err: unknown): err is ServiceError {
  const code = (err as ServiceError | undefined)?.code;
  return code === status.UNIMPLEMENTED || code === status.UNAVAILABLE;
}

export function statusName(err: unknown): string {
  const e = err as ServiceError;
  return `${status[e.code] ?? e.code}: ${e.details ?? e.message}`;
}

/** A table row saying why a scenario did not run. */
export function skipRow(scenario: string, unit: Row["unit"], reason: string): Row {
  process.stderr.write(`bench: skipped '${scenario}': ${reason}\n`);
  return { scenario, unit, note: `skipped: ${reason}` };
}

/**
 * Runs `body`; when it (or a call inside it) answers UNIMPLEMENTED/UNAVAILABLE, returns skip rows
 * for `scenarios` with the daemon's reason instead of failing.
 */
export async function orSkip(scenarios: Array<[string, Row["unit"]]>, body: () => Promise<Row[]>): Promise<Row[]> {
  try {
    return await body();
  } catch (err) {
    if (!isSkippable(err)) throw err;
    return scenarios.map(([s, u]) => skipRow(s, u, statusName(err)));
  }
}

let uniq = 0;
/** A cell or executable name unique in this bench process (DNS label). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${++uniq}`;
}
