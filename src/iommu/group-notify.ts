/**
 * IOMMU group notifier events (Linux v3.5 – v5.18) and their mapping from bus
 * notifier events.
 *
 * Each group had a blocking notifier chain. The core fired ADD_DEVICE after a
 * device was put on the group's list and DEL_DEVICE before it was taken off;
 * iommu_bus_notifier() republished the four driver-binding bus events on the
 * chain of the device's group. VFIO was the only consumer. Removed in v5.19
 * (commit a5f1bd1afacd "iommu: Remove iommu group changes notifier") in favour
 * of DMA ownership; mainline has no group notifiers.
 *
 * Linux: IOMMU_GROUP_NOTIFY_* (include/linux/iommu.h, ≤ v5.18),
 * iommu_group_register_notifier(), iommu_bus_notifier() (drivers/iommu/iommu.c).
 */
import { BusNotify, type BusNotifyEvent } from '../device/bus.js';

/** Group notifier events, values as in include/linux/iommu.h (≤ v5.18). */
export const IommuGroupNotify = {
  /** A device was added to the group (fired after it is on the group's device list). Linux: IOMMU_GROUP_NOTIFY_ADD_DEVICE. */
  ADD_DEVICE: 1,
  /** A device is about to be removed (fired before it is taken off the list). Linux: IOMMU_GROUP_NOTIFY_DEL_DEVICE. */
  DEL_DEVICE: 2,
  /** A driver is about to bind to a member (from BUS_NOTIFY_BIND_DRIVER). Linux: IOMMU_GROUP_NOTIFY_BIND_DRIVER. */
  BIND_DRIVER: 3,
  /** A driver was bound to a member (from BUS_NOTIFY_BOUND_DRIVER). Linux: IOMMU_GROUP_NOTIFY_BOUND_DRIVER. */
  BOUND_DRIVER: 4,
  /** A member's driver is about to unbind (from BUS_NOTIFY_UNBIND_DRIVER). Linux: IOMMU_GROUP_NOTIFY_UNBIND_DRIVER. */
  UNBIND_DRIVER: 5,
  /** A member's driver was unbound (from BUS_NOTIFY_UNBOUND_DRIVER). Linux: IOMMU_GROUP_NOTIFY_UNBOUND_DRIVER. */
  UNBOUND_DRIVER: 6,
} as const;
/** One of the {@link IommuGroupNotify} values (1..6). */
export type IommuGroupNotifyEvent = (typeof IommuGroupNotify)[keyof typeof IommuGroupNotify];

/**
 * The group event a bus event is republished as: BIND/BOUND/UNBIND/UNBOUND
 * driver events map to IOMMU_GROUP_NOTIFY_{BIND,BOUND,UNBIND,UNBOUND}_DRIVER;
 * every other bus event (ADD/DEL/REMOVED device, DRIVER_NOT_BOUND) gives `null`
 * (not relayed: ADD/REMOVED went to the IOMMU driver's probe/release instead).
 * Linux: the switch in iommu_bus_notifier(), drivers/iommu/iommu.c (v3.5 – v5.18).
 */
export function groupNotifyFromBus(event: BusNotifyEvent): IommuGroupNotifyEvent | null {
  switch (event) {
    case BusNotify.BIND_DRIVER:
      return IommuGroupNotify.BIND_DRIVER;
    case BusNotify.BOUND_DRIVER:
      return IommuGroupNotify.BOUND_DRIVER;
    case BusNotify.UNBIND_DRIVER:
      return IommuGroupNotify.UNBIND_DRIVER;
    case BusNotify.UNBOUND_DRIVER:
      return IommuGroupNotify.UNBOUND_DRIVER;
    default:
      return null;
  }
}
