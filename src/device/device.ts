/**
 * The driver-model slice the IOMMU core needs: a device with a name, a parent,
 * a bus, a firmware node, the driver bound to it and its IOMMU group.
 *
 * Linux: struct device (include/linux/device.h), device_add()/device_del()
 * (drivers/base/core.c), device_bind_driver()/device_release_driver()
 * (drivers/base/dd.c).
 */
import { IommuError } from '../base/errno.js';
import { NOTIFY_BAD } from '../base/notifier.js';
import { BusNotify, type BusType } from './bus.js';
import type { DeviceDriver } from './driver.js';

/** A firmware node: what an IOMMU unit and the devices it covers are matched by. Linux: struct fwnode_handle. */
export interface FwNode {
  /** A printable name, e.g. an ACPI path or a DT path. */
  readonly name: string;
}

/**
 * Per-device IOMMU state the core attaches to a device (`dev->iommu_group`).
 * Typed as an opaque object here so the driver model does not depend on the
 * IOMMU core; the core narrows it.
 */
export interface DeviceIommuGroupRef {
  readonly id: number;
}

/** A device in the driver model. */
export class Device {
  /** Device (kobject) name, e.g. `0000:00:1f.2`. Linux: dev_name(). */
  readonly name: string;
  /** Parent device, or null for a root. Linux: device.parent. */
  readonly parent: Device | null;
  /** The bus the device is on. Linux: device.bus. */
  readonly bus: BusType;
  /** Firmware node, if any. Linux: device.fwnode. */
  fwnode: FwNode | null;
  /** Bound driver, or null. Linux: device.driver. */
  driver: DeviceDriver | null = null;
  /** The device's IOMMU group, set and cleared by the IOMMU core only. Linux: device.iommu_group. */
  iommuGroup: DeviceIommuGroupRef | null = null;
  /** True between {@link deviceAdd} and {@link deviceDel}. */
  registered = false;
  /**
   * Per-device IOMMU state, set and cleared by the IOMMU core only (opaque
   * here so the driver model does not depend on the core). Linux: device.iommu (struct dev_iommu).
   */
  iommu: object | null = null;
  /**
   * The device's IOMMU firmware spec (the IOMMU's firmware node and the IDs the
   * device uses towards it), set by firmware parsing before the IOMMU probe and
   * opaque here. Linux: dev->iommu->fwspec (struct iommu_fwspec).
   */
  iommuFwspec: object | null = null;
  /**
   * The bus-specific device that embeds this one (a PciDev), or null.
   * Linux: container_of(dev, struct pci_dev, dev) — to_pci_dev().
   */
  container: object | null = null;

  constructor(name: string, bus: BusType, parent: Device | null = null, fwnode: FwNode | null = null) {
    this.name = name;
    this.bus = bus;
    this.parent = parent;
    this.fwnode = fwnode;
  }
}

/**
 * Add a device to its bus: append to the bus's device list, then call the bus
 * notifier chain with ADD_DEVICE (where the IOMMU core probes it).
 * The name check is O(1) (a per-bus name index, see {@link busNameIndex}).
 * @throws IommuError EEXIST if already added, or a device of that name is on the bus.
 * Linux: device_add(), drivers/base/core.c.
 */
export function deviceAdd(dev: Device): void {
  if (dev.registered) throw new IommuError('EEXIST', `device ${dev.name} already added`);
  const index = busNameIndex(dev.bus);
  const same = index.byName.get(dev.name);
  // A hit is confirmed against the list itself (the error path only), so the index can never make a false EEXIST.
  if (same !== undefined && dev.bus.devices.includes(same)) {
    throw new IommuError('EEXIST', `a device named ${dev.name} is already on bus ${dev.bus.name}`);
  }
  dev.bus.devices.push(dev);
  index.byName.set(dev.name, dev);
  index.count = dev.bus.devices.length;
  index.last = dev;
  dev.registered = true;
  dev.bus.notifier.callChain(BusNotify.ADD_DEVICE, dev);
}

/**
 * Remove a device: unbind its driver, send DEL_DEVICE, take it off the bus,
 * send REMOVED_DEVICE (where the IOMMU core releases it).
 * @throws IommuError ENODEV if the device was not added.
 * Linux: device_del(), drivers/base/core.c.
 */
export function deviceDel(dev: Device): void {
  if (!dev.registered) throw new IommuError('ENODEV', `device ${dev.name} is not added`);
  if (dev.driver) deviceReleaseDriver(dev);
  dev.bus.notifier.callChain(BusNotify.DEL_DEVICE, dev);
  const index = busNameIndex(dev.bus);
  // Search from the end: devices are usually removed in reverse order of addition (hot-remove, VF rollback).
  const list = dev.bus.devices;
  const i = list.lastIndexOf(dev);
  if (i >= 0) list.splice(i, 1);
  forgetName(index, dev);
  dev.registered = false;
  dev.bus.notifier.callChain(BusNotify.REMOVED_DEVICE, dev);
}

/**
 * Remove many devices, in the order given, each exactly as {@link deviceDel}
 * does (driver unbind, DEL_DEVICE, `registered = false`, REMOVED_DEVICE), but
 * in O(n + k) for k devices on a bus of n: the bus's `devices` list is
 * compacted once, after the last device (or when a notifier throws), instead
 * of searched and spliced per device. So while the batch runs, a device whose
 * REMOVED_DEVICE has been sent is already `registered = false` and gone from
 * the name index (a device of the same name may be added), but may still be
 * listed in `bus.devices`; callers that walk that list during the batch
 * should skip unregistered devices. `afterEach(dev)` is called right after
 * each device's REMOVED_DEVICE (for the caller's own per-device unlinking).
 *
 * If a notifier (or `afterEach`) throws, the devices before it stay removed,
 * the rest stay added, the list is compacted, and the error propagates: the
 * same end state as a loop of deviceDel stopping at that device.
 * @throws IommuError ENODEV (before any event) if a device is not added;
 *   EINVAL (before any event) if a device is listed twice.
 * Linux: device_del() (drivers/base/core.c) called for each device in turn,
 *   as pci_stop_and_remove_bus_device() (drivers/pci/remove.c) and
 *   sriov_del_vfs() (drivers/pci/iov.c) do.
 */
