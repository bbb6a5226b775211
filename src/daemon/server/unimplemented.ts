import { status, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { ServiceModule } from "../context.js";

/**
 * A service whose implementation is not available in this daemon (for example VMs where QEMU is
 * missing): every method answers `code` with a message that says why, never crashes.
 */
export function unavailableModule(
  name: string,
  definition: ServiceDefinition,
  reason: string,
  code: status = status.UNIMPLEMENTED,
): ServiceModule {
  const implementation: UntypedServiceImplementation = {};
  for (const [method, def] of Object.entries(definition)) {
    const details = `${name}/${def.originalName ?? method}: ${reason}`;
    implementation[method] = def.responseStream
      ? (call: { emit(e: string, v: unknown): void }) => call.emit("error", { code, details })
      : (_call: unknown, cb: (e: { code: status; details: string }) => void) => cb({ code, details });
  }
  return { name, definition, implementation };
}
