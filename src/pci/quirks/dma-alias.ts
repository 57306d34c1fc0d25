/**
 * The PCI fixups that change IOMMU grouping: requester-ID (DMA) aliases and
 * the bridge flags the alias walk reads (PCIE_BRIDGE_ALIAS,
 * BRIDGE_XLATE_ROOT, PCI_BRIDGE_NO_ALIAS), as a table of
 * DECLARE_PCI_FIXUP_* entries plus one small function per fixup.
 *
 * Linux: quirk_dma_func0_alias(), quirk_dma_func1_alias(),
 * quirk_fixed_dma_alias() + fixed_dma_alias_tbl[],
 * quirk_use_pcie_bridge_dma_alias(), quirk_mic_x200_dma_alias(),
 * quirk_pex_vca_alias(), quirk_bridge_cavm_thrx2_pcie_root(),
 * quirk_aspeed_pci_bridge_no_alias(), quirk_switchtec_ntb_dma_alias(),
 * quirk_plx_ntb_dma_alias(), and the fixup matching of pci_do_fixups(),
 * drivers/pci/quirks.c.
 *
 * Kernel revision read: drivers/pci/quirks.c as mirrored in CachyOS/linux at
 * commit 019736d77e14e08565a2f1144fa9a0b831b23590 (newer than v6.18; the
 * torvalds/linux copy available to us was a 2016 snapshot). Cross-checked
 * against an older mainline snapshot, which has every fixup here except
 * quirk_aspeed_pci_bridge_no_alias (AST1150), added recently together with
 * the PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS flag.
 *
 * These are every fixup in quirks.c that calls pci_add_dma_alias() or sets
 * PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS, PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT or
 * PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS. Header fixups run at
 * pci_setup_device() time (the function's bus, and that bus's bridge, are
 * known); final fixups later, at device add. {@link applyPciFixups} runs the
 * header pass, then the final pass, each in declaration order.
 */
import type { PciDev } from '../pci-dev.js';
import { formatDevfn, PciDevFlags } from '../pci-dev.js';
import { PCI_HEADER_TYPE_BRIDGE, PcieType } from '../regs.js';
import { PCI_ANY_ID } from './acs.js';

/**
 * The class wildcard of a fixup entry: PCI_ANY_ID as a u32.
 * Linux: DECLARE_PCI_FIXUP_SECTION() with class PCI_ANY_ID, include/linux/pci.h.
 */
export const PCI_ANY_CLASS = 0xffffffff;

/**
 * "This PCIe-to-PCI bridge does not create requester-ID aliases" (it is
 * integrated with the devices below it and forwards their IDs). Defined
 * here because `PciDevFlags` does not carry it yet; pci_for_each_dma_alias()
 * skips a PCIe-to-PCI bridge with this flag instead of calling back with
 * secondary-bus 00.0.
 * Linux: PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS = 1 << 14, enum pci_dev_flags, include/linux/pci.h.
 */
export const PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS = 1 << 14;

/** PCI_CLASS_BRIDGE_OTHER (class 06, subclass 80). Linux: include/linux/pci_ids.h. */
export const PCI_CLASS_BRIDGE_OTHER = 0x0680;

/** Vendor IDs used by the fixups here. Linux: PCI_VENDOR_ID_*, include/linux/pci_ids.h. */
export const FixupVendor = {
  /** Linux: PCI_VENDOR_ID_RICOH. */
  RICOH: 0x1180,
  /** Linux: PCI_VENDOR_ID_GLENFLY. */
  GLENFLY: 0x6766,
  /** Linux: PCI_VENDOR_ID_MARVELL_EXT. */
  MARVELL_EXT: 0x1b4b,
  /** Linux: PCI_VENDOR_ID_TTI (HighPoint). */
  TTI: 0x1103,
  /** Linux: PCI_VENDOR_ID_JMICRON. */
  JMICRON: 0x197b,
  /** Lite-On / Plextor, written as a literal in quirks.c. */
  LITEON: 0x1c28,
  /** Linux: PCI_VENDOR_ID_ADAPTEC2. */
  ADAPTEC2: 0x9005,
  /** Linux: PCI_VENDOR_ID_ASMEDIA. */
  ASMEDIA: 0x1b21,
  /** Tundra, written as a literal in quirks.c. */
  TUNDRA: 0x10e3,
  /** ITE, written as a literal in quirks.c. */
  ITE: 0x1283,
  /** Linux: PCI_VENDOR_ID_INTEL. */
  INTEL: 0x8086,
  /** Linux: PCI_VENDOR_ID_BROADCOM. */
  BROADCOM: 0x14e4,
  /** Linux: PCI_VENDOR_ID_ASPEED. */
  ASPEED: 0x1a03,
  /** Linux: PCI_VENDOR_ID_MICROSEMI. */
  MICROSEMI: 0x11f8,
  /** Linux: PCI_VENDOR_ID_EFAR (Switchtec PCI100x parts). */
  EFAR: 0x1055,
  /** Linux: PCI_VENDOR_ID_PLX. */
  PLX: 0x10b5,
} as const;

