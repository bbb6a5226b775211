import { Metadata, type ServerWritableStream } from "@grpc/grpc-js";
import {
  ObserveServiceService,
  type GetAuraeDaemonLogStreamRequest,
  type GetAuraeDaemonLogStreamResponse,
  type GetPosixSignalsStreamRequest,
  type GetPosixSignalsStreamResponse,
  type GetSubProcessStreamRequest,
  type GetSubProcessStreamResponse,
  type ObserveServiceServer,
} from "../../api/aurae/observe/v0/observe.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { notFound } from "../errors.js";
import { serverStream } from "../server/rpc.js";
import { CgroupIndex } from "../../platform/ebpf/cgroup-index.js";
import { ownPidNamespaceLevel, SignalTracer } from "../../platform/ebpf/signal-tracer.js";
import { OutputLog } from "./output-log.js";
import type { ExecutableDirectory, OutputReader } from "./ports.js";
import { SignalHub, type StartSignalSource } from "./signal-hub.js";
import { nativeLinesPath, nativeLinesStatus } from "./native-lines.js";
import { LogResponseEncoder, serializeEncoded } from "./log-item-wire.js";
import { StreamWriter } from "./stream-writer.js";
import { parseSignalsStreamRequest, parseSubProcessStreamRequest } from "./validation.js";

export const OBSERVE_SERVICE_NAME = "aurae.observe.v0.ObserveService";
/** LogItem.channel of the daemon's own log records */
export const DAEMON_LOG_CHANNEL = "auraed";
/** history of the daemon log stream (records are lines of JSON) */
export const DAEMON_LOG_HISTORY_BYTES = 1024 * 1024;
/** signals taken per batch (bounds what one stream holds outside the hub) */
const BATCH = 256;
/**
 * lines taken from an output or log per take (each take's responses go out in one write; a take
 * also ends once its responses hold 128 KiB, so long lines do not make it large)
 */
const TAKE_LINES = 1024;
/** the most lines one response carries with the batch extension (about 1 MB of 1 kB lines) */
export const MAX_LINES_PER_MESSAGE = 1024;

/**
 * The service definition with the log streams' responses passed through as the Buffers
 * log-item-wire.ts encodes (everything else as generated).
 */
const definition = {
  ...ObserveServiceService,
  getAuraeDaemonLogStream: { ...ObserveServiceService.getAuraeDaemonLogStream, responseSerialize: serializeEncoded },
  getSubProcessStream: { ...ObserveServiceService.getSubProcessStream, responseSerialize: serializeEncoded },
};

export interface ObserveDeps {
  directory: ExecutableDirectory;
  /** the kernel signal source (default: the libbpf tracer of src/platform/ebpf) */
  startSignalSource?: StartSignalSource;
  /** maps an event's cgroup ids to a path under ctx.cgroupParent (default: CgroupIndex) */
  resolveCgroup?: ConstructorParameters<typeof SignalHub>[0]["resolveCgroup"];
}

