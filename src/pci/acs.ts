/**
 * Access Control Services: is a function isolated for the given ACS flags,
 * and is every function on the path to the root?
 *
 * Each check can record why (for `iommu explain`) into an optional `why` array;
 * without one it allocates nothing.
 *
 * Linux: pci_acs_enabled(), pci_acs_flags_enabled(), pci_acs_path_enabled(),
 * pci_std_enable_acs(), drivers/pci/pci.c.
 */
import type { PciDev } from './pci-dev.js';
import { pciDevSpecificAcsEnabled, type QuirkContext } from './quirks/acs.js';
import {
  acsFlagNames,
  PCI_ACS_CAP,
  PCI_ACS_CR,
  PCI_ACS_CTRL,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PcieType,
  PCIE_TYPE_NAMES,
} from './regs.js';

export type { QuirkContext } from './quirks/acs.js';

/**
 * True if every flag of `acsFlags` that the ACS capability implements is
 * enabled in its Control register; flags the Capability register does not
 * implement (other than EC) count as hard-wired on. False without an ACS
 * capability. Linux: pci_acs_flags_enabled(), drivers/pci/pci.c.
 */
export function pciAcsFlagsEnabled(dev: PciDev, acsFlags: number, why?: string[]): boolean {
  const pos = dev.acsCap;
  if (!pos) {
    why?.push(`${dev.bdf}: no ACS capability`);
    return false;
  }
  const cap = dev.config.read16(pos + PCI_ACS_CAP);
  const ctrl = dev.config.read16(pos + PCI_ACS_CTRL);
  const need = acsFlags & (cap | PCI_ACS_EC);
  const ok = (ctrl & need) === need;
  if (why) {
    const missing = need & ~ctrl;
    why.push(
      `${dev.bdf}: ACS capability at 0x${pos.toString(16)}: Cap=[${acsFlagNames(cap).join(' ')}] Ctl=[${acsFlagNames(ctrl).join(' ')}]` +
        (cap === 0 ? ' (Capability register is 0: every flag counts as hard-wired on)' : '') +
        (ok ? ' — required flags enabled' : ` — not isolated: ${acsFlagNames(missing).join(' ')} not enabled`),
    );
  }
  return ok;
}

/**
 * True if `dev` provides ACS isolation for `acsFlags`. A device-specific
 * quirk, when one matches, is authoritative; conventional PCI is never
 * isolated; PCIe-to-PCI bridges and event collectors never; root and
 * downstream ports by their ACS capability; single-function endpoints and
 * upstream ports always; multifunction ones by their ACS capability.
 * Linux: pci_acs_enabled(), drivers/pci/pci.c.
 */
export function pciAcsEnabled(dev: PciDev, acsFlags: number, ctx: QuirkContext, why?: string[]): boolean {
  const q = pciDevSpecificAcsEnabled(dev, acsFlags, ctx);
  if (q.result >= 0) {
    why?.push(`${dev.bdf}: quirk ${q.quirk} says ${q.result > 0 ? 'isolated' : 'not isolated'} (authoritative)`);
    return q.result > 0;
  }
  if (!dev.isPcie) {
    why?.push(`${dev.bdf}: conventional PCI (no PCIe capability): never isolated`);
    return false;
  }
  switch (dev.pcieType) {
    case PcieType.PCI_BRIDGE:
    case PcieType.PCIE_BRIDGE:
    case PcieType.RC_EC:
      why?.push(`${dev.bdf}: ${PCIE_TYPE_NAMES[dev.pcieType]}: never isolated`);
      return false;
    case PcieType.DOWNSTREAM:
    case PcieType.ROOT_PORT:
      return pciAcsFlagsEnabled(dev, acsFlags, why);
    case PcieType.ENDPOINT:
    case PcieType.UPSTREAM:
    case PcieType.LEG_END:
    case PcieType.RC_END:
      if (!dev.multifunction) {
        why?.push(`${dev.bdf}: single-function ${PCIE_TYPE_NAMES[dev.pcieType]}: nothing to isolate from`);
        return true;
      }
      return pciAcsFlagsEnabled(dev, acsFlags, why);
    default:
      why?.push(`${dev.bdf}: PCIe type ${dev.pcieType}: treated as isolated`);
      return true;
  }
}

/**
 * True if `start` and every bridge above it, up to `end` (or to the function
 * on a root bus when `end` is null), provides `acsFlags`.
 * Linux: pci_acs_path_enabled(), drivers/pci/pci.c.
 */
export function pciAcsPathEnabled(start: PciDev, end: PciDev | null, acsFlags: number, ctx: QuirkContext, why?: string[]): boolean {
  let pdev: PciDev = start;
  for (;;) {
    if (!pciAcsEnabled(pdev, acsFlags, ctx, why)) return false;
    if (pdev.bus.isRoot) return end === null;
    if (pdev === end) return true;
    const up = pdev.bus.self;
    if (!up) return end === null; // a virtual bus (SR-IOV) with no bridge: Linux would dereference NULL; stop here
    pdev = up;
  }
}

/**
 * Enable the standard ACS features the IOMMU asks for, as the kernel does at
 * boot when an IOMMU driver requested ACS: Control |= Capability & (SV|RR|CR|UF),
 * plus TB on untrusted (external-facing) devices. Writes into the config bytes:
 * use it only for config spaces that did not come from a kernel that already
 * did this (a machine without an active IOMMU, synthetic topologies).
 * Linux: pci_std_enable_acs(), pci_enable_acs(), drivers/pci/pci.c.
 */
export function pciStdEnableAcs(dev: PciDev): void {
  const pos = dev.acsCap;
  if (!pos || !dev.config.readable(pos + PCI_ACS_CTRL, 2)) return;
  const cap = dev.config.read16(pos + PCI_ACS_CAP);
  let ctrl = dev.config.read16(pos + PCI_ACS_CTRL);
  ctrl |= cap & (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF);
  if (dev.untrusted) ctrl |= cap & PCI_ACS_TB;
  dev.config.bytes[pos + PCI_ACS_CTRL] = ctrl & 0xff;
  dev.config.bytes[pos + PCI_ACS_CTRL + 1] = ctrl >> 8;
}
