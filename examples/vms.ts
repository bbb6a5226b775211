// Allocate, start, list, stop and free a micro-VM, and talk to the auraed inside it.
// Needs a guest image: `aer vm image build` (then the default path below works), or
// AURAE_VM_KERNEL=/path/to/vmlinux with initramfs.img beside it.
import { DiscoveryServiceClient, VmServiceClient, createClient } from "aurae-ts";
import { existsSync } from "node:fs";
import { connect, Skip, skipWhenMissing, unique } from "./connect.ts";

const kernel = process.env["AURAE_VM_KERNEL"] ?? "/var/lib/aurae/vm-images/current/vmlinux";
const client = connect();
const vms = new VmServiceClient(client);
const id = unique("ex-vm");
let allocated = false;

try {
  await vms.list(); // UNIMPLEMENTED or UNAVAILABLE when this daemon runs no VMs
  if (!existsSync(kernel)) throw new Skip(`no kernel image at ${kernel} (run 'aer vm image build' or set AURAE_VM_KERNEL)`);
  await vms.allocate({ machine: { id, memSizeMb: 512, vcpuCount: 1, kernelImgPath: kernel } });
  allocated = true;
  const { auraedAddress } = await vms.start({ vmId: id });
  console.log(`started ${id}; its auraed listens on ${auraedAddress}`);

  // The guest's auraed trusts the same CA: the same client certificate works there.
  const guest = createClient({ config: client.config, socket: auraedAddress });
  try {
    const { healthy, version } = await new DiscoveryServiceClient(guest).discover({});
    console.log(`guest auraed ${version} healthy=${healthy}`);
  } finally {
    guest.close();
  }

  const { machines } = await vms.list();
  console.log(`listed ${id}: ${machines.find((m) => m.id === id)?.status}`);
  await vms.stop({ vmId: id });
  console.log(`stopped ${id}`);
} catch (err) {
  skipWhenMissing(err, "micro-VMs");
} finally {
  if (allocated) await vms.free({ vmId: id });
  client.close();
}
