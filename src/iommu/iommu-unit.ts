/**
 * One IOMMU hardware unit (a DMAR unit, an AMD IOMMU, an SMMU): its driver
 * ops, its IOTLB, the devices behind it, and its fault log.
 *
 * Linux: struct iommu_device, iommu_device_register() (drivers/iommu/iommu.c),
 * iommu_device_sysfs_add() (drivers/iommu/iommu-sysfs.c).
 */
import type { Device, FwNode } from '../device/device.js';
import { Iotlb } from './iotlb.js';
import type { IommuOps } from './iommu-ops.js';

/** Why a DMA access faulted. */
export type FaultReason = 'not-present' | 'permission' | 'blocked' | 'reserved' | 'no-translation';

/** A fault as the model records it (and as a driver would log it). */
export interface FaultRecord {
  /** The device (requester) that issued the access. */
  readonly dev: Device;
  /** The faulting IOVA (bytes). */
  readonly iova: number;
  /** 'read' or 'write'. */
  readonly access: 'read' | 'write';
  /** Why it faulted. */
  readonly reason: FaultReason;
  /** The domain id the device was attached to (0: none). */
  readonly domainId: number;
  /** The PASID of the access, or null for requests without PASID. */
  readonly pasid: number | null;
  /** True if a fault handler on the domain reported it handled. */
  readonly handled: boolean;
  /** Simulated time of the fault (ns). */
  readonly time: number;
}

/** Options of an IOMMU unit. */
export interface IommuUnitOptions {
  /** IOTLB entries (default 512). */
  readonly iotlbEntries?: number;
  /** IOTLB associativity (default 4). */
  readonly iotlbWays?: number;
  /** Firmware node the unit is matched by. */
  readonly fwnode?: FwNode | null;
  /** How many fault records to keep (default 1024; the count keeps going). */
  readonly faultLogSize?: number;
  /** PASIDs the unit supports (0: none; default 2^20). Linux: iommu_device.max_pasids. */
  readonly maxPasids?: number;
  /** The hardware device the unit's sysfs node sits under (AMD-Vi: the IOMMU's PCI function), or null (`devices/virtual/iommu`). */
  readonly hwdev?: Device | null;
}

/** An IOMMU unit. Linux: struct iommu_device. */
export class IommuUnit {
  /** Unit name as in /sys/class/iommu (`dmar0`, `ivhd0`, `smmu3.0x…`). */
  readonly name: string;
  /** The driver's ops. */
  readonly ops: IommuOps;
  /** Firmware node. Linux: iommu_device.fwnode. */
  readonly fwnode: FwNode | null;
  /** The sysfs parent device, or null. Linux: the parent given to iommu_device_sysfs_add(). */
  readonly hwdev: Device | null;
  /** The unit's IOTLB. */
  readonly iotlb: Iotlb;
  /** Devices probed behind this unit. */
  readonly devices = new Set<Device>();
  /** Recent faults (bounded). */
  readonly faultLog: FaultRecord[] = [];
  /** Faults seen in total. */
  faultCount = 0;
  /** Faults no handler took. */
  unhandledFaults = 0;
  /** PASIDs the unit supports (0: none). Linux: iommu_device.max_pasids. */
  readonly maxPasids: number;
  /** Set once registration (and its bus probe) has completed. Linux: iommu_device.ready. */
  ready = false;
  private readonly faultLogSize: number;

  constructor(name: string, ops: IommuOps, opts: IommuUnitOptions = {}) {
    this.name = name;
    this.ops = ops;
    this.fwnode = opts.fwnode ?? null;
    this.hwdev = opts.hwdev ?? null;
    this.iotlb = new Iotlb({ entries: opts.iotlbEntries ?? 512, ways: opts.iotlbWays ?? 4 });
    this.faultLogSize = opts.faultLogSize ?? 1024;
    this.maxPasids = opts.maxPasids ?? 1 << 20;
  }

  /** Record a fault (the oldest record is dropped when the log is full). */
  recordFault(f: FaultRecord): void {
    this.faultCount++;
    if (!f.handled) this.unhandledFaults++;
    if (this.faultLog.length >= this.faultLogSize) this.faultLog.shift();
    this.faultLog.push(f);
  }
}
