import { Command } from "commander";
import { DiscoveryServiceClient } from "../../client/services/discovery.js";
import { example, type Runner } from "../command.js";

export function discoveryCommand(run: Runner): Command {
  const discovery = new Command("discovery").description("is this an auraed, and which version");
  example(
    discovery
      .command("discover")
      .description("ask the daemon whether it is healthy and for its version")
      .action(
        run(async (ctx) => {
          const res = await new DiscoveryServiceClient(ctx.client).discover({}, ctx.call);
          return { data: res, human: `healthy: ${res.healthy}\nversion: ${res.version}`, exitCode: res.healthy ? 0 : 1 };
        }),
      ),
    "aer discovery discover",
    "aer --socket 127.0.0.1:8080 discovery discover --json",
  );
  return example(discovery, "aer discovery discover");
}
