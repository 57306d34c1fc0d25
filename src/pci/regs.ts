/**
 * PCI configuration-space register offsets and bits used by the model.
 *
 * Linux: include/uapi/linux/pci_regs.h.
 */

/** Vendor ID (16-bit). Linux: PCI_VENDOR_ID. */
export const PCI_VENDOR_ID = 0x00;
/** Device ID (16-bit). Linux: PCI_DEVICE_ID. */
export const PCI_DEVICE_ID = 0x02;
/** Status register (16-bit). Linux: PCI_STATUS. */
export const PCI_STATUS = 0x06;
/** Status: capability list present. Linux: PCI_STATUS_CAP_LIST. */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Revision ID (8-bit). Linux: PCI_REVISION_ID. */
export const PCI_REVISION_ID = 0x08;
/** Class code: prog-if (8-bit) then 16-bit class/subclass at 0x0a. Linux: PCI_CLASS_PROG. */
export const PCI_CLASS_PROG = 0x09;
/** Header type (8-bit). Linux: PCI_HEADER_TYPE. */
export const PCI_HEADER_TYPE = 0x0e;
/** Header type mask (low 7 bits). Linux: PCI_HEADER_TYPE_MASK. */
export const PCI_HEADER_TYPE_MASK = 0x7f;
/** Header type: multi-function device. Linux: PCI_HEADER_TYPE_MFD. */
export const PCI_HEADER_TYPE_MFD = 0x80;
/** Header type 0: normal device. Linux: PCI_HEADER_TYPE_NORMAL. */
export const PCI_HEADER_TYPE_NORMAL = 0;
/** Header type 1: PCI-to-PCI bridge. Linux: PCI_HEADER_TYPE_BRIDGE. */
export const PCI_HEADER_TYPE_BRIDGE = 1;
/** Header type 2: CardBus bridge. Linux: PCI_HEADER_TYPE_CARDBUS. */
export const PCI_HEADER_TYPE_CARDBUS = 2;
/** Type 0: subsystem vendor ID. Linux: PCI_SUBSYSTEM_VENDOR_ID. */
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
/** Type 0: subsystem ID. Linux: PCI_SUBSYSTEM_ID. */
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Capabilities pointer (types 0 and 1). Linux: PCI_CAPABILITY_LIST. */
export const PCI_CAPABILITY_LIST = 0x34;
/** CardBus capabilities pointer. Linux: PCI_CB_CAPABILITY_LIST. */
export const PCI_CB_CAPABILITY_LIST = 0x14;
/** Type 1: primary bus number. Linux: PCI_PRIMARY_BUS. */
export const PCI_PRIMARY_BUS = 0x18;
/** Type 1: secondary bus number. Linux: PCI_SECONDARY_BUS. */
export const PCI_SECONDARY_BUS = 0x19;
/** Type 1: subordinate bus number. Linux: PCI_SUBORDINATE_BUS. */
export const PCI_SUBORDINATE_BUS = 0x1a;

/** Standard capability IDs. Linux: PCI_CAP_ID_*. */
export const PCI_CAP_ID_PM = 0x01;
/** PCI Express capability. Linux: PCI_CAP_ID_EXP. */
export const PCI_CAP_ID_EXP = 0x10;
/** Bridge subsystem vendor/device capability. Linux: PCI_CAP_ID_SSVID. */
export const PCI_CAP_ID_SSVID = 0x0d;
/** Capability walk hop limit (48 capabilities). Linux: PCI_FIND_CAP_TTL, drivers/pci/pci.c. */
export const PCI_FIND_CAP_TTL = 48;

/** PCIe capabilities register (16-bit, cap + 2). Linux: PCI_EXP_FLAGS. */
export const PCI_EXP_FLAGS = 0x02;
/** PCIe device/port type field. Linux: PCI_EXP_FLAGS_TYPE. */
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
/** PCIe Device Capabilities 2 (cap + 0x24). Linux: PCI_EXP_DEVCAP2. */
export const PCI_EXP_DEVCAP2 = 0x24;
/** DEVCAP2: ARI forwarding supported. Linux: PCI_EXP_DEVCAP2_ARI. */
export const PCI_EXP_DEVCAP2_ARI = 0x20;
/** PCIe Device Control 2 (cap + 0x28). Linux: PCI_EXP_DEVCTL2. */
export const PCI_EXP_DEVCTL2 = 0x28;
/** DEVCTL2: ARI forwarding enabled. Linux: PCI_EXP_DEVCTL2_ARI. */
export const PCI_EXP_DEVCTL2_ARI = 0x20;

