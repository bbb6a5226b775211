/** `auraescript/gen/grpc_health.ts`: grpc.health.v1 messages and `HealthClient` (`check`, and `watch` as a stream). */
export * from "../../client/services/health.js";
