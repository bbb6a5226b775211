/** `auraescript/gen/cells.ts`: the cells service's messages and its promise client, as Aurae's scripts import them. */
export * from "../../client/services/cells.js";
