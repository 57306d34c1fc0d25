/**
 * Intel VT-d: DMAR units translating PCI devices through second-level page
 * tables (4-level 48-bit or 5-level 57-bit), with their reserved regions (the
 * interrupt/MSI window, RMRRs, the ISA-bridge floppy workaround) and their
 * default-domain preferences. Given the machine's DMAR table, one unit per
 * DRHD (`dmar<i>` in table order) each translating the functions its device
 * scopes cover (see ./dmar-units.ts), RMRRs from the table; without it, one
 * unit translating every PCI function.
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
import type { Dmar } from '../../firmware/dmar.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { toPciDev, type PciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';
import { deviceRmrrIsRelaxable, dmarDeviceUnitIndex, dmarRmrrRegions, dmarUnitOrder } from './dmar-units.js';

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
  /** Unit name without a `dmar` table (default `dmar0`); with one, the units are `dmar<DRHD index>`. */
  readonly name?: string;
  /**
   * The machine's parsed DMAR table: one unit per DRHD, each function probed by the unit whose device
   * scopes cover it (none: no group), and the table's RMRRs resolved against the topology at probe time.
   */
  readonly dmar?: Dmar;
  /** Page-table levels: 4 (48-bit) or 5 (57-bit). Default 4. */
  readonly levels?: 4 | 5;
  /** Caching mode (a virtual IOMMU): forces strict invalidation. Linux: cap_caching_mode → iommu_set_dma_strict(). */
  readonly cachingMode?: boolean;
  /** RMRRs given as BDF lists (added to those of `dmar`, if any). */
  readonly rmrrs?: readonly Rmrr[];
  /** CONFIG_INTEL_IOMMU_FLOPPY_WA (default true, as distribution kernels): ISA bridges get [0, 16 MiB) direct-relaxable. */
  readonly floppyWorkaround?: boolean;
}

/**
 * The reserved regions the VT-d driver reports for one PCI function, in its
 * order: the DMAR table's RMRRs covering it (`dmar`), the RMRRs given by BDF
 * (`rmrrs`), [0, 16 MiB) direct-relaxable for an ISA bridge (floppy
 * workaround, default on), then the interrupt window as MSI.
 * Linux: intel_iommu_get_resv_regions(), drivers/iommu/intel/iommu.c.
 */
export function intelResvRegions(
  pdev: PciDev,
  opts: { readonly dmar?: Dmar; readonly rmrrs?: readonly Rmrr[]; readonly floppyWorkaround?: boolean } = {},
): IommuResvRegion[] {
  const out: IommuResvRegion[] = [];
  if (opts.dmar) out.push(...dmarRmrrRegions(opts.dmar, pdev));
  for (const r of opts.rmrrs ?? []) {
    if (!r.devices.includes(pdev.bdf)) continue;
    // device_rmrr_is_relaxable(): USB and graphics devices may drop their RMRRs when assigned.
    out.push(allocResvRegion(r.start, r.length, IOMMU_READ | IOMMU_WRITE, deviceRmrrIsRelaxable(pdev) ? IommuResvType.DIRECT_RELAXABLE : IommuResvType.DIRECT));
  }
  if ((opts.floppyWorkaround ?? true) && pdev.classCode >> 8 === 0x0601) {
    out.push(allocResvRegion(0, 1 << 24, IOMMU_READ | IOMMU_WRITE, IommuResvType.DIRECT_RELAXABLE));
  }
  out.push(allocResvRegion(IOAPIC_RANGE_START, IOAPIC_RANGE_SIZE, 0, IommuResvType.MSI));
  return out;
}

/** The driver: its ops and its units. */
export interface IntelIommu {
  readonly ops: IommuOps;
  /** The first unit (`dmar0`). */
  readonly unit: IommuUnit;
  /** Every unit, in DRHD table order (`dmar0`, `dmar1`, …); one without a `dmar` table. */
  readonly units: readonly IommuUnit[];
}

/**
 * Create the VT-d units (one per DRHD of `opts.dmar`, else one) sharing one
 * ops, then register them in the order Linux keeps its unit list (explicit
 * DRHDs in reverse table order, INCLUDE_PCI_ALL last). Each registration
 * probes the watched buses: a function whose unit is not registered yet is
 * left for that unit's registration (ENODEV until then), as in Linux, so
 * group ids follow registration order; a function no DRHD covers gets no group.
 * @throws IommuError ENODEV if `dmar` has no DRHD; a registration error (the
 *   units registered before are unregistered again: nothing stays).
 * Linux: intel_iommu_init() → for_each_active_iommu → iommu_device_register(&iommu->iommu,
 * &intel_iommu_ops, NULL); intel_iommu_probe_device() (`!iommu->iommu.ops` → -ENODEV).
 */
export function createIntelIommu(core: IommuCore, opts: IntelIommuOptions = {}): IntelIommu {
  const dmar = opts.dmar;
  if (dmar && dmar.drhds.length === 0) throw new IommuError('ENODEV', 'the DMAR table has no DRHD: no VT-d unit');
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
      const pdev = toPciDev(dev);
      if (!pdev) throw new IommuError('ENODEV', `${dev.name} is not a PCI device`);
      if (!dmar) return units[0]!;
      const i = dmarDeviceUnitIndex(dmar, pdev);
      if (i === null) throw new IommuError('ENODEV', `${dev.name}: no DMAR hardware unit (DRHD) covers it`);
      const u = units[i]!;
      if (!core.units.includes(u)) throw new IommuError('ENODEV', `${dev.name}: its unit ${u.name} is not registered yet`);
      return u;
    },
    deviceGroup(c: IommuCore, dev: Device) {
      return pciDeviceGroup(c.groups, toPciDev(dev)!, { acpiIvrsPresent: false });
    },
    domainAllocPaging(): IommuDomain {
      return pgtableDomain(ops, domainOps, allocIoPgtable('vtd-sl', core.mem, levels), 2 ** ias - 1);
    },
    getResvRegions(dev: Device): IommuResvRegion[] {
      const pdev = toPciDev(dev);
      if (pdev) return intelResvRegions(pdev, { ...(dmar ? { dmar } : {}), rmrrs, floppyWorkaround: floppy });
      const out: IommuResvRegion[] = [];
      for (const r of rmrrs) if (r.devices.includes(dev.name)) out.push(allocResvRegion(r.start, r.length, IOMMU_READ | IOMMU_WRITE, IommuResvType.DIRECT));
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
  const units: IommuUnit[] = dmar ? dmar.drhds.map((_, i) => new IommuUnit(`dmar${i}`, ops)) : [new IommuUnit(opts.name ?? 'dmar0', ops)];
  // Strict mode is decided before the registration probes devices.
  if (opts.cachingMode) core.setDmaStrict();
  const registered: IommuUnit[] = [];
  try {
    for (const i of dmar ? dmarUnitOrder(dmar) : [0]) {
      core.iommuDeviceRegister(units[i]!);
      registered.push(units[i]!);
    }
  } catch (e) {
    for (const u of registered.reverse()) core.iommuDeviceUnregister(u);
    throw e;
  }
  return { ops, unit: units[0]!, units };
}
