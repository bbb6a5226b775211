import {
  GetAuraeDaemonLogStreamRequest,
  GetPosixSignalsStreamRequest,
  GetSubProcessStreamRequest,
  ObserveServiceClient as GeneratedObserveServiceClient,
  type DeepPartial,
  type GetAuraeDaemonLogStreamResponse,
  type GetPosixSignalsStreamResponse,
  type GetSubProcessStreamResponse,
} from "../../api/aurae/observe/v0/observe.js";
import type { AuraeStream, CallOptions } from "../call.js";
import type { AuraeClient } from "../client.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `observe.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/aurae/observe/v0/observe.js";

const SERVICE = "aurae.observe.v0.ObserveService";

/**
 * `aurae.observe.v0.ObserveService`: the daemon's log, executables' output, signals. Every
 * method returns a stream to iterate with `for await`.
 *
 * @example
 * const observe = new ObserveServiceClient(createClient());
 * for await (const { item } of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) {
 *   console.log(item?.line);
 * }
 */
export class ObserveServiceClient extends ServiceClientBase {
  constructor(client?: AuraeClient) {
    super(GeneratedObserveServiceClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  /** Every daemon log record (a recent backlog first), until cancelled. */
  getAuraeDaemonLogStream(req: DeepPartial<GetAuraeDaemonLogStreamRequest> = {}, opts?: CallOptions): AuraeStream<GetAuraeDaemonLogStreamResponse> {
    return this.stream("getAuraeDaemonLogStream", "GetAuraeDaemonLogStream", GetAuraeDaemonLogStreamRequest.fromPartial(req ?? {}), opts);
  }
  /** An executable's stdout or stderr, history first; ends when the process has exited and its output is drained. */
  getSubProcessStream(req: DeepPartial<GetSubProcessStreamRequest>, opts?: CallOptions): AuraeStream<GetSubProcessStreamResponse> {
    return this.stream("getSubProcessStream", "GetSubProcessStream", GetSubProcessStreamRequest.fromPartial(req ?? {}), opts);
  }
  /** Signals generated on the host, or delivered into one cell with a CELL workload. */
  getPosixSignalsStream(req: DeepPartial<GetPosixSignalsStreamRequest> = {}, opts?: CallOptions): AuraeStream<GetPosixSignalsStreamResponse> {
    return this.stream("getPosixSignalsStream", "GetPosixSignalsStream", GetPosixSignalsStreamRequest.fromPartial(req ?? {}), opts);
  }
}
