/**
 * The entry a micro-VM guest's /init execs (and the pid 1 integration test runs): boots the
 * machine as pid 1, runs the daemon until its graceful shutdown (SIGTERM, SIGINT, the ACPI
 * power button, SIGPWR) and powers off. Refuses to run as any other pid.
 *
 * The stop signals are caught before the daemon's code is loaded (seconds under TCG): pid 1
 * drops a signal it has no handler for, so one sent while loading or booting would be lost.
 */
import { stopSignals } from "../stop-signals.js";

if (process.pid !== 1) {
  process.stderr.write("auraed guest entry: must run as pid 1 (the guest's /init execs it)\n");
  process.exit(2);
}
const stop = stopSignals();
const { runDaemon } = await import("../main.js");
const { runPid1 } = await import("./pid1.js");
await runPid1(() => runDaemon(process.argv, { stop }));
