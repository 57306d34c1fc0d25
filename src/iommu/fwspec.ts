/**
 * A device's IOMMU firmware spec: which IOMMU (by firmware node) translates
 * it, and the IDs it presents to that IOMMU (PCI requester IDs, SMMU stream
 * IDs, virtio-iommu endpoint IDs). Firmware parsing (DT `iommus`, ACPI IORT,
 * VIOT) fills it in before the IOMMU probe; the probe then takes the device
 * to the driver that registered that node, and never asks other drivers.
 *
 * Linux: struct iommu_fwspec (include/linux/iommu.h), iommu_fwspec_init(),
 * iommu_fwspec_add_ids(), iommu_fwspec_free(), iommu_ops_from_fwnode(),
 * drivers/iommu/iommu.c.
 */
import { IommuError } from '../base/errno.js';
import type { Device, FwNode } from '../device/device.js';
import type { IommuUnit } from './iommu-unit.js';

/** The PCI root complex has ATS enabled. Linux: IOMMU_FWSPEC_PCI_RC_ATS. */
export const IOMMU_FWSPEC_PCI_RC_ATS = 1 << 0;
/** The root complex can translate with CANWBS. Linux: IOMMU_FWSPEC_PCI_RC_CANWBS. */
export const IOMMU_FWSPEC_PCI_RC_CANWBS = 1 << 1;

/** A device's firmware spec. Linux: struct iommu_fwspec. */
export interface IommuFwspec {
  /** The IOMMU's firmware node. Linux: iommu_fwspec.iommu_fwnode. */
  readonly iommuFwnode: FwNode;
  /** IOMMU_FWSPEC_* flags. */
  flags: number;
  /** The device's IDs as the IOMMU sees them, in order (duplicates allowed). Linux: iommu_fwspec.ids[num_ids]. */
  readonly ids: number[];
}

/** The device's firmware spec, or null. Linux: dev_iommu_fwspec_get(). */
export function devIommuFwspec(dev: Device): IommuFwspec | null {
  return dev.iommuFwspec as IommuFwspec | null;
}

/** The registered units an IOMMU firmware node can be looked up among. */
export interface IommuUnitList {
  readonly units: readonly IommuUnit[];
  /** The device the core is initialising for its probe now (Linux: it has dev->iommu allocated), if any. */
  readonly probingDevice?: Device | null;
}

/**
 * The registered unit with firmware node `fwnode` (null: the first unit
 * registered without a node — the x86 drivers' units), or null.
 * Linux: iommu_from_fwnode() / iommu_ops_from_fwnode(), drivers/iommu/iommu.c.
 */
export function iommuFromFwnode(list: IommuUnitList, fwnode: FwNode | null): IommuUnit | null {
  for (const u of list.units) if (u.fwnode === fwnode) return u;
  return null;
}

/**
 * Give `dev` a firmware spec naming the IOMMU of `fwnode`.
 * @throws IommuError EPROBE_DEFER if no unit with that node is registered yet
 *   (or it is still registering and the device has no IOMMU state); EINVAL if
 *   the device already has a spec for a unit of other ops (the same ops: no change).
 * Linux: iommu_fwspec_init(), drivers/iommu/iommu.c.
 */
export function iommuFwspecInit(list: IommuUnitList, dev: Device, fwnode: FwNode): void {
  const iommu = iommuFromFwnode(list, fwnode);
  if (!iommu) throw new IommuError('EPROBE_DEFER', `${dev.name}: its IOMMU ${fwnode.name} is not registered (yet)`);
  if (!dev.iommu && list.probingDevice !== dev && !iommu.ready) throw new IommuError('EPROBE_DEFER', `${dev.name}: its IOMMU ${iommu.name} is still registering`);
  const cur = devIommuFwspec(dev);
  if (cur) {
    const curUnit = iommuFromFwnode(list, cur.iommuFwnode);
    if (curUnit?.ops === iommu.ops) return;
    throw new IommuError('EINVAL', `${dev.name} already has a firmware spec for ${cur.iommuFwnode.name}, of other ops than ${fwnode.name}`);
  }
  const spec: IommuFwspec = { iommuFwnode: fwnode, flags: 0, ids: [] };
  dev.iommuFwspec = spec;
}

/**
 * Append IDs to the device's firmware spec (order kept, duplicates allowed).
 * @throws IommuError EINVAL if the device has no firmware spec.
 * Linux: iommu_fwspec_add_ids(), drivers/iommu/iommu.c.
 */
export function iommuFwspecAddIds(dev: Device, ids: readonly number[]): void {
  const spec = devIommuFwspec(dev);
  if (!spec) throw new IommuError('EINVAL', `${dev.name} has no IOMMU firmware spec to add IDs to`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new IommuError('EINVAL', `${dev.name}: IOMMU ID ${id} is not a u32`);
  }
  spec.ids.push(...ids);
}

/** Drop the device's firmware spec. Linux: iommu_fwspec_free(). */
export function iommuFwspecFree(dev: Device): void {
  dev.iommuFwspec = null;
}
