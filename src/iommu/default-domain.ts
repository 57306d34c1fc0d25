/**
 * Default domains and the group-wide domain switch.
 *
 * Linux: iommu_get_default_domain_type(), iommu_group_alloc_default_domain(),
 * __iommu_group_alloc_default_domain(), iommu_setup_default_domain(),
 * iommu_create_device_direct_mappings(), __iommu_group_set_domain_internal(),
 * __iommu_device_set_domain(), iommu_group_store_type(), drivers/iommu/iommu.c;
 * iommu_dma_init_domain() (DMA-FQ downgrade), drivers/iommu/dma-iommu.c.
 */
import { IommuError } from '../base/errno.js';
import type { Device } from '../device/device.js';
import { toPciDev } from '../pci/pci-dev.js';
import { DOMAIN_TYPE_BITS, DomainBits, iommuIovaToPhys, iommuMap, type IommuDomain } from './domain.js';
import type { IommuDomainType } from './domain-type.js';
import type { IommuGroup } from './group.js';
import { IommuResvType } from './resv-region.js';
import { devIommu, trackAttach, type IommuCore } from './core.js';

/** A requested default type: a type, 0 (let the core choose), or -1 (refuse). */
export type DefaultTypeRequest = 'identity' | 'DMA' | 'DMA-FQ' | 0;

/**
 * The default-domain type the group's devices require: the drivers'
 * def_domain_type() preferences combined (identity wins a conflict), DMA
 * forced by an untrusted PCI device; `target` must agree with it.
 * @returns a type, 0 (no requirement), or -1 (refuse: `target` conflicts).
 * Linux: iommu_get_default_domain_type(), drivers/iommu/iommu.c.
 */
export function iommuGetDefaultDomainType(core: IommuCore, group: IommuGroup, target: DefaultTypeRequest): DefaultTypeRequest | -1 {
  let driverType: 'identity' | 'DMA' | 0 = 0;
  let untrusted: Device | null = null;
  for (const { dev } of group.devices) {
    const di = devIommu(dev);
    const t = di?.ops.defDomainType?.(dev) ?? 0;
    if (t !== 0 && t !== driverType) {
      if (driverType === 0) driverType = t;
      else {
        core.log.push(`IOMMU driver error: ${dev.name} requested ${t} but the group needs ${driverType}; using identity`);
        driverType = 'identity';
      }
    }
    if (toPciDev(dev)?.untrusted) untrusted ??= dev;
  }
  if (untrusted) {
    if (driverType !== 0 && driverType !== 'DMA') {
      core.log.push(`${untrusted.name}: device is untrusted but the driver requires ${driverType}: refusing to probe`);
      return -1;
    }
    driverType = 'DMA';
  }
  if (target !== 0) {
    if (driverType !== 0 && !(target === driverType || (target === 'DMA-FQ' && driverType === 'DMA'))) return -1;
    return target;
  }
  return driverType;
}

/**
 * Allocate a default domain of `type` for the group through the first
 * device's driver: a paging domain turned into a DMA/DMA-FQ domain, or the
 * driver's identity domain. DMA-FQ becomes DMA when the IOMMU cannot defer
 * flushes (IOMMU_CAP_DEFERRED_FLUSH).
 * @throws IommuError EOPNOTSUPP (identity not supported), EINVAL, ENOMEM.
 * Linux: __iommu_group_alloc_default_domain(), iommu_dma_init_domain().
 */
function allocDefaultDomainOfType(core: IommuCore, group: IommuGroup, type: 'identity' | 'DMA' | 'DMA-FQ'): IommuDomain {
  const first = group.devices[0]?.dev;
  const di = first ? devIommu(first) : null;
  if (!first || !di) throw new IommuError('ENODEV', `group ${group.id} has no device with an IOMMU`);
  const cur = group.defaultDomain as IommuDomain | null;
  if (cur && cur.type === type) return cur;
  if (type === 'identity') {
    if (!di.ops.identityDomain) throw new IommuError('EOPNOTSUPP', `${di.ops.name} has no identity domain`);
    return di.ops.identityDomain;
  }
  const d = di.ops.domainAllocPaging(first);
  let t: IommuDomainType = type;
  if (t === 'DMA-FQ' && !di.ops.capable?.(first, 'DEFERRED_FLUSH')) t = 'DMA';
  d.type = t;
  d.typeBits = DOMAIN_TYPE_BITS[t];
  return d;
}