/** Linux: PCI_DEVICE_ID_JMICRON_JMB388_ESD, include/linux/pci_ids.h. */
export const PCI_DEVICE_ID_JMICRON_JMB388_ESD = 0x2392;

/** Names of the fixup functions. Linux: the quirk_*() hooks of the DECLARE_PCI_FIXUP_* entries below, drivers/pci/quirks.c. */
export type PciFixupName =
  | 'quirk_dma_func0_alias'
  | 'quirk_dma_func1_alias'
  | 'quirk_fixed_dma_alias'
  | 'quirk_use_pcie_bridge_dma_alias'
  | 'quirk_mic_x200_dma_alias'
  | 'quirk_pex_vca_alias'
  | 'quirk_bridge_cavm_thrx2_pcie_root'
  | 'quirk_aspeed_pci_bridge_no_alias'
  | 'quirk_switchtec_ntb_dma_alias'
  | 'quirk_plx_ntb_dma_alias';

/** When a fixup runs. Linux: enum pci_fixup_pass (pci_fixup_header, pci_fixup_final). */
export type PciFixupPass = 'header' | 'final';

/**
 * One DECLARE_PCI_FIXUP_* entry. Linux: struct pci_fixup, include/linux/pci.h.
 */
export interface PciFixupEntry {
  /** The pass the fixup is declared for (DECLARE_PCI_FIXUP_HEADER / _CLASS_FINAL …). */
  readonly pass: PciFixupPass;
  /** Vendor ID, or PCI_ANY_ID. */
  readonly vendor: number;
  /** Device ID, or PCI_ANY_ID. */
  readonly device: number;
  /** Class to match after shifting the function's 24-bit class right by `classShift`, or {@link PCI_ANY_CLASS}. */
  readonly classCode: number;
  /** Right shift applied to the function's class before comparing (8 = ignore the prog-if). */
  readonly classShift: number;
  /** The fixup function. */
  readonly hook: PciFixupName;
  /** The chip (from the kernel's comment, or pci.ids). */
  readonly chip: string;
}

const F = FixupVendor;

function hdr(vendor: number, device: number, hook: PciFixupName, chip: string): PciFixupEntry {
  return { pass: 'header', vendor, device, classCode: PCI_ANY_CLASS, classShift: 0, hook, chip };
}

function switchtec(vendor: number, device: number, chip: string): PciFixupEntry {
  return {
    pass: 'final',
    vendor,
    device,
    classCode: PCI_CLASS_BRIDGE_OTHER,
    classShift: 8,
    hook: 'quirk_switchtec_ntb_dma_alias',
    chip,
  };
}

