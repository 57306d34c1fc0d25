/**
 * Build config spaces for synthetic PCI functions: the header, a PCIe
 * capability with a port type, and an ACS extended capability — for tests,
 * benchmarks and scenarios.
 */
import {
  PCI_ACS_CAP,
  PCI_ACS_CTRL,
  PCI_CAP_ID_EXP,
  PCI_CAPABILITY_LIST,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_PASID,
  PCI_HEADER_TYPE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from './regs.js';

/** What to put in a synthetic function's config space. */
export interface FunctionSpec {
  /** Vendor ID (default 0x1234, which no quirk matches). */
  readonly vendor?: number;
  /** Device ID (default 0x0001). */
  readonly device?: number;
  /** 24-bit class code (default 0x020000, Ethernet; 0x060400 for bridges). */
  readonly classCode?: number;
  /** Header bit 7. */
  readonly multifunction?: boolean;
  /** A type 1 header with these bus numbers. */
  readonly bridge?: { readonly primary: number; readonly secondary: number; readonly subordinate: number };
  /** PCIe device/port type (PcieType); omit for conventional PCI. */
  readonly pcieType?: number;
  /** An ACS capability with these Capability and Control registers. */
  readonly acs?: { readonly cap: number; readonly ctrl: number };
  /** A PASID capability with this Max PASID Width (bits; 1 << width PASIDs). */
  readonly pasidWidth?: number;
}

/** Offset of the PCIe capability in built config spaces. */
export const BUILT_PCIE_CAP = 0x40;
/** Offset of the ACS capability in built config spaces. */
export const BUILT_ACS_CAP = 0x100;
/** Offset of the PASID capability in built config spaces that also have ACS (else it takes 0x100). */
export const BUILT_PASID_CAP = 0x140;

/** A 4096-byte config space (256 bytes for conventional PCI) for `spec`. */
export function buildConfig(spec: FunctionSpec): Uint8Array {
  const pcie = spec.pcieType !== undefined;
  const b = new Uint8Array(pcie ? 4096 : 256);
  const w16 = (off: number, v: number): void => {
    b[off] = v & 0xff;
    b[off + 1] = (v >> 8) & 0xff;
  };
  const w32 = (off: number, v: number): void => {
    w16(off, v & 0xffff);
    w16(off + 2, v >>> 16);
  };
  w16(0, spec.vendor ?? 0x1234);
  w16(2, spec.device ?? 0x0001);
  const cls = spec.classCode ?? (spec.bridge ? 0x060400 : 0x020000);
  b[0x09] = cls & 0xff;
  w16(0x0a, cls >> 8);
  b[PCI_HEADER_TYPE] = (spec.bridge ? 1 : 0) | (spec.multifunction ? 0x80 : 0);
  if (spec.bridge) {
    b[0x18] = spec.bridge.primary;
    b[0x19] = spec.bridge.secondary;
    b[0x1a] = spec.bridge.subordinate;
  }
  if (pcie) {
    w16(PCI_STATUS, PCI_STATUS_CAP_LIST);
    b[PCI_CAPABILITY_LIST] = BUILT_PCIE_CAP;
    b[BUILT_PCIE_CAP] = PCI_CAP_ID_EXP;
    b[BUILT_PCIE_CAP + 1] = 0;
    w16(BUILT_PCIE_CAP + 2, 0x2 | (spec.pcieType! << 4));
    const pasidAt = spec.acs ? BUILT_PASID_CAP : BUILT_ACS_CAP;
    if (spec.acs) {
      w32(BUILT_ACS_CAP, PCI_EXT_CAP_ID_ACS | (1 << 16) | (spec.pasidWidth !== undefined ? BUILT_PASID_CAP << 20 : 0));
      w16(BUILT_ACS_CAP + PCI_ACS_CAP, spec.acs.cap);
      w16(BUILT_ACS_CAP + PCI_ACS_CTRL, spec.acs.ctrl);
    }
    if (spec.pasidWidth !== undefined) {
      w32(pasidAt, PCI_EXT_CAP_ID_PASID | (1 << 16));
      w16(pasidAt + 4, (spec.pasidWidth & 0x1f) << 8); // PASID Capability: Max PASID Width, bits 12:8
    }
  }
  return b;
}
