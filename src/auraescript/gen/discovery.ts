/** `auraescript/gen/discovery.ts`: the discovery service's messages and its promise client, as Aurae's scripts import them. */
export * from "../../client/services/discovery.js";
