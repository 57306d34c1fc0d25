/**
 * Intel VT-d: a DMAR unit translating PCI devices through second-level page
 * tables (4-level 48-bit or 5-level 57-bit), with its reserved regions (the
 * interrupt/MSI window, RMRRs, the ISA-bridge floppy workaround) and its
 * default-domain preferences.
 *
 * Linux: drivers/iommu/intel/iommu.c — intel_iommu_ops, intel_iommu_probe_device(),
 * intel_iommu_device_group() → pci_device_group(), intel_iommu_domain_alloc_paging(),
 * intel_iommu_get_resv_regions(), device_rmrr_is_relaxable(), intel_iommu_capable(),
 * device_def_domain_type().
 */
import { IommuError } from '../../base/errno.js';
import type { Device } from '../../device/device.js';
import { allocIoPgtable } from '../../io-pgtable/index.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { toPciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';

/** The interrupt address range every VT-d device has as an MSI region. Linux: IOAPIC_RANGE_START/END (0xfee00000–0xfeefffff). */
export const IOAPIC_RANGE_START = 0xfee00000;
/** Size of the interrupt range (bytes). */
export const IOAPIC_RANGE_SIZE = 0x100000;

/** An RMRR: a firmware range some devices must keep identity-mapped. Linux: struct dmar_rmrr_unit. */
export interface Rmrr {
  /** Base address (bytes). */
  readonly start: number;
  /** Length (bytes). */
  readonly length: number;
  /** The devices in its scope (`dddd:bb:dd.f`). */
  readonly devices: readonly string[];
}

/** Options of the VT-d driver model. */
export interface IntelIommuOptions {
  /** Unit name (default `dmar0`). */
  readonly name?: string;
  /** Page-table levels: 4 (48-bit) or 5 (57-bit). Default 4. */
  readonly levels?: 4 | 5;
  /** Caching mode (a virtual IOMMU): forces strict invalidation. Linux: cap_caching_mode → iommu_set_dma_strict(). */
  readonly cachingMode?: boolean;
  /** RMRRs from the DMAR table. */
  readonly rmrrs?: readonly Rmrr[];
  /** CONFIG_INTEL_IOMMU_FLOPPY_WA (default true, as distribution kernels): ISA bridges get [0, 16 MiB) direct-relaxable. */
  readonly floppyWorkaround?: boolean;
}

/** The driver: its ops and its unit. */
export interface IntelIommu {
  readonly ops: IommuOps;
  readonly unit: IommuUnit;
}

/**
 * Create and register a VT-d unit on `core`.
 * Linux: intel_iommu_init() → iommu_device_register(&iommu->iommu, &intel_iommu_ops, NULL).
 */
export function createIntelIommu(core: IommuCore, opts: IntelIommuOptions = {}): IntelIommu {
  const levels = opts.levels ?? 4;
  const ias = levels === 5 ? 57 : 48;
  const rmrrs = opts.rmrrs ?? [];
  const floppy = opts.floppyWorkaround ?? true;
  const domainOps = pgtableDomainOps({
    checkAttach(domain: IommuDomain, dev: Device) {
      // prepare_domain_attach_device(): the domain's address width must fit the unit's.
      if (domain.geometry.apertureEnd > 2 ** ias - 1) throw new IommuError('EINVAL', `${dev.name}: domain address width exceeds the IOMMU's ${ias} bits`);
    },
  });
  const ops: IommuOps = {
    name: 'intel-iommu',
    probeDevice(dev: Device) {
      if (!toPciDev(dev)) throw new IommuError('ENODEV', `${dev.name} is not a PCI device`);
      return unit;
    },
    deviceGroup(c: IommuCore, dev: Device) {
      return pciDeviceGroup(c.groups, toPciDev(dev)!, { acpiIvrsPresent: false });
    },
    domainAllocPaging(): IommuDomain {
      return pgtableDomain(ops, domainOps, allocIoPgtable('vtd-sl', core.mem, levels), 2 ** ias - 1);
    },
    getResvRegions(dev: Device): IommuResvRegion[] {
      const out: IommuResvRegion[] = [];
      const pdev = toPciDev(dev);
      for (const r of rmrrs) {
        if (!r.devices.includes(dev.name)) continue;
        // device_rmrr_is_relaxable(): USB and graphics devices may drop their RMRRs when assigned.
        const cls = pdev ? pdev.classCode >> 8 : 0;
        const relaxable = cls === 0x0c03 || cls >> 8 === 0x03;
        out.push(allocResvRegion(r.start, r.length, IOMMU_READ | IOMMU_WRITE, relaxable ? IommuResvType.DIRECT_RELAXABLE : IommuResvType.DIRECT));
      }
      if (floppy && pdev && pdev.classCode >> 8 === 0x0601) {
        out.push(allocResvRegion(0, 1 << 24, IOMMU_READ | IOMMU_WRITE, IommuResvType.DIRECT_RELAXABLE));
      }
      out.push(allocResvRegion(IOAPIC_RANGE_START, IOAPIC_RANGE_SIZE, 0, IommuResvType.MSI));
      return out;
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'DEFERRED_FLUSH';
    },
  };
  const identity = staticDomain(ops, 'identity');
  const blocked = staticDomain(ops, 'blocked');
  Object.assign(ops, { identityDomain: identity, blockedDomain: blocked });
  const unit = new IommuUnit(opts.name ?? 'dmar0', ops);
  // Strict mode is decided before the registration probes devices.
  if (opts.cachingMode) core.setDmaStrict();
  core.iommuDeviceRegister(unit);
  return { ops, unit };
}
