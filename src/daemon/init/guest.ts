/**
 * The entry a micro-VM guest's /init execs: boots the machine as pid 1, runs the daemon until
 * its graceful shutdown (SIGTERM, SIGINT, the ACPI power button, SIGPWR) and powers off.
 * A fatal error powers off too: pid 1 must never exit (the kernel would panic).
 */
import { Logger } from "../logger.js";
import { runDaemon } from "../main.js";
import { bootPid1, powerOff } from "./pid1.js";

const logger = new Logger();
if (process.pid !== 1) {
  process.stderr.write("auraed guest entry: must run as pid 1 (the guest's /init execs it)\n");
  process.exit(2);
}
try {
  await bootPid1({ logger });
  const code = await runDaemon(process.argv);
  logger.info("powering off", { code });
} catch (err) {
  logger.error(`auraed failed as pid 1: ${(err as Error).stack ?? String(err)}`);
}
powerOff();