export function deviceDelMany(devs: readonly Device[], afterEach?: (dev: Device) => void): void {
  const batch = new Set<Device>();
  for (const dev of devs) {
    if (!dev.registered) throw new IommuError('ENODEV', `device ${dev.name} is not added`);
    if (batch.has(dev)) throw new IommuError('EINVAL', `device ${dev.name} is listed twice`, { input: 'deviceDelMany' });
    batch.add(dev);
  }
  const buses = new Set<BusType>();
  try {
    for (const dev of devs) {
      buses.add(dev.bus);
      if (dev.driver) deviceReleaseDriver(dev);
      dev.bus.notifier.callChain(BusNotify.DEL_DEVICE, dev);
      forgetName(busNameIndex(dev.bus), dev);
      dev.registered = false;
      dev.bus.notifier.callChain(BusNotify.REMOVED_DEVICE, dev);
      afterEach?.(dev);
    }
  } finally {
    for (const bus of buses) {
      const list = bus.devices;
      let w = 0;
      for (let r = 0; r < list.length; r++) {
        const d = list[r]!;
        if (batch.has(d) && !d.registered) continue;
        list[w++] = d;
      }
      list.length = w;
      const index = nameIndexes.get(bus);
      if (index) {
        index.count = w;
        index.last = list[w - 1];
      }
    }
  }
}

/** A bus's name → device index, with what it was last synchronised to (to spot direct changes to `bus.devices`). */
interface BusNameIndex {
  readonly byName: Map<string, Device>;
  /** `bus.devices.length` when last synchronised. */
  count: number;
  /** The last entry of `bus.devices` when last synchronised. */
  last: Device | undefined;
}

const nameIndexes = new WeakMap<BusType, BusNameIndex>();

/**
 * The name index of `bus`, rebuilt (O(n)) when `bus.devices` was changed
 * other than through deviceAdd/deviceDel/deviceDelMany (a bulk push such as
 * buildPciTopology()'s, seen as a different length or last entry).
 */
function busNameIndex(bus: BusType): BusNameIndex {
  const list = bus.devices;
  let index = nameIndexes.get(bus);
  if (!index || index.count !== list.length || index.last !== list[list.length - 1]) {
    const byName = new Map<string, Device>();
    for (const d of list) if (!byName.has(d.name)) byName.set(d.name, d);
    index = { byName, count: list.length, last: list[list.length - 1] };
    nameIndexes.set(bus, index);
  }
  return index;
}

/**
 * Drop `dev` from its bus's name index (synchronised by busNameIndex() just
 * before `dev` left, or was about to leave, `bus.devices`) and resynchronise.
 */
function forgetName(index: BusNameIndex, dev: Device): void {
  if (index.byName.get(dev.name) === dev) index.byName.delete(dev.name);
  const list = dev.bus.devices;
  index.count = list.length;
  index.last = list[list.length - 1];
}

/**
 * Bind `drv` to `dev`: BIND_DRIVER (where a notifier may veto by returning
 * NOTIFY_BAD: the bind then fails with EBUSY and DRIVER_NOT_BOUND is sent),
 * the bus's dma_configure (whose error fails the bind, e.g. EBUSY from DMA
 * ownership), then set the driver and send BOUND_DRIVER.
 * @throws IommuError EBUSY if a driver is already bound or a notifier vetoed;
 *   ENODEV if the device is not added; dma_configure's error.
 * Linux: really_probe() / driver_bound(), drivers/base/dd.c.
 */
export function deviceBindDriver(dev: Device, drv: DeviceDriver): void {
  if (!dev.registered) throw new IommuError('ENODEV', `device ${dev.name} is not added`);
  if (dev.driver) throw new IommuError('EBUSY', `device ${dev.name} is already bound to ${dev.driver.name}`);
  const ret = dev.bus.notifier.callChain(BusNotify.BIND_DRIVER, dev);
  if (ret === NOTIFY_BAD) {
    dev.bus.notifier.callChain(BusNotify.DRIVER_NOT_BOUND, dev);
    throw new IommuError('EBUSY', `binding ${drv.name} to ${dev.name} refused by a bus notifier`);
  }
  // really_probe(): the bus configures DMA (and takes DMA ownership for kernel-DMA drivers) before probe.
  if (dev.bus.dmaConfigure) {
    try {
      dev.bus.dmaConfigure(dev, drv);
    } catch (e) {
      dev.bus.notifier.callChain(BusNotify.DRIVER_NOT_BOUND, dev);
      throw e;
    }
  }
  dev.driver = drv;
  dev.bus.notifier.callChain(BusNotify.BOUND_DRIVER, dev);
}

/**
 * Unbind the driver of `dev` (no-op without one): UNBIND_DRIVER, clear the
 * driver, UNBOUND_DRIVER.
 * Linux: device_release_driver(), drivers/base/dd.c.
 */
export function deviceReleaseDriver(dev: Device): void {
  const drv = dev.driver;
  if (!drv) return;
  dev.bus.notifier.callChain(BusNotify.UNBIND_DRIVER, dev);
  dev.driver = null;
  dev.bus.dmaCleanup?.(dev, drv);
  dev.bus.notifier.callChain(BusNotify.UNBOUND_DRIVER, dev);
}
