import { Metadata, type ServerWritableStream } from "@grpc/grpc-js";
import {
  ObserveServiceService,
  type GetAuraeDaemonLogStreamRequest,
  type GetAuraeDaemonLogStreamResponse,
  type GetPosixSignalsStreamRequest,
  type GetPosixSignalsStreamResponse,
  type GetSubProcessStreamRequest,
  type GetSubProcessStreamResponse,
  type LogItem,
  type ObserveServiceServer,
} from "../../api/aurae/observe/v0/observe.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { internal, notFound } from "../errors.js";
import { serverStream } from "../server/rpc.js";
import { CgroupIndex } from "../../platform/ebpf/cgroup-index.js";
import { ownPidNamespaceLevel, SignalTracer } from "../../platform/ebpf/signal-tracer.js";
import { OutputLog, type OutputReader } from "./output-log.js";
import type { ExecutableDirectory } from "./ports.js";
import { SignalHub, type StartSignalSource } from "./signal-hub.js";
import { StreamWriter } from "./stream-writer.js";
import { parseSignalsStreamRequest, parseSubProcessStreamRequest } from "./validation.js";

export const OBSERVE_SERVICE_NAME = "aurae.observe.v0.ObserveService";
/** LogItem.channel of the daemon's own log records */
export const DAEMON_LOG_CHANNEL = "auraed";
/** history of the daemon log stream (records are lines of JSON) */
export const DAEMON_LOG_HISTORY_BYTES = 1024 * 1024;
/** lines taken from a log per batch (bounds what one stream holds outside the log) */
const BATCH = 256;

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

  /** Streams a reader's lines as LogItems until it ends, the client leaves or we shut down. */
  async function pumpLines<Res>(
    call: ServerWritableStream<unknown, Res>,
    reader: OutputReader,
    channel: string,
    wrap: (item: LogItem) => Res,
  ): Promise<void> {
    // headers now tell the client that its reader is in place
    call.sendMetadata(new Metadata());
    const w = new StreamWriter(call);
    const stop = () => reader.close();
    active.add(stop);
    w.onClose(stop);
    try {
      for (;;) {
        const batch = reader.take(BATCH);
        if (batch === null || w.closed) return;
        if (batch.length === 0) {
          await reader.wait();
          continue;
        }
        // A batch (at most BATCH messages) goes out whole; a full buffer then waits for 'drain'
        // before the next batch is taken, so a stream holds at most BATCH messages beyond grpc's mark.
        let ok = true;
        for (const l of batch) {
          ok = w.write(wrap({ channel, line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore }));
        }
        if (!ok) {
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
        await pumpLines(call, daemonLog.openReader(), DAEMON_LOG_CHANNEL, (item) => ({ item }));
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
        const sink = r.channel === "stdout" ? exe.stdout : exe.stderr;
        if (!(sink instanceof OutputLog)) {
          throw internal(`${r.channel} of executable '${exe.executableName}' in cell '${exe.cellName}' is not observable`);
        }
        await pumpLines(call, sink.openReader(), r.channel, (item) => ({ item }));
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
    definition: ObserveServiceService,
    implementation,
    async shutdown() {
      logSub.unsubscribe();
      daemonLog.end();
      for (const stop of [...active]) stop();
      hub.shutdown();
    },
  };
}
