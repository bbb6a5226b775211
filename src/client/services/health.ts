import {
  HealthCheckRequest,
  HealthClient as GeneratedHealthClient,
  type DeepPartial,
  type HealthCheckResponse,
} from "../../api/grpc/health/v1/health.js";
import type { AuraeStream, CallOptions } from "../call.js";
import type { AuraeClient } from "../client.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `health.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/grpc/health/v1/health.js";

const SERVICE = "grpc.health.v1.Health";

/**
 * `grpc.health.v1.Health`. Names: `""` (the daemon), `aurae.cells.v0.CellService`,
 * `aurae.discovery.v0.DiscoveryService`, `aurae.observe.v0.ObserveService`, `aurae.vms.v0.VmService`.
 *
 * @example
 * const health = new HealthClient(createClient());
 * const { status } = await health.check({ service: "" }); // HealthCheckResponse_ServingStatus.SERVING
 */
export class HealthClient extends ServiceClientBase {
  constructor(client?: AuraeClient) {
    super(GeneratedHealthClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  /** The current status of a name; NOT_FOUND for a name the daemon does not know. */
  check(req: DeepPartial<HealthCheckRequest> = {}, opts?: CallOptions): Promise<HealthCheckResponse> {
    return this.unary("check", "Check", HealthCheckRequest.fromPartial(req ?? {}), opts);
  }
  /** The status now, then each change, until cancelled or the daemon shuts down. */
  watch(req: DeepPartial<HealthCheckRequest> = {}, opts?: CallOptions): AuraeStream<HealthCheckResponse> {
    return this.stream("watch", "Watch", HealthCheckRequest.fromPartial(req ?? {}), opts);
  }
}
