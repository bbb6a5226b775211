import {
  DiscoverRequest,
  DiscoveryServiceClient as GeneratedDiscoveryServiceClient,
  type DeepPartial,
  type DiscoverResponse,
} from "../../api/aurae/discovery/v0/discovery.js";
import type { CallOptions } from "../call.js";
import type { AuraeClient } from "../client.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `discovery.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/aurae/discovery/v0/discovery.js";

const SERVICE = "aurae.discovery.v0.DiscoveryService";

/**
 * `aurae.discovery.v0.DiscoveryService`: is this an auraed, and which version.
 *
 * @example const { healthy, version } = await new DiscoveryServiceClient(createClient()).discover({});
 */
export class DiscoveryServiceClient extends ServiceClientBase {
  constructor(client?: AuraeClient) {
    super(GeneratedDiscoveryServiceClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  discover(req: DeepPartial<DiscoverRequest> = {}, opts?: CallOptions): Promise<DiscoverResponse> {
    return this.unary("discover", "Discover", DiscoverRequest.fromPartial(req ?? {}), opts);
  }
}
