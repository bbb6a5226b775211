/** `auraescript/gen/vms.ts`: the vms service's messages and its promise client, as Aurae's scripts import them. */
export * from "../../client/services/vms.js";
