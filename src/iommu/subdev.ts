/**
 * Subdevices (Intel Scalable IOV / mdev style): devices carved out of a
 * parent device, on their own bus, each in its own IOMMU group, that borrow
 * the parent's IOMMU. Their domains come from the parent's driver (unmanaged
 * only: no DMA-API default domain); attaching one attaches it to the parent
 * at a PASID allocated for the subdevice when the parent supports PASIDs,
 * and as the parent's primary (requester-ID) domain otherwise.
 *
 * The seed review's open question (2020: aux attach vs. primary domain when
 * the parent has no PASID support) is decided here as mdev's vfio_iommu_type1
 * did: a PASID when AUX/PASID is available, else iommu_attach_device() on the
 * parent — which requires the parent alone in its group and on its default
 * domain (EINVAL / EBUSY otherwise).
 *
 * Linux (v5.2–v5.16): mdev_set_iommu_device(), vfio_mdev_attach_domain()
 * (drivers/vfio/vfio_iommu_type1.c), iommu_aux_attach_device(),
 * intel_iommu_aux_attach_device() (drivers/iommu/intel/iommu.c); mainline
 * replacement: iommu_attach_device_pasid() + iommu_alloc_global_pasid().
 */
import { IommuError } from '../base/errno.js';
import { BusType } from '../device/bus.js';
import { Device, deviceAdd, deviceDel } from '../device/device.js';
import type { IommuDomain } from './domain.js';
import type { IommuOps } from './iommu-ops.js';
import { devIommu, type IommuCore } from './core.js';
import { genericDeviceGroup } from './pci-device-group.js';
import { iommuAttachDevice, iommuDetachDevice } from './attach.js';
import { iommuAllocGlobalPasid, iommuAttachDevicePasid, iommuDetachDevicePasid, iommuFreeGlobalPasid, IOMMU_PASID_INVALID } from './pasid.js';

/** The subdevice bus of one core (as the mdev bus). */
export interface SubdevBus {
  readonly bus: BusType;
  readonly ops: IommuOps;
}

const buses = new WeakMap<IommuCore, SubdevBus>();

/**
 * The subdevice bus of `core`, with IOMMU ops that delegate to each
 * subdevice's parent: probe through the parent's unit, the parent's reserved
 * regions, domains from the parent's driver, one group per subdevice, no
 * default domain.
 */
export function subdevBus(core: IommuCore): SubdevBus {
  let sb = buses.get(core);
  if (sb) return sb;
  const bus = new BusType('mdev');
  const parentOf = (dev: Device): Device => {
    const p = dev.parent;
    if (!p || !devIommu(p)) throw new IommuError('ENODEV', `${dev.name}: its parent is not behind an IOMMU`);
    return p;
  };
  const ops: IommuOps = {
    name: 'subdev',
    noDefaultDomain: true,
    probeDevice(dev) {
      return devIommu(parentOf(dev))!.unit;
    },
    deviceGroup(c) {
      return genericDeviceGroup(c.groups);
    },
    domainAllocPaging(dev) {
      const parent = parentOf(dev!);
      const d = devIommu(parent)!.ops.domainAllocPaging(parent);
      d.type = 'unmanaged';
      return d;
    },
    getResvRegions(dev) {
      return [...(devIommu(parentOf(dev))?.resvRegions ?? [])];
    },
  };
  sb = { bus, ops };
  buses.set(core, sb);
  return sb;
}

/**
 * Create a subdevice of `parent` named `name` and probe it into its own group.
 * @throws IommuError ENODEV (the parent has no IOMMU), EEXIST (the name is taken).
 * Linux: mdev_device_create() → device_add() on the mdev bus.
 */
export function createSubdevice(core: IommuCore, parent: Device, name: string): Device {
  const pdi = devIommu(parent);
  if (!pdi) throw new IommuError('ENODEV', `${parent.name} is not behind an IOMMU: it cannot host subdevices`);
  const sb = subdevBus(core);
  const ops: IommuOps = { ...sb.ops, domainOwner: pdi.ops.domainOwner ?? pdi.ops };
  const dev = new Device(name, sb.bus, parent);
  deviceAdd(dev);
  let g;
  try {
    g = core.probeDevice(dev, ops);
  } catch (e) {
    deviceDel(dev);
    throw e;
  }
  if (g) core.groups.put(g);
  devIommu(dev)!.subdevOf = { parent, pasid: null };
  return dev;
}

/**
 * Remove a subdevice (detach its domain first if attached).
 * Linux: mdev_device_remove().
 */
export function removeSubdevice(core: IommuCore, dev: Device): void {
  const di = devIommu(dev);
  const cur = di?.domain ?? null;
  if (cur) subdevDetach(core, cur, dev);
  core.releaseDevice(dev);
  deviceDel(dev);
}

/**
 * Attach `domain` (from the parent's driver) to a subdevice: at a fresh
 * global PASID of the parent when it supports PASIDs, else as the parent's
 * primary domain. The subdevice's group records the domain.
 * @returns the PASID used, or null for the primary-domain case.
 * @throws IommuError EBUSY (the subdevice already has a domain; the parent busy),
 *   EINVAL (an incompatible domain; a parent not alone in its group), ENOSPC (no PASID left).
 * Linux: vfio_mdev_attach_domain() / iommu_aux_attach_device(); mainline: iommu_attach_device_pasid().
 */
export function subdevAttach(core: IommuCore, domain: IommuDomain, dev: Device): number | null {
  const di = devIommu(dev);
  if (!di?.subdevOf) throw new IommuError('EINVAL', `${dev.name} is not a subdevice`);
  if (di.domain) throw new IommuError('EBUSY', `${dev.name} already has domain ${di.domain.id}`);
  const parent = di.subdevOf.parent;
  const g = core.groups.get(dev)!;
  try {
    if (domain.owner !== (di.ops.domainOwner ?? di.ops)) throw new IommuError('EINVAL', `domain ${domain.id} is not from ${parent.name}'s IOMMU driver`);
    let pasid: number | null = null;
    if ((devIommu(parent)?.maxPasids ?? 0) > 1) {
      pasid = iommuAllocGlobalPasid(core, parent);
      if (pasid === IOMMU_PASID_INVALID) throw new IommuError('ENOSPC', `${parent.name} has no free PASID`);
      try {
        iommuAttachDevicePasid(core, domain, parent, pasid);
      } catch (e) {
        iommuFreeGlobalPasid(core, pasid);
        throw e;
      }
    } else {
      iommuAttachDevice(core, domain, parent);
    }
    di.subdevOf = { parent, pasid };
    di.domain = domain;
    g.domain = domain;
    return pasid;
  } finally {
    core.groups.put(g);
  }
}

/**
 * Detach a subdevice's domain (freeing its PASID, or returning the parent to its default domain).
 * @throws IommuError EINVAL if `domain` is not the subdevice's.
 */
export function subdevDetach(core: IommuCore, domain: IommuDomain, dev: Device): void {
  const di = devIommu(dev);
  if (!di?.subdevOf || di.domain !== domain) throw new IommuError('EINVAL', `${dev.name} is not attached to domain ${domain.id}`);
  const { parent, pasid } = di.subdevOf;
  if (pasid !== null) {
    iommuDetachDevicePasid(core, domain, parent, pasid);
    iommuFreeGlobalPasid(core, pasid);
  } else {
    iommuDetachDevice(core, domain, parent);
  }
  di.subdevOf = { parent, pasid: null };
  di.domain = null;
  const g = core.groups.get(dev)!;
  g.domain = null;
  core.groups.put(g);
}
