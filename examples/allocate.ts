// Allocate a cell with CPU, memory and pids limits, a nested cell under it, draw the tree, free.
import { Cell, CellServiceClient, type CellGraphNode } from "aurae-ts";
import { connect, unique } from "./connect.ts";

const client = connect();
const cells = new CellServiceClient(client);
const name = unique("ex-allocate");
let allocated = false;

try {
  const parent = await cells.allocate({
    cell: Cell.fromPartial({
      name,
      cpu: { max: 50_000, period: 100_000 }, // half a CPU
      memory: { max: 64 * 1024 * 1024 },
      pids: { max: 64 },
    }),
  });
  allocated = true;
  console.log(`allocated ${parent.cellName} (cgroup ${parent.cgroupV2 ? "v2" : "v1"})`);
  await cells.allocate({ cell: { name: `${name}/child` } });

  const { cells: tree } = await cells.list();
  const mine = tree.find((n) => n.cell?.name === name);
  const show = (n: CellGraphNode, depth = 0): void => {
    console.log(`${"  ".repeat(depth)}${n.cell?.name} cpu.max=${n.cell?.cpu?.max ?? "-"} memory.max=${n.cell?.memory?.max ?? "-"}`);
    n.children.forEach((c) => show(c, depth + 1));
  };
  if (!mine) throw new Error(`cell ${name} is missing from the list`);
  show(mine);
} finally {
  if (allocated) await cells.free({ cellName: name }); // frees the child too
  client.close();
}
console.log(`freed ${name}`);
