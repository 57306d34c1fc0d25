/**
 * What an IOMMU driver provides to the core: the per-driver ops. Drivers live
 * in `src/drivers/<name>/` and implement this interface; the core never
 * imports a driver.
 *
 * Linux: struct iommu_ops, include/linux/iommu.h.
 */
import type { Device } from '../device/device.js';
import type { IommuDomain } from './domain.js';
import type { IommuGroup } from './group.js';
import type { IommuResvRegion } from './resv-region.js';
import type { IommuUnit } from './iommu-unit.js';
import type { IommuCore } from './core.js';

/** Capabilities a driver may report. Linux: enum iommu_cap. */
export type IommuCap = 'CACHE_COHERENCY' | 'NOEXEC' | 'PRE_BOOT_PROTECTION' | 'ENFORCE_CACHE_COHERENCY' | 'DEFERRED_FLUSH' | 'DIRTY_TRACKING';

/** A driver's preference for a device's default domain: none (0), identity, or DMA. Linux: def_domain_type() returning 0 / IOMMU_DOMAIN_IDENTITY / IOMMU_DOMAIN_DMA. */
export type DefDomainType = 0 | 'identity' | 'DMA';

/** An IOMMU driver's operations. Linux: struct iommu_ops. */
export interface IommuOps {
  /** Driver name (`intel-iommu`, `AMD-Vi`, `arm-smmu-v3`, …). */
  readonly name: string;
  /**
   * Take a device on: return the IOMMU unit that translates it.
   * @throws IommuError ENODEV if this driver does not handle the device.
   * Linux: probe_device.
   */
  probeDevice(dev: Device): IommuUnit;
  /** Forget a device. Linux: release_device. */
  releaseDevice?(dev: Device): void;
  /**
   * The device's group, with a reference for the caller (an existing group
   * or a new one). Linux: device_group (pci_device_group, generic_device_group, …).
   */
  deviceGroup(core: IommuCore, dev: Device): IommuGroup;
  /**
   * A new paging domain for `dev` (or for no device), of type `unmanaged`;
   * the core turns it into a DMA domain when it uses it for the DMA API.
   * @throws IommuError ENOMEM, EOPNOTSUPP.
   * Linux: domain_alloc_paging / domain_alloc_paging_flags.
   */
  domainAllocPaging(dev: Device | null): IommuDomain;
  /** The driver's static identity domain, if it supports identity. Linux: identity_domain. */
  readonly identityDomain?: IommuDomain;
  /** The driver's static blocking domain, if any. Linux: blocked_domain. */
  readonly blockedDomain?: IommuDomain;
  /** The driver's preference for `dev`'s default domain. Linux: def_domain_type. */
  defDomainType?(dev: Device): DefDomainType;
  /** The device's reserved regions (MSI window, RMRRs, …). Linux: get_resv_regions. */
  getResvRegions?(dev: Device): IommuResvRegion[];
  /** Whether the IOMMU of `dev` has a capability. Linux: capable. */
  capable?(dev: Device, cap: IommuCap): boolean;
  /**
   * For ops that delegate to another driver (subdevices on their parent's IOMMU):
   * the ops whose domains these devices accept. Default: these ops.
   */
  readonly domainOwner?: IommuOps;
  /** Devices of these ops get no default domain (unmanaged domains only, e.g. subdevices). */
  readonly noDefaultDomain?: boolean;
}
