/**
 * `auraescript/gen/aurae.ts`: what Aurae's scripts import as `aurae`: `createClient()` (config
 * search, `{kind: "path", path}` or `{kind: "opts", ca_crt, client_crt, client_key, socket}`)
 * and `print(...)`. Scripts reach it by any path ending in `auraescript/gen/aurae.ts`.
 */
export {
  AuraeClient,
  createClient,
  type CreateClientDefault,
  type CreateClientOpts,
  type CreateClientOptions,
  type CreateClientPath,
  type ClientOptions,
} from "../../client/client.js";
export { AuraeClientError } from "../../client/errors.js";
export { AuraeConfigError } from "../../client/config.js";
export type { AuraeStream, CallOptions } from "../../client/call.js";
export { print } from "../print.js";
