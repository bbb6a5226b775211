/** Resolves with the first SIGTERM or SIGINT received from now on: the daemon's stop request. */
export function stopSignals(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
}
