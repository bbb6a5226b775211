import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildVmImage, type VmImage } from "./build.js";

export const VM_IMAGE_BUILD_USAGE = `usage: vm image build [options]

Builds a micro-VM guest image (kernel + initramfs running auraed as pid 1) from this machine's
files and prints where it is. Cached by content under <library-dir>/vm-images.

  --library-dir <dir>     cache root (default /var/lib/aurae)
  --ca-crt <path>         host CA certificate (default /etc/aurae/pki/ca.crt)
  --ca-key <path>         host CA key that signs the guest's certificate (default /etc/aurae/pki/ca.key)
  --kernel-package <pkg>  linux-image-<version> to download with apt-get (default: linux-image-amd64's dependency)
  --kernel-deb <path>     use this kernel .deb instead of downloading
  --extra-binary <path>   copy a host executable (and its libraries) into the guest; repeatable
  --json                  print the result as JSON
`;

/**
 * `vm image build`: the entry the CLI (`aer vm image build`) calls with the arguments after
 * `build`. Progress goes to stderr; the result to stdout. Returns the built image.
 */
export async function runVmImageBuild(argv: string[], out: { stdout: (s: string) => void; stderr: (s: string) => void } = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
}): Promise<VmImage> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "library-dir": { type: "string", default: "/var/lib/aurae" },
      "ca-crt": { type: "string", default: "/etc/aurae/pki/ca.crt" },
      "ca-key": { type: "string", default: "/etc/aurae/pki/ca.key" },
      "kernel-package": { type: "string" },
      "kernel-deb": { type: "string" },
      "extra-binary": { type: "string", multiple: true },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const started = Date.now();
  const image = await buildVmImage({
    libraryDir: values["library-dir"]!,
    caCrt: values["ca-crt"]!,
    caKey: values["ca-key"]!,
    kernelPackage: values["kernel-package"],
    kernelDeb: values["kernel-deb"],
    extraBinaries: values["extra-binary"],
    onProgress: (p) => out.stderr(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${p.step}: ${p.message}\n`),
  });
  if (values.json) {
    out.stdout(JSON.stringify(image) + "\n");
  } else {
    out.stdout(
      `kernel:    ${image.kernel}\ninitramfs: ${image.initramfs} (${(image.initramfsBytes / 1048576).toFixed(1)} MiB)\n` +
        `release:   ${image.kernelRelease}\nid:        ${image.id}${image.cached ? " (cached)" : ""}\n`,
    );
  }
  return image;
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  const args = process.argv.slice(2);
  if (args[0] === "build") args.shift();
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(VM_IMAGE_BUILD_USAGE);
  } else {
    runVmImageBuild(args).catch((err: Error) => {
      process.stderr.write(`vm image build failed: ${err.message}\n`);
      process.exit(1);
    });
  }
}
