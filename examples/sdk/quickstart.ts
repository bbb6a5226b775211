import { createClient, DiscoveryServiceClient } from "aurae-ts";

// Reads $HOME/.aurae/config, /etc/aurae/config or /var/lib/aurae/config (the first found),
// or the file named by --config.
const i = process.argv.indexOf("--config");
const client = i > 0 ? createClient({ kind: "path", path: process.argv[i + 1]! }) : createClient();

const { healthy, version } = await new DiscoveryServiceClient(client).discover();
console.log(`auraed ${version} healthy=${healthy}`);
client.close();
