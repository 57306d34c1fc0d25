/**
 * Test helpers: hand-made config spaces and PciDev objects for the quirk tests.
 */
import { BusType } from '../../../src/device/bus.js';
import { ConfigSpace } from '../../../src/pci/config-space.js';
import { PciBus, PciDev, type ConfigOrigin } from '../../../src/pci/pci-dev.js';

/** What a test function looks like. */
export interface FnSpec {
  vendor: number;
  device: number;
  /** 24-bit class code; default 0x020000 (Ethernet), 0x060400 for bridges. */
  classCode?: number;
  /** Header type 0 (normal) or 1 (PCI-to-PCI bridge). Default 0. */
  hdrType?: 0 | 1;
  /** Set the multifunction bit of the header type. */
  multifunction?: boolean;
  /** PCIe port type (PcieType) for a PCIe capability at 0x40; omit for conventional PCI. */
  pcieType?: number;
  /** A standard ACS capability at 0x100: 16-bit Capability at 0x104 and Control at 0x106. */
  acs?: { cap: number; ctl: number };
  /** An ACS capability at 0x100 laid out as Intel SPT does: Capability dword at 0x104, Control dword at 0x108. */
  sptAcs?: { capDword: number; ctlDword: number; specCtl?: number };
  /** Subsystem vendor/device (type 0 header). */
  subsystem?: { vendor: number; device: number };
  /** Bridges: secondary (and subordinate) bus number. */
  secondaryBus?: number;
}

function w16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >> 8) & 0xff;
}

function w32(b: Uint8Array, off: number, v: number): void {
  w16(b, off, v & 0xffff);
  w16(b, off + 2, (v >>> 16) & 0xffff);
}

/** A 4096-byte config space for `spec`. */
export function makeConfig(spec: FnSpec): Uint8Array {
  const b = new Uint8Array(4096);
  const hdrType = spec.hdrType ?? 0;
  w16(b, 0x00, spec.vendor);
  w16(b, 0x02, spec.device);
  const cls = spec.classCode ?? (hdrType === 1 ? 0x060400 : 0x020000);
  b[0x09] = cls & 0xff;
  b[0x0a] = (cls >> 8) & 0xff;
  b[0x0b] = (cls >> 16) & 0xff;
  b[0x0e] = hdrType | (spec.multifunction ? 0x80 : 0);
  if (hdrType === 0 && spec.subsystem) {
    w16(b, 0x2c, spec.subsystem.vendor);
    w16(b, 0x2e, spec.subsystem.device);
  }
  if (hdrType === 1) {
    b[0x19] = spec.secondaryBus ?? 0;
    b[0x1a] = spec.secondaryBus ?? 0;
  }
  if (spec.pcieType !== undefined) {
    w16(b, 0x06, 0x0010); // status: capability list
    b[0x34] = 0x40;
    b[0x40] = 0x10; // PCI_CAP_ID_EXP
    b[0x41] = 0x00; // end of list
    w16(b, 0x42, (spec.pcieType << 4) | 0x2); // PCI_EXP_FLAGS: type, version 2
  }
  if (spec.acs) {
    w32(b, 0x100, 0x000d | (1 << 16)); // ACS, version 1, no next
    w16(b, 0x104, spec.acs.cap);
    w16(b, 0x106, spec.acs.ctl);
  } else if (spec.sptAcs) {
    w32(b, 0x100, 0x000d | (1 << 16));
    w32(b, 0x104, spec.sptAcs.capDword);
    if (spec.sptAcs.specCtl !== undefined) w16(b, 0x106, spec.sptAcs.specCtl);
    w32(b, 0x108, spec.sptAcs.ctlDword);
  }
  return b;
}

/** The `pci` bus type all test devices share. */
export const pciBusType = new BusType('pci');

/** A fresh root bus 0000:00. */
export function rootBus(): PciBus {
  return new PciBus(0, 0, null, null, 'pci0000:00');
}

/** A child bus behind `bridge` (its secondary bus number). */
export function childBus(parent: PciBus, bridge: PciDev, number: number): PciBus {
  const bus = new PciBus(parent.domain, number, parent, bridge, parent.hostBridge);
  bridge.subordinate = bus;
  parent.children.push(bus);
  return bus;
}

/** A PciDev at `slot.fn` on `bus`, with config from `spec`. */
export function makeDev(bus: PciBus, slot: number, fn: number, spec: FnSpec, origin: ConfigOrigin = 'sysfs'): PciDev {
  const dev = new PciDev(pciBusType, bus, (slot << 3) | fn, new ConfigSpace(makeConfig(spec)), origin, null);
  bus.devices.push(dev);
  return dev;
}

/** Count the devfns in a function's DMA alias mask. */
export function aliasCount(dev: PciDev): number {
  let n = 0;
  for (let d = 0; d < 256; d++) if (dev.hasDmaAlias(d)) n++;
  return n;
}