/** Switchtec parts, in the kernel's order: [device ID, part] (SWITCHTEC_QUIRK(), vendor Microsemi). */
const SWITCHTEC_MICROSEMI: readonly (readonly [number, string])[] = [
  [0x8531, 'PFX 24xG3'], [0x8532, 'PFX 32xG3'], [0x8533, 'PFX 48xG3'], [0x8534, 'PFX 64xG3'],
  [0x8535, 'PFX 80xG3'], [0x8536, 'PFX 96xG3'],
  [0x8541, 'PSX 24xG3'], [0x8542, 'PSX 32xG3'], [0x8543, 'PSX 48xG3'], [0x8544, 'PSX 64xG3'],
  [0x8545, 'PSX 80xG3'], [0x8546, 'PSX 96xG3'],
  [0x8551, 'PAX 24XG3'], [0x8552, 'PAX 32XG3'], [0x8553, 'PAX 48XG3'], [0x8554, 'PAX 64XG3'],
  [0x8555, 'PAX 80XG3'], [0x8556, 'PAX 96XG3'],
  [0x8561, 'PFXL 24XG3'], [0x8562, 'PFXL 32XG3'], [0x8563, 'PFXL 48XG3'], [0x8564, 'PFXL 64XG3'],
  [0x8565, 'PFXL 80XG3'], [0x8566, 'PFXL 96XG3'],
  [0x8571, 'PFXI 24XG3'], [0x8572, 'PFXI 32XG3'], [0x8573, 'PFXI 48XG3'], [0x8574, 'PFXI 64XG3'],
  [0x8575, 'PFXI 80XG3'], [0x8576, 'PFXI 96XG3'],
  [0x4000, 'PFX 100XG4'], [0x4084, 'PFX 84XG4'], [0x4068, 'PFX 68XG4'], [0x4052, 'PFX 52XG4'],
  [0x4036, 'PFX 36XG4'], [0x4028, 'PFX 28XG4'],
  [0x4100, 'PSX 100XG4'], [0x4184, 'PSX 84XG4'], [0x4168, 'PSX 68XG4'], [0x4152, 'PSX 52XG4'],
  [0x4136, 'PSX 36XG4'], [0x4128, 'PSX 28XG4'],
  [0x4200, 'PAX 100XG4'], [0x4284, 'PAX 84XG4'], [0x4268, 'PAX 68XG4'], [0x4252, 'PAX 52XG4'],
  [0x4236, 'PAX 36XG4'], [0x4228, 'PAX 28XG4'],
  [0x4352, 'PFXA 52XG4'], [0x4336, 'PFXA 36XG4'], [0x4328, 'PFXA 28XG4'],
  [0x4452, 'PSXA 52XG4'], [0x4436, 'PSXA 36XG4'], [0x4428, 'PSXA 28XG4'],
  [0x4552, 'PAXA 52XG4'], [0x4536, 'PAXA 36XG4'], [0x4528, 'PAXA 28XG4'],
  [0x5000, 'PFX 100XG5'], [0x5084, 'PFX 84XG5'], [0x5068, 'PFX 68XG5'], [0x5052, 'PFX 52XG5'],
  [0x5036, 'PFX 36XG5'], [0x5028, 'PFX 28XG5'],
  [0x5100, 'PSX 100XG5'], [0x5184, 'PSX 84XG5'], [0x5168, 'PSX 68XG5'], [0x5152, 'PSX 52XG5'],
  [0x5136, 'PSX 36XG5'], [0x5128, 'PSX 28XG5'],
  [0x5200, 'PAX 100XG5'], [0x5284, 'PAX 84XG5'], [0x5268, 'PAX 68XG5'], [0x5252, 'PAX 52XG5'],
  [0x5236, 'PAX 36XG5'], [0x5228, 'PAX 28XG5'],
  [0x5300, 'PFXA 100XG5'], [0x5384, 'PFXA 84XG5'], [0x5368, 'PFXA 68XG5'], [0x5352, 'PFXA 52XG5'],
  [0x5336, 'PFXA 36XG5'], [0x5328, 'PFXA 28XG5'],
  [0x5400, 'PSXA 100XG5'], [0x5484, 'PSXA 84XG5'], [0x5468, 'PSXA 68XG5'], [0x5452, 'PSXA 52XG5'],
  [0x5436, 'PSXA 36XG5'], [0x5428, 'PSXA 28XG5'],
  [0x5500, 'PAXA 100XG5'], [0x5584, 'PAXA 84XG5'], [0x5568, 'PAXA 68XG5'], [0x5552, 'PAXA 52XG5'],
  [0x5536, 'PAXA 36XG5'], [0x5528, 'PAXA 28XG5'],
];

