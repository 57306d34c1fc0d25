/**
 * AMD-Vi: AMD IOMMUs translating PCI devices through v1 page tables, with
 * their reserved regions (IVMD unity maps, the MSI window and the
 * HyperTransport hole), and the IOMMU's own PCI function left untranslated.
 * Given the machine's IVRS table, one unit per IVHD of the highest type
 * (`ivhd<i>`), each translating the requester IDs its device entries cover,
 * with the table's DMA aliases (see ./ivrs-units.ts); without it, one unit
 * translating every PCI function but the IOMMU's own.
 *
 * Linux: drivers/iommu/amd/iommu.c — amd_iommu_ops, amd_iommu_probe_device(),
 * amd_iommu_device_group() → pci_device_group(), amd_iommu_domain_alloc_paging(),
 * amd_iommu_get_resv_regions(), amd_iommu_capable(); amd_iommu_np_cache →
 * iommu_set_dma_strict() (drivers/iommu/amd/init.c).
 */
import { IommuError } from '../../base/errno.js';
import type { Device } from '../../device/device.js';
import { allocIoPgtable } from '../../io-pgtable/index.js';
import type { Ivrs } from '../../firmware/ivrs.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { toPciDev, type PciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';
import { ivrsDeviceAlias, ivrsDeviceUnitIndex, ivrsLayout, ivrsUnityRegions, type IvrsLayout } from './ivrs-units.js';

/** MSI window. Linux: MSI_RANGE_START (0xfee00000) … MSI_RANGE_END (0xfeefffff). */
export const AMD_MSI_RANGE_START = 0xfee00000;
/** HyperTransport reserved range start. Linux: HT_RANGE_START (0xfd00000000). */
export const AMD_HT_RANGE_START = 0xfd_0000_0000;
/** HyperTransport reserved range end (inclusive). Linux: HT_RANGE_END (0xffffffffff). */
export const AMD_HT_RANGE_END = 0xff_ffff_ffff;

/** Options of the AMD-Vi driver model. */
export interface AmdIommuOptions {
  /** Unit name without an `ivrs` table (default `ivhd0`); with one, the units are `ivhd<i>`. */
  readonly name?: string;
  /**
   * The machine's parsed IVRS table: one unit per IVHD of the highest type, each function probed by the
   * IVHD covering its requester ID (none, or the IOMMU's own function: no group), IVRS aliases on the
   * function's bus added as DMA aliases before its group is chosen, IVMD unity maps as direct regions.
   */
  readonly ivrs?: Ivrs;
  /** The IOMMU caches non-present entries (emulated IOMMUs): forces strict invalidation. Linux: amd_iommu_np_cache. */
  readonly npCache?: boolean;
}

/**
 * The reserved regions the AMD-Vi driver reports for one PCI function: the
 * IVMD unity maps covering its requester ID (with `layout`), the MSI window,
 * and the HyperTransport range as reserved.
 * Linux: amd_iommu_get_resv_regions(), drivers/iommu/amd/iommu.c.
 */
export function amdResvRegions(pdev: PciDev | null, layout: IvrsLayout | null): IommuResvRegion[] {
  return [
    ...(layout && pdev ? ivrsUnityRegions(layout, pdev) : []),
    allocResvRegion(AMD_MSI_RANGE_START, 0x100000, 0, IommuResvType.MSI),
    allocResvRegion(AMD_HT_RANGE_START, AMD_HT_RANGE_END - AMD_HT_RANGE_START + 1, 0, IommuResvType.RESERVED),
  ];
}

/** The driver: its ops and its units. */
export interface AmdIommu {
  readonly ops: IommuOps;
  /** The first unit (`ivhd0`). */
  readonly unit: IommuUnit;
  /** Every unit in IVHD table order; one without an `ivrs` table. */
  readonly units: readonly IommuUnit[];
}

