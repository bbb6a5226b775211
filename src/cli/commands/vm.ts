import { Command, InvalidArgumentError } from "commander";
import { VmServiceClient, type DeepPartial, type DriveMount, type VmServiceAllocateRequest, type VirtualMachineSummary } from "../../client/services/vms.js";
import { example, type Runner } from "../command.js";
import { collect, intArg } from "../units.js";

/** Parses `--drive-mount image:vm_path:fs_type[:ro]`. */
export function parseDriveMount(text: string): DriveMount {
  const parts = text.split(":");
  const ro = parts.length === 4 && parts[3] === "ro";
  if (!(parts.length === 3 || ro) || parts.slice(0, 3).some((p) => p === "")) {
    throw new InvalidArgumentError(`'${text}' is not image:vm_path:fs_type[:ro]`);
  }
  return { imagePath: parts[0]!, vmPath: parts[1]!, fsType: parts[2]!, readOnly: ro };
}

export interface VmAllocateOptions {
  kernel: string;
  memMb?: number;
  vcpus?: number;
  kernelArg?: string[];
  rootDrive?: string;
  rootDriveReadOnly?: boolean;
  driveMount?: string[];
  auraedAddress?: string;
}

/** The Allocate request for `aer vm allocate ID --kernel PATH ...`. */
export function vmAllocateRequest(id: string, o: VmAllocateOptions): DeepPartial<VmServiceAllocateRequest> {
  return {
    machine: {
      id,
      kernelImgPath: o.kernel,
      memSizeMb: o.memMb ?? 512,
      vcpuCount: o.vcpus ?? 1,
      kernelArgs: o.kernelArg ?? [],
      ...(o.rootDrive !== undefined ? { rootDrive: { imagePath: o.rootDrive, readOnly: o.rootDriveReadOnly ?? false } } : {}),
      driveMounts: (o.driveMount ?? []).map(parseDriveMount),
      auraedAddress: o.auraedAddress ?? "",
    },
  };
}

/** The VM list as an aligned table. */
export function vmTable(machines: VirtualMachineSummary[]): string {
  if (machines.length === 0) return "no virtual machines";
  const rows = [["ID", "STATUS", "MEM", "VCPUS", "AURAED", "KERNEL"]];
  for (const m of machines) rows.push([m.id, m.status, `${m.memSizeMb}M`, String(m.vcpuCount), m.auraedAddress || "-", m.kernelImgPath]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}

export function vmCommand(run: Runner): Command {
  const vm = new Command("vm").description("micro-VMs running auraed as their PID 1");

  example(
    vm
      .command("allocate")
      .description("define a VM (not started)")
      .argument("<id>", "VM id")
      .requiredOption("--kernel <path>", "kernel image (an uncompressed vmlinux boots fastest)")
      .option("--mem-mb <n>", "memory in MiB (default 512)", intArg(16, 1 << 20))
      .option("--vcpus <n>", "virtual CPUs (default 1)", intArg(1, 256))
      .option("--kernel-arg <arg>", "kernel command line argument (repeatable)", collect)
      .option("--root-drive <path>", "root disk image")
      .option("--root-drive-read-only", "attach the root disk read-only")
      .option("--drive-mount <img:path:fstype[:ro]>", "extra disk mounted in the guest (repeatable)", (v: string, prev: string[] = []) => (parseDriveMount(v), collect(v, prev)))
      .option("--auraed-address <addr>", "address the guest's auraed listens on")
      .action(
        run<VmAllocateOptions>(async (ctx, [id], o) => {
          const res = await new VmServiceClient(ctx.client).allocate(vmAllocateRequest(id!, o), ctx.call);
          return { data: res, human: `allocated vm '${res.vmId}'` };
        }),
      ),
    "aer vm allocate vm1 --kernel /var/lib/aurae/vm/vmlinux --mem-mb 512 --vcpus 1",
    "aer vm allocate vm2 --kernel vmlinux --root-drive disk.raw --drive-mount data.img:/data:ext4:ro",
  );

  example(
    vm
      .command("start")
      .description("boot a VM; prints the address of the auraed inside")
      .argument("<id>", "VM id")
      .action(
        run(async (ctx, [id]) => {
          const res = await new VmServiceClient(ctx.client).start({ vmId: id! }, ctx.call);
          return { data: res, human: `started vm '${id}': auraed at ${res.auraedAddress || "(unknown)"}` };
        }),
      ),
    "aer vm start vm1",
  );

  example(
    vm
      .command("stop")
      .description("shut a VM down")
      .argument("<id>", "VM id")
      .action(
        run(async (ctx, [id]) => {
          await new VmServiceClient(ctx.client).stop({ vmId: id! }, ctx.call);
          return { data: {}, human: `stopped vm '${id}'` };
        }),
      ),
    "aer vm stop vm1",
  );

  example(
    vm
      .command("free")
      .description("remove a VM's definition (stopping it first)")
      .argument("<id>", "VM id")
      .action(
        run(async (ctx, [id]) => {
          await new VmServiceClient(ctx.client).free({ vmId: id! }, ctx.call);
          return { data: {}, human: `freed vm '${id}'` };
        }),
      ),
    "aer vm free vm1",
  );

  example(
    vm
      .command("list")
      .alias("ls")
      .description("the VMs and their status as the VMM reports it")
      .action(
        run(async (ctx) => {
          const res = await new VmServiceClient(ctx.client).list({}, ctx.call);
          return { data: res, human: vmTable(res.machines) };
        }),
      ),
    "aer vm list",
  );
  return example(vm, "aer vm allocate vm1 --kernel /var/lib/aurae/vm/kernel/vmlinux", "aer vm start vm1", "aer vm list");
}
