import type { Contender } from "./stats.js";
import { uniqueName, type Cells } from "./wire.js";

/** A measured Start of `command` in `cell` under a fresh name; the executable is stopped afterwards (untimed). */
export function startContender(cells: Cells, cell: string, command = "true"): Contender {
  let last = "";
  return {
    run: async () => {
      last = uniqueName("t");
      await cells.start(cell, last, command);
    },
    after: () => cells.stop(cell, last),
  };
}
