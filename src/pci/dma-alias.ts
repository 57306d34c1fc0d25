/**
 * Requester-ID aliases: every (device, requester ID) pair DMA from a function
 * may appear as at the IOMMU.
 *
 * Linux: pci_for_each_dma_alias() (drivers/pci/search.c),
 * pci_devs_are_dma_aliases(), pci_real_dma_dev() (drivers/pci/pci.c).
 */
import type { PciDev } from './pci-dev.js';
import { PciDevFlags } from './pci-dev.js';
import { PcieType } from './regs.js';

/**
 * Called for each alias: the device that owns the alias (the function itself,
 * or the bridge that rewrites the requester ID) and the 16-bit requester ID
 * (bus << 8 | devfn). A non-zero return stops the walk and is returned.
 */
export type DmaAliasFn = (pdev: PciDev, requesterId: number) => number;

/**
 * The device that really issues DMA for `dev`: itself, except behind an Intel
 * VMD (not modelled: VMD domains are not visible as PCI functions here).
 * Linux: pci_real_dma_dev(), drivers/pci/pci.c.
 */
export function pciRealDmaDev(dev: PciDev): PciDev {
  return dev;
}

/**
 * Call `fn` for the function's own requester ID, each quirked alias devfn on
 * its bus, then each alias a bridge above it creates (PCIe-to-PCI bridges use
 * secondary-bus 00.0, conventional bridges their own ID, PCIe ports none),
 * stopping at a bridge flagged BRIDGE_XLATE_ROOT.
 * @returns the first non-zero return of `fn`, else 0.
 * Linux: pci_for_each_dma_alias(), drivers/pci/search.c.
 */
export function pciForEachDmaAlias(pdev: PciDev, fn: DmaAliasFn): number {
  pdev = pciRealDmaDev(pdev);
  let ret = fn(pdev, pdev.requesterId);
  if (ret) return ret;
  const mask = pdev.dmaAliasMask;
  if (mask) {
    const busBase = pdev.bus.number << 8;
    for (let w = 0; w < 8; w++) {
      let bits = mask[w]!;
      while (bits) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        ret = fn(pdev, busBase | ((w << 5) + b));
        if (ret) return ret;
      }
    }
  }
  for (let bus = pdev.bus; bus.parent !== null; bus = bus.parent) {
    const tmp = bus.self;
    if (!tmp) continue; // a virtual bus (SR-IOV VFs)
    if (tmp.devFlags & PciDevFlags.BRIDGE_XLATE_ROOT) break;
    if (tmp.isPcie) {
      switch (tmp.pcieType) {
        case PcieType.ROOT_PORT:
        case PcieType.UPSTREAM:
        case PcieType.DOWNSTREAM:
          continue;
        case PcieType.PCI_BRIDGE:
          ret = fn(tmp, tmp.secondaryBus << 8);
          if (ret) return ret;
          continue;
        case PcieType.PCIE_BRIDGE:
          ret = fn(tmp, tmp.requesterId);
          if (ret) return ret;
          continue;
        default:
          continue;
      }
    } else {
      ret = tmp.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS ? fn(tmp, tmp.secondaryBus << 8) : fn(tmp, tmp.requesterId);
      if (ret) return ret;
    }
  }
  return ret;
}

/**
 * True if either function lists the other's devfn as a DMA alias, or one is
 * the other's real DMA device. Linux: pci_devs_are_dma_aliases(), drivers/pci/pci.c.
 */
export function pciDevsAreDmaAliases(a: PciDev, b: PciDev): boolean {
  return a.hasDmaAlias(b.devfn) || b.hasDmaAlias(a.devfn) || pciRealDmaDev(a) === b || pciRealDmaDev(b) === a;
}
