// Allocate, start, list, stop and free a micro-VM. Needs a kernel image: AURAE_VM_KERNEL=/path/to/vmlinux.
import { VmServiceClient } from "aurae-ts";
import { existsSync } from "node:fs";
import { connect, skipIfMissing, unique } from "./connect.ts";

const kernel = process.env["AURAE_VM_KERNEL"] ?? "/var/lib/aurae/vm/kernel/vmlinux";
const client = connect();
const vms = new VmServiceClient(client);
const id = unique("ex-vm");

try {
  try {
    await vms.list();
  } catch (err) {
    skipIfMissing(err, "micro-VMs");
  }
  if (!existsSync(kernel)) {
    console.log(`skip: micro-VMs: no kernel image at ${kernel} (set AURAE_VM_KERNEL)`);
    process.exit(0);
  }
  await vms.allocate({ machine: { id, memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel } });
  const { auraedAddress } = await vms.start({ vmId: id });
  console.log(`started ${id}; its auraed listens on ${auraedAddress}`);
  const { machines } = await vms.list();
  const me = machines.find((m) => m.id === id);
  console.log(`listed ${id}: ${me?.status}`);
  await vms.stop({ vmId: id });
  console.log(`stopped ${id}`);
} finally {
  await vms.free({ vmId: id }).catch(() => undefined);
  client.close();
}
