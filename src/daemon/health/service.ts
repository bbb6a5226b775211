import type { ServerWritableStream } from "@grpc/grpc-js";
import {
  HealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../api/grpc/health/v1/health.js";
import type { ServiceModule } from "../context.js";
import { notFound } from "../errors.js";
import type { Logger } from "../logger.js";
import { serverStream, unary } from "../server/rpc.js";
import { HealthRegistry, ServingStatus } from "./registry.js";

/**
 * grpc.health.v1.Health as the gRPC project specifies it: Check answers NOT_FOUND for an unknown
 * name; Watch sends the current status (SERVICE_UNKNOWN for an unknown name) and every change,
 * until the client cancels or the daemon stops.
 */
export function createHealthService(logger: Logger, registry: HealthRegistry): ServiceModule & { endWatches(): void } {
  const open = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();
  const implementation = {
    check: unary<HealthCheckRequest, HealthCheckResponse>(logger, "Health.Check", async (req) => {
      const status = registry.get(req.service);
      if (status === undefined) throw notFound(`health of service '${req.service}': unknown service name`);
      return { status };
    }),
    watch: serverStream<HealthCheckRequest, HealthCheckResponse>(logger, "Health.Watch", (req, call) => {
      return new Promise<void>((resolve) => {
        open.add(call);
        const send = (status: ServingStatus) => {
          if (!call.cancelled) call.write({ status });
        };
        send(registry.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN);
        const unwatch = registry.watch(req.service, send);
        const finish = () => {
          unwatch();
          open.delete(call);
          resolve();
        };
        call.once("cancelled", finish);
        call.once("x-end", finish);
      });
    }),
  };
  return {
    name: "grpc.health.v1.Health",
    definition: HealthService,
    implementation,
    endWatches() {
      for (const call of open) call.emit("x-end");
    },
  };
}