export function createObserveService(ctx: DaemonContext, deps: ObserveDeps): ServiceModule {
  const logger = ctx.logger;
  const active = new Set<() => void>();

  // One shared, bounded log of the daemon's records: fed by a single logger subscription.
  const daemonLog = new OutputLog({ maxBytes: DAEMON_LOG_HISTORY_BYTES });
  const logSub = logger.subscribe((r) => daemonLog.append(r.line, r.time));
  for (const r of logSub.backlog) daemonLog.append(r.line, r.time);
  // which encoder the output streams use (the C one, or why not)
  const lineEncoder = nativeLinesStatus();
  if (lineEncoder === "native") logger.info("output line encoder: native", { library: nativeLinesPath() });
  else logger.warn("output line encoder: TypeScript (slower)", { reason: lineEncoder });

  let cgroupIndex: CgroupIndex | undefined;
  const hub = new SignalHub({
    directory: deps.directory,
    daemonPidLevel: ownPidNamespaceLevel(),
    resolveCgroup:
      deps.resolveCgroup ??
      ((e) => {
        cgroupIndex ??= new CgroupIndex(ctx.cgroupParent);
        return cgroupIndex.resolve(e);
      }),
    start:
      deps.startSignalSource ??
      ((onEvent) => {
        const t0 = performance.now();
        const tracer = SignalTracer.start(onEvent);
        logger.info("signal tracer started", { program: "tp_btf/signal_generate", loadMs: Math.round(performance.now() - t0) });
        return {
          stop: () => {
            const lost = tracer.lostEvents;
            tracer.stop();
            logger.info("signal tracer stopped", { lostEvents: lost });
          },
        };
      }),
  });

  /**
   * Streams a reader's lines as LogItem responses (pre-encoded, see log-item-wire.ts) until it
   * ends, the client leaves or we shut down. `perMessage` > 0 sends that many lines per
   * response in `items` (our extension); 0 sends one per response in `item` (Aurae's form).
   */
  async function pumpLines(call: ServerWritableStream<unknown, unknown>, reader: OutputReader, channel: string, perMessage = 0): Promise<void> {
    // headers now tell the client that its reader is in place
    call.sendMetadata(new Metadata());
    const w = new StreamWriter<unknown>(call);
    const stop = () => reader.close();
    active.add(stop);
    w.onClose(stop);
    // a take is up to TAKE_LINES lines (or 128 KiB of responses), in responses of `perLines` each
    const perLines = Math.min(perMessage, MAX_LINES_PER_MESSAGE);
    // the direct HTTP/2 path takes a take's responses as one buffer of frames
    const encoder = new LogResponseEncoder(channel, perLines, { framed: w.takesFrames });
    try {
      for (;;) {
        const n = reader.takeBytes(encoder, TAKE_LINES);
        if (n === null || w.closed) return;
        if (n === 0) {
          encoder.release();
          await reader.wait();
          continue;
        }
        // What one take gives goes out whole; a full buffer then waits for 'drain' before the
        // next take, so a stream holds at most one take beyond its mark.
        const msgs = encoder.finish();
        if (!w.writeMany(msgs, encoder.frames)) {
          await w.ready();
          if (w.closed) return;
        }
      }
    } finally {
      active.delete(stop);
      reader.close();
    }
  }

  const implementation: ObserveServiceServer = {
    getAuraeDaemonLogStream: serverStream<GetAuraeDaemonLogStreamRequest, GetAuraeDaemonLogStreamResponse>(
      logger,
      "GetAuraeDaemonLogStream",
      async (_req, call) => {
        await pumpLines(call, daemonLog.openReader(), DAEMON_LOG_CHANNEL);
      },
    ),

    getSubProcessStream: serverStream<GetSubProcessStreamRequest, GetSubProcessStreamResponse>(
      logger,
      "GetSubProcessStream",
      async (req, call) => {
        const r = parseSubProcessStreamRequest(req);
        const exe = deps.directory.findByPid(r.pid, r.cellName);
        if (!exe) {
          throw notFound(r.cellName ? `process ${r.pid} in cell '${r.cellName}': not found` : `process ${r.pid}: not found`);
        }
        await pumpLines(call, exe.openReader(r.channel), r.channel, r.maxLinesPerMessage);
      },
    ),

    getPosixSignalsStream: serverStream<GetPosixSignalsStreamRequest, GetPosixSignalsStreamResponse>(
      logger,
      "GetPosixSignalsStream",
      async (req, call) => {
        const r = parseSignalsStreamRequest(req);
        if (r.cellName !== undefined && !deps.directory.hasCell(r.cellName)) {
          throw notFound(`cell '${r.cellName}': not found`);
        }
        const sub = hub.subscribe({ cellName: r.cellName });
        // headers now tell the client that the subscription is live (signals before it are not sent)
        call.sendMetadata(new Metadata());
        const w = new StreamWriter(call);
        const stop = () => sub.close();
        active.add(stop);
        w.onClose(stop);
        try {
          for (;;) {
            const batch = sub.take(BATCH);
            if (batch === null || w.closed) return;
            if (batch.length === 0) {
              await sub.wait();
              continue;
            }
            for (const s of batch) {
              if (!w.write({ signal: { signal: s.signal, processId: s.pid, cellName: s.cellName } })) {
                await w.ready();
                if (w.closed) return;
              }
            }
          }
        } finally {
          active.delete(stop);
          if (sub.dropped > 0) logger.warn("signal stream subscriber fell behind", { dropped: sub.dropped, cell: r.cellName ?? "" });
          sub.close();
        }
      },
    ),
  };

  return {
    name: OBSERVE_SERVICE_NAME,
    definition,
    implementation,
    // the output and log streams skip grpc-js's per-message path (docs/observe.md); their
    // responses' memory is reused once sent
    directStreams: { methods: ["getSubProcessStream", "getAuraeDaemonLogStream"], responseSent: serializeEncoded },
    async shutdown() {
      logSub.unsubscribe();
      daemonLog.end();
      for (const stop of [...active]) stop();
      hub.shutdown();
    },
  };
}
