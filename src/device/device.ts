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
 * @throws IommuError EEXIST if already added, or a device of that name is on the bus.
 * Linux: device_add(), drivers/base/core.c.
 */
export function deviceAdd(dev: Device): void {
  if (dev.registered) throw new IommuError('EEXIST', `device ${dev.name} already added`);
  if (dev.bus.devices.some((d) => d.name === dev.name)) {
    throw new IommuError('EEXIST', `a device named ${dev.name} is already on bus ${dev.bus.name}`);
  }
  dev.bus.devices.push(dev);
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
  const i = dev.bus.devices.indexOf(dev);
  dev.bus.devices.splice(i, 1);
  dev.registered = false;
  dev.bus.notifier.callChain(BusNotify.REMOVED_DEVICE, dev);
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
