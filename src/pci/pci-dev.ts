/**
 * A PCI function and a PCI bus, as the IOMMU core sees them.
 *
 * Linux: struct pci_dev and struct pci_bus (include/linux/pci.h), filled in by
 * pci_setup_device() / set_pcie_port_type() / pci_acs_init()
 * (drivers/pci/probe.c, drivers/pci/pci.c).
 */
import { Device } from '../device/device.js';
import type { BusType } from '../device/bus.js';
import { ConfigSpace } from './config-space.js';
import {
  PCI_CLASS_PROG,
  PCI_DEVICE_ID,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_BRIDGE,
  PCI_HEADER_TYPE_CARDBUS,
  PCI_HEADER_TYPE_MASK,
  PCI_HEADER_TYPE_MFD,
  PCI_REVISION_ID,
  PCI_SECONDARY_BUS,
  PCI_SUBORDINATE_BUS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  PCI_PRIMARY_BUS,
} from './regs.js';

/** `pci_dev.dev_flags` bits the grouping code reads. Linux: enum pci_dev_flags, include/linux/pci.h. */
export const PciDevFlags = {
  /** Device's ACS was enabled by a device-specific quirk. Linux: PCI_DEV_FLAGS_ACS_ENABLED_QUIRK. */
  ACS_ENABLED_QUIRK: 1 << 3,
  /** A non-PCIe bridge that really is a PCIe-to-PCI bridge (aliases as secondary-bus 00.0). Linux: PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS. */
  PCIE_BRIDGE_ALIAS: 1 << 7,
  /** The IOMMU sits below this bridge: alias walks stop here. Linux: PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT. */
  BRIDGE_XLATE_ROOT: 1 << 9,
} as const;

/** A PCI bus. Linux: struct pci_bus. */
export class PciBus {
  /** PCI domain (segment). */
  readonly domain: number;
  /** Bus number (0–255). */
  readonly number: number;
  /** Parent bus, or null for a root bus. Linux: pci_bus.parent. */
  readonly parent: PciBus | null;
  /** The bridge whose secondary side this bus is; null for root buses (and SR-IOV virtual buses). Linux: pci_bus.self. */
  readonly self: PciDev | null;
  /** Functions on this bus in scan order (devfn ascending). Linux: pci_bus.devices. */
  readonly devices: PciDev[] = [];
  /** Child buses in scan order. Linux: pci_bus.children. */
  readonly children: PciBus[] = [];
  /** The host bridge name for root buses (`pci0000:00`); inherited below. */
  readonly hostBridge: string;

  constructor(domain: number, number: number, parent: PciBus | null, self: PciDev | null, hostBridge: string) {
    this.domain = domain;
    this.number = number;
    this.parent = parent;
    this.self = self;
    this.hostBridge = hostBridge;
  }

  /** True for a root bus. Linux: pci_is_root_bus(). */
  get isRoot(): boolean {
    return this.parent === null;
  }

  /** `dddd:bb`, as Linux names buses. */
  get name(): string {
    return `${hex(this.domain, 4)}:${hex(this.number, 2)}`;
  }
}

/** Where a function's config space came from. */
export type ConfigOrigin = 'sysfs' | 'lspci' | 'synthetic';

/** A PCI function. Linux: struct pci_dev. */
export class PciDev {
  /** The embedded driver-model device. Linux: pci_dev.dev. */
  readonly dev: Device;
  /** The bus the function is on. Linux: pci_dev.bus. */
  readonly bus: PciBus;
  /** Device/function number: slot << 3 | function. Linux: pci_dev.devfn. */
  readonly devfn: number;
  /** Config space as read. */
  readonly config: ConfigSpace;
  /** Where `config` came from: the kernel's sysfs, a reconstruction from lspci text, or a generator. */
  readonly origin: ConfigOrigin;

