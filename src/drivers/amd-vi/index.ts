/**
 * AMD-Vi: an AMD IOMMU translating PCI devices through v1 page tables, with
 * its reserved regions (the MSI window and the HyperTransport hole), and the
 * IOMMU's own PCI function left untranslated.
 *
 * Linux: drivers/iommu/amd/iommu.c — amd_iommu_ops, amd_iommu_probe_device(),
 * amd_iommu_device_group() → pci_device_group(), amd_iommu_domain_alloc_paging(),
 * amd_iommu_get_resv_regions(), amd_iommu_capable(); amd_iommu_np_cache →
 * iommu_set_dma_strict() (drivers/iommu/amd/init.c).
 */
import { IommuError } from '../../base/errno.js';
import type { Device } from '../../device/device.js';
import { allocIoPgtable } from '../../io-pgtable/index.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { toPciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';

/** MSI window. Linux: MSI_RANGE_START (0xfee00000) … MSI_RANGE_END (0xfeefffff). */
export const AMD_MSI_RANGE_START = 0xfee00000;
/** HyperTransport reserved range start. Linux: HT_RANGE_START (0xfd00000000). */
export const AMD_HT_RANGE_START = 0xfd_0000_0000;
/** HyperTransport reserved range end (inclusive). Linux: HT_RANGE_END (0xffffffffff). */
export const AMD_HT_RANGE_END = 0xff_ffff_ffff;

/** Options of the AMD-Vi driver model. */
export interface AmdIommuOptions {
  /** Unit name (default `ivhd0`). */
  readonly name?: string;
  /** The IOMMU caches non-present entries (emulated IOMMUs): forces strict invalidation. Linux: amd_iommu_np_cache. */
  readonly npCache?: boolean;
}

/** The driver: its ops and its unit. */
export interface AmdIommu {
  readonly ops: IommuOps;
  readonly unit: IommuUnit;
}

/**
 * Create and register an AMD IOMMU unit on `core`.
 * Linux: amd_iommu_init_pci() → iommu_device_register(&iommu->iommu, &amd_iommu_ops, NULL).
 */
export function createAmdIommu(core: IommuCore, opts: AmdIommuOptions = {}): AmdIommu {
  const domainOps = pgtableDomainOps();
  const ops: IommuOps = {
    name: 'AMD-Vi',
    probeDevice(dev: Device) {
      const pdev = toPciDev(dev);
      if (!pdev) throw new IommuError('ENODEV', `${dev.name} is not a PCI device`);
      // The IOMMU's own function is not behind itself.
      if (pdev.classCode >> 8 === 0x0806 && (pdev.vendor === 0x1022 || pdev.vendor === 0x1002)) throw new IommuError('ENODEV', `${dev.name} is the IOMMU`);
      return unit;
    },
    deviceGroup(c: IommuCore, dev: Device) {
      return pciDeviceGroup(c.groups, toPciDev(dev)!, { acpiIvrsPresent: true });
    },
    domainAllocPaging(): IommuDomain {
      const pt = allocIoPgtable('amd-v1', core.mem);
      return pgtableDomain(ops, domainOps, pt, 2 ** 48 - 1);
    },
    getResvRegions(): IommuResvRegion[] {
      return [
        allocResvRegion(AMD_MSI_RANGE_START, 0x100000, 0, IommuResvType.MSI),
        allocResvRegion(AMD_HT_RANGE_START, AMD_HT_RANGE_END - AMD_HT_RANGE_START + 1, 0, IommuResvType.RESERVED),
      ];
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'DEFERRED_FLUSH' || cap === 'NOEXEC';
    },
  };
  Object.assign(ops, { identityDomain: staticDomain(ops, 'identity'), blockedDomain: staticDomain(ops, 'blocked') });
  const unit = new IommuUnit(opts.name ?? 'ivhd0', ops);
  // Strict mode is decided before the registration probes devices.
  if (opts.npCache) core.setDmaStrict();
  core.iommuDeviceRegister(unit);
  return { ops, unit };
}
