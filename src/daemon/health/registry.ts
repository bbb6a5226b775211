import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../api/grpc/health/v1/health.js";

export { ServingStatus };

type Watcher = (status: ServingStatus) => void;

/** The serving status of each service name (and "" for the whole daemon), with watchers. */
export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w(status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  names(): string[] {
    return [...this.statuses.keys()];
  }

  /** Marks every known name NOT_SERVING (the first step of a graceful shutdown). */
  shutdown(): void {
    for (const name of this.statuses.keys()) this.set(name, ServingStatus.NOT_SERVING);
  }

  watch(service: string, watcher: Watcher): () => void {
    let set = this.watchers.get(service);
    if (!set) this.watchers.set(service, (set = new Set()));
    set.add(watcher);
    return () => set!.delete(watcher);
  }
}
