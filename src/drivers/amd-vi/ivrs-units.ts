/**
 * What a parsed IVRS table says about one PCI function, as the AMD-Vi
 * driver keeps it: which IVHD (IOMMU) translates its requester ID (the
 * reverse-lookup table, the IOMMU's own function excluded), the requester ID
 * the IOMMU sees for it (the alias table, from ALIAS_SELECT / ALIAS_RANGE
 * entries), and the IVMD unity-mapped ranges that apply to it.
 *
 * Only the IVHD blocks of the highest type the table offers are used; they
 * are the units `ivhd0`, `ivhd1`, … in table order.
 *
 * Linux: get_highest_supported_ivhd_type(), init_iommu_all(), init_iommu_one()
 * (`rlookup_table[iommu->devid] = NULL`), init_iommu_from_acpi(),
 * set_dev_entry_from_acpi(), init_unity_map_range(), init_memory_definitions(),
 * drivers/iommu/amd/init.c; rlookup_amd_iommu(), check_device(),
 * setup_aliases(), amd_iommu_get_resv_regions(), drivers/iommu/amd/iommu.c.
 */
import { IommuError } from '../../base/errno.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import { ivhdCoverage, type Ivhd, type Ivrs } from '../../firmware/ivrs.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import type { PciDev } from '../../pci/pci-dev.js';

/** One unity map from an IVMD block. Linux: struct unity_map_entry. */
export interface IvrsUnityMap {
  /** PCI segment. */
  readonly segment: number;
  /** First / last device ID (requester ID: bus << 8 | devfn) it applies to, inclusive. */
  readonly devidStart: number;
  readonly devidEnd: number;
  /** First byte (PAGE_ALIGN of the IVMD start). */
  readonly start: number;
  /** Length in bytes (PAGE_ALIGN of the IVMD length). */
  readonly length: number;
  /** IOMMU_READ | IOMMU_WRITE (an exclusion range is mapped read/write). */
  readonly prot: number;
  /** Byte offset of the IVMD block in the table. */
  readonly offset: number;
}

/** The driver's view of an IVRS table. */
export interface IvrsLayout {
  /** The IVHD type used (0x10, 0x11 or 0x40). */
  readonly ivhdType: number;
  /** The IVHD blocks of that type, table order: unit `ivhd<i>` is `ivhds[i]`. */
  readonly ivhds: readonly Ivhd[];
  /** Unit index per `segment << 16 | devid`. Linux: pci_seg->rlookup_table. */
  readonly rlookup: ReadonlyMap<number, number>;
  /** Alias requester ID per `segment << 16 | devid`, where it differs from the devid. Linux: pci_seg->alias_table. */
  readonly alias: ReadonlyMap<number, number>;
  /** Unity maps, table order. Linux: pci_seg->unity_map. */
  readonly unityMaps: readonly IvrsUnityMap[];
  /** What was skipped. */
  readonly notes: readonly string[];
}

const PAGE = 4096;
const pageAlign = (n: bigint): bigint => (n + BigInt(PAGE - 1)) & ~BigInt(PAGE - 1);

/**
 * Build the driver's tables from a parsed IVRS: rlookup and alias tables from
 * the entries of the IVHDs of the highest type (a later entry overrides an
 * earlier one; each IOMMU's own device ID is removed after its block), and
 * the unity maps of the IVMD blocks with the unity or exclusion flag.
 * @throws IommuError ENODEV if the table has no IVHD block (no AMD IOMMU).
 * Linux: early_amd_iommu_init() passes 1, 3 and 4, drivers/iommu/amd/init.c.
 */
export function ivrsLayout(ivrs: Pick<Ivrs, 'ivhds' | 'ivmds'>): IvrsLayout {
  if (ivrs.ivhds.length === 0) throw new IommuError('ENODEV', 'IVRS: no IVHD block, no AMD IOMMU');
  const ivhdType = Math.max(...ivrs.ivhds.map((h) => h.type));
  const ivhds = ivrs.ivhds.filter((h) => h.type === ivhdType);
  const rlookup = new Map<number, number>();
  const alias = new Map<number, number>();
  const notes: string[] = [];
  ivhds.forEach((h, i) => {
    const seg = h.segment << 16;
    for (const [devid, c] of ivhdCoverage(h)) {
      rlookup.set(seg | devid, i);
      if (c.alias !== devid) alias.set(seg | devid, c.alias);
      else alias.delete(seg | devid);
    }
    // "Make sure IOMMU is not considered to translate itself."
    rlookup.delete(seg | h.iommuDeviceId);
  });
  const unityMaps: IvrsUnityMap[] = [];
  for (const m of ivrs.ivmds) {
    if (!m.flags.unity && !m.flags.exclusion) continue;
    const start = pageAlign(m.start);
    const length = pageAlign(m.length);
    if (length === 0n || start + length - 1n > BigInt(Number.MAX_SAFE_INTEGER)) {
      notes.push(`IVMD at offset 0x${m.offset.toString(16)}: range 0x${m.start.toString(16)}+0x${m.length.toString(16)} cannot be used; skipped`);
      continue;
    }
    // Exclusion ranges are treated as read/write unity maps (buggy BIOSes overlap them with memory).
    const prot = m.flags.exclusion ? IOMMU_READ | IOMMU_WRITE : (m.flags.read ? IOMMU_READ : 0) | (m.flags.write ? IOMMU_WRITE : 0);
    unityMaps.push({ segment: m.segment, devidStart: m.from, devidEnd: m.to, start: Number(start), length: Number(length), prot, offset: m.offset });
  }
  return { ivhdType, ivhds, rlookup, alias, unityMaps, notes };
}

const key = (pdev: PciDev): number => (pdev.bus.domain << 16) | (pdev.bus.number << 8) | pdev.devfn;

/**
 * The index of the IVHD translating `pdev` (unit `ivhd<index>`), or null when
 * its requester ID is in no IVHD's device entries, or it is an IOMMU's own
 * function (the AMD-Vi driver does not take it: no group).
 * Linux: check_device() / rlookup_amd_iommu(), drivers/iommu/amd/iommu.c.
 */
export function ivrsDeviceUnitIndex(layout: IvrsLayout, pdev: PciDev): number | null {
  return layout.rlookup.get(key(pdev)) ?? null;
}

/**
 * The requester ID (bus << 8 | devfn) the IOMMU sees for `pdev`: its IVRS
 * alias, or its own ID.
 * Linux: pci_seg->alias_table[pci_dev_id(pdev)], drivers/iommu/amd/.
 */
export function ivrsDeviceAlias(layout: IvrsLayout, pdev: PciDev): number {
  return layout.alias.get(key(pdev)) ?? ((pdev.bus.number << 8) | pdev.devfn);
}

/**
 * The unity-mapped regions of `pdev` (its own requester ID in an IVMD's
 * device range, same segment): IOMMU_RESV_DIRECT with the IVMD's read/write
 * permission, in table order.
 * Linux: the unity_map loop of amd_iommu_get_resv_regions(), drivers/iommu/amd/iommu.c.
 */
export function ivrsUnityRegions(layout: IvrsLayout, pdev: PciDev): IommuResvRegion[] {
  const devid = (pdev.bus.number << 8) | pdev.devfn;
  const out: IommuResvRegion[] = [];
  for (const u of layout.unityMaps) {
    if (u.segment !== pdev.bus.domain || devid < u.devidStart || devid > u.devidEnd) continue;
    out.push(allocResvRegion(u.start, u.length, u.prot, IommuResvType.DIRECT));
  }
  return out;
}
