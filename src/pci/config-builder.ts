/**
 * Build config spaces for synthetic PCI functions: the header, a PCIe
 * capability with a port type, and ACS, PASID and SR-IOV extended
 * capabilities — for tests, benchmarks and scenarios.
 */
import { IommuError } from '../base/errno.js';
import {
  PCI_ACS_CAP,
  PCI_ACS_CTRL,
  PCI_CAP_ID_EXP,
  PCI_CAPABILITY_LIST,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_HEADER_TYPE,
  PCI_SRIOV_INITIAL_VF,
  PCI_SRIOV_SUP_PGSIZE,
  PCI_SRIOV_SYS_PGSIZE,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
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
  /**
   * An SR-IOV capability (needs `pcieType`; a PF should be an Endpoint or an
   * RC Integrated Endpoint for Linux to treat it as a PF). All fields are
   * 16-bit register values: TotalVFs (InitialVFs is set to the same value, as
   * on a PF without VF Migration), First VF Offset and VF Stride (in routing
   * IDs: VF n is at PF RID + firstVfOffset + n * vfStride) and the VF Device ID.
   * NumVFs and SR-IOV Control start at 0 (VFs disabled); Supported Page Sizes
   * says 4 KiB. Placed at {@link BUILT_SRIOV_CAP} (0x100 when it is the only
   * extended capability). Linux reads it in sriov_init(), drivers/pci/iov.c.
   */
  readonly sriov?: { readonly totalVfs: number; readonly firstVfOffset: number; readonly vfStride: number; readonly vfDevice: number };
}


/** Offset of the PCIe capability in built config spaces. */
export const BUILT_PCIE_CAP = 0x40;
/** Offset of the ACS capability in built config spaces. */
export const BUILT_ACS_CAP = 0x100;
/** Offset of the PASID capability in built config spaces that also have ACS (else it takes 0x100). */
export const BUILT_PASID_CAP = 0x140;
/** Offset of the SR-IOV capability in built config spaces that also have ACS or PASID (else it takes 0x100). */
export const BUILT_SRIOV_CAP = 0x180;

/**
 * A 4096-byte config space (256 bytes for conventional PCI) for `spec`.
 * Extended capabilities are chained in the order ACS (0x100), PASID (0x140,
 * or 0x100 without ACS), SR-IOV (0x180, or 0x100 when alone).
 * @throws IommuError EINVAL if `spec.sriov` is given without `pcieType`
 *   (extended capabilities need the PCIe config space), or a `spec.sriov`
 *   field is not a 16-bit integer.
 */
export function buildConfig(spec: FunctionSpec): Uint8Array {
  const pcie = spec.pcieType !== undefined;
  if (spec.sriov) {
    if (!pcie) throw new IommuError('EINVAL', 'an SR-IOV capability needs a PCIe function (set pcieType)', { input: 'FunctionSpec.sriov' });
    for (const [k, v] of Object.entries(spec.sriov)) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
        throw new IommuError('EINVAL', `${k} = ${String(v)} is not a 16-bit register value`, { input: 'FunctionSpec.sriov' });
      }
    }
  }
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
    const sriovAt = spec.acs || spec.pasidWidth !== undefined ? BUILT_SRIOV_CAP : BUILT_ACS_CAP;
    // Extended capability header: ID [15:0], version [19:16], next [31:20].
    const after = (next: number): number => (next << 20) >>> 0;
    if (spec.acs) {
      const next = spec.pasidWidth !== undefined ? BUILT_PASID_CAP : spec.sriov ? sriovAt : 0;
      w32(BUILT_ACS_CAP, PCI_EXT_CAP_ID_ACS | (1 << 16) | after(next));
      w16(BUILT_ACS_CAP + PCI_ACS_CAP, spec.acs.cap);
      w16(BUILT_ACS_CAP + PCI_ACS_CTRL, spec.acs.ctrl);
    }
    if (spec.pasidWidth !== undefined) {
      w32(pasidAt, PCI_EXT_CAP_ID_PASID | (1 << 16) | after(spec.sriov ? sriovAt : 0));
      w16(pasidAt + 4, (spec.pasidWidth & 0x1f) << 8); // PASID Capability: Max PASID Width, bits 12:8
    }
    if (spec.sriov) {
      const s = spec.sriov;
      w32(sriovAt, PCI_EXT_CAP_ID_SRIOV | (1 << 16));
      w16(sriovAt + PCI_SRIOV_INITIAL_VF, s.totalVfs);
      w16(sriovAt + PCI_SRIOV_TOTAL_VF, s.totalVfs);
      w16(sriovAt + PCI_SRIOV_VF_OFFSET, s.firstVfOffset);
      w16(sriovAt + PCI_SRIOV_VF_STRIDE, s.vfStride);
      w16(sriovAt + PCI_SRIOV_VF_DID, s.vfDevice);
      w32(sriovAt + PCI_SRIOV_SUP_PGSIZE, 0x1); // 4 KiB pages
      w32(sriovAt + PCI_SRIOV_SYS_PGSIZE, 0x1);
    }
  }
  return b;
}
