/**
 * The Aurae TypeScript SDK: a client for auraed over mTLS, typed clients for every service,
 * and every message type of Aurae's v0 API (plus our documented extensions).
 *
 * @example
 * import { createClient, CellServiceClient, Cell } from "aurae-ts";
 * const client = createClient();
 * const cells = new CellServiceClient(client);
 * await cells.allocate({ cell: Cell.fromPartial({ name: "demo" }) });
 */
export {
  AuraeClient,
  createClient,
  defaultClient,
  resolveClientConfig,
  type ClientOptions,
  type CreateClientDefault,
  type CreateClientOpts,
  type CreateClientOptions,
  type CreateClientPath,
} from "./client.js";
export {
  AuraeConfigError,
  DEFAULT_SOCKET,
  defaultConfigSearchPaths,
  expandHome,
  formatSocket,
  loadConfig,
  parseConfig,
  parseSocket,
  readConfigFile,
  type AuraeConfig,
  type AuraeSocket,
  type AuthConfig,
  type SystemConfig,
} from "./config.js";
export { AuraeClientError, STATUS_NAMES, statusName, toClientError } from "./errors.js";
export { DEFAULT_SERVER_NAME, socketTarget } from "./transport.js";
export type { AuraeStream, CallOptions } from "./call.js";

// Every service's messages and client, flat (`Cell`, `LogChannelType`, `VmServiceClient`...)
export * from "./services/cells.js";
export * from "./services/discovery.js";
export * from "./services/observe.js";
export * from "./services/vms.js";
export * from "./services/health.js";
// names every generated module has (protobufPackage...): the flat ones are the cells module's; use the namespaces below for the others
export { protobufPackage, protobufFileName, type DeepPartial, type Exact, type MessageFns } from "./services/cells.js";

// ...and as namespaces, as Aurae's auraescript modules are (`cells.Cell`, `grpc_health.HealthClient`)
export * as cells from "./services/cells.js";
export * as discovery from "./services/discovery.js";
export * as observe from "./services/observe.js";
export * as vms from "./services/vms.js";
export * as grpc_health from "./services/health.js";
