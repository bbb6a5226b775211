import { makeGenericClientConstructor } from "@grpc/grpc-js";
import {
  GetAuraeDaemonLogStreamRequest,
  GetPosixSignalsStreamRequest,
  GetSubProcessStreamRequest,
  ObserveServiceService,
  type DeepPartial,
  type GetAuraeDaemonLogStreamResponse,
  type GetPosixSignalsStreamResponse,
  type GetSubProcessStreamResponse,
} from "../../api/aurae/observe/v0/observe.js";
import type { AuraeStream, CallOptions } from "../call.js";
import { directStreamCall, messageDecoder, type StreamDecoder } from "../direct-stream.js";
import type { AuraeClient } from "../client.js";
import { decodeDaemonLogStreamResponse, decodeSubProcessStreamResponse } from "../log-stream-decoder.js";
import type { OutputChunk } from "../output-chunk-decoder.js";
import { OutputStreamDecoder } from "../output-stream-decoder.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `observe.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/aurae/observe/v0/observe.js";
export type { OutputChunk } from "../output-chunk-decoder.js";

const SERVICE = "aurae.observe.v0.ObserveService";

/**
 * The generated grpc-js client of the service, with the daemon log's responses decoded by
 * log-stream-decoder.ts (the same objects as the generated decoder, several times faster per
 * line). Executables' output is read on the direct HTTP/2 session instead (outputStream).
 */
const RawObserveServiceClient = makeGenericClientConstructor(
  {
    ...ObserveServiceService,
    getAuraeDaemonLogStream: { ...ObserveServiceService.getAuraeDaemonLogStream, responseDeserialize: decodeDaemonLogStreamResponse },
  },
  SERVICE,
);

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
    super(RawObserveServiceClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  /** Every daemon log record (a recent backlog first), until cancelled. */
  getAuraeDaemonLogStream(req: DeepPartial<GetAuraeDaemonLogStreamRequest> = {}, opts?: CallOptions): AuraeStream<GetAuraeDaemonLogStreamResponse> {
    return this.stream("getAuraeDaemonLogStream", "GetAuraeDaemonLogStream", GetAuraeDaemonLogStreamRequest.fromPartial(req ?? {}), opts);
  }
  /**
   * An executable's stdout or stderr, history first; ends when the process has exited and its
   * output is drained. One line per response in `item` (Aurae's form), or with
   * `maxLinesPerMessage` (our extension, up to 1024) several per response in `items`: far
   * cheaper per line for both sides.
   */
  getSubProcessStream(req: DeepPartial<GetSubProcessStreamRequest>, opts?: CallOptions): AuraeStream<GetSubProcessStreamResponse> {
    return this.outputStream(GetSubProcessStreamRequest.fromPartial(req ?? {}), () => messageDecoder((b) => [decodeSubProcessStreamResponse(b)]), opts);
  }
  /**
   * The same stream as `getSubProcessStream`, read as bytes: chunks of lines, each line ending
   * in "\n", as the executable wrote them, with the count of lines dropped before a chunk. For
   * readers that forward output rather than look at each line: no string or object per line
   * (`aer observe output` prints from it). Asks for batched responses (`maxLinesPerMessage`, 1024
   * unless given); a daemon without the extension sends one line per response, which works too.
   *
   * @example
   * for await (const chunk of observe.readOutput({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) {
   *   process.stdout.write(chunk.text);
   * }
   */
  readOutput(req: DeepPartial<GetSubProcessStreamRequest>, opts?: CallOptions): AuraeStream<OutputChunk> {
    const request = GetSubProcessStreamRequest.fromPartial({ ...req, maxLinesPerMessage: req.maxLinesPerMessage ?? 1024 });
    return this.outputStream(request, () => new OutputStreamDecoder(), opts);
  }
  /** GetSubProcessStream read off its HTTP/2 stream, not through grpc-js (direct-stream.ts). */
  private outputStream<T>(req: GetSubProcessStreamRequest, makeDecoder: () => StreamDecoder<T>, opts?: CallOptions): AuraeStream<T> {
    const method = `${SERVICE}/GetSubProcessStream`;
    return directStreamCall(this.client.direct, `/${method}`, method, GetSubProcessStreamRequest.encode(req).finish(), makeDecoder, opts);
  }
  /** Signals generated on the host, or delivered into one cell with a CELL workload. */
  getPosixSignalsStream(req: DeepPartial<GetPosixSignalsStreamRequest> = {}, opts?: CallOptions): AuraeStream<GetPosixSignalsStreamResponse> {
    return this.stream("getPosixSignalsStream", "GetPosixSignalsStream", GetPosixSignalsStreamRequest.fromPartial(req ?? {}), opts);
  }
}
