import {
  DiscoveryServiceService,
  type DiscoverRequest,
  type DiscoverResponse,
} from "../../api/aurae/discovery/v0/discovery.js";
import type { DaemonContext, ServiceModule } from "../context.js";
import { unary } from "../server/rpc.js";

/** aurae.discovery.v0.DiscoveryService: healthy while serving, with the daemon's real version. */
export function createDiscoveryService(ctx: DaemonContext, isHealthy: () => boolean): ServiceModule {
  return {
    name: "aurae.discovery.v0.DiscoveryService",
    definition: DiscoveryServiceService,
    implementation: {
      discover: unary<DiscoverRequest, DiscoverResponse>(ctx.logger, "DiscoveryService.Discover", async () => ({
        healthy: isHealthy(),
        version: ctx.version,
      })),
    },
  };
}