/** Switchtec PCI100x parts (SWITCHTEC_PCI100X_QUIRK(), vendor EFAR). */
const SWITCHTEC_EFAR: readonly (readonly [number, string])[] = [
  [0x1001, 'PCI1001XG4'], [0x1002, 'PCI1002XG4'], [0x1003, 'PCI1003XG4'],
  [0x1004, 'PCI1004XG4'], [0x1005, 'PCI1005XG4'], [0x1006, 'PCI1006XG4'],
];

/**
 * Every fixup in drivers/pci/quirks.c that affects DMA aliasing, in
 * declaration order (141 entries).
 * Linux: the DECLARE_PCI_FIXUP_HEADER() / DECLARE_PCI_FIXUP_CLASS_FINAL()
 * lines for the fixups named in {@link PciFixupName}, drivers/pci/quirks.c.
 */
export const PCI_DMA_ALIAS_FIXUPS: readonly PciFixupEntry[] = Object.freeze([
  // Some Ricoh devices use function 0 as the PCIe requester ID for DMA (RH bz 605888)
  hdr(F.RICOH, 0xe832, 'quirk_dma_func0_alias', 'Ricoh R5C832 PCIe IEEE 1394 controller'),
  hdr(F.RICOH, 0xe476, 'quirk_dma_func0_alias', 'Ricoh CardBus bridge'),
  // Some Glenfly chips use function 0 as the PCIe requester ID for DMA
  hdr(F.GLENFLY, 0x3d40, 'quirk_dma_func0_alias', 'Glenfly Arise-GT-10C0 HD Audio'),
  hdr(F.GLENFLY, 0x3d41, 'quirk_dma_func0_alias', 'Glenfly Arise1020 HD Audio'),
  // Marvell 88SE9xxx use function 1 as the requester ID for DMA (kernel bz 42679)
  hdr(F.MARVELL_EXT, 0x9120, 'quirk_dma_func1_alias', 'Marvell 88SE9120 SATA'),
  hdr(F.MARVELL_EXT, 0x9123, 'quirk_dma_func1_alias', 'Marvell 88SE9123 SATA'),
  hdr(F.MARVELL_EXT, 0x9125, 'quirk_dma_func1_alias', 'Marvell 88SE9125 SATA'),
  hdr(F.MARVELL_EXT, 0x9128, 'quirk_dma_func1_alias', 'Marvell 88SE9128 SATA RAID'),
  hdr(F.MARVELL_EXT, 0x9130, 'quirk_dma_func1_alias', 'Marvell 88SE9128 SATA RAID with HyperDuo'),
  hdr(F.MARVELL_EXT, 0x9170, 'quirk_dma_func1_alias', 'Marvell 88SE9170 SATA'),
  hdr(F.MARVELL_EXT, 0x9172, 'quirk_dma_func1_alias', 'Marvell 88SE9172 SATA'),
  hdr(F.MARVELL_EXT, 0x917a, 'quirk_dma_func1_alias', 'Marvell 88SE9172 SATA RAID'),
  hdr(F.MARVELL_EXT, 0x9182, 'quirk_dma_func1_alias', 'Marvell 88SE9182 SATA'),
  hdr(F.MARVELL_EXT, 0x9183, 'quirk_dma_func1_alias', 'Marvell 88SS9183 PCIe SSD controller'),
  hdr(F.MARVELL_EXT, 0x91a0, 'quirk_dma_func1_alias', 'Marvell 88SE912x SATA (IDE mode)'),
  hdr(F.MARVELL_EXT, 0x9215, 'quirk_dma_func1_alias', 'Marvell 88SE9215 SATA'),
  hdr(F.MARVELL_EXT, 0x9220, 'quirk_dma_func1_alias', 'Marvell 88SE9220 SATA RAID'),
  hdr(F.MARVELL_EXT, 0x9230, 'quirk_dma_func1_alias', 'Marvell 88SE9230 SATA RAID'),
  hdr(F.MARVELL_EXT, 0x9235, 'quirk_dma_func1_alias', 'Marvell 88SE9235 SATA'),
  hdr(F.TTI, 0x0642, 'quirk_dma_func1_alias', 'HighPoint (TTI) RocketRAID 642L'),
  hdr(F.TTI, 0x0645, 'quirk_dma_func1_alias', 'HighPoint (TTI) RocketRAID 644L'),
  // https://bugs.gentoo.org/show_bug.cgi?id=497630
  hdr(F.JMICRON, PCI_DEVICE_ID_JMICRON_JMB388_ESD, 'quirk_dma_func1_alias', 'JMicron JMB388 SD/MMC'),
  // kernel bz 42679#c117
  hdr(F.LITEON, 0x0122, 'quirk_dma_func1_alias', 'Plextor M6E (Marvell 88SS9183)'),
  // Fixed aliases, with subsystem match (fixed_dma_alias_tbl)
  hdr(F.ADAPTEC2, 0x0285, 'quirk_fixed_dma_alias', 'Adaptec AAC-RAID (3405/3805: Intel 80333 I/O processor)'),
  // PCIe-to-PCI bridges without a PCIe capability (kernel bz 44881, 73551)
  hdr(F.ASMEDIA, 0x1080, 'quirk_use_pcie_bridge_dma_alias', 'ASMedia ASM1083/1085 PCIe-to-PCI bridge'),
  hdr(F.TUNDRA, 0x8113, 'quirk_use_pcie_bridge_dma_alias', 'Tundra 8113 PCIe-to-PCI bridge'),
  hdr(F.ITE, 0x8892, 'quirk_use_pcie_bridge_dma_alias', 'ITE IT8892E PCIe-to-PCI bridge'),
  hdr(F.ITE, 0x8893, 'quirk_use_pcie_bridge_dma_alias', 'ITE IT8893E PCIe-to-PCI bridge'),
  hdr(F.INTEL, 0x244e, 'quirk_use_pcie_bridge_dma_alias', 'Intel 82801 PCI bridge'),
  // MIC x200 NTB: alien RIDs from the RIT-LUT table in EEPROM
  hdr(F.INTEL, 0x2260, 'quirk_mic_x200_dma_alias', 'Intel MIC x200'),
  hdr(F.INTEL, 0x2264, 'quirk_mic_x200_dma_alias', 'Intel MIC x200'),
  // Intel Visual Compute Accelerator (NTB, PEX 87xx)
  hdr(F.INTEL, 0x2954, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  hdr(F.INTEL, 0x2955, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  hdr(F.INTEL, 0x2956, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  hdr(F.INTEL, 0x2958, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  hdr(F.INTEL, 0x2959, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  hdr(F.INTEL, 0x295a, 'quirk_pex_vca_alias', 'Intel Visual Compute Accelerator'),
  // Broadcom Vulcan / Cavium ThunderX2: the IOMMU sits below this bridge
  hdr(F.BROADCOM, 0x9000, 'quirk_bridge_cavm_thrx2_pcie_root', 'Broadcom Vulcan / Cavium ThunderX2 PCIe root'),
  hdr(F.BROADCOM, 0x9084, 'quirk_bridge_cavm_thrx2_pcie_root', 'Broadcom Vulcan / Cavium ThunderX2 PCIe root'),
  // AST1150 forwards downstream requester IDs (newest snapshot only)
  hdr(F.ASPEED, 0x1150, 'quirk_aspeed_pci_bridge_no_alias', 'ASPEED AST1150 PCIe-to-PCI bridge'),
  // Microsemi Switchtec NTB proxy IDs (DECLARE_PCI_FIXUP_CLASS_FINAL, class PCI_CLASS_BRIDGE_OTHER)
  ...SWITCHTEC_MICROSEMI.map(([d, part]) => switchtec(F.MICROSEMI, d, `Microsemi Switchtec ${part}`)),
  ...SWITCHTEC_EFAR.map(([d, part]) => switchtec(F.EFAR, d, `Microsemi Switchtec ${part}`)),
  // PLX NTB proxy IDs: all 256 devfns
  hdr(F.PLX, 0x87b0, 'quirk_plx_ntb_dma_alias', 'PLX PEX NT0 port virtual interface'),
  hdr(F.PLX, 0x87b1, 'quirk_plx_ntb_dma_alias', 'PLX PEX NT1 port virtual interface'),
]);

/** One row of fixed_dma_alias_tbl. Linux: struct pci_device_id (PCI_DEVICE_SUB() + driver_data). */
export interface FixedDmaAliasEntry {
  /** Vendor ID. */
  readonly vendor: number;
  /** Device ID. */
  readonly device: number;
  /** Subsystem vendor ID. */
  readonly subvendor: number;
  /** Subsystem device ID. */
  readonly subdevice: number;
  /** The devfn to alias: PCI_DEVFN(slot, fn). */
  readonly aliasDevfn: number;
  /** The product. */
  readonly chip: string;
}

/**
 * Devices that DMA with a fixed wrong devfn, matched with their subsystem IDs.
 * Linux: fixed_dma_alias_tbl[], drivers/pci/quirks.c.
 */
export const FIXED_DMA_ALIAS_TBL: readonly FixedDmaAliasEntry[] = Object.freeze([
  { vendor: F.ADAPTEC2, device: 0x0285, subvendor: F.ADAPTEC2, subdevice: 0x02bb, aliasDevfn: (1 << 3) | 0, chip: 'Adaptec 3405' },
  { vendor: F.ADAPTEC2, device: 0x0285, subvendor: F.ADAPTEC2, subdevice: 0x02bc, aliasDevfn: (1 << 3) | 0, chip: 'Adaptec 3805' },
]);

function slotFn(devfn: number): string {
  return formatDevfn(devfn);
}

/**
 * Functions other than 0 also DMA as function 0 of their slot.
 * Linux: quirk_dma_func0_alias(), drivers/pci/quirks.c.
 */
export function quirkDmaFunc0Alias(dev: PciDev): void {
  if (dev.func !== 0) {
    dev.addDmaAlias(dev.slot << 3, 1, 'quirk_dma_func0_alias: this chip issues DMA as function 0 of its slot');
  } else {
    dev.quirkNotes.push('quirk_dma_func0_alias: matched, but this is function 0 itself: no alias');
  }
}

/**
 * Functions other than 1 also DMA as function 1 of their slot (a "phantom"
 * function when 1 is absent).
 * Linux: quirk_dma_func1_alias(), drivers/pci/quirks.c.
 */
export function quirkDmaFunc1Alias(dev: PciDev): void {
  if (dev.func !== 1) {
    dev.addDmaAlias((dev.slot << 3) | 1, 1, 'quirk_dma_func1_alias: this chip issues DMA as function 1 of its slot');
  } else {
    dev.quirkNotes.push('quirk_dma_func1_alias: matched, but this is function 1 itself: no alias');
  }
}

/**
 * Add the fixed alias of the first {@link FIXED_DMA_ALIAS_TBL} row matching
 * vendor, device and subsystem vendor/device; nothing if none matches.
 * Linux: quirk_fixed_dma_alias() / pci_match_id(), drivers/pci/quirks.c.
 */
export function quirkFixedDmaAlias(dev: PciDev): void {
  const id = FIXED_DMA_ALIAS_TBL.find(
    (r) =>
      r.vendor === dev.vendor &&
      r.device === dev.device &&
      r.subvendor === dev.subsystemVendor &&
      r.subdevice === dev.subsystemDevice,
  );
  if (id) {
    dev.addDmaAlias(id.aliasDevfn, 1, `quirk_fixed_dma_alias: ${id.chip}: its hidden DMA engine uses ${slotFn(id.aliasDevfn)}`);
  } else {
    const sub = `${dev.subsystemVendor.toString(16).padStart(4, '0')}:${dev.subsystemDevice.toString(16).padStart(4, '0')}`;
    dev.quirkNotes.push(`quirk_fixed_dma_alias: matched, but subsystem ${sub} is not in fixed_dma_alias_tbl: no alias`);
  }
}

/**
 * A conventional (non-PCIe) PCI-to-PCI bridge header, not on a root bus,
 * whose upstream bridge (`dev.bus.self`) is PCIe and not itself a
 * PCIe-to-PCI bridge, is really a PCIe-to-PCI bridge: set
 * PCIE_BRIDGE_ALIAS, so devices behind it alias to secondary-bus 00.0.
 * Linux: quirk_use_pcie_bridge_dma_alias(), drivers/pci/quirks.c.
 */
export function quirkUsePcieBridgeDmaAlias(dev: PciDev): void {
  const up = dev.bus.self;
  let why: string | null = null;
  if (dev.bus.isRoot) why = 'it is on a root bus';
  else if (dev.hdrType !== PCI_HEADER_TYPE_BRIDGE) why = 'it does not have a PCI-to-PCI bridge header';
  else if (dev.isPcie) why = 'it has a PCIe capability (its own PCIe type decides)';
  else if (!up) why = 'its bus has no bridge above it';
  else if (!up.isPcie) why = `the bridge above it (${up.bdf}) is not PCIe`;
  else if (up.pcieType === PcieType.PCI_BRIDGE) why = `the bridge above it (${up.bdf}) is itself a PCIe-to-PCI bridge`;
  if (why === null) {
    dev.devFlags |= PciDevFlags.PCIE_BRIDGE_ALIAS;
    dev.quirkNotes.push(
      'quirk_use_pcie_bridge_dma_alias: a PCIe-to-PCI bridge without a PCIe capability: PCIE_BRIDGE_ALIAS set, devices behind it alias to secondary-bus 00.0',
    );
  } else {
    dev.quirkNotes.push(`quirk_use_pcie_bridge_dma_alias: matched, but ${why}: PCIE_BRIDGE_ALIAS not set`);
  }
}

/**
 * Intel MIC x200: add aliases 10.0, 11.0 and 12.3 (the RIT-LUT entries
 * programmed in its EEPROM). Linux: quirk_mic_x200_dma_alias(), drivers/pci/quirks.c.
 */
export function quirkMicX200DmaAlias(dev: PciDev): void {
  const why = 'quirk_mic_x200_dma_alias: MIC x200 NTB forwards traffic with these requester IDs';
  dev.addDmaAlias((0x10 << 3) | 0, 1, why);
  dev.addDmaAlias((0x11 << 3) | 0, 1, why);
  dev.addDmaAlias((0x12 << 3) | 3, 1, why);
}

/**
 * Intel VCA: for every slot 0–31 alias functions 0–4 (the other side of the
 * NTB may use any slot). Linux: quirk_pex_vca_alias(), drivers/pci/quirks.c.
 */
export function quirkPexVcaAlias(dev: PciDev): void {
  for (let slot = 0; slot < 0x20; slot++) {
    dev.addDmaAlias(slot << 3, 5, 'quirk_pex_vca_alias: VCA computational units reach host memory through the NTB');
  }
}

/**
 * Broadcom Vulcan / Cavium ThunderX2 root: set BRIDGE_XLATE_ROOT (the IOMMU
 * sits below this bridge, so alias walks stop here).
 * Linux: quirk_bridge_cavm_thrx2_pcie_root(), drivers/pci/quirks.c.
 */
export function quirkBridgeCavmThrx2PcieRoot(dev: PciDev): void {
  dev.devFlags |= PciDevFlags.BRIDGE_XLATE_ROOT;
  dev.quirkNotes.push('quirk_bridge_cavm_thrx2_pcie_root: the IOMMU sits below this bridge: BRIDGE_XLATE_ROOT set, DMA alias walks stop here');
}

/**
 * ASPEED AST1150: set PCI_BRIDGE_NO_ALIAS (it forwards the downstream
 * devices' requester IDs unchanged).
 * Linux: quirk_aspeed_pci_bridge_no_alias(), drivers/pci/quirks.c.
 */
export function quirkAspeedPciBridgeNoAlias(dev: PciDev): void {
  dev.devFlags |= PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS;
  dev.quirkNotes.push(
    'quirk_aspeed_pci_bridge_no_alias: this PCIe-to-PCI bridge forwards requester IDs unchanged: PCI_BRIDGE_NO_ALIAS set, it adds no secondary-bus 00.0 alias',
  );
}

/**
 * Microsemi Switchtec NTB: the kernel maps BAR0 and adds every proxy ID in
 * the peer partitions' requester-ID tables as an alias. That MMIO cannot be
 * read here: no alias is added, and an assumption says the aliases are
 * unknown. Linux: quirk_switchtec_ntb_dma_alias(), drivers/pci/quirks.c.
 */
export function quirkSwitchtecNtbDmaAlias(dev: PciDev): void {
  dev.quirkNotes.push(
    'quirk_switchtec_ntb_dma_alias: Switchtec NTB endpoint: the kernel aliases the proxy IDs listed in its NTB requester-ID tables (MMIO)',
  );
  dev.assumptions.push(
    'Switchtec NTB: the DMA aliases come from requester-ID tables in BAR0 MMIO, which cannot be read here; the aliases are unknown and none were added (the real group may be larger)',
  );
}

/**
 * PLX NTB: alias all 256 devfns of its bus (proxy IDs).
 * Linux: quirk_plx_ntb_dma_alias(), drivers/pci/quirks.c.
 */
export function quirkPlxNtbDmaAlias(dev: PciDev): void {
  dev.addDmaAlias(0, 256, 'quirk_plx_ntb_dma_alias: PLX NTB may use any devfn as a proxy requester ID');
}

/** The function behind each fixup name. Linux: the hook of struct pci_fixup, drivers/pci/quirks.c. */
export const PCI_FIXUP_FUNCTIONS: Readonly<Record<PciFixupName, (dev: PciDev) => void>> = Object.freeze({
  quirk_dma_func0_alias: quirkDmaFunc0Alias,
  quirk_dma_func1_alias: quirkDmaFunc1Alias,
  quirk_fixed_dma_alias: quirkFixedDmaAlias,
  quirk_use_pcie_bridge_dma_alias: quirkUsePcieBridgeDmaAlias,
  quirk_mic_x200_dma_alias: quirkMicX200DmaAlias,
  quirk_pex_vca_alias: quirkPexVcaAlias,
  quirk_bridge_cavm_thrx2_pcie_root: quirkBridgeCavmThrx2PcieRoot,
  quirk_aspeed_pci_bridge_no_alias: quirkAspeedPciBridgeNoAlias,
  quirk_switchtec_ntb_dma_alias: quirkSwitchtecNtbDmaAlias,
  quirk_plx_ntb_dma_alias: quirkPlxNtbDmaAlias,
});

/**
 * True if a fixup entry applies to the function: class (after the entry's
 * shift) equal or PCI_ANY_ID, vendor equal or PCI_ANY_ID, device equal or
 * PCI_ANY_ID. Linux: the test in pci_do_fixups(), drivers/pci/quirks.c.
 */
export function pciFixupMatches(f: PciFixupEntry, dev: PciDev): boolean {
  return (
    (f.classCode === PCI_ANY_CLASS || f.classCode === dev.classCode >>> f.classShift) &&
    (f.vendor === dev.vendor || f.vendor === PCI_ANY_ID) &&
    (f.device === dev.device || f.device === PCI_ANY_ID)
  );
}

/** Fixups that can match `vendor` (its own and PCI_ANY_ID ones), in declaration order; built once per vendor. */
const fixupsByVendor = new Map<number, readonly PciFixupEntry[]>();
function fixupsForVendor(vendor: number): readonly PciFixupEntry[] {
  let rows = fixupsByVendor.get(vendor);
  if (!rows) {
    rows = PCI_DMA_ALIAS_FIXUPS.filter((f) => f.vendor === vendor || f.vendor === PCI_ANY_ID);
    fixupsByVendor.set(vendor, rows);
  }
  return rows;
}

/**
 * Run the grouping-relevant fixups for one function: the header pass, then
 * the final pass, each in declaration order, calling every matching fixup.
 * Returns the names of the fixups that ran, in order. Each pushes a sentence
 * to `dev.quirkNotes` saying what it did (pci_add_dma_alias() via
 * `dev.addDmaAlias`), or why it did nothing.
 * Linux: pci_fixup_device(pci_fixup_header / pci_fixup_final, dev) →
 * pci_do_fixups(), drivers/pci/quirks.c.
 */
export function applyPciFixups(dev: PciDev): string[] {
  const applied: string[] = [];
  for (const pass of ['header', 'final'] as const) {
    for (const f of fixupsForVendor(dev.vendor)) {
      if (f.pass !== pass || !pciFixupMatches(f, dev)) continue;
      PCI_FIXUP_FUNCTIONS[f.hook](dev);
      applied.push(f.hook);
    }
  }
  return applied;
}
