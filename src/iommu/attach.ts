/**
 * Attaching domains to devices and groups, and allocating domains for API
 * users (VFIO-style unmanaged domains).
 *
 * Linux: iommu_paging_domain_alloc(), iommu_domain_free(), iommu_attach_device(),
 * iommu_detach_device(), iommu_attach_group(), iommu_detach_group(),
 * __iommu_attach_group(), __iommu_group_set_core_domain(),
 * iommu_get_domain_for_dev(), iommu_get_dma_domain(), drivers/iommu/iommu.c.
 */
import { IommuError } from '../base/errno.js';
import type { Device } from '../device/device.js';
import type { IommuDomain } from './domain.js';
import type { IommuGroup } from './group.js';
import { devIommu, type IommuCore } from './core.js';
import { groupSetDomainInternal } from './default-domain.js';

/**
 * A new unmanaged paging domain from `dev`'s IOMMU driver.
 * @throws IommuError ENODEV if `dev` has no IOMMU; the driver's ENOMEM/EOPNOTSUPP.
 * Linux: iommu_paging_domain_alloc(), drivers/iommu/iommu.c.
 */
export function iommuPagingDomainAlloc(dev: Device): IommuDomain {
  const di = devIommu(dev);
  if (!di) throw new IommuError('ENODEV', `${dev.name} is not behind an IOMMU`);
  const d = di.ops.domainAllocPaging(dev);
  d.type = 'unmanaged';
  return d;
}

/**
 * Free a domain (its page tables). Freeing a domain that devices are still
 * attached to is a caller bug; Linux would corrupt memory — the model refuses.
 * @throws IommuError EBUSY if still attached.
 * Linux: iommu_domain_free(), drivers/iommu/iommu.c.
 */
export function iommuDomainFree(domain: IommuDomain): void {
  if (domain.devices.size > 0) throw new IommuError('EBUSY', `domain ${domain.id} is still attached to ${domain.devices.size} device(s)`);
  if (domain.freed) return;
  domain.ops.free?.(domain);
  domain.freed = true;
}

function checkCompatible(domain: IommuDomain, group: IommuGroup): void {
  const first = group.devices[0]?.dev;
  const di = first ? devIommu(first) : null;
  if (!di) throw new IommuError('EINVAL', `group ${group.id} has no device behind an IOMMU`);
  if (domain.owner !== (di.ops.domainOwner ?? di.ops)) throw new IommuError('EINVAL', `domain ${domain.id} belongs to ${domain.owner.name}, the group's devices to ${di.ops.name}`);
  if (domain.freed) throw new IommuError('EINVAL', `domain ${domain.id} was freed`);
}

/**
 * Attach `domain` to every device of `group`. Only a group on its default (or
 * blocking) domain can be attached elsewhere: EBUSY otherwise, even for the
 * same domain again.
 * @throws IommuError EBUSY, EINVAL (incompatible domain), or an attach errno; the group keeps its domain on failure.
 * Linux: iommu_attach_group() / __iommu_attach_group(), drivers/iommu/iommu.c.
 */
export function iommuAttachGroup(core: IommuCore, domain: IommuDomain, group: IommuGroup): void {
  const cur = group.domain as IommuDomain | null;
  if (cur && cur !== group.defaultDomain && cur !== group.blockingDomain) {
    throw new IommuError('EBUSY', `group ${group.id} is already attached to domain ${cur.id}`);
  }
  checkCompatible(domain, group);
  groupSetDomainInternal(core, group, domain);
}

/**
 * Attach `domain` to a device alone in its group.
 * @throws IommuError ENODEV (no group), EINVAL (the group has other devices,
 *   or the domain is incompatible), EBUSY (already on a non-default domain).
 * Linux: iommu_attach_device(), drivers/iommu/iommu.c.
 */
export function iommuAttachDevice(core: IommuCore, domain: IommuDomain, dev: Device): void {
  const group = dev.iommuGroup ? core.groups.get(dev) : null;
  if (!group) throw new IommuError('ENODEV', `${dev.name} has no IOMMU group`);
  try {
    if (group.devices.length !== 1) throw new IommuError('EINVAL', `${dev.name}'s group ${group.id} has ${group.devices.length} devices`);
    iommuAttachGroup(core, domain, group);
  } finally {
    core.groups.put(group);
  }
}

/**
 * Put the group back on its core domain: the blocking domain while it has a
 * DMA owner, else the default domain. Must succeed.
 * Linux: __iommu_group_set_core_domain(), drivers/iommu/iommu.c.
 */
export function groupSetCoreDomain(core: IommuCore, group: IommuGroup): void {
  const target = (group.owner !== null ? group.blockingDomain : group.defaultDomain) as IommuDomain | null;
  if (target) groupSetDomainInternal(core, group, target, true);
}

/**
 * Detach whatever domain the group has and return it to its core domain.
 * Linux: iommu_detach_group(), drivers/iommu/iommu.c.
 */
export function iommuDetachGroup(core: IommuCore, _domain: IommuDomain, group: IommuGroup): void {
  groupSetCoreDomain(core, group);
}

/**
 * Detach `domain` from a device alone in its group. A mismatched domain or a
 * multi-device group is a caller bug that Linux WARNs about and ignores: the
 * model does the same and returns false.
 * Linux: iommu_detach_device(), drivers/iommu/iommu.c.
 */
export function iommuDetachDevice(core: IommuCore, domain: IommuDomain, dev: Device): boolean {
  const group = dev.iommuGroup ? core.groups.get(dev) : null;
  if (!group) return false;
  try {
    if (group.domain !== domain || group.devices.length !== 1) {
      core.log.push(`WARN: iommu_detach_device(${dev.name}) with a domain that is not attached, or a multi-device group`);
      return false;
    }
    groupSetCoreDomain(core, group);
    return true;
  } finally {
    core.groups.put(group);
  }
}

/** The domain `dev` is attached to, or null. Linux: iommu_get_domain_for_dev(). */
export function iommuGetDomainForDev(dev: Device): IommuDomain | null {
  return devIommu(dev)?.domain ?? null;
}

/** The default (DMA API) domain of `dev`'s group, or null. Linux: iommu_get_dma_domain(). */
export function iommuGetDmaDomain(core: IommuCore, dev: Device): IommuDomain | null {
  if (!dev.iommuGroup) return null;
  const g = core.groups.get(dev)!;
  const d = g.defaultDomain as IommuDomain | null;
  core.groups.put(g);
  return d;
}
