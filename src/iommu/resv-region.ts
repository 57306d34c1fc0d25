/**
 * IOMMU reserved regions: the per-device windows an IOMMU driver reports
 * (firmware identity maps, MSI doorbells, holes), their merge into one sorted
 * list per group, and the text of `/sys/kernel/iommu_groups/<id>/reserved_regions`.
 *
 * Addresses and lengths are plain numbers of bytes; the model supports
 * addresses up to 2^53 - 1 (Number.MAX_SAFE_INTEGER), which covers every
 * region real drivers report (physical address widths ≤ 52 bits).
 *
 * Linux: struct iommu_resv_region, enum iommu_resv_type (include/linux/iommu.h),
 * iommu_alloc_resv_region(), iommu_insert_resv_region(),
 * iommu_get_group_resv_regions(), iommu_group_show_resv_regions()
 * (drivers/iommu/iommu.c).
 */
import { IommuError } from '../base/errno.js';

/**
 * Reserved-region types, numbered as in `enum iommu_resv_type`.
 * Linux: include/linux/iommu.h.
 */
export const IommuResvType = {
  /** Memory used behind the device's back: must be identity-mapped at all times (RMRR, IORT RMR, AMD unity map). Linux: IOMMU_RESV_DIRECT. */
  DIRECT: 0,
  /** Identity-mapped for the DMA API but may be dropped when the device is assigned (VT-d RMRRs of USB/GPUs, the ISA/floppy 0–16 MiB workaround). Linux: IOMMU_RESV_DIRECT_RELAXABLE (v5.3+). */
  DIRECT_RELAXABLE: 1,
  /** Never map (e.g. the AMD HyperTransport hole). Linux: IOMMU_RESV_RESERVED. */
  RESERVED: 2,
  /** Hardware MSI window, untranslated (x86 0xfee00000–0xfeefffff). Linux: IOMMU_RESV_MSI. */
  MSI: 3,
  /** Software-managed MSI IOVA window where doorbells get mapped (ARM SMMU). Linux: IOMMU_RESV_SW_MSI. */
  SW_MSI: 4,
} as const;
/** One of the {@link IommuResvType} values (0..4). */
export type IommuResvType = (typeof IommuResvType)[keyof typeof IommuResvType];

/**
 * The sysfs name of each {@link IommuResvType}, indexed by type. MSI and
 * SW_MSI both print as `msi`.
 * Linux: iommu_group_resv_type_string[], drivers/iommu/iommu.c.
 */
export const IOMMU_RESV_TYPE_STRING: readonly string[] = ['direct', 'direct-relaxable', 'reserved', 'msi', 'msi'];

/**
 * One reserved region.
 *
 * - `start`: first byte address (bytes, integer, 0 ≤ start ≤ 2^53 - 1).
 * - `length`: size in bytes (integer ≥ 1; `start + length - 1` ≤ 2^53 - 1).
 * - `prot`: IOMMU_READ (1) | IOMMU_WRITE (2) | IOMMU_CACHE (4) | IOMMU_NOEXEC (8)
 *   | IOMMU_MMIO (16) | IOMMU_PRIV (32) bits, used for direct mappings; the
 *   merge ignores it (a merged region keeps the prot of the first one).
 * - `type`: an {@link IommuResvType}.
 *
 * Linux: struct iommu_resv_region, include/linux/iommu.h.
 */
export interface IommuResvRegion {
  readonly start: number;
  readonly length: number;
  readonly prot: number;
  readonly type: IommuResvType;
}

/**
 * Make a validated reserved region.
 * @param start first byte address (bytes); @param length size (bytes);
 * @param prot IOMMU_* protection bits; @param type an {@link IommuResvType}.
 * @throws IommuError EINVAL if `start` is not an integer in [0, 2^53 - 1],
 *   `length` is not an integer ≥ 1, the last byte `start + length - 1`
 *   exceeds 2^53 - 1, `prot` is not a non-negative integer, or `type` is not
 *   0..4. (Linux does not validate; a zero length there would print an end
 *   below the start — the model refuses it.)
 * Linux: iommu_alloc_resv_region(), drivers/iommu/iommu.c.
 */
export function allocResvRegion(start: number, length: number, prot: number, type: IommuResvType): IommuResvRegion {
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new IommuError('EINVAL', `reserved region: start ${start} is not an integer in [0, 2^53 - 1]`);
  }
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new IommuError('EINVAL', `reserved region: length ${length} is not an integer >= 1`);
  }
  if (length - 1 > Number.MAX_SAFE_INTEGER - start) {
    throw new IommuError('EINVAL', `reserved region: end 0x${start.toString(16)} + 0x${length.toString(16)} - 1 exceeds 2^53 - 1`);
  }
  if (!Number.isSafeInteger(prot) || prot < 0) {
    throw new IommuError('EINVAL', `reserved region: prot ${prot} is not a non-negative integer`);
  }
  if (!Number.isInteger(type) || type < 0 || type > 4) {
    throw new IommuError('EINVAL', `reserved region: type ${String(type)} is not an IommuResvType (0..4)`);
  }
  return Object.freeze({ start, length, prot, type });
}