/** PCIe device/port types (PCI_EXP_FLAGS bits 7:4). Linux: PCI_EXP_TYPE_*. */
export const PcieType = {
  /** Express Endpoint. Linux: PCI_EXP_TYPE_ENDPOINT. */
  ENDPOINT: 0x0,
  /** Legacy Endpoint. Linux: PCI_EXP_TYPE_LEG_END. */
  LEG_END: 0x1,
  /** Root Port. Linux: PCI_EXP_TYPE_ROOT_PORT. */
  ROOT_PORT: 0x4,
  /** Switch Upstream Port. Linux: PCI_EXP_TYPE_UPSTREAM. */
  UPSTREAM: 0x5,
  /** Switch Downstream Port. Linux: PCI_EXP_TYPE_DOWNSTREAM. */
  DOWNSTREAM: 0x6,
  /** PCIe to PCI/PCI-X Bridge. Linux: PCI_EXP_TYPE_PCI_BRIDGE. */
  PCI_BRIDGE: 0x7,
  /** PCI/PCI-X to PCIe Bridge. Linux: PCI_EXP_TYPE_PCIE_BRIDGE. */
  PCIE_BRIDGE: 0x8,
  /** Root Complex Integrated Endpoint. Linux: PCI_EXP_TYPE_RC_END. */
  RC_END: 0x9,
  /** Root Complex Event Collector. Linux: PCI_EXP_TYPE_RC_EC. */
  RC_EC: 0xa,
} as const;

/** Human names of the PCIe types, as lspci prints them. */
export const PCIE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x0: 'Endpoint',
  0x1: 'Legacy Endpoint',
  0x4: 'Root Port',
  0x5: 'Upstream Port',
  0x6: 'Downstream Port',
  0x7: 'PCIe-to-PCI bridge',
  0x8: 'PCI-to-PCIe bridge',
  0x9: 'Root Complex Integrated Endpoint',
  0xa: 'Root Complex Event Collector',
};

/** First extended capability offset. */
export const PCI_CFG_SPACE_SIZE = 256;
/** PCIe extended config space size. Linux: PCI_CFG_SPACE_EXP_SIZE. */
export const PCI_CFG_SPACE_EXP_SIZE = 4096;
/** Extended capability walk hop limit. Linux: (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8 in pci_find_next_ext_capability(). */
export const PCI_FIND_EXT_CAP_TTL = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8;

/** Extended capability IDs. Linux: PCI_EXT_CAP_ID_*. */
export const PCI_EXT_CAP_ID_ACS = 0x0d;
/** Alternative Routing-ID Interpretation. Linux: PCI_EXT_CAP_ID_ARI. */
export const PCI_EXT_CAP_ID_ARI = 0x0e;
/** Address Translation Services. Linux: PCI_EXT_CAP_ID_ATS. */
export const PCI_EXT_CAP_ID_ATS = 0x0f;
/** Single Root I/O Virtualization. Linux: PCI_EXT_CAP_ID_SRIOV. */
export const PCI_EXT_CAP_ID_SRIOV = 0x10;
/** Process Address Space ID. Linux: PCI_EXT_CAP_ID_PASID. */
export const PCI_EXT_CAP_ID_PASID = 0x1b;

