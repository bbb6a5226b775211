import { invalidArgument, unimplemented } from "../errors.js";
import {
  LogChannelType,
  WorkloadType,
  type GetPosixSignalsStreamRequest,
  type GetSubProcessStreamRequest,
} from "../../api/aurae/observe/v0/observe.js";

/** GetSubProcessStream, validated. */
export interface SubProcessStreamRequest {
  pid: number;
  channel: "stdout" | "stderr";
  /** narrows the lookup to one cell (extension field 100) */
  cellName?: string;
  /** lines per response (extension field 101); 0: one per response in `item` */
  maxLinesPerMessage: number;
}

export function parseSubProcessStreamRequest(req: GetSubProcessStreamRequest): SubProcessStreamRequest {
  let channel: "stdout" | "stderr";
  switch (req.channelType) {
    case LogChannelType.LOG_CHANNEL_TYPE_STDOUT:
      channel = "stdout";
      break;
    case LogChannelType.LOG_CHANNEL_TYPE_STDERR:
      channel = "stderr";
      break;
    case LogChannelType.LOG_CHANNEL_TYPE_UNSPECIFIED:
      throw invalidArgument("channel_type: must be LOG_CHANNEL_TYPE_STDOUT or LOG_CHANNEL_TYPE_STDERR, got LOG_CHANNEL_TYPE_UNSPECIFIED");
    default:
      throw invalidArgument(`channel_type: unknown value ${String(req.channelType)}`);
  }
  if (!Number.isInteger(req.processId) || req.processId <= 0) {
    throw invalidArgument(`process_id: must be a positive pid, got ${req.processId}`);
  }
  const cellName = req.cellName === undefined || req.cellName === "" ? undefined : req.cellName;
  return { pid: req.processId, channel, cellName, maxLinesPerMessage: req.maxLinesPerMessage ?? 0 };
}

/** GetPosixSignalsStream, validated: no cell means every signal on the host. */
export interface SignalsStreamRequest {
  cellName?: string;
}

export function parseSignalsStreamRequest(req: GetPosixSignalsStreamRequest): SignalsStreamRequest {
  const w = req.workload;
  if (!w) return {};
  switch (w.workloadType) {
    case WorkloadType.WORKLOAD_TYPE_UNSPECIFIED:
      if (w.id !== "") throw invalidArgument(`workload: id '${w.id}' given without a workload_type`);
      return {};
    case WorkloadType.WORKLOAD_TYPE_CELL:
      if (w.id === "") throw invalidArgument("workload: a WORKLOAD_TYPE_CELL workload needs the cell name as id");
      return { cellName: w.id };
    case WorkloadType.WORKLOAD_TYPE_POD_SANDBOX:
      throw unimplemented("workload: signals of WORKLOAD_TYPE_POD_SANDBOX are not supported yet");
    case WorkloadType.WORKLOAD_TYPE_VM:
      throw unimplemented("workload: signals of WORKLOAD_TYPE_VM are not supported (ask the auraed inside the VM)");
    default:
      throw invalidArgument(`workload: unknown workload_type ${String(w.workloadType)}`);
  }
}
