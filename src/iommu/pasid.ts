/**
 * Per-PASID attachment of domains (mainline, v6.2+) and the global PASID
 * space (v6.6+): a device's requests tagged with a PASID are translated by
 * the domain attached to its group at that PASID.
 *
 * Linux: iommu_attach_device_pasid(), iommu_detach_device_pasid(),
 * __iommu_set_group_pasid(), iommu_get_domain_for_dev_pasid(),
 * iommu_alloc_global_pasid(), iommu_free_global_pasid(), IOMMU_NO_PASID,
 * IOMMU_PASID_INVALID, drivers/iommu/iommu.c, include/linux/iommu.h.
 */
import { IommuError } from '../base/errno.js';
import { Ida } from '../base/ida.js';
import type { Device } from '../device/device.js';
import type { IommuDomain } from './domain.js';
import type { IommuGroup } from './group.js';
import { devIommu, type IommuCore } from './core.js';

/** Requests without PASID. Linux: IOMMU_NO_PASID. */
export const IOMMU_NO_PASID = 0;
/** No PASID / allocation failure. Linux: IOMMU_PASID_INVALID ((ioasid_t)-1). */
export const IOMMU_PASID_INVALID = 0xffffffff;

function groupOf(core: IommuCore, dev: Device): IommuGroup | null {
  if (!dev.iommuGroup) return null;
  const g = core.groups.get(dev)!;
  core.groups.put(g);
  return g;
}

function note(domain: IommuDomain, dev: Device, pasid: number, delta: 1 | -1): void {
  const unit = devIommu(dev)!.unit;
  const key = `${unit.name}/${pasid}`;
  const a = domain.pasidAttachments.get(key);
  if (delta > 0) {
    if (a) a.count++;
    else domain.pasidAttachments.set(key, { unit, pasid, count: 1 });
  } else if (a) {
    if (--a.count === 0) domain.pasidAttachments.delete(key);
    unit.iotlb.invalidatePasid(domain.id, pasid);
  }
}

/**
 * Attach `domain` to `dev`'s group at `pasid` (every PASID-capable device of the group).
 * @throws IommuError ENODEV (no group), EOPNOTSUPP (the driver cannot attach per PASID),
 *   EINVAL (PASID 0, a PASID not below a device's max, a domain of another driver),
 *   EBUSY (the PASID is already attached); a device's refusal is rolled back.
 * Linux: iommu_attach_device_pasid(), drivers/iommu/iommu.c.
 */
export function iommuAttachDevicePasid(core: IommuCore, domain: IommuDomain, dev: Device, pasid: number): void {
  const g = groupOf(core, dev);
  const di = devIommu(dev);
  if (!g || !di) throw new IommuError('ENODEV', `${dev.name} has no IOMMU group`);
  const blocked = di.ops.blockedDomain;
  if (!domain.ops.setDevPasid || !blocked?.ops.setDevPasid) throw new IommuError('EOPNOTSUPP', `${di.ops.name} cannot attach domains per PASID`);
  if (domain.owner !== (di.ops.domainOwner ?? di.ops) || pasid === IOMMU_NO_PASID) {
    throw new IommuError('EINVAL', pasid === IOMMU_NO_PASID ? 'PASID 0 is the requester ID (IOMMU_NO_PASID)' : `domain ${domain.id} belongs to another driver`);
  }
  for (const { dev: d } of g.devices) {
    const m = devIommu(d)?.maxPasids ?? 0;
    if (m > 0 && pasid >= m) throw new IommuError('EINVAL', `PASID ${pasid} is not below ${d.name}'s ${m} PASIDs`);
  }
  if (g.pasidArray.has(pasid)) throw new IommuError('EBUSY', `PASID ${pasid} of group ${g.id} is already attached`);
  const done: Device[] = [];
  try {
    for (const { dev: d } of g.devices) {
      if ((devIommu(d)?.maxPasids ?? 0) === 0) continue;
      domain.ops.setDevPasid(domain, d, pasid, null);
      note(domain, d, pasid, 1);
      done.push(d);
    }
  } catch (e) {
    for (const d of done) {
      blocked.ops.setDevPasid!(blocked, d, pasid, domain);
      note(domain, d, pasid, -1);
    }
    throw e;
  }
  g.pasidArray.set(pasid, domain);
}

/**
 * Detach whatever is attached at `pasid`: the blocked domain takes the PASID
 * on each device. Never fails (a mismatch is a caller bug, WARNed and ignored).
 * Linux: iommu_detach_device_pasid(), drivers/iommu/iommu.c.
 */
export function iommuDetachDevicePasid(core: IommuCore, domain: IommuDomain, dev: Device, pasid: number): void {
  const g = groupOf(core, dev);
  const di = devIommu(dev);
  if (!g || !di || g.pasidArray.get(pasid) !== domain) {
    core.log.push(`WARN: iommu_detach_device_pasid(${dev.name}, ${pasid}) with a domain that is not attached there`);
    return;
  }
  const blocked = di.ops.blockedDomain;
  for (const { dev: d } of g.devices) {
    if ((devIommu(d)?.maxPasids ?? 0) === 0) continue;
    blocked?.ops.setDevPasid?.(blocked, d, pasid, domain);
    note(domain, d, pasid, -1);
  }
  g.pasidArray.delete(pasid);
}

/** The domain attached at `pasid` of `dev`'s group, or null. Linux: iommu_get_domain_for_dev_pasid(). */
export function iommuGetDomainForDevPasid(core: IommuCore, dev: Device, pasid: number): IommuDomain | null {
  const g = groupOf(core, dev);
  return ((g?.pasidArray.get(pasid) ?? null) as IommuDomain | null);
}

const globalPasids = new WeakMap<IommuCore, Ida>();

/**
 * Allocate a PASID from the system-wide space: the smallest free in
 * [1, max_pasids - 1] of `dev`, or IOMMU_PASID_INVALID (no PASID support, or exhausted).
 * Linux: iommu_alloc_global_pasid(), drivers/iommu/iommu.c.
 */
export function iommuAllocGlobalPasid(core: IommuCore, dev: Device): number {
  const max = devIommu(dev)?.maxPasids ?? 0;
  if (max <= 1) return IOMMU_PASID_INVALID;
  let ida = globalPasids.get(core);
  if (!ida) globalPasids.set(core, (ida = new Ida()));
  try {
    return ida.alloc(1, max - 1);
  } catch {
    return IOMMU_PASID_INVALID;
  }
}

/** Free a global PASID (INVALID is WARNed and ignored). Linux: iommu_free_global_pasid(). */
export function iommuFreeGlobalPasid(core: IommuCore, pasid: number): void {
  if (pasid === IOMMU_PASID_INVALID) {
    core.log.push('WARN: iommu_free_global_pasid(IOMMU_PASID_INVALID)');
    return;
  }
  globalPasids.get(core)?.free(pasid);
}
