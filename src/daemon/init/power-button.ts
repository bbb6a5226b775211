/**
 * Watches the ACPI power button. QEMU's `system_powerdown` (QMP) raises an ACPI event that the
 * guest kernel's `button` driver turns into a KEY_POWER press on an evdev device named
 * "Power Button" (/dev/input/eventN); nothing reaches pid 1 unless it reads that device.
 * The read is event driven (koffi's libuv poll on the fd), never a blocked thread.
 */
import koffi from "koffi";
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";

const EV_KEY = 1;
const KEY_POWER = 116;
/** struct input_event on 64-bit: timeval (16) + type (2) + code (2) + value (4) */
const EVENT_SIZE = 24;

export interface PowerButtonWatch {
  /** the device being read, e.g. /dev/input/event0 */
  device: string;
  close(): void;
}

/** The evdev device nodes whose name is "Power Button". */
export function findPowerButtons(): string[] {
  const base = "/sys/class/input";
  if (!existsSync(base)) return [];
  const out: string[] = [];
  for (const e of readdirSync(base)) {
    if (!e.startsWith("event")) continue;
    try {
      const name = readFileSync(`${base}/${e}/device/name`, "utf8").trim();
      if (name === "Power Button" && existsSync(`/dev/input/${e}`)) out.push(`/dev/input/${e}`);
    } catch {
      /* device went away */
    }
  }
  return out;
}

/** Calls `onPress` on every press of the power button; undefined when the machine has none. */
export function watchPowerButton(onPress: () => void): PowerButtonWatch[] {
  const watches: PowerButtonWatch[] = [];
  for (const device of findPowerButtons()) {
    const fd = openSync(device, constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(EVENT_SIZE * 64);
    const handle = koffi.node.poll(fd, { readable: true }, () => {
      for (;;) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch {
          return; // EAGAIN: drained
        }
        if (n <= 0) return;
        for (let off = 0; off + EVENT_SIZE <= n; off += EVENT_SIZE) {
          const type = buf.readUInt16LE(off + 16);
          const code = buf.readUInt16LE(off + 18);
          const value = buf.readInt32LE(off + 20);
          if (type === EV_KEY && code === KEY_POWER && value === 1) onPress();
        }
      }
    });
    handle.unref();
    watches.push({
      device,
      close: () => {
        handle.close();
        closeSync(fd);
      },
    });
  }
  return watches;
}
