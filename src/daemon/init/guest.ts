/**
 * The entry a micro-VM guest's /init execs (and the pid 1 integration test runs): boots the
 * machine as pid 1, runs the daemon until its graceful shutdown (SIGTERM, SIGINT, the ACPI
 * power button, SIGPWR) and powers off. Refuses to run as any other pid.
 */
import { runDaemon } from "../main.js";
import { runPid1 } from "./pid1.js";

if (process.pid !== 1) {
  process.stderr.write("auraed guest entry: must run as pid 1 (the guest's /init execs it)\n");
  process.exit(2);
}
await runPid1(() => runDaemon(process.argv));
