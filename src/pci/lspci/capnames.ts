/**
 * Capability names as `lspci -vv` prints them, mapped back to capability IDs.
 *
 * lspci prints a capability's name, never its ID (except for IDs it does not
 * know: `Capability ID 0x14 [0001]`, `Extended Capability ID 0x2a`). To
 * rebuild a config space from the text we need the inverse of pciutils'
 * `show_caps()` / `show_ext_caps()` switch statements.
 *
 * Linux: include/uapi/linux/pci_regs.h (`PCI_CAP_ID_*`, `PCI_EXT_CAP_ID_*`).
 * pciutils: ls-caps.c (`show_caps`), ls-ecaps.c (`show_ext_caps`).
 */

/** What a capability header line names: the ID, and which body decoder applies. */
export interface CapName {
  /** Capability ID (8-bit for standard, 16-bit for extended capabilities). */
  id: number;
  /** Short key of the body decoder in lspci/decode.ts, or `''` for header-only capabilities. */
  kind: string;
}

/**
 * Standard (offset < 0x100) capability names, matched as prefixes of the text
 * after `Capabilities: [xx] `. Order matters: longer prefixes first where one
 * name is a prefix of another (`MSI-X:` before `MSI:`).
 *
 * pciutils: ls-caps.c `show_caps()`; Linux: pci_regs.h `PCI_CAP_ID_*`.
 */
export const STD_CAP_NAMES: ReadonlyArray<readonly [prefix: string, id: number, kind: string]> = [
  ['Null', 0x00, ''],
  ['Power Management version', 0x01, 'pm'],
  ['AGP version', 0x02, ''],
  ['Vital Product Data', 0x03, ''],
  ['Slot ID:', 0x04, 'slotid'],
  ['MSI-X:', 0x11, 'msix'],
  ['MSI:', 0x05, 'msi'],
  ['CompactPCI hot-swap', 0x06, ''],
  ['PCI-X non-bridge device', 0x07, ''],
  ['PCI-X bridge device', 0x07, ''],
  ['PCI-X', 0x07, ''],
  ['HyperTransport', 0x08, 'ht'],
  ['Vendor Specific Information', 0x09, 'vndr'],
  ['Debug port:', 0x0a, ''],
  ['CompactPCI central resource control', 0x0b, ''],
  ['Hot-plug capable', 0x0c, ''],
  ['Subsystem:', 0x0d, 'ssvid'],
  ['AGP3', 0x0e, ''],
  ['Secure device', 0x0f, ''],
  ['Express', 0x10, 'express'],
  ['SATA HBA', 0x12, 'sata'],
  ['PCI Advanced Features', 0x13, 'af'],
  ['Enhanced Allocation', 0x14, ''],
  ['Flattening Portal Bridge', 0x15, ''],
];

/**
 * Extended (offset >= 0x100) capability names, matched as prefixes of the text
 * after `Capabilities: [xxx vN] ` (a trailing ` <?>` is ignored). Both the
 * current pciutils wording and older wordings are listed.
 *
 * `Virtual Channel` is printed for both VC (0x0002) and VC9 (0x0009); we
 * rebuild it as 0x0002.
 *
 * pciutils: ls-ecaps.c `show_ext_caps()`; Linux: pci_regs.h `PCI_EXT_CAP_ID_*`.
 */
export const EXT_CAP_NAMES: ReadonlyArray<readonly [prefix: string, id: number, kind: string]> = [
  ['Null', 0x0000, ''],
  ['Advanced Error Reporting', 0x0001, 'aer'],
  ['Virtual Channel', 0x0002, ''],
  ['Device Serial Number', 0x0003, 'dsn'],
  ['Power Budgeting', 0x0004, ''],
  ['Root Complex Link', 0x0005, ''],
  ['Root Complex Internal Link', 0x0006, ''],
  ['Root Complex Event Collector', 0x0007, ''],
  ['Multi-Function Virtual Channel', 0x0008, ''],
  ['Root Complex Register Block', 0x000a, ''],
  ['Vendor Specific Information', 0x000b, 'evndr'],
  ['Access Control Services', 0x000d, 'acs'],
  ['Alternative Routing-ID Interpretation', 0x000e, 'ari'],
  ['Address Translation Service', 0x000f, 'ats'],
  ['Single Root I/O Virtualization', 0x0010, 'sriov'],
  ['Multi-Root I/O Virtualization', 0x0011, ''],
  ['Multicast', 0x0012, ''],
  ['Page Request Interface', 0x0013, 'pri'],
  ['Physical Resizable BAR', 0x0015, ''],
  ['Resizable BAR', 0x0015, ''],
  ['Dynamic Power Allocation', 0x0016, ''],
  ['Transaction Processing Hints', 0x0017, ''],
  ['Latency Tolerance Reporting', 0x0018, ''],
  ['Secondary PCI Express', 0x0019, ''],
  ['Protocol Multiplexing', 0x001a, ''],
  ['Process Address Space ID', 0x001b, 'pasid'],
  ['LN Requester', 0x001c, ''],
  ['Downstream Port Containment', 0x001d, ''],
  ['L1 PM Substates', 0x001e, ''],
  ['Precision Time Measurement', 0x001f, ''],
  ['PCI Express over M_PHY', 0x0020, ''],
  ['FRS Queueing', 0x0021, ''],
  ['Readiness Time Reporting', 0x0022, ''],
  ['Designated Vendor-Specific', 0x0023, 'dvsec'],
  ['Virtual Resizable BAR', 0x0024, ''],
  ['Data Link Feature', 0x0025, ''],
  ['Physical Layer 16.0 GT/s', 0x0026, ''],
  ['Lane Margining at the Receiver', 0x0027, ''],
  ['Hierarchy ID', 0x0028, ''],
  ['Native PCIe Enclosure Management', 0x0029, ''],
  ['Physical Layer 32.0 GT/s', 0x002a, ''],
  ['Data Object Exchange', 0x002e, ''],
  ['Integrity & Data Encryption', 0x0030, ''],
  ['Physical Layer 64.0 GT/s', 0x0031, ''],
];

/**
 * PCI Express capability device/port types (PCI_EXP_FLAGS_TYPE, bits 7:4 of
 * the PCIe Capabilities register), with the exact text lspci prints. Longer
 * names come first so that prefix matching picks `Legacy Endpoint` over
 * `Endpoint` and `Root Complex Integrated Endpoint` over neither.
 *
 * pciutils: ls-caps.c `cap_express()`; Linux: pci_regs.h `PCI_EXP_TYPE_*`.
 */
export const PCIE_PORT_TYPES: ReadonlyArray<readonly [text: string, type: number]> = [
  ['Root Complex Integrated Endpoint', 0x9],
  ['Root Complex Event Collector', 0xa],
  ['PCI-Express to PCI/PCI-X Bridge', 0x7],
  ['PCI/PCI-X to PCI-Express Bridge', 0x8],
  ['Legacy Endpoint', 0x1],
  ['Endpoint', 0x0],
  ['Root Port', 0x4],
  ['Upstream Port', 0x5],
  ['Downstream Port', 0x6],
];

/** Look `text` up in a prefix table; returns the first entry whose prefix starts `text`. */
export function lookupCapName(
  table: ReadonlyArray<readonly [string, number, string]>,
  text: string,
): CapName | null {
  for (const [prefix, id, kind] of table) {
    if (text.startsWith(prefix)) return { id, kind };
  }
  return null;
}
