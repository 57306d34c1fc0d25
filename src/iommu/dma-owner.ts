/**
 * DMA ownership: who may drive DMA in an IOMMU group — the kernel DMA API
 * (drivers bound without `driver_managed_dma`), or one explicit owner (VFIO,
 * iommufd) that puts the group on a blocking domain and then on its own
 * domains. The two exclude each other.
 *
 * Linux: iommu_device_use_default_domain(), iommu_device_unuse_default_domain(),
 * __iommu_group_alloc_blocking_domain(), __iommu_take_dma_ownership(),
 * iommu_group_claim_dma_owner(), iommu_device_claim_dma_owner(),
 * __iommu_release_dma_ownership(), iommu_group_release_dma_owner(),
 * iommu_device_release_dma_owner(), iommu_group_dma_owner_claimed(),
 * drivers/iommu/iommu.c; pci_dma_configure()/pci_dma_cleanup(),
 * drivers/pci/pci-driver.c (v5.19+).
 */
import { IommuError } from '../base/errno.js';
import type { BusType } from '../device/bus.js';
import type { Device } from '../device/device.js';
import type { IommuDomain } from './domain.js';
import type { IommuGroup } from './group.js';
import { devIommu, type IommuCore } from './core.js';
import { groupSetDomainInternal } from './default-domain.js';
import { groupSetCoreDomain, iommuAttachGroup } from './attach.js';

/** An owner cookie: any object identifying the owner (a VFIO container, an iommufd context). */
export type DmaOwnerCookie = object;

function groupOf(core: IommuCore, dev: Device): IommuGroup | null {
  if (!dev.iommuGroup) return null;
  const g = core.groups.get(dev)!;
  core.groups.put(g); // the device's own reference keeps it alive
  return g;
}

/**
 * A kernel-DMA driver is about to bind to `dev`: count it as a DMA-API user
 * of the group. Refused while the group has an explicit owner or is on a
 * non-default domain (and has users).
 * @throws IommuError EPROBE_DEFER (the group has no default domain yet), EBUSY.
 * Linux: iommu_device_use_default_domain(), drivers/iommu/iommu.c.
 */
export function iommuDeviceUseDefaultDomain(core: IommuCore, dev: Device): void {
  const g = groupOf(core, dev);
  if (!g) return;
  if (!g.defaultDomain) throw new IommuError('EPROBE_DEFER', `${dev.name}: group ${g.id} has no default domain yet`);
  if (g.ownerCnt !== 0 && (g.domain !== g.defaultDomain || g.owner !== null || g.pasidArray.size !== 0)) {
    throw new IommuError('EBUSY', `${dev.name}: group ${g.id} is ${g.owner !== null ? 'owned for user DMA' : 'not on its default domain'}: a kernel-DMA driver cannot bind`);
  }
  g.ownerCnt++;
}

/**
 * The kernel-DMA driver of `dev` went away. A call without a matching use is
 * a kernel bug (WARN) and is ignored.
 * Linux: iommu_device_unuse_default_domain(), drivers/iommu/iommu.c.
 */
export function iommuDeviceUnuseDefaultDomain(core: IommuCore, dev: Device): void {
  const g = groupOf(core, dev);
  if (!g) return;
  if (g.ownerCnt === 0) {
    core.log.push(`WARN: iommu_device_unuse_default_domain(${dev.name}) with owner_cnt 0`);
    return;
  }
  g.ownerCnt--;
}

/**
 * The group's blocking domain, allocated on first use: the driver's static
 * blocked domain, or an empty paging domain.
 * Linux: __iommu_group_alloc_blocking_domain(), drivers/iommu/iommu.c.
 */
export function groupBlockingDomain(group: IommuGroup): IommuDomain {
  if (group.blockingDomain) return group.blockingDomain as IommuDomain;
  const first = group.devices[0]?.dev;
  const di = first ? devIommu(first) : null;
  if (!first || !di) throw new IommuError('ENODEV', `group ${group.id} has no device behind an IOMMU`);
  let d: IommuDomain;
  if (di.ops.blockedDomain) d = di.ops.blockedDomain;
  else {
    d = di.ops.domainAllocPaging(first);
    d.type = 'unmanaged';
  }
  group.blockingDomain = d;
  return d;
}

/** Linux: __iommu_take_dma_ownership(). */
function takeOwnership(core: IommuCore, group: IommuGroup, owner: DmaOwnerCookie): void {
  if ((group.domain && group.domain !== group.defaultDomain) || group.pasidArray.size !== 0) {
    throw new IommuError('EBUSY', `group ${group.id} is attached to a non-default domain${group.pasidArray.size ? ' or has PASIDs attached' : ''}`);
  }
  const blocking = groupBlockingDomain(group);
  groupSetDomainInternal(core, group, blocking);
  group.owner = owner;
  group.ownerCnt++;
}

/**
 * Claim the whole group for user-space DMA (the legacy VFIO container path):
 * the group goes on the blocking domain.
 * @throws IommuError EINVAL (null owner, or a device that requires a 1:1
 *   mapping cannot be blocked), EPERM (kernel-DMA drivers are bound, or the
 *   group is already claimed — even by the same owner), EBUSY (a non-default
 *   domain is attached).
 * Linux: iommu_group_claim_dma_owner(), drivers/iommu/iommu.c.
 */
export function iommuGroupClaimDmaOwner(core: IommuCore, group: IommuGroup, owner: DmaOwnerCookie | null): void {
  if (owner === null) throw new IommuError('EINVAL', 'a DMA owner cookie is required');
  if (group.ownerCnt !== 0) {
    throw new IommuError('EPERM', `group ${group.id} ${group.owner !== null ? 'is already claimed' : `has ${group.ownerCnt} kernel-DMA driver(s) bound`}`);
  }
  takeOwnership(core, group, owner);
}