  /** Vendor ID. Linux: pci_dev.vendor. */
  readonly vendor: number;
  /** Device ID. Linux: pci_dev.device. */
  readonly device: number;
  /** Subsystem vendor ID (0 if unknown). Linux: pci_dev.subsystem_vendor. */
  readonly subsystemVendor: number;
  /** Subsystem device ID (0 if unknown). Linux: pci_dev.subsystem_device. */
  readonly subsystemDevice: number;
  /** 24-bit class code (class << 16 | subclass << 8 | prog-if). Linux: pci_dev.class. */
  readonly classCode: number;
  /** Revision ID. Linux: pci_dev.revision. */
  readonly revision: number;
  /** Header type, low 7 bits (0 normal, 1 bridge, 2 CardBus). Linux: pci_dev.hdr_type. */
  readonly hdrType: number;
  /**
   * Multi-function device: header bit 7, or forced for functions > 0 found by
   * the slot scan. SR-IOV VFs are created with 0. Linux: pci_dev.multifunction,
   * pci_scan_slot(), drivers/pci/probe.c.
   */
  multifunction: boolean;
  /** Offset of the PCIe capability, 0 if conventional PCI. Linux: pci_dev.pcie_cap. */
  readonly pcieCap: number;
  /** PCIe device/port type (PcieType), or -1 if not PCIe. Linux: pci_pcie_type(). */
  pcieType: number;
  /** Offset of the ACS capability, 0 if none. Linux: pci_dev.acs_cap (pci_acs_init()). */
  readonly acsCap: number;
  /** Offset of the ARI capability, 0 if none. */
  readonly ariCap: number;
  /** Offset of the SR-IOV capability, 0 if none. */
  readonly sriovCap: number;
  /** Offset of the PASID capability, 0 if none. */
  readonly pasidCap: number;
  /** Bridges: primary, secondary and subordinate bus numbers (0 for non-bridges). */
  readonly primaryBus: number;
  /** Bridges: secondary bus number. */
  readonly secondaryBus: number;
  /** Bridges: subordinate bus number. */
  readonly subordinateBus: number;
  /** The bus on this bridge's secondary side once scanned. Linux: pci_dev.subordinate. */
  subordinate: PciBus | null = null;
  /** `dev_flags` (PciDevFlags bits). Linux: pci_dev.dev_flags. */
  devFlags = 0;
  /** Devfns on the same bus this function also issues DMA as (256-bit mask), or null. Linux: pci_dev.dma_alias_mask. */
  dmaAliasMask: Uint32Array | null = null;
  /** Behind an external-facing port (Thunderbolt): untrusted. Linux: pci_dev.untrusted. */
  untrusted = false;
  /** An SR-IOV virtual function. Linux: pci_dev.is_virtfn. */
  isVirtfn = false;
  /** For VFs: the physical function. Linux: pci_dev.physfn. */
  physfn: PciDev | null = null;
  /** What quirks did to this function, in order (for `iommu explain`). */
  readonly quirkNotes: string[] = [];
  /** What had to be assumed about this function (for a reader of the output). */
  readonly assumptions: string[] = [];

