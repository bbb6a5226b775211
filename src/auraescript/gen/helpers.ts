/** `auraescript/gen/helpers.ts`: Aurae's early scripts import `print` from here. */
export { print } from "../print.js";