/**
 * The group's default domain for a request: exactly that type, or the global
 * default (falling back to DMA with a warning if that fails).
 * Linux: iommu_group_alloc_default_domain(), drivers/iommu/iommu.c.
 */
export function iommuGroupAllocDefaultDomain(core: IommuCore, group: IommuGroup, req: DefaultTypeRequest): IommuDomain {
  if (req !== 0) return allocDefaultDomainOfType(core, group, req);
  try {
    return allocDefaultDomainOfType(core, group, core.defDomainType);
  } catch (e) {
    if (core.defDomainType === 'DMA') throw e;
    core.log.push(`group ${group.id}: failed to allocate default ${core.defDomainType} domain; falling back to DMA`);
    return allocDefaultDomainOfType(core, group, 'DMA');
  }
}

/**
 * Map `dev`'s DIRECT and DIRECT_RELAXABLE reserved regions 1:1 into a DMA
 * domain (page-rounded, skipping pages already mapped).
 * @throws IommuError from the map.
 * Linux: iommu_create_device_direct_mappings(), drivers/iommu/iommu.c.
 */
export function createDeviceDirectMappings(core: IommuCore, domain: IommuDomain, dev: Device): void {
  const di = devIommu(dev);
  if (!di || !domain.isDma) return;
  const pg = domain.minPgsize;
  for (const r of di.resvRegions) {
    if (r.type !== IommuResvType.DIRECT && r.type !== IommuResvType.DIRECT_RELAXABLE) continue;
    const start = Math.ceil(r.start / pg) * pg;
    const end = Math.ceil((r.start + r.length) / pg) * pg;
    let runStart = -1;
    for (let a = start; a <= end; a += pg) {
      const mapped = a < end && iommuIovaToPhys(domain, a) !== 0;
      if (a < end && !mapped) {
        if (runStart < 0) runStart = a;
        continue;
      }
      if (runStart >= 0) {
        iommuMap(domain, runStart, runStart, a - runStart, r.prot);
        runStart = -1;
      }
    }
  }
  void core;
}

/**
 * Switch every device of the group to `domain`; on a failure put the devices
 * already switched back on the old domain and rethrow (unless `mustSucceed`).
 * A device with a DIRECT region cannot go on a blocking domain (EINVAL).
 * @throws IommuError EINVAL, or the driver's attach errno.
 * Linux: __iommu_group_set_domain_internal(), __iommu_device_set_domain().
 */
export function groupSetDomainInternal(core: IommuCore, group: IommuGroup, domain: IommuDomain, mustSucceed = false): void {
  const old = group.domain as IommuDomain | null;
  if (old === domain) return;
  const done: Device[] = [];
  try {
    for (const { dev } of group.devices) {
      const di = devIommu(dev);
      if (!di) throw new IommuError('ENODEV', `${dev.name} has no IOMMU`);
      if (di.requireDirect && domain.type === 'blocked') {
        throw new IommuError('EINVAL', `${dev.name}: firmware has requested this device have a 1:1 IOMMU mapping, rejecting configuring the device without a 1:1 mapping`);
      }
      domain.ops.attachDev(domain, dev);
      trackAttach(domain, dev, di);
      done.push(dev);
    }
  } catch (e) {
    if (mustSucceed) throw e;
    for (const dev of done) {
      const di = devIommu(dev)!;
      if (old) {
        old.ops.attachDev(old, dev);
        trackAttach(old, dev, di);
      }
    }
    throw e;
  }
  group.domain = domain;
}

/**
 * Choose, allocate and install the group's default domain (on probe, or for a
 * `type` sysfs write), with the devices' direct mappings; switch the group if
 * it already had one, restoring the old default on failure.
 * @param target a requested type, or 0 for the core's choice.
 * @throws IommuError EINVAL (request refused), EOPNOTSUPP, or an attach errno.
 * Linux: iommu_setup_default_domain(), drivers/iommu/iommu.c.
 */
