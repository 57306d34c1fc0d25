/**
 * The domain seam of the group model: the little of `struct iommu_domain`
 * that groups and their sysfs view need. Domains themselves (allocation,
 * attach, map/unmap) are not modelled here; a domain layer plugs its domain
 * objects into {@link IommuGroup.domain} / {@link IommuGroup.defaultDomain}
 * through this interface.
 *
 * Linux: struct iommu_domain, IOMMU_DOMAIN_* (include/linux/iommu.h).
 */

/**
 * A domain type, spelled as the group `type` sysfs file spells it
 * (`platform` has no sysfs spelling: the file shows `unknown`).
 *
 * - `blocked`: IOMMU_DOMAIN_BLOCKED — all DMA blocked.
 * - `identity`: IOMMU_DOMAIN_IDENTITY — DMA addresses are physical addresses.
 * - `unmanaged`: IOMMU_DOMAIN_UNMANAGED — mappings managed by an API user (VFIO, KVM…).
 * - `DMA`: IOMMU_DOMAIN_DMA — the kernel DMA API, strict invalidation.
 * - `DMA-FQ`: IOMMU_DOMAIN_DMA_FQ — the DMA API with a flush queue (lazy invalidation).
 * - `platform`: IOMMU_DOMAIN_PLATFORM (v6.5+) — legacy driver-specific default domain.
 *
 * Linux: IOMMU_DOMAIN_* in include/linux/iommu.h; iommu_group_show_type(), drivers/iommu/iommu.c.
 */
export type IommuDomainType = 'blocked' | 'identity' | 'unmanaged' | 'DMA' | 'DMA-FQ' | 'platform';

/**
 * An opaque domain as far as a group is concerned: only its type is read
 * (by the `type` sysfs file). The domain layer's domain objects satisfy it.
 * Linux: struct iommu_domain (the `type` member), include/linux/iommu.h.
 */
export interface IommuDomainRef {
  readonly type: IommuDomainType;
}

/**
 * The text of a group's `type` sysfs file for its default domain: the type
 * and a newline for blocked/identity/unmanaged/DMA/DMA-FQ, `unknown\n`
 * without a default domain or for any other type (e.g. `platform`).
 * Linux: iommu_group_show_type(), drivers/iommu/iommu.c (v5.11+).
 */
export function groupTypeText(defaultDomain: IommuDomainRef | null): string {
  switch (defaultDomain?.type) {
    case 'blocked':
    case 'identity':
    case 'unmanaged':
    case 'DMA':
    case 'DMA-FQ':
      return `${defaultDomain.type}\n`;
    default:
      return 'unknown\n';
  }
}
