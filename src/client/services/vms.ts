import {
  VmServiceAllocateRequest,
  VmServiceClient as GeneratedVmServiceClient,
  VmServiceFreeRequest,
  VmServiceListRequest,
  VmServiceStartRequest,
  VmServiceStopRequest,
  type DeepPartial,
  type VmServiceAllocateResponse,
  type VmServiceFreeResponse,
  type VmServiceListResponse,
  type VmServiceStartResponse,
  type VmServiceStopResponse,
} from "../../api/aurae/vms/v0/vms.js";
import type { CallOptions } from "../call.js";
import type { AuraeClient } from "../client.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `vms.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/aurae/vms/v0/vms.js";

const SERVICE = "aurae.vms.v0.VmService";

/**
 * `aurae.vms.v0.VmService`: micro-VMs running auraed as their PID 1.
 *
 * @example
 * const vms = new VmServiceClient(createClient());
 * await vms.allocate({ machine: { id: "vm1", memSizeMb: 512, vcpuCount: 1, kernelImgPath: "/var/lib/aurae/vmlinux" } });
 * const { auraedAddress } = await vms.start({ vmId: "vm1" });
 */
export class VmServiceClient extends ServiceClientBase {
  constructor(client?: AuraeClient) {
    super(GeneratedVmServiceClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  allocate(req: DeepPartial<VmServiceAllocateRequest>, opts?: CallOptions): Promise<VmServiceAllocateResponse> {
    return this.unary("allocate", "Allocate", VmServiceAllocateRequest.fromPartial(req ?? {}), opts);
  }
  free(req: DeepPartial<VmServiceFreeRequest>, opts?: CallOptions): Promise<VmServiceFreeResponse> {
    return this.unary("free", "Free", VmServiceFreeRequest.fromPartial(req ?? {}), opts);
  }
  start(req: DeepPartial<VmServiceStartRequest>, opts?: CallOptions): Promise<VmServiceStartResponse> {
    return this.unary("start", "Start", VmServiceStartRequest.fromPartial(req ?? {}), opts);
  }
  stop(req: DeepPartial<VmServiceStopRequest>, opts?: CallOptions): Promise<VmServiceStopResponse> {
    return this.unary("stop", "Stop", VmServiceStopRequest.fromPartial(req ?? {}), opts);
  }
  list(req: DeepPartial<VmServiceListRequest> = {}, opts?: CallOptions): Promise<VmServiceListResponse> {
    return this.unary("list", "List", VmServiceListRequest.fromPartial(req ?? {}), opts);
  }
}