export function iommuSetupDefaultDomain(core: IommuCore, group: IommuGroup, target: DefaultTypeRequest): void {
  const req = iommuGetDefaultDomainType(core, group, target);
  if (req === -1) throw new IommuError('EINVAL', `group ${group.id}: the requested default domain type conflicts with its devices`);
  const old = group.defaultDomain as IommuDomain | null;
  const dom = iommuGroupAllocDefaultDomain(core, group, req);
  if (dom === old) return;
  for (const { dev } of group.devices) createDeviceDirectMappings(core, dom, dev);
  group.defaultDomain = dom;
  try {
    if (!group.domain) groupSetDomainInternal(core, group, dom, true);
    else groupSetDomainInternal(core, group, dom);
  } catch (e) {
    group.defaultDomain = old;
    if (dom !== dom.owner.identityDomain && dom !== dom.owner.blockedDomain) {
      dom.ops.free?.(dom);
      dom.freed = true;
    }
    throw e;
  }
  if (old && old !== old.owner.identityDomain && old !== old.owner.blockedDomain && !old.freed) {
    old.ops.free?.(old);
    old.freed = true;
  }
}

/** Options of a `type` write. */
export interface StoreTypeOptions {
  /** The writer has CAP_SYS_ADMIN and CAP_SYS_RAWIO (default true). */
  readonly capable?: boolean;
  /** Override of the group's DMA owner count (bound DMA-API drivers + claims; default: the group's own); nonzero refuses a change (EPERM). */
  readonly ownerCount?: number;
}

/**
 * Write the group's `type` sysfs file: `identity`, `DMA`, `DMA-FQ` or `auto`
 * (a trailing newline is fine). DMA → DMA-FQ converts in place even with
 * drivers bound.
 * @returns the bytes consumed (the text length), as a sysfs store does.
 * @throws IommuError EACCES (not privileged), EINVAL (no default domain, an
 *   unknown string, a type the devices cannot take), EPERM (no devices, or
 *   devices in use), EOPNOTSUPP.
 * Linux: iommu_group_store_type(), drivers/iommu/iommu.c (v6.4+).
 */
export function iommuGroupStoreType(core: IommuCore, group: IommuGroup, text: string, opts: StoreTypeOptions = {}): number {
  if (opts.capable === false) throw new IommuError('EACCES', 'writing the group type needs CAP_SYS_ADMIN and CAP_SYS_RAWIO');
  const cur = group.defaultDomain as IommuDomain | null;
  if (!cur) throw new IommuError('EINVAL', `group ${group.id} has no default domain`);
  const word = text.endsWith('\n') ? text.slice(0, -1) : text;
  let req: DefaultTypeRequest;
  if (word === 'identity') req = 'identity';
  else if (word === 'DMA') req = 'DMA';
  else if (word === 'DMA-FQ') req = 'DMA-FQ';
  else if (word === 'auto') req = 0;
  else throw new IommuError('EINVAL', `${JSON.stringify(word)} is not one of identity, DMA, DMA-FQ, auto`);
  if (req === 'DMA-FQ' && cur.type === 'DMA') {
    const first = group.devices[0]?.dev;
    const di = first ? devIommu(first) : null;
    if (!first || !di?.ops.capable?.(first, 'DEFERRED_FLUSH')) throw new IommuError('EOPNOTSUPP', 'the IOMMU cannot defer IOTLB flushes');
    cur.type = 'DMA-FQ';
    cur.typeBits = DOMAIN_TYPE_BITS['DMA-FQ'] | (cur.typeBits & ~DomainBits.DMA_FQ);
    return text.length;
  }
  if (group.devices.length === 0 || (opts.ownerCount ?? group.ownerCnt) !== 0) {
    throw new IommuError('EPERM', `group ${group.id}: ${group.devices.length === 0 ? 'no devices' : 'drivers are bound or the group is owned'}`);
  }
  iommuSetupDefaultDomain(core, group, req);
  return text.length;
}
