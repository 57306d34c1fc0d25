/**
 * A bus type with its device list and bus notifier chain.
 *
 * Linux: struct bus_type, bus_register_notifier(), the BUS_NOTIFY_* events,
 * include/linux/device/bus.h, drivers/base/bus.c.
 */
import { BlockingNotifierHead } from '../base/notifier.js';
import type { Device } from './device.js';
import type { DeviceDriver } from './driver.js';

/** Bus notifier events. Values as in include/linux/device/bus.h. */
export const BusNotify = {
  /** device added. Linux: BUS_NOTIFY_ADD_DEVICE. */
  ADD_DEVICE: 0x01,
  /** device about to be removed. Linux: BUS_NOTIFY_DEL_DEVICE. */
  DEL_DEVICE: 0x02,
  /** device removed. Linux: BUS_NOTIFY_REMOVED_DEVICE. */
  REMOVED_DEVICE: 0x03,
  /** driver about to be bound. Linux: BUS_NOTIFY_BIND_DRIVER. */
  BIND_DRIVER: 0x04,
  /** driver bound to device. Linux: BUS_NOTIFY_BOUND_DRIVER. */
  BOUND_DRIVER: 0x05,
  /** driver about to be unbound. Linux: BUS_NOTIFY_UNBIND_DRIVER. */
  UNBIND_DRIVER: 0x06,
  /** driver is unbound from the device. Linux: BUS_NOTIFY_UNBOUND_DRIVER. */
  UNBOUND_DRIVER: 0x07,
  /** driver failed to bind to device. Linux: BUS_NOTIFY_DRIVER_NOT_BOUND. */
  DRIVER_NOT_BOUND: 0x08,
} as const;
/** One of the {@link BusNotify} values. */
export type BusNotifyEvent = (typeof BusNotify)[keyof typeof BusNotify];

/** A bus type (`pci`, `platform`, …): its devices in add order and its notifier chain. */
export class BusType {
  /** Bus name as in `/sys/bus/<name>`. */
  readonly name: string;
  /** Devices on this bus, in the order they were added (Linux: klist_devices). */
  readonly devices: Device[] = [];
  /** Bus notifier chain. Linux: bus_register_notifier() / bus_unregister_notifier(). */
  readonly notifier = new BlockingNotifierHead<BusNotifyEvent, Device>();
  /**
   * Called before a driver's probe; throwing aborts the bind with that error.
   * Set by the IOMMU core (DMA ownership). Linux: bus_type.dma_configure (pci_dma_configure()).
   */
  dmaConfigure: ((dev: Device, drv: DeviceDriver) => void) | null = null;
  /** Called after a driver is unbound (or its probe failed). Linux: bus_type.dma_cleanup (pci_dma_cleanup()). */
  dmaCleanup: ((dev: Device, drv: DeviceDriver) => void) | null = null;

  constructor(name: string) {
    this.name = name;
  }
}
