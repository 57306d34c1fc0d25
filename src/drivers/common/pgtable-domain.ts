/**
 * Domain operations backed by an io-pgtable, shared by the drivers whose
 * paging domains are plain io-pgtable domains: map/unmap/iova_to_phys go to
 * the table; IOTLB maintenance goes to every unit the domain is attached
 * through.
 *
 * Linux: the io-pgtable glue of arm-smmu-v3 (arm_smmu_map_pages(),
 * arm_smmu_unmap_pages(), arm_smmu_iotlb_sync(), arm_smmu_flush_iotlb_all()),
 * and the equivalent VT-d / AMD-Vi paths (intel_iommu_map_pages(),
 * amd_iommu_map_pages(), …).
 */
import type { Device } from '../../device/device.js';
import { iotlbGatherAdd, IommuDomain, type IommuDomainOps, type IotlbGather } from '../../iommu/domain.js';
import type { IommuOps } from '../../iommu/iommu-ops.js';
import { IOTLB_NO_PASID } from '../../iommu/iotlb.js';
import type { IoPgtable } from '../../io-pgtable/io-pgtable.js';

/** Hooks a driver adds to the shared ops. */
export interface PgtableDomainHooks {
  /** Driver-specific attach checks. @throws IommuError EINVAL for an incompatible device. */
  checkAttach?(domain: IommuDomain, dev: Device): void;
}

/** Domain ops over the domain's `pgtable`. */
export function pgtableDomainOps(hooks: PgtableDomainHooks = {}): IommuDomainOps {
  return {
    attachDev(domain: IommuDomain, dev: Device): void {
      hooks.checkAttach?.(domain, dev);
    },
    mapPages(domain, iova, paddr, pgsize, count, prot): number {
      const pt = domain.pgtable!;
      const n = pt.mapPages(iova, paddr, pgsize, count, prot);
      domain.mapError = pt.error;
      return n;
    },
    unmapPages(domain, iova, pgsize, count, gather: IotlbGather): number {
      const n = domain.pgtable!.unmapPages(iova, pgsize, count);
      if (n > 0) iotlbGatherAdd(gather, iova, n);
      return n;
    },
    iovaToPhys(domain, iova): number {
      return domain.pgtable!.iovaToPhys(iova);
    },
    iotlbSync(domain, gather): void {
      const size = gather.end - gather.start;
      const units = domain.unitList;
      for (let i = 0; i < units.length; i++) units[i]!.iotlb.invalidateRange(domain.id, IOTLB_NO_PASID, gather.start, size);
      for (const a of domain.pasidAttachments.values()) a.unit.iotlb.invalidateRange(domain.id, a.pasid, gather.start, size);
    },
    flushIotlbAll(domain): void {
      const units = domain.unitList;
      for (let i = 0; i < units.length; i++) units[i]!.iotlb.invalidateDomain(domain.id);
      for (const a of domain.pasidAttachments.values()) a.unit.iotlb.invalidateDomain(domain.id);
    },
    setDevPasid(domain: IommuDomain, dev: Device): void {
      hooks.checkAttach?.(domain, dev);
    },
    free(domain): void {
      domain.pgtable!.free();
    },
  };
}

/** A paging domain over `pgtable` owned by `owner`. Linux: the drivers' domain_alloc_paging(). */
export function pgtableDomain(owner: IommuOps, ops: IommuDomainOps, pgtable: IoPgtable, apertureEnd: number): IommuDomain {
  const d = new IommuDomain({
    type: 'unmanaged',
    owner,
    ops,
    pgtable,
    pgsizeBitmap: pgtable.cfg.pgsizeBitmap,
    geometry: { apertureStart: 0, apertureEnd, forceAperture: true },
  });
  // The ops above are the plain table ops with range invalidation: the core may call the table directly.
  d.plainPgtable = true;
  return d;
}

/** A static identity or blocked domain of `owner`. Linux: the drivers' identity_domain / blocked_domain. */
export function staticDomain(owner: IommuOps, type: 'identity' | 'blocked'): IommuDomain {
  return new IommuDomain({ type, owner, ops: { attachDev: () => undefined, setDevPasid: () => undefined } });
}