/** Last byte of a region (inclusive). */
function regionEnd(r: IommuResvRegion): number {
  return r.start + r.length - 1;
}

/**
 * Insert a copy of `region` into `list` (mutated in place), exactly as Linux does:
 *
 * 1. The copy goes before the first entry with a greater start, or with an
 *    equal start and a type ≥ its own (so the list stays sorted by start, then type).
 * 2. The list is re-scanned; entries whose type differs from the new region's
 *    are kept as they are. Each entry of the new region's type is compared
 *    with the last kept entry of that type: if it starts at or before that
 *    entry's end + 1 (overlapping OR adjacent) it is merged into it (the kept
 *    entry's length grows to cover the larger end); otherwise it is kept.
 *    Regions of different types never merge and may overlap.
 *
 * Entries of `list` are treated as values: a merged entry is replaced by a new
 * object, caller-provided objects are never mutated.
 *
 * @param list a list built by earlier calls (sorted by start, then type).
 * @param region the region to insert (validated as by {@link allocResvRegion}).
 * @throws IommuError EINVAL for an invalid region (the list is then unchanged).
 * Linux: iommu_insert_resv_region(), drivers/iommu/iommu.c.
 */
export function insertResvRegion(list: IommuResvRegion[], region: IommuResvRegion): void {
  const nr = allocResvRegion(region.start, region.length, region.prot, region.type);
  let at = list.findIndex((it) => nr.start < it.start || (nr.start === it.start && nr.type <= it.type));
  if (at < 0) at = list.length;
  const regions = [...list.slice(0, at), nr, ...list.slice(at)];

  const stack: IommuResvRegion[] = [];
  for (const iter of regions) {
    if (iter.type !== nr.type) {
      stack.push(iter);
      continue;
    }
    let topIdx = -1;
    for (let k = stack.length - 1; k >= 0; k--) {
      if (stack[k]!.type === iter.type) {
        topIdx = k;
        break;
      }
    }
    if (topIdx < 0) {
      stack.push(iter);
      continue;
    }
    const top = stack[topIdx]!;
    const topEnd = regionEnd(top);
    if (iter.start > topEnd + 1) {
      stack.push(iter);
    } else {
      const end = Math.max(topEnd, regionEnd(iter));
      stack[topIdx] = Object.freeze({ ...top, length: end - top.start + 1 });
    }
  }
  list.splice(0, list.length, ...stack);
}

/**
 * Merge the reserved regions of a group's devices, in device order, into one
 * list sorted by (start, type) with same-type overlapping/adjacent regions
 * coalesced (each region inserted with {@link insertResvRegion}).
 *
 * @param deviceRegions one entry per member device, in the group's device
 *   order: that device's regions, or `null` for a device without IOMMU ops
 *   (`dev->iommu == NULL`, e.g. a VFIO no-IOMMU device). Linux stops the walk
 *   at the first such device, so its regions and every later device's are
 *   left out (a no-IOMMU group prints an empty file).
 * @returns a new list.
 * @throws IommuError EINVAL if a region is invalid (see {@link allocResvRegion}).
 * Linux: iommu_get_group_resv_regions(), drivers/iommu/iommu.c.
 */
export function groupResvRegions(deviceRegions: Iterable<readonly IommuResvRegion[] | null>): IommuResvRegion[] {
  const out: IommuResvRegion[] = [];
  for (const regions of deviceRegions) {
    if (regions === null) break;
    for (const r of regions) insertResvRegion(out, r);
  }
  return out;
}

/** `0x%016llx` of a non-negative integer below 2^64. */
function hex16(n: number): string {
  return '0x' + n.toString(16).padStart(16, '0');
}

/**
 * The text of a group's `reserved_regions` sysfs file: one line per region,
 * `0x<start, %016llx> 0x<end, %016llx> <type>\n`, where end = start + length
 * - 1 (inclusive) and type is {@link IOMMU_RESV_TYPE_STRING} (SW_MSI prints
 * `msi`). An empty list gives `""`.
 * @throws IommuError EINVAL for an invalid region.
 * Linux: iommu_group_show_resv_regions(), drivers/iommu/iommu.c.
 */
export function formatResvRegions(list: readonly IommuResvRegion[]): string {
  let s = '';
  for (const r of list) {
    const v = allocResvRegion(r.start, r.length, r.prot, r.type);
    s += `${hex16(v.start)} ${hex16(regionEnd(v))} ${IOMMU_RESV_TYPE_STRING[v.type]}\n`;
  }
  return s;
}
