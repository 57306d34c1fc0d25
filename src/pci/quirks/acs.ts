/**
 * Device-specific "ACS enabled" quirks: functions that isolate their traffic
 * without an (honest) ACS capability, and the table that says which function
 * to ask for which vendor/device.
 *
 * Linux: pci_dev_acs_enabled[], pci_dev_specific_acs_enabled() and the
 * pci_quirk_*_acs() functions, drivers/pci/quirks.c.
 *
 * Kernel revision read: drivers/pci/quirks.c as mirrored in CachyOS/linux at
 * commit 019736d77e14e08565a2f1144fa9a0b831b23590 (237,134 characters), a
 * mainline-tracking tree newer than v6.18. The only torvalds/linux copy of
 * quirks.c available to us was a 2016 snapshot (84389343d35f), so this is the
 * newest mainline text we could read. Cross-checked against linux-6.18.y
 * (Crazh3/unifreq_linux-6.18.y @ 11c8cf7a814e) and an older mainline
 * snapshot: the Loongson root-port entries appear in 6.18 but not in the
 * older snapshot, and the Qualcomm Hamoa (0x0111) and Glymur (0x0120) root
 * ports appear only in the newest one; the other rows read the same in all
 * three, and the quirk functions the same in the older and the newest.
 *
 * The table is carried as data in the kernel's order, one row per kernel
 * entry. The first matching row whose function returns >= 0 decides.
 */
import type { PciDev } from '../pci-dev.js';
import { PciDevFlags } from '../pci-dev.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_CR,
  PCI_ACS_DT,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PcieType,
} from '../regs.js';
import { ERRNO } from '../../base/errno.js';

/**
 * What the ACS quirks need to know about the platform beyond the function's
 * own config space.
 *
 * - `acpiIvrsPresent`: the ACPI IVRS table (the AMD IOMMU description) is
 *   present. `pci_quirk_amd_sb_acs` only vouches for the AMD southbridge
 *   functions when it is; on a kernel built without CONFIG_ACPI the quirk
 *   never applies, which is the same as passing false.
 *
 * No other ACS quirk reads anything outside the function itself (the Intel
 * PCH quirk reads the function's `devFlags`, set by the enable quirk in
 * `acs-enable.ts`).
 *
 * Linux: the platform state read by pci_quirk_amd_sb_acs(), drivers/pci/quirks.c.
 */
export interface QuirkContext {
  /** ACPI IVRS table present. Read by pci_quirk_amd_sb_acs() via acpi_get_table("IVRS"). */
  readonly acpiIvrsPresent: boolean;
}

/**
 * The vendor/device wildcard. Linux: PCI_ANY_ID (~0), compared as (u16)PCI_ANY_ID
 * in the quirk tables, include/linux/mod_devicetable.h.
 */
export const PCI_ANY_ID = 0xffff;

/** Vendor IDs used by the ACS quirk table. Linux: PCI_VENDOR_ID_*, include/linux/pci_ids.h. */
export const AcsQuirkVendor = {
  /** Linux: PCI_VENDOR_ID_ATI. */
  ATI: 0x1002,
  /** Linux: PCI_VENDOR_ID_AMD. */
  AMD: 0x1022,
  /** Linux: PCI_VENDOR_ID_SOLARFLARE. */
  SOLARFLARE: 0x1924,
  /** Linux: PCI_VENDOR_ID_INTEL. */
  INTEL: 0x8086,
  /** Linux: PCI_VENDOR_ID_QCOM. */
  QCOM: 0x17cb,
  /** Linux: PCI_VENDOR_ID_HXT. */
  HXT: 0x1dbf,
  /** Emulex (BE3-R), written as a literal in the table. */
  EMULEX_19A2: 0x19a2,
  /** Emulex (Skyhawk-R), written as a literal in the table. */
  EMULEX_10DF: 0x10df,
  /** Linux: PCI_VENDOR_ID_CAVIUM. */
  CAVIUM: 0x177d,
  /** Linux: PCI_VENDOR_ID_AMCC (Applied Micro, X-Gene). */
  AMCC: 0x10e8,
  /** Linux: PCI_VENDOR_ID_AMPERE. */
  AMPERE: 0x1def,
  /** Linux: PCI_VENDOR_ID_BROADCOM. */
  BROADCOM: 0x14e4,
  /** Linux: PCI_VENDOR_ID_LOONGSON. */
  LOONGSON: 0x0014,
  /** Linux: PCI_VENDOR_ID_AMAZON_ANNAPURNA_LABS. */
  AMAZON_ANNAPURNA_LABS: 0x1c36,
  /** Linux: PCI_VENDOR_ID_ZHAOXIN. */
  ZHAOXIN: 0x1d17,
  /** Linux: PCI_VENDOR_ID_NXP (same value as PCI_VENDOR_ID_FREESCALE). */
  NXP: 0x1957,
  /** Linux: PCI_VENDOR_ID_WANGXUN. */
  WANGXUN: 0x8088,
} as const;