/**
 * Create the AMD IOMMU units (one per IVHD of the highest type in
 * `opts.ivrs`, else one) sharing one ops, and register them in table order;
 * each registration probes the watched buses (a function whose unit is not
 * registered yet waits for it: ENODEV until then, as in Linux).
 * @throws IommuError ENODEV if `ivrs` has no IVHD; a registration error (the
 *   units registered before are unregistered again: nothing stays).
 * Linux: amd_iommu_init_pci() → for_each_iommu → iommu_device_register(&iommu->iommu, &amd_iommu_ops, NULL);
 * amd_iommu_probe_device() (`!iommu->iommu.ops` → -ENODEV), drivers/iommu/amd/.
 */
export function createAmdIommu(core: IommuCore, opts: AmdIommuOptions = {}): AmdIommu {
  const layout = opts.ivrs ? ivrsLayout(opts.ivrs) : null;
  const domainOps = pgtableDomainOps();
  const ops: IommuOps = {
    name: 'AMD-Vi',
    probeDevice(dev: Device) {
      const pdev = toPciDev(dev);
      if (!pdev) throw new IommuError('ENODEV', `${dev.name} is not a PCI device`);
      if (!layout) {
        // The IOMMU's own function is not behind itself.
        if (pdev.classCode >> 8 === 0x0806 && (pdev.vendor === 0x1022 || pdev.vendor === 0x1002)) throw new IommuError('ENODEV', `${dev.name} is the IOMMU`);
        return units[0]!;
      }
      const i = ivrsDeviceUnitIndex(layout, pdev);
      if (i === null) throw new IommuError('ENODEV', `${dev.name}: its requester ID is in no IVHD of the IVRS table (or it is the IOMMU)`);
      const u = units[i]!;
      if (!core.units.includes(u)) throw new IommuError('ENODEV', `${dev.name}: its unit ${u.name} is not registered yet`);
      // setup_aliases(): an IVRS alias on the function's own bus becomes a PCI DMA alias, before the group is chosen.
      const alias = ivrsDeviceAlias(layout, pdev);
      if (alias !== ((pdev.bus.number << 8) | pdev.devfn) && alias >> 8 === pdev.bus.number && !pdev.hasDmaAlias(alias & 0xff)) {
        pdev.addDmaAlias(alias & 0xff, 1, 'IVRS alias');
      }
      return u;
    },
    deviceGroup(c: IommuCore, dev: Device) {
      return pciDeviceGroup(c.groups, toPciDev(dev)!, { acpiIvrsPresent: true });
    },
    domainAllocPaging(): IommuDomain {
      const pt = allocIoPgtable('amd-v1', core.mem);
      return pgtableDomain(ops, domainOps, pt, 2 ** 48 - 1);
    },
    getResvRegions(dev: Device): IommuResvRegion[] {
      return amdResvRegions(toPciDev(dev), layout);
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'DEFERRED_FLUSH' || cap === 'NOEXEC';
    },
  };
  Object.assign(ops, { identityDomain: staticDomain(ops, 'identity'), blockedDomain: staticDomain(ops, 'blocked') });
  // Each unit's sysfs node sits under the IOMMU's own PCI function (iommu_device_sysfs_add(&iommu->iommu, &iommu->dev->dev, …)).
  const iommuFunction = (segment: number, devid: number): Device | null => {
    for (const bus of core.buses) {
      for (const d of bus.devices) {
        const p = toPciDev(d);
        if (p && p.bus.domain === segment && ((p.bus.number << 8) | p.devfn) === devid) return d;
      }
    }
    return null;
  };
  const units: IommuUnit[] = layout
    ? layout.ivhds.map((h, i) => new IommuUnit(`ivhd${i}`, ops, { hwdev: iommuFunction(h.segment, h.iommuDeviceId) }))
    : [new IommuUnit(opts.name ?? 'ivhd0', ops)];
  // Strict mode is decided before the registration probes devices.
  if (opts.npCache) core.setDmaStrict();
  const registered: IommuUnit[] = [];
  try {
    for (const u of units) {
      core.iommuDeviceRegister(u);
      registered.push(u);
    }
  } catch (e) {
    for (const u of registered.reverse()) core.iommuDeviceUnregister(u);
    throw e;
  }
  return { ops, unit: units[0]!, units };
}