/** ACS Capability register (16-bit, at ACS cap + 4). Linux: PCI_ACS_CAP. */
export const PCI_ACS_CAP = 0x04;
/** ACS Control register (16-bit, at ACS cap + 6). Linux: PCI_ACS_CTRL. */
export const PCI_ACS_CTRL = 0x06;
/** ACS Source Validation. Linux: PCI_ACS_SV. */
export const PCI_ACS_SV = 0x0001;
/** ACS Translation Blocking. Linux: PCI_ACS_TB. */
export const PCI_ACS_TB = 0x0002;
/** ACS P2P Request Redirect. Linux: PCI_ACS_RR. */
export const PCI_ACS_RR = 0x0004;
/** ACS P2P Completion Redirect. Linux: PCI_ACS_CR. */
export const PCI_ACS_CR = 0x0008;
/** ACS Upstream Forwarding. Linux: PCI_ACS_UF. */
export const PCI_ACS_UF = 0x0010;
/** ACS P2P Egress Control. Linux: PCI_ACS_EC. */
export const PCI_ACS_EC = 0x0020;
/** ACS Direct Translated P2P. Linux: PCI_ACS_DT. */
export const PCI_ACS_DT = 0x0040;
/** The flags the IOMMU core requires for isolation. Linux: REQ_ACS_FLAGS, drivers/iommu/iommu.c. */
export const REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** ACS flag names in bit order, as lspci abbreviates them. */
export const ACS_FLAG_NAMES: readonly (readonly [number, string])[] = [
  [PCI_ACS_SV, 'SrcValid'],
  [PCI_ACS_TB, 'TransBlk'],
  [PCI_ACS_RR, 'ReqRedir'],
  [PCI_ACS_CR, 'CmpltRedir'],
  [PCI_ACS_UF, 'UpstreamFwd'],
  [PCI_ACS_EC, 'EgressCtrl'],
  [PCI_ACS_DT, 'DirectTrans'],
];

/** Names of the set bits of an ACS flag word, e.g. `SrcValid ReqRedir`. */
export function acsFlagNames(flags: number): string[] {
  const out: string[] = [];
  for (const [bit, name] of ACS_FLAG_NAMES) if (flags & bit) out.push(name);
  return out;
}

/** SR-IOV Capabilities (32-bit, cap + 0x04). Linux: PCI_SRIOV_CAP. */
export const PCI_SRIOV_CAP = 0x04;
/** SR-IOV Capabilities: VF Migration Capable. Linux: PCI_SRIOV_CAP_VFM. */
export const PCI_SRIOV_CAP_VFM = 0x00000001;
/** SR-IOV Control (16-bit, cap + 0x08). Linux: PCI_SRIOV_CTRL. */
export const PCI_SRIOV_CTRL = 0x08;
/** SR-IOV Control: VF Enable. Linux: PCI_SRIOV_CTRL_VFE. */
export const PCI_SRIOV_CTRL_VFE = 0x0001;
/** SR-IOV Control: VF Memory Space Enable. Linux: PCI_SRIOV_CTRL_MSE. */
export const PCI_SRIOV_CTRL_MSE = 0x0008;
/** SR-IOV: InitialVFs (16-bit, cap + 0x0c). Linux: PCI_SRIOV_INITIAL_VF. */
export const PCI_SRIOV_INITIAL_VF = 0x0c;
/** SR-IOV: Total VFs (16-bit, cap + 0x0e). Linux: PCI_SRIOV_TOTAL_VF. */
export const PCI_SRIOV_TOTAL_VF = 0x0e;
/** SR-IOV: Num VFs (16-bit, cap + 0x10). Linux: PCI_SRIOV_NUM_VF. */
export const PCI_SRIOV_NUM_VF = 0x10;
/** SR-IOV: First VF offset (16-bit, cap + 0x14). Linux: PCI_SRIOV_VF_OFFSET. */
export const PCI_SRIOV_VF_OFFSET = 0x14;
/** SR-IOV: VF stride (16-bit, cap + 0x16). Linux: PCI_SRIOV_VF_STRIDE. */
export const PCI_SRIOV_VF_STRIDE = 0x16;
/** SR-IOV: VF device ID (16-bit, cap + 0x1a). Linux: PCI_SRIOV_VF_DID. */
export const PCI_SRIOV_VF_DID = 0x1a;
/** SR-IOV: Supported Page Sizes (32-bit, cap + 0x1c). Linux: PCI_SRIOV_SUP_PGSIZE. */
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
/** SR-IOV: System Page Size (32-bit, cap + 0x20). Linux: PCI_SRIOV_SYS_PGSIZE. */
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
/** PM capability: PMCSR (16-bit, cap + 4). Linux: PCI_PM_CTRL. */
export const PCI_PM_CTRL = 0x04;
