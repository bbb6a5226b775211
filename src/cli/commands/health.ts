import { Command } from "commander";
import { HealthCheckResponse_ServingStatus, HealthClient, healthCheckResponse_ServingStatusToJSON } from "../../client/services/health.js";
import { example, type Runner } from "../command.js";
import type { Result } from "../render.js";

/** A health answer: the status name, exit 0 only when SERVING. */
export function healthResult(service: string, status: HealthCheckResponse_ServingStatus): Result {
  const name = healthCheckResponse_ServingStatusToJSON(status);
  return {
    data: { service, status: name },
    human: `${service === "" ? "(daemon)" : service}: ${name}`,
    exitCode: status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1,
  };
}

export function healthCommand(run: Runner): Command {
  const health = new Command("health").description("grpc.health.v1: is the daemon (or one service) serving");
  example(
    health
      .command("check")
      .description("the current status; exit 0 when SERVING, 1 otherwise, 4 for an unknown service")
      .option("--service <name>", "service name, e.g. aurae.cells.v0.CellService (default: the daemon)", "")
      .action(
        run<{ service: string }>(async (ctx, _a, o) => {
          const res = await new HealthClient(ctx.client).check({ service: o.service }, ctx.call);
          return healthResult(o.service, res.status);
        }),
      ),
    "aer health check",
    "aer health check --service aurae.cells.v0.CellService",
  );
  example(
    health
      .command("watch")
      .description("the status now and each change, until the daemon goes away or Ctrl-C")
      .option("--service <name>", "service name (default: the daemon)", "")
      .action(
        run<{ service: string }>(async (ctx, _a, o) => {
          const stream = new HealthClient(ctx.client).watch({ service: o.service }, ctx.streamCall);
          return (async function* () {
            for await (const res of stream) yield { ...healthResult(o.service, res.status), exitCode: 0 };
          })();
        }),
      ),
    "aer health watch",
  );
  return example(health, "aer health check", "aer health watch --json");
}
