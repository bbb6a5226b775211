// Discover the daemon, check the health of every service, and read the first Watch update.
import { DiscoveryServiceClient, HealthClient, healthCheckResponse_ServingStatusToJSON } from "aurae-ts";
import { connect } from "./connect.ts";

const client = connect();
try {
  const { healthy, version } = await new DiscoveryServiceClient(client).discover();
  console.log(`auraed ${version}, healthy: ${healthy}`);

  const health = new HealthClient(client);
  for (const service of ["", "aurae.cells.v0.CellService", "aurae.discovery.v0.DiscoveryService", "aurae.observe.v0.ObserveService", "aurae.vms.v0.VmService"]) {
    const { status } = await health.check({ service });
    console.log(`${service || "(daemon)"}: ${healthCheckResponse_ServingStatusToJSON(status)}`);
  }
  for await (const { status } of health.watch({ service: "" })) {
    console.log(`watch: ${healthCheckResponse_ServingStatusToJSON(status)}`);
    break; // leaving the loop cancels the stream
  }
} finally {
  client.close();
}