  constructor(pciBus: BusType, bus: PciBus, devfn: number, config: ConfigSpace, origin: ConfigOrigin, parent: Device | null) {
    this.bus = bus;
    this.devfn = devfn;
    this.config = config;
    this.origin = origin;
    const c = config;
    this.vendor = c.read16(PCI_VENDOR_ID);
    this.device = c.read16(PCI_DEVICE_ID);
    this.revision = c.read8(PCI_REVISION_ID);
    this.classCode = c.read8(PCI_CLASS_PROG) | (c.read16(PCI_CLASS_PROG + 1) << 8);
    const ht = c.read8(PCI_HEADER_TYPE);
    this.hdrType = ht & PCI_HEADER_TYPE_MASK;
    this.multifunction = (ht & PCI_HEADER_TYPE_MFD) !== 0;
    if (this.hdrType === 0) {
      this.subsystemVendor = c.readable(PCI_SUBSYSTEM_VENDOR_ID, 2) ? c.read16(PCI_SUBSYSTEM_VENDOR_ID) : 0;
      this.subsystemDevice = c.readable(PCI_SUBSYSTEM_ID, 2) ? c.read16(PCI_SUBSYSTEM_ID) : 0;
    } else {
      this.subsystemVendor = 0;
      this.subsystemDevice = 0;
    }
    if (this.hdrType === PCI_HEADER_TYPE_BRIDGE || this.hdrType === PCI_HEADER_TYPE_CARDBUS) {
      this.primaryBus = c.read8(PCI_PRIMARY_BUS);
      this.secondaryBus = c.read8(PCI_SECONDARY_BUS);
      this.subordinateBus = c.read8(PCI_SUBORDINATE_BUS);
    } else {
      this.primaryBus = this.secondaryBus = this.subordinateBus = 0;
    }
    this.pcieCap = c.findPcieCapability();
    this.pcieType = this.pcieCap ? (c.read16(this.pcieCap + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_TYPE) >> 4 : -1;
    this.acsCap = c.findExtCapability(PCI_EXT_CAP_ID_ACS);
    this.ariCap = c.findExtCapability(PCI_EXT_CAP_ID_ARI);
    this.sriovCap = c.findExtCapability(PCI_EXT_CAP_ID_SRIOV);
    this.pasidCap = c.findExtCapability(PCI_EXT_CAP_ID_PASID);
    this.dev = new Device(formatBdf(bus.domain, bus.number, devfn), pciBus, parent);
    this.dev.container = this;
  }

  /** `dddd:bb:dd.f`. Linux: pci_name(). */
  get bdf(): string {
    return this.dev.name;
  }

  /** Slot (device) number: devfn >> 3. Linux: PCI_SLOT(). */
  get slot(): number {
    return this.devfn >> 3;
  }

  /** Function number: devfn & 7. Linux: PCI_FUNC(). */
  get func(): number {
    return this.devfn & 7;
  }

  /** True if the function has a PCIe capability. Linux: pci_is_pcie(). */
  get isPcie(): boolean {
    return this.pcieCap !== 0;
  }

  /** True for a type 1 (PCI-to-PCI) or CardBus header. Linux: pci_is_bridge(). */
  get isBridge(): boolean {
    return this.hdrType === PCI_HEADER_TYPE_BRIDGE || this.hdrType === PCI_HEADER_TYPE_CARDBUS;
  }

  /** 16-bit requester ID: bus << 8 | devfn. Linux: PCI_DEVID(bus->number, devfn). */
  get requesterId(): number {
    return (this.bus.number << 8) | this.devfn;
  }

  /**
   * Record that this function also issues DMA as devfns [devfnFrom, devfnFrom+nr) on
   * its bus (clamped to 256). Linux: pci_add_dma_alias(), drivers/pci/pci.c.
   */
  addDmaAlias(devfnFrom: number, nr: number, why: string): void {
    const mask = (this.dmaAliasMask ??= new Uint32Array(8));
    const end = Math.min(devfnFrom + nr, 256);
    for (let d = devfnFrom; d < end; d++) mask[d >> 5]! |= 1 << (d & 31);
    const first = formatDevfn(devfnFrom);
    this.quirkNotes.push(
      nr === 1 ? `DMA alias ${first} added (${why})` : `DMA aliases ${first}..${formatDevfn(end - 1)} added (${why})`,
    );
  }

  /** True if `devfn` is in this function's DMA alias mask. */
  hasDmaAlias(devfn: number): boolean {
    const m = this.dmaAliasMask;
    return m !== null && (m[devfn >> 5]! & (1 << (devfn & 31))) !== 0;
  }
}

/** `dddd:bb:dd.f` from numbers. */
export function formatBdf(domain: number, bus: number, devfn: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}:${formatDevfn(devfn)}`;
}

/** `dd.f` from a devfn. */
export function formatDevfn(devfn: number): string {
  return `${hex(devfn >> 3, 2)}.${devfn & 7}`;
}

/** Parsed BDF. */
export interface Bdf {
  readonly domain: number;
  readonly bus: number;
  readonly devfn: number;
}

/**
 * Parse `dddd:bb:dd.f` or `bb:dd.f` (domain 0); null if malformed.
 * Hex fields; slot < 32, function < 8.
 */
export function parseBdf(text: string): Bdf | null {
  const m = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(text.trim());
  if (!m) return null;
  const slot = parseInt(m[3]!, 16);
  if (slot > 31) return null;
  return { domain: m[1] ? parseInt(m[1], 16) : 0, bus: parseInt(m[2]!, 16), devfn: (slot << 3) | parseInt(m[4]!, 10) };
}

/** Lower-case hex, zero-padded to `width`. */
export function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** The PciDev embedding `dev`, or null if `dev` is not a PCI function. Linux: dev_is_pci() / to_pci_dev(). */
export function toPciDev(dev: Device): PciDev | null {
  return dev.container instanceof PciDev ? dev.container : null;
}