/**
 * Claim `dev`'s group for `owner` (iommufd device binding): the first claim
 * takes the group; further claims by the same owner are counted.
 * @throws IommuError EINVAL (null owner; a 1:1-mapped device), ENODEV (no
 *   group), EPERM (kernel-DMA drivers bound, or another owner), EBUSY (a
 *   non-default domain attached).
 * Linux: iommu_device_claim_dma_owner(), drivers/iommu/iommu.c (v6.2+).
 */
export function iommuDeviceClaimDmaOwner(core: IommuCore, dev: Device, owner: DmaOwnerCookie | null): void {
  if (owner === null) throw new IommuError('EINVAL', 'a DMA owner cookie is required');
  const g = groupOf(core, dev);
  if (!g) throw new IommuError('ENODEV', `${dev.name} has no IOMMU group`);
  if (g.ownerCnt !== 0) {
    if (g.owner === owner) {
      g.ownerCnt++;
      return;
    }
    throw new IommuError('EPERM', `${dev.name}: group ${g.id} ${g.owner !== null ? 'is owned by another owner' : `has ${g.ownerCnt} kernel-DMA driver(s) bound`}`);
  }
  takeOwnership(core, g, owner);
}

/** Linux: __iommu_release_dma_ownership(). */
function releaseOwnership(core: IommuCore, group: IommuGroup): void {
  if (group.ownerCnt === 0 || group.owner === null || group.pasidArray.size !== 0) {
    core.log.push(`WARN: release of DMA ownership of group ${group.id}, which is not owned or still has PASIDs attached`);
    return;
  }
  group.ownerCnt = 0;
  group.owner = null;
  if (group.defaultDomain) groupSetDomainInternal(core, group, group.defaultDomain as IommuDomain, true);
}

/**
 * Release a group claim: back to the default domain. Not owned → WARN, ignored.
 * Linux: iommu_group_release_dma_owner(), drivers/iommu/iommu.c.
 */
export function iommuGroupReleaseDmaOwner(core: IommuCore, group: IommuGroup): void {
  releaseOwnership(core, group);
}

/**
 * Release one device claim; the last one releases the group.
 * Linux: iommu_device_release_dma_owner(), drivers/iommu/iommu.c.
 */
export function iommuDeviceReleaseDmaOwner(core: IommuCore, dev: Device): void {
  const g = groupOf(core, dev);
  if (!g) return;
  if (g.ownerCnt > 1) g.ownerCnt--;
  else releaseOwnership(core, g);
}

/** True if DMA-API users or an owner hold the group. Linux: iommu_group_dma_owner_claimed(). */
export function iommuGroupDmaOwnerClaimed(group: IommuGroup): boolean {
  return group.ownerCnt !== 0;
}

/**
 * Install the PCI bus's DMA hooks on `bus`: binding a driver without
 * `driver_managed_dma` uses the default domain (and fails with its error);
 * unbinding releases it. Linux: pci_dma_configure() / pci_dma_cleanup().
 */
export function enableDmaOwnership(core: IommuCore, bus: BusType): void {
  bus.dmaConfigure = (dev, drv) => {
    if (!drv.driverManagedDma) iommuDeviceUseDefaultDomain(core, dev);
  };
  bus.dmaCleanup = (dev, drv) => {
    if (!drv.driverManagedDma) iommuDeviceUnuseDefaultDomain(core, dev);
  };
}

const sharedCount = new WeakMap<IommuGroup, number>();

/**
 * Attach `dev` to a domain shared by several devices of its group (the
 * 2021 seed proposal, kept in substance by mainline's group-wide attach): the
 * first device attaches the group; others that present the same domain join
 * (counted); a different domain is refused.
 * @throws IommuError ENODEV (no group), EBUSY (another domain is shared, or
 *   the group is busy), EINVAL (incompatible domain).
 * Linux (proposal, Dec 2021): iommu_attach_device_shared().
 */
export function iommuAttachDeviceShared(core: IommuCore, domain: IommuDomain, dev: Device): void {
  const g = groupOf(core, dev);
  if (!g) throw new IommuError('ENODEV', `${dev.name} has no IOMMU group`);
  const n = sharedCount.get(g) ?? 0;
  if (n > 0) {
    if (g.domain !== domain) throw new IommuError('EBUSY', `group ${g.id} is shared on another domain`);
  } else {
    iommuAttachGroup(core, domain, g);
  }
  sharedCount.set(g, n + 1);
}

/**
 * Leave a shared domain; the last device out puts the group back on its core
 * domain (default, or blocking while owned).
 * @throws IommuError EINVAL if the group is not shared on `domain`.
 * Linux (proposal, Dec 2021): iommu_detach_device_shared().
 */
export function iommuDetachDeviceShared(core: IommuCore, domain: IommuDomain, dev: Device): void {
  const g = groupOf(core, dev);
  const n = g ? sharedCount.get(g) ?? 0 : 0;
  if (!g || n === 0 || g.domain !== domain) throw new IommuError('EINVAL', `${dev.name}'s group is not shared on domain ${domain.id}`);
  if (n === 1) {
    sharedCount.delete(g);
    groupSetCoreDomain(core, g);
  } else sharedCount.set(g, n - 1);
}

/** How many devices share the group's domain (0: not shared). */
export function iommuSharedCount(group: IommuGroup): number {
  return sharedCount.get(group) ?? 0;
}