/** Names of the ACS quirk functions. Linux: the pci_quirk_*_acs() functions, drivers/pci/quirks.c. */
export type AcsQuirkName =
  | 'pci_quirk_amd_sb_acs'
  | 'pci_quirk_mf_endpoint_acs'
  | 'pci_quirk_rciep_acs'
  | 'pci_quirk_qcom_rp_acs'
  | 'pci_quirk_intel_pch_acs'
  | 'pci_quirk_intel_spt_pch_acs'
  | 'pci_quirk_cavium_acs'
  | 'pci_quirk_xgene_acs'
  | 'pci_quirk_brcm_acs'
  | 'pci_quirk_loongson_acs'
  | 'pci_quirk_al_acs'
  | 'pci_quirk_nxp_rp_acs'
  | 'pci_quirk_zhaoxin_pcie_ports_acs'
  | 'pci_quirk_wangxun_nic_acs';

/** One row of the ACS quirk table. Linux: struct pci_dev_acs_enabled, drivers/pci/quirks.c. */
export interface AcsQuirkEntry {
  /** Vendor ID, or {@link PCI_ANY_ID}. */
  readonly vendor: number;
  /** Device ID, or {@link PCI_ANY_ID}. */
  readonly device: number;
  /** The quirk function the kernel calls. */
  readonly quirk: AcsQuirkName;
  /** The chip (from the kernel's comment, or pci.ids when the kernel has none). */
  readonly chip: string;
}

const V = AcsQuirkVendor;
const ANY = PCI_ANY_ID;

function e(vendor: number, device: number, quirk: AcsQuirkName, chip: string): AcsQuirkEntry {
  return { vendor, device, quirk, chip };
}

/**
 * The ACS "enabled" quirk table, complete and in the kernel's order (132 rows).
 * Linux: pci_dev_acs_enabled[], drivers/pci/quirks.c.
 */
