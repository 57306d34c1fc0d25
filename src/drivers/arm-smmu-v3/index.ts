/**
 * Arm SMMUv3: stage-1 translation through Arm LPAE page tables, with the
 * software-managed MSI window.
 *
 * Linux: drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c — arm_smmu_ops,
 * arm_smmu_probe_device(), arm_smmu_device_group() (pci_device_group() for PCI,
 * generic_device_group() otherwise), arm_smmu_domain_alloc_paging(),
 * arm_smmu_get_resv_regions() (MSI_IOVA_BASE 0x8000000, MSI_IOVA_LENGTH 0x100000),
 * arm_smmu_capable().
 */
import type { Device } from '../../device/device.js';
import { allocIoPgtable } from '../../io-pgtable/index.js';
import { IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { genericDeviceGroup, pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { toPciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';

/** The software MSI window. Linux: MSI_IOVA_BASE. */
export const MSI_IOVA_BASE = 0x8000000;
/** Linux: MSI_IOVA_LENGTH. */
export const MSI_IOVA_LENGTH = 0x100000;

/** Options of the SMMUv3 driver model. */
export interface ArmSmmuV3Options {
  /** Unit name (default `smmu3.0x0000000009050000`, as Linux names it after its MMIO base). */
  readonly name?: string;
}

/** The driver: its ops and its unit. */
export interface ArmSmmuV3 {
  readonly ops: IommuOps;
  readonly unit: IommuUnit;
}

/**
 * Create and register an SMMUv3 on `core`.
 * Linux: arm_smmu_device_probe() → iommu_device_register(&smmu->iommu, &arm_smmu_ops, dev).
 */
export function createArmSmmuV3(core: IommuCore, opts: ArmSmmuV3Options = {}): ArmSmmuV3 {
  const domainOps = pgtableDomainOps();
  const ops: IommuOps = {
    name: 'arm-smmu-v3',
    probeDevice() {
      return unit;
    },
    deviceGroup(c: IommuCore, dev: Device) {
      const pdev = toPciDev(dev);
      return pdev ? pciDeviceGroup(c.groups, pdev, { acpiIvrsPresent: false }) : genericDeviceGroup(c.groups);
    },
    domainAllocPaging(): IommuDomain {
      return pgtableDomain(ops, domainOps, allocIoPgtable('arm-lpae-s1', core.mem), 2 ** 48 - 1);
    },
    getResvRegions(): IommuResvRegion[] {
      return [allocResvRegion(MSI_IOVA_BASE, MSI_IOVA_LENGTH, IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, IommuResvType.SW_MSI)];
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'NOEXEC' || cap === 'DEFERRED_FLUSH';
    },
  };
  Object.assign(ops, { identityDomain: staticDomain(ops, 'identity'), blockedDomain: staticDomain(ops, 'blocked') });
  const unit = new IommuUnit(opts.name ?? 'smmu3.0x0000000009050000', ops);
  core.iommuDeviceRegister(unit);
  return { ops, unit };
}
