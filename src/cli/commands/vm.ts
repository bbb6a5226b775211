import { Command, InvalidArgumentError } from "commander";
import { join, resolve } from "node:path";
import { VmServiceClient, type DeepPartial, type DriveMount, type VmServiceAllocateRequest, type VirtualMachineSummary } from "../../client/services/vms.js";
import { expandHome } from "../../client/config.js";
import { buildVmImage, type BuildProgress, type VmImage } from "../../vmimage/build.js";
import { example, type Runner } from "../command.js";
import { CliError } from "../render.js";
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

export interface VmImageBuildOptions {
  libraryDir: string;
  pkiDir: string;
  caCrt?: string;
  caKey?: string;
  kernelPackage?: string;
  kernelDeb?: string;
  extraBinary?: string[];
}

/** What `aer vm image build` prints for a human. */
export function vmImageText(image: VmImage): string {
  return [
    `kernel:    ${image.kernel}`,
    `initramfs: ${image.initramfs} (${(image.initramfsBytes / 1048576).toFixed(1)} MiB)`,
    `release:   ${image.kernelRelease}`,
    `image:     ${image.id}${image.cached ? " (cached)" : ""}`,
    `current:   ${image.current ?? "-"}`,
  ].join("\n");
}

/**
 * Runs the image build; progress lines go to `progress` (stderr), each with the time since the
 * start. Local failures become CliErrors (FAILED_PRECONDITION: a missing tool, file or package).
 */
export async function vmImageBuild(o: VmImageBuildOptions, progress: (line: string) => void): Promise<VmImage> {
  const pkiDir = resolve(expandHome(o.pkiDir));
  const started = Date.now();
  try {
    return await buildVmImage({
      libraryDir: resolve(o.libraryDir),
      caCrt: resolve(expandHome(o.caCrt ?? join(pkiDir, "ca.crt"))),
      caKey: resolve(expandHome(o.caKey ?? join(pkiDir, "ca.key"))),
      kernelPackage: o.kernelPackage,
      kernelDeb: o.kernelDeb !== undefined ? resolve(o.kernelDeb) : undefined,
      extraBinaries: o.extraBinary,
      linkCurrent: true,
      onProgress: (p: BuildProgress) => progress(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${p.step}: ${p.message}`),
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EACCES" || e.code === "EPERM") throw new CliError("PERMISSION_DENIED", `vm image build: ${e.message}`);
    throw new CliError("FAILED_PRECONDITION", `vm image build: ${e.message}`);
  }
}

function vmImageCommand(run: Runner): Command {
  const image = new Command("image").description("guest images: a kernel and an initramfs running auraed as pid 1");
  example(
    image
      .command("build")
      .description(
        "build (or reuse) a guest image from this machine's files: Debian's kernel (apt-get download), Node, the built auraed as " +
          "its init (/init and /sbin/init), and a server certificate of its own signed by the CA. Progress on stderr; cached by content under " +
          "<library-dir>/vm-images, with <library-dir>/vm-images/current pointing at the newest",
      )
      .option("--library-dir <dir>", "cache root", "/var/lib/aurae")
      .option("--pki-dir <dir>", "where ca.crt and ca.key are (aer pki create)", "~/.aurae/pki")
      .option("--ca-crt <path>", "CA certificate the daemon trusts (default <pki-dir>/ca.crt)")
      .option("--ca-key <path>", "its key, which signs the guest's certificate (default <pki-dir>/ca.key)")
      .option("--kernel-package <pkg>", "linux-image-<version> to fetch with apt-get download (default: what linux-image-amd64 depends on)")
      .option("--kernel-deb <path>", "use this kernel .deb instead of downloading one")
      .option("--extra-binary <path>", "host executable copied into the guest with its libraries (repeatable)", collect)
      .action(
        run<VmImageBuildOptions>(async (_ctx, _args, o) => {
          const img = await vmImageBuild(o, (line) => process.stderr.write(`${line}\n`));
          return { data: img, human: vmImageText(img) };
        }),
      ),
    "aer vm image build",
    "aer vm allocate vm1 --kernel /var/lib/aurae/vm-images/current/vmlinux --mem-mb 1024 --vcpus 2",
  );
  return example(image, "aer vm image build", "aer vm image build --json");
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
      .option("--root-drive <path>", "the guest's root filesystem: an initramfs (default: initramfs.img beside the kernel)")
      .option("--root-drive-read-only", "read_only of the root drive (no effect on an initramfs, which lives in RAM)")
      .option("--drive-mount <img:path:fstype[:ro]>", "extra disk mounted in the guest (repeatable)", (v: string, prev: string[] = []) => (parseDriveMount(v), collect(v, prev)))
      .option("--auraed-address <addr>", "address the guest's auraed listens on")
      .action(
        run<VmAllocateOptions>(async (ctx, [id], o) => {
          const res = await new VmServiceClient(ctx.client).allocate(vmAllocateRequest(id!, o), ctx.call);
          return { data: res, human: `allocated vm '${res.vmId}'` };
        }),
      ),
    "aer vm allocate vm1 --kernel /var/lib/aurae/vm-images/current/vmlinux --mem-mb 512 --vcpus 1",
    "aer vm allocate vm2 --kernel vmlinux --root-drive initramfs.img --drive-mount /srv/data.img:/data:ext4:ro",
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
      .description("remove a stopped (or never started) VM and everything it holds on the host")
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
  vm.addCommand(vmImageCommand(run));
  return example(vm, "aer vm image build", "aer vm allocate vm1 --kernel /var/lib/aurae/vm-images/current/vmlinux", "aer vm start vm1", "aer vm list");
}