export const PCI_DEV_ACS_ENABLED: readonly AcsQuirkEntry[] = Object.freeze([
  // AMD/ATI southbridge multifunction devices (only with an AMD IOMMU: IVRS)
  e(V.ATI, 0x4385, 'pci_quirk_amd_sb_acs', 'SBx00 SMBus Controller'),
  e(V.ATI, 0x439c, 'pci_quirk_amd_sb_acs', 'SB7x0/SB8x0/SB9x0 IDE Controller'),
  e(V.ATI, 0x4383, 'pci_quirk_amd_sb_acs', 'SBx00 Azalia (Intel HDA)'),
  e(V.ATI, 0x439d, 'pci_quirk_amd_sb_acs', 'SB7x0/SB8x0/SB9x0 LPC host controller'),
  e(V.ATI, 0x4384, 'pci_quirk_amd_sb_acs', 'SBx00 PCI to PCI Bridge'),
  e(V.ATI, 0x4399, 'pci_quirk_amd_sb_acs', 'SB7x0/SB8x0/SB9x0 USB OHCI2 Controller'),
  e(V.AMD, 0x780f, 'pci_quirk_amd_sb_acs', 'AMD FCH PCI Bridge'),
  e(V.AMD, 0x7809, 'pci_quirk_amd_sb_acs', 'AMD FCH USB OHCI Controller'),
  // Solarflare
  e(V.SOLARFLARE, 0x0903, 'pci_quirk_mf_endpoint_acs', 'Solarflare SFC9120'),
  e(V.SOLARFLARE, 0x0923, 'pci_quirk_mf_endpoint_acs', 'Solarflare SFC9140'),
  e(V.SOLARFLARE, 0x0a03, 'pci_quirk_mf_endpoint_acs', 'Solarflare SFC9220'),
  // Intel 82598 / 82599 / X520 10GbE
  e(V.INTEL, 0x10c6, 'pci_quirk_mf_endpoint_acs', 'Intel 82598EB 10GbE AF Dual Port'),
  e(V.INTEL, 0x10db, 'pci_quirk_mf_endpoint_acs', 'Intel 82598EB 10GbE Dual Port'),
  e(V.INTEL, 0x10dd, 'pci_quirk_mf_endpoint_acs', 'Intel 82598EB 10GbE AT CX4'),
  e(V.INTEL, 0x10e1, 'pci_quirk_mf_endpoint_acs', 'Intel 82598EB 10GbE AF Dual Port'),
  e(V.INTEL, 0x10f1, 'pci_quirk_mf_endpoint_acs', 'Intel 82598EB 10GbE AF Dual Port'),
  e(V.INTEL, 0x10f7, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE BR KX4 Dual Port'),
  e(V.INTEL, 0x10f8, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE Dual Port Backplane'),
  e(V.INTEL, 0x10f9, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE Dual Port'),
  e(V.INTEL, 0x10fa, 'pci_quirk_mf_endpoint_acs', 'Intel 10GbE, ixgbe family (no pci.ids name)'),
  e(V.INTEL, 0x10fb, 'pci_quirk_mf_endpoint_acs', 'Intel 82599ES 10GbE SFI/SFP+'),
  e(V.INTEL, 0x10fc, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE Dual Port'),
  e(V.INTEL, 0x1507, 'pci_quirk_mf_endpoint_acs', 'Intel Ethernet Express Module X520-P2'),
  e(V.INTEL, 0x1514, 'pci_quirk_mf_endpoint_acs', 'Intel X520 10GbE Dual Port KX4 Mezz'),
  e(V.INTEL, 0x151c, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE TN'),
  e(V.INTEL, 0x1529, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE Dual Port with FCoE'),
  e(V.INTEL, 0x152a, 'pci_quirk_mf_endpoint_acs', 'Intel 82599 10GbE Dual Port Backplane with FCoE'),
  e(V.INTEL, 0x154d, 'pci_quirk_mf_endpoint_acs', 'Intel Ethernet 10G 2P X520'),
  e(V.INTEL, 0x154f, 'pci_quirk_mf_endpoint_acs', 'Intel 10GbE, ixgbe family (no pci.ids name)'),
  e(V.INTEL, 0x1551, 'pci_quirk_mf_endpoint_acs', 'Intel 10GbE, ixgbe family (no pci.ids name)'),
  e(V.INTEL, 0x1558, 'pci_quirk_mf_endpoint_acs', 'Intel Ethernet CNA X520-Q1'),
  // 82580
  e(V.INTEL, 0x1509, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE'),
  e(V.INTEL, 0x150e, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE'),
  e(V.INTEL, 0x150f, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE Fiber'),
  e(V.INTEL, 0x1510, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE Backplane'),
  e(V.INTEL, 0x1511, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE SFP'),
  e(V.INTEL, 0x1516, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE'),
  e(V.INTEL, 0x1527, 'pci_quirk_mf_endpoint_acs', 'Intel 82580 GbE Fiber'),
  // 82576
  e(V.INTEL, 0x10c9, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE'),
  e(V.INTEL, 0x10e6, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE'),
  e(V.INTEL, 0x10e7, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE'),
  e(V.INTEL, 0x10e8, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE'),
  e(V.INTEL, 0x150a, 'pci_quirk_mf_endpoint_acs', 'Intel 82576NS GbE'),
  e(V.INTEL, 0x150d, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE Backplane'),
  e(V.INTEL, 0x1518, 'pci_quirk_mf_endpoint_acs', 'Intel 82576NS SerDes GbE'),
  e(V.INTEL, 0x1526, 'pci_quirk_mf_endpoint_acs', 'Intel 82576 GbE'),
  // 82575
  e(V.INTEL, 0x10a7, 'pci_quirk_mf_endpoint_acs', 'Intel 82575EB GbE'),
  e(V.INTEL, 0x10a9, 'pci_quirk_mf_endpoint_acs', 'Intel 82575EB GbE Backplane'),
  e(V.INTEL, 0x10d6, 'pci_quirk_mf_endpoint_acs', 'Intel 82575GB GbE'),
  // I350
  e(V.INTEL, 0x1521, 'pci_quirk_mf_endpoint_acs', 'Intel I350 GbE'),
  e(V.INTEL, 0x1522, 'pci_quirk_mf_endpoint_acs', 'Intel I350 GbE Fiber'),
  e(V.INTEL, 0x1523, 'pci_quirk_mf_endpoint_acs', 'Intel I350 GbE Backplane'),
  e(V.INTEL, 0x1524, 'pci_quirk_mf_endpoint_acs', 'Intel I350 GbE'),
  // 82571 (quad-port parts omitted by the kernel: they sit behind a non-ACS switch)
  e(V.INTEL, 0x105e, 'pci_quirk_mf_endpoint_acs', 'Intel 82571EB/82571GB GbE'),
  e(V.INTEL, 0x105f, 'pci_quirk_mf_endpoint_acs', 'Intel 82571EB GbE'),
  e(V.INTEL, 0x1060, 'pci_quirk_mf_endpoint_acs', 'Intel 82571EB GbE'),
  e(V.INTEL, 0x10d9, 'pci_quirk_mf_endpoint_acs', 'Intel 82571EB Dual Port GbE Mezzanine'),
  // I219
  e(V.INTEL, 0x15b7, 'pci_quirk_mf_endpoint_acs', 'Intel Ethernet Connection (2) I219-LM'),
  e(V.INTEL, 0x15b8, 'pci_quirk_mf_endpoint_acs', 'Intel Ethernet Connection (2) I219-V'),
  // Every Intel root-complex integrated endpoint
  e(V.INTEL, ANY, 'pci_quirk_rciep_acs', 'Intel RCiEPs (any device ID)'),
  // QCOM QDF2xxx root ports
  e(V.QCOM, 0x0400, 'pci_quirk_qcom_rp_acs', 'Qualcomm QDF2432 root port'),
  e(V.QCOM, 0x0401, 'pci_quirk_qcom_rp_acs', 'Qualcomm QDF2400 root port'),
  // QCOM SA8775P root port
  e(V.QCOM, 0x0115, 'pci_quirk_qcom_rp_acs', 'Qualcomm SA8775P root port'),
  // QCOM Hamoa root port (newest snapshot only)
  e(V.QCOM, 0x0111, 'pci_quirk_qcom_rp_acs', 'Qualcomm Hamoa root port'),
  // QCOM Glymur root port (newest snapshot only)
  e(V.QCOM, 0x0120, 'pci_quirk_qcom_rp_acs', 'Qualcomm Glymur root port'),
  // HXT SD4800 root ports: same ACS design as QCOM QDF2xxx
  e(V.HXT, 0x0401, 'pci_quirk_qcom_rp_acs', 'HXT StarDragon SD4800 root port'),
  // Intel PCH root ports
  e(V.INTEL, ANY, 'pci_quirk_intel_pch_acs', 'Intel PCH root ports without ACS (listed IDs)'),
  e(V.INTEL, ANY, 'pci_quirk_intel_spt_pch_acs', 'Intel Sunrise/Union Point root ports (dword ACS registers)'),
  e(V.EMULEX_19A2, 0x0710, 'pci_quirk_mf_endpoint_acs', 'Emulex BE3-R'),
  e(V.EMULEX_10DF, 0x0720, 'pci_quirk_mf_endpoint_acs', 'Emulex Skyhawk-R'),
  // Cavium ThunderX
  e(V.CAVIUM, ANY, 'pci_quirk_cavium_acs', 'Cavium ThunderX1/2/3 root ports (listed IDs)'),
  // Cavium multi-function devices
  e(V.CAVIUM, 0xa026, 'pci_quirk_mf_endpoint_acs', 'Cavium ThunderX BGX'),
  e(V.CAVIUM, 0xa059, 'pci_quirk_mf_endpoint_acs', 'Cavium Octeon TX2 CGX'),
  e(V.CAVIUM, 0xa060, 'pci_quirk_mf_endpoint_acs', 'Cavium Octeon 10 RPM'),
  // APM X-Gene
  e(V.AMCC, 0xe004, 'pci_quirk_xgene_acs', 'APM X-Gene PCIe root port'),
  // Ampere Computing
  e(V.AMPERE, 0xe005, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 0'),
  e(V.AMPERE, 0xe006, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 1'),
  e(V.AMPERE, 0xe007, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 2'),
  e(V.AMPERE, 0xe008, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 3'),
  e(V.AMPERE, 0xe009, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 4'),
  e(V.AMPERE, 0xe00a, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 5'),
  e(V.AMPERE, 0xe00b, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 6'),
  e(V.AMPERE, 0xe00c, 'pci_quirk_xgene_acs', 'Ampere eMAG root port 7'),
  // Broadcom multi-function devices
  e(V.BROADCOM, 0x16d7, 'pci_quirk_mf_endpoint_acs', 'Broadcom BCM57414 NetXtreme-E'),
  e(V.BROADCOM, 0x1750, 'pci_quirk_mf_endpoint_acs', 'Broadcom BCM57508 NetXtreme-E'),
  e(V.BROADCOM, 0x1751, 'pci_quirk_mf_endpoint_acs', 'Broadcom BCM57504 NetXtreme-E'),
  e(V.BROADCOM, 0x1752, 'pci_quirk_mf_endpoint_acs', 'Broadcom BCM57502 NetXtreme-E'),
  e(V.BROADCOM, 0x1760, 'pci_quirk_mf_endpoint_acs', 'Broadcom NetXtreme-E (no pci.ids name)'),
  e(V.BROADCOM, 0x1761, 'pci_quirk_mf_endpoint_acs', 'Broadcom NetXtreme-E (no pci.ids name)'),
  e(V.BROADCOM, 0x1762, 'pci_quirk_mf_endpoint_acs', 'Broadcom NetXtreme-E (no pci.ids name)'),
  e(V.BROADCOM, 0x1763, 'pci_quirk_mf_endpoint_acs', 'Broadcom NetXtreme-E (no pci.ids name)'),
  e(V.BROADCOM, 0xd714, 'pci_quirk_brcm_acs', 'Broadcom iProc PAXB root port'),
  // Loongson PCIe root ports (in linux-6.18.y; absent from an older mainline snapshot)
  e(V.LOONGSON, 0x3c09, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x3c19, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x3c29, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a09, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a19, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a29, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a39, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a49, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a59, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  e(V.LOONGSON, 0x7a69, 'pci_quirk_loongson_acs', 'Loongson PCIe root port'),
  // Amazon Annapurna Labs
  e(V.AMAZON_ANNAPURNA_LABS, 0x0031, 'pci_quirk_al_acs', 'Amazon Annapurna Labs root port'),
  // Zhaoxin multi-function devices
  e(V.ZHAOXIN, 0x3038, 'pci_quirk_mf_endpoint_acs', 'Zhaoxin USB UHCI host controller'),
  e(V.ZHAOXIN, 0x3104, 'pci_quirk_mf_endpoint_acs', 'Zhaoxin USB EHCI host controller'),
  e(V.ZHAOXIN, 0x9083, 'pci_quirk_mf_endpoint_acs', 'Zhaoxin StorX AHCI controller'),
  // NXP root ports, xx=16, 12, or 08 cores
  // LX2xx0A: without security features + CAN-FD
  e(V.NXP, 0x8d81, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0A root port'),
  e(V.NXP, 0x8da1, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0A root port'),
  e(V.NXP, 0x8d83, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0A root port'),
  // LX2xx0C: security features + CAN-FD
  e(V.NXP, 0x8d80, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0C root port'),
  e(V.NXP, 0x8da0, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0C root port'),
  e(V.NXP, 0x8d82, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0C root port'),
  // LX2xx0E: security features + CAN
  e(V.NXP, 0x8d90, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0E root port'),
  e(V.NXP, 0x8db0, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0E root port'),
  e(V.NXP, 0x8d92, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0E root port'),
  // LX2xx0N: without security features + CAN
  e(V.NXP, 0x8d91, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0N root port'),
  e(V.NXP, 0x8db1, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0N root port'),
  e(V.NXP, 0x8d93, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx0N root port'),
  // LX2xx2A: without security features + CAN-FD
  e(V.NXP, 0x8d89, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2A root port'),
  e(V.NXP, 0x8da9, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2A root port'),
  e(V.NXP, 0x8d8b, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2A root port'),
  // LX2xx2C: security features + CAN-FD
  e(V.NXP, 0x8d88, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2C root port'),
  e(V.NXP, 0x8da8, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2C root port'),
  e(V.NXP, 0x8d8a, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2C root port'),
  // LX2xx2E: security features + CAN
  e(V.NXP, 0x8d98, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2E root port'),
  e(V.NXP, 0x8db8, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2E root port'),
  e(V.NXP, 0x8d9a, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2E root port'),
  // LX2xx2N: without security features + CAN
  e(V.NXP, 0x8d99, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2N root port'),
  e(V.NXP, 0x8db9, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2N root port'),
  e(V.NXP, 0x8d9b, 'pci_quirk_nxp_rp_acs', 'NXP LX2xx2N root port'),
  // Zhaoxin root/downstream ports
  e(V.ZHAOXIN, ANY, 'pci_quirk_zhaoxin_pcie_ports_acs', 'Zhaoxin root and downstream ports (listed IDs; others: not isolated)'),
  // Wangxun NICs
  e(V.WANGXUN, ANY, 'pci_quirk_wangxun_nic_acs', 'Wangxun NICs (listed IDs; others: not isolated)'),
]);

/**
 * Intel PCH root ports that provide ACS-like isolation without an ACS
 * capability (list from Intel, Red Hat bugzilla 1037684), in the kernel's order.
 * Linux: pci_quirk_intel_pch_acs_ids[], drivers/pci/quirks.c.
 */
export const PCI_QUIRK_INTEL_PCH_ACS_IDS: readonly number[] = Object.freeze([
  // Ibexpeak PCH
  0x3b42, 0x3b43, 0x3b44, 0x3b45, 0x3b46, 0x3b47, 0x3b48, 0x3b49,
  0x3b4a, 0x3b4b, 0x3b4c, 0x3b4d, 0x3b4e, 0x3b4f, 0x3b50, 0x3b51,
  // Cougarpoint PCH
  0x1c10, 0x1c11, 0x1c12, 0x1c13, 0x1c14, 0x1c15, 0x1c16, 0x1c17,
  0x1c18, 0x1c19, 0x1c1a, 0x1c1b, 0x1c1c, 0x1c1d, 0x1c1e, 0x1c1f,
  // Pantherpoint PCH
  0x1e10, 0x1e11, 0x1e12, 0x1e13, 0x1e14, 0x1e15, 0x1e16, 0x1e17,
  0x1e18, 0x1e19, 0x1e1a, 0x1e1b, 0x1e1c, 0x1e1d, 0x1e1e, 0x1e1f,
  // Lynxpoint-H PCH
  0x8c10, 0x8c11, 0x8c12, 0x8c13, 0x8c14, 0x8c15, 0x8c16, 0x8c17,
  0x8c18, 0x8c19, 0x8c1a, 0x8c1b, 0x8c1c, 0x8c1d, 0x8c1e, 0x8c1f,
  // Lynxpoint-LP PCH
  0x9c10, 0x9c11, 0x9c12, 0x9c13, 0x9c14, 0x9c15, 0x9c16, 0x9c17,
  0x9c18, 0x9c19, 0x9c1a, 0x9c1b,
  // Wildcat PCH
  0x9c90, 0x9c91, 0x9c92, 0x9c93, 0x9c94, 0x9c95, 0x9c96, 0x9c97,
  0x9c98, 0x9c99, 0x9c9a, 0x9c9b,
  // Patsburg (X79) PCH
  0x1d10, 0x1d12, 0x1d14, 0x1d16, 0x1d18, 0x1d1a, 0x1d1c, 0x1d1e,
  // Wellsburg (X99) PCH
  0x8d10, 0x8d11, 0x8d12, 0x8d13, 0x8d14, 0x8d15, 0x8d16, 0x8d17,
  0x8d18, 0x8d19, 0x8d1a, 0x8d1b, 0x8d1c, 0x8d1d, 0x8d1e,
  // Lynx Point (9 series) PCH
  0x8c90, 0x8c92, 0x8c94, 0x8c96, 0x8c98, 0x8c9a, 0x8c9c, 0x8c9e,
]);

const INTEL_PCH_ACS_ID_SET: ReadonlySet<number> = new Set(PCI_QUIRK_INTEL_PCH_ACS_IDS);

/**
 * Offset of the Intel SPT/UPT ACS Control dword, from the ACS capability:
 * PCI_ACS_CAP + 4 = 8 (the spec puts a 16-bit Control at 6).
 * Linux: INTEL_SPT_ACS_CTRL, drivers/pci/quirks.c.
 */
export const INTEL_SPT_ACS_CTRL = PCI_ACS_CAP + 4;

const ENOTTY = -ERRNO.ENOTTY;
const ENODEV = -ERRNO.ENODEV;
const SV_RR_CR_UF = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/**
 * 1 if every control in `req` is in `ena`, else 0. Both are u16 in the
 * kernel: higher bits are dropped.
 * Linux: pci_acs_ctrl_enabled(), drivers/pci/quirks.c.
 */
export function pciAcsCtrlEnabled(req: number, ena: number): 0 | 1 {
  const r = req & 0xffff;
  return (r & ena & 0xffff) === r ? 1 : 0;
}

/**
 * AMD/ATI southbridge multifunction functions on the root bus, when the ACPI
 * IVRS table (an AMD IOMMU) is present: only RR, CR, EC and DT are relevant,
 * and RR and CR are provided. Otherwise -ENODEV (keep looking).
 * Linux: pci_quirk_amd_sb_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkAmdSbAcs(dev: PciDev, acsFlags: number, ctx: QuirkContext): number {
  if (!dev.multifunction || !dev.bus.isRoot) return ENODEV;
  if (!ctx.acpiIvrsPresent) return ENODEV;
  const flags = acsFlags & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC | PCI_ACS_DT);
  return pciAcsCtrlEnabled(flags, PCI_ACS_RR | PCI_ACS_CR);
}

/**
 * True for Cavium ThunderX1 (0xa000–0xa7ff), ThunderX2 (0xaf84) and
 * ThunderX3 (0xb884) PCIe root ports.
 * Linux: pci_quirk_cavium_acs_match(), drivers/pci/quirks.c.
 */
export function pciQuirkCaviumAcsMatch(dev: PciDev): boolean {
  if (!dev.isPcie || dev.pcieType !== PcieType.ROOT_PORT) return false;
  const d = dev.device;
  return (d >= 0xa000 && d <= 0xa7ff) || d === 0xaf84 || d === 0xb884;
}

/**
 * Cavium root ports isolate as if SV, RR, CR and UF were enabled; other
 * Cavium functions: -ENOTTY. Linux: pci_quirk_cavium_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkCaviumAcs(dev: PciDev, acsFlags: number): number {
  if (!pciQuirkCaviumAcsMatch(dev)) return ENOTTY;
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * X-Gene / Ampere root ports do not forward peer-to-peer: SV, RR, CR and UF
 * provided. Linux: pci_quirk_xgene_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkXgeneAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * Zhaoxin root and downstream ports: listed device IDs (0x0710–0x071e,
 * 0x0721, 0x0723–0x0752) provide SV, RR, CR and UF; any other Zhaoxin root
 * or downstream port returns 0 (not isolated, authoritative); other
 * functions -ENOTTY.
 * Linux: pci_quirk_zhaoxin_pcie_ports_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkZhaoxinPciePortsAcs(dev: PciDev, acsFlags: number): number {
  if (!dev.isPcie || (dev.pcieType !== PcieType.ROOT_PORT && dev.pcieType !== PcieType.DOWNSTREAM)) return ENOTTY;
  const d = dev.device;
  if ((d >= 0x0710 && d <= 0x071e) || d === 0x0721 || (d >= 0x0723 && d <= 0x0752)) {
    return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
  }
  return 0;
}

/**
 * True for an Intel PCIe root port whose device ID is in
 * {@link PCI_QUIRK_INTEL_PCH_ACS_IDS}.
 * Linux: pci_quirk_intel_pch_acs_match(), drivers/pci/quirks.c.
 */
export function pciQuirkIntelPchAcsMatch(dev: PciDev): boolean {
  if (!dev.isPcie || dev.pcieType !== PcieType.ROOT_PORT) return false;
  return INTEL_PCH_ACS_ID_SET.has(dev.device);
}

/**
 * Listed Intel PCH root ports: SV, RR, CR and UF provided if the enable quirk
 * succeeded (`PciDevFlags.ACS_ENABLED_QUIRK`), else nothing is provided (so
 * any requested flag makes it 0). Other functions -ENOTTY.
 * Linux: pci_quirk_intel_pch_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkIntelPchAcs(dev: PciDev, acsFlags: number): number {
  if (!pciQuirkIntelPchAcsMatch(dev)) return ENOTTY;
  if (dev.devFlags & PciDevFlags.ACS_ENABLED_QUIRK) return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
  return pciAcsCtrlEnabled(acsFlags, 0);
}

/**
 * QCOM QDF2xxx/SA8775P/Hamoa/Glymur and HXT SD4800 root ports: SV, RR, CR and
 * UF provided. Linux: pci_quirk_qcom_rp_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkQcomRpAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * NXP LX2xxx root ports (one root complex per port): SV, RR, CR and UF
 * provided. Linux: pci_quirk_nxp_rp_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkNxpRpAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * Amazon Annapurna Labs root ports: 1 if nothing beyond SV, RR, CR and UF is
 * requested, else 0; non-root-ports -ENOTTY. (The kernel checks only the
 * PCIe type, not pci_is_pcie(); a function without PCIe capability has type
 * 0 there and so is not a root port either.)
 * Linux: pci_quirk_al_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkAlAcs(dev: PciDev, acsFlags: number): number {
  if (dev.pcieType !== PcieType.ROOT_PORT) return ENOTTY;
  const rest = acsFlags & 0xffff & ~SV_RR_CR_UF;
  return rest ? 0 : 1;
}

/**
 * True for Intel Sunrise Point (0xa110–0xa11f, 0xa167–0xa16a), Union Point
 * (0xa290–0xa29f, 0xa2e7–0xa2ee) and 7th/8th-gen mobile (0x9d10–0x9d1b) PCIe
 * root ports. Linux: pci_quirk_intel_spt_pch_acs_match(), drivers/pci/quirks.c.
 */
export function pciQuirkIntelSptPchAcsMatch(dev: PciDev): boolean {
  if (!dev.isPcie || dev.pcieType !== PcieType.ROOT_PORT) return false;
  const d = dev.device;
  return (
    (d >= 0xa110 && d <= 0xa11f) ||
    (d >= 0xa167 && d <= 0xa16a) ||
    (d >= 0xa290 && d <= 0xa29f) ||
    (d >= 0xa2e7 && d <= 0xa2ee) ||
    (d >= 0x9d10 && d <= 0x9d1b)
  );
}

/**
 * Intel SPT/UPT root ports, whose ACS Capability and Control registers are
 * dwords (Control at ACS+8): read the Capability dword at ACS+4 and the
 * Control dword at ACS+8 and apply the pci_acs_flags_enabled() rule (flags not
 * in Capability, except EC, count as hard-wired on). Without an ACS
 * capability, or for other functions, -ENOTTY.
 * Linux: pci_quirk_intel_spt_pch_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkIntelSptPchAcs(dev: PciDev, acsFlags: number): number {
  if (!pciQuirkIntelSptPchAcsMatch(dev)) return ENOTTY;
  const pos = dev.acsCap;
  if (!pos) return ENOTTY;
  const cap = dev.config.read32(pos + PCI_ACS_CAP);
  const flags = acsFlags & 0xffff & (cap | PCI_ACS_EC);
  const ctrl = dev.config.read32(pos + INTEL_SPT_ACS_CTRL);
  return pciAcsCtrlEnabled(flags, ctrl);
}

/**
 * Multifunction endpoints the vendor verified not to do peer-to-peer between
 * functions: SV, TB, RR, CR, UF and DT provided (EC is not).
 * Linux: pci_quirk_mf_endpoint_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkMfEndpointAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT);
}

/**
 * Intel root-complex integrated endpoints (VT-d requires them to do
 * peer-to-peer only on translated addresses): SV, RR, CR and UF provided;
 * other Intel functions -ENOTTY.
 * Linux: pci_quirk_rciep_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkRciepAcs(dev: PciDev, acsFlags: number): number {
  if (dev.pcieType !== PcieType.RC_END) return ENOTTY;
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * Broadcom iProc PAXB root ports: SV, RR, CR and UF provided.
 * Linux: pci_quirk_brcm_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkBrcmAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * Loongson PCIe root ports do not forward peer-to-peer: SV, RR, CR and UF
 * provided. Linux: pci_quirk_loongson_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkLoongsonAcs(_dev: PciDev, acsFlags: number): number {
  return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
}

/**
 * Wangxun NICs: the listed device IDs (EM 0x0100–0x010f, SP 0x1001/0x2001,
 * AML 0x5010/0x5025/0x5040/0x5110/0x5125/0x5140) provide SV, RR, CR and UF;
 * every other Wangxun function returns 0, "not isolated", authoritatively —
 * even one with a correct ACS capability.
 * Linux: pci_quirk_wangxun_nic_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkWangxunNicAcs(dev: PciDev, acsFlags: number): number {
  const d = dev.device;
  if (
    (d >= 0x0100 && d <= 0x010f) ||
    d === 0x1001 ||
    d === 0x2001 ||
    d === 0x5010 ||
    d === 0x5025 ||
    d === 0x5040 ||
    d === 0x5110 ||
    d === 0x5125 ||
    d === 0x5140
  ) {
    return pciAcsCtrlEnabled(acsFlags, SV_RR_CR_UF);
  }
  return 0;
}

/**
 * An ACS quirk function: >= 0 decides (0 not isolated, 1 isolated), < 0 (a negative errno) passes.
 * Linux: the acs_enabled member of struct pci_dev_acs_enabled, drivers/pci/quirks.c.
 */
export type AcsQuirkFn = (dev: PciDev, acsFlags: number, ctx: QuirkContext) => number;

/**
 * The function behind each quirk name in {@link PCI_DEV_ACS_ENABLED}.
 * Linux: the pci_quirk_*_acs() functions, drivers/pci/quirks.c.
 */
export const ACS_QUIRK_FUNCTIONS: Readonly<Record<AcsQuirkName, AcsQuirkFn>> = Object.freeze({
  pci_quirk_amd_sb_acs: pciQuirkAmdSbAcs,
  pci_quirk_mf_endpoint_acs: pciQuirkMfEndpointAcs,
  pci_quirk_rciep_acs: pciQuirkRciepAcs,
  pci_quirk_qcom_rp_acs: pciQuirkQcomRpAcs,
  pci_quirk_intel_pch_acs: pciQuirkIntelPchAcs,
  pci_quirk_intel_spt_pch_acs: pciQuirkIntelSptPchAcs,
  pci_quirk_cavium_acs: pciQuirkCaviumAcs,
  pci_quirk_xgene_acs: pciQuirkXgeneAcs,
  pci_quirk_brcm_acs: pciQuirkBrcmAcs,
  pci_quirk_loongson_acs: pciQuirkLoongsonAcs,
  pci_quirk_al_acs: pciQuirkAlAcs,
  pci_quirk_nxp_rp_acs: pciQuirkNxpRpAcs,
  pci_quirk_zhaoxin_pcie_ports_acs: pciQuirkZhaoxinPciePortsAcs,
  pci_quirk_wangxun_nic_acs: pciQuirkWangxunNicAcs,
});

/** Vendor ID of IDT (now Microsemi/Microchip). Linux: PCI_VENDOR_ID_IDT, include/linux/pci_ids.h. */
export const PCI_VENDOR_ID_IDT = 0x111d;

/**
 * ACS Capability bits the kernel drops from a function's cached ACS
 * capabilities because the hardware implements them wrongly: IDT switches
 * 111d:80b5 and 111d:8090 apply Source Validation to completions (erratum
 * #36), so SV is treated as not implemented (and therefore no longer
 * required by pci_acs_flags_enabled()). Returns the bits to clear (0 for
 * every other function) and notes it in `dev.quirkNotes`. The caller that
 * evaluates the ACS capability must mask these out of the Capability
 * register. Seen only in the newest quirks.c snapshot read.
 * Linux: pci_disable_broken_acs_cap(), drivers/pci/quirks.c (sets
 * pdev->acs_capabilities, read by pci_acs_flags_enabled(), drivers/pci/pci.c).
 */
export function pciDisableBrokenAcsCap(dev: PciDev): number {
  if (dev.vendor === PCI_VENDOR_ID_IDT && (dev.device === 0x80b5 || dev.device === 0x8090)) {
    dev.quirkNotes.push(
      'pci_disable_broken_acs_cap: IDT switch erratum (ACS Source Validation applied to completions): SV treated as not implemented',
    );
    return PCI_ACS_SV;
  }
  return 0;
}

/** True if a quirk-table row's vendor/device (or PCI_ANY_ID) matches the function. */
function idMatches(vendor: number, device: number, dev: PciDev): boolean {
  return (vendor === dev.vendor || vendor === PCI_ANY_ID) && (device === dev.device || device === PCI_ANY_ID);
}

/** The answer of {@link pciDevSpecificAcsEnabled}. Linux: the return value of pci_dev_specific_acs_enabled(), drivers/pci/quirks.c. */
export interface AcsQuirkResult {
  /** -1: no quirk applies (Linux -ENOTTY); 0: not isolated; 1: isolated. A result >= 0 is authoritative. */
  readonly result: number;
  /** The Linux name of the quirk function that decided, or null. */
  readonly quirk: AcsQuirkName | null;
}

/** Table rows that can match `vendor` (its own and PCI_ANY_ID rows), in table order; built once per vendor. */
const acsRowsByVendor = new Map<number, readonly (typeof PCI_DEV_ACS_ENABLED)[number][]>();
function acsRowsForVendor(vendor: number): readonly (typeof PCI_DEV_ACS_ENABLED)[number][] {
  let rows = acsRowsByVendor.get(vendor);
  if (!rows) {
    rows = PCI_DEV_ACS_ENABLED.filter((r) => r.vendor === vendor || r.vendor === PCI_ANY_ID);
    acsRowsByVendor.set(vendor, rows);
  }
  return rows;
}

/**
 * Ask the device-specific quirks whether `dev` provides the ACS controls in
 * `acsFlags`: walk {@link PCI_DEV_ACS_ENABLED} in order; for each row whose
 * vendor and device match (PCI_ANY_ID matches anything) call its function;
 * the first result >= 0 decides. `result` is -1 when no quirk applies (the
 * kernel's -ENOTTY), else 0 or 1; `quirk` names the deciding function.
 * Linux: pci_dev_specific_acs_enabled(), drivers/pci/quirks.c.
 */
export function pciDevSpecificAcsEnabled(dev: PciDev, acsFlags: number, ctx: QuirkContext): AcsQuirkResult {
  const flags = acsFlags & 0xffff;
  for (const row of acsRowsForVendor(dev.vendor)) {
    if (!idMatches(row.vendor, row.device, dev)) continue;
    const ret = ACS_QUIRK_FUNCTIONS[row.quirk](dev, flags, ctx);
    if (ret >= 0) return { result: ret > 0 ? 1 : 0, quirk: row.quirk };
  }
  return { result: -1, quirk: null };
}
