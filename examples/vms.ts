// Allocate, start, list, stop and free a micro-VM. Needs a kernel image: AURAE_VM_KERNEL=/path/to/vmlinux.
import { VmServiceClient } from "aurae-ts";
import { existsSync } from "node:fs";
import { connect, Skip, skipWhenMissing, unique } from "./connect.ts";

const kernel = process.env["AURAE_VM_KERNEL"] ?? "/var/lib/aurae/vm/kernel/vmlinux";
const client = connect();
const vms = new VmServiceClient(client);
const id = unique("ex-vm");
let allocated = false;

try {
  await vms.list(); // UNIMPLEMENTED or UNAVAILABLE when this daemon runs no VMs
  if (!existsSync(kernel)) throw new Skip(`no kernel image at ${kernel} (set AURAE_VM_KERNEL)`);
  await vms.allocate({ machine: { id, memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel } });
  allocated = true;
  const { auraedAddress } = await vms.start({ vmId: id });
  console.log(`started ${id}; its auraed listens on ${auraedAddress}`);
  const { machines } = await vms.list();
  const me = machines.find((m) => m.id === id);
  console.log(`listed ${id}: ${me?.status}`);
  await vms.stop({ vmId: id });
  console.log(`stopped ${id}`);
} catch (err) {
  skipWhenMissing(err, "micro-VMs");
} finally {
  if (allocated) await vms.free({ vmId: id });
  client.close();
}
