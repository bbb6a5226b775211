/** `auraescript/gen/observe.ts`: the observe service's messages and its promise client, as Aurae's scripts import them. */
export * from "../../client/services/observe.js";
