/**
 * The VFIO type1 IOMMU backend of a legacy container: the user's DMA
 * mappings (pinned user pages at fixed IOVAs), the iommu_domains the
 * container's groups are attached to (groups of the same IOMMU driver share
 * one domain), and the valid IOVA list (apertures minus reserved regions).
 *
 * Mappings are pinned at map time and mapped into every domain; a new domain
 * replays them. Sizes and addresses are bytes.
 *
 * Linux: drivers/vfio/vfio_iommu_type1.c — vfio_iommu_type1_open(),
 * vfio_dma_do_map(), vfio_pin_map_dma(), vfio_iommu_map(), vfio_dma_do_unmap(),
 * vfio_remove_dma(), vfio_iommu_type1_attach_group(), vfio_iommu_replay(),
 * vfio_iommu_type1_detach_group(), vfio_iommu_aper_conflict(),
 * vfio_iommu_aper_resize(), vfio_iommu_resv_exclude(),
 * vfio_update_pgsize_bitmap(), vfio_iommu_type1_check_extension(),
 * vfio_iommu_type1_get_info(); read at torvalds/linux v6.16-era (tree
 * Kingxukai/linux 0291023e).
 */
import { IommuError } from '../base/errno.js';
import { iommuAttachGroup, iommuDetachGroup, iommuDomainFree, iommuPagingDomainAlloc } from '../iommu/attach.js';
import type { IommuCore } from '../iommu/core.js';
import { iommuMap, iommuUnmap, type IommuDomain } from '../iommu/domain.js';
import type { IommuGroup } from '../iommu/group.js';
import { IommuResvType, type IommuResvRegion } from '../iommu/resv-region.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../io-pgtable/io-pgtable.js';
import { PAGE_SIZE } from '../mem/phys-mem.js';
import type { UserMemory } from '../iommufd/user-memory.js';

/** The top of a 64-bit IOVA space as a number (2^64; Linux: (dma_addr_t)~0). */
const DMA_ADDR_END = 2 ** 64;

/** One valid IOVA range, [start, end] inclusive (bytes). Linux: struct vfio_iova / struct vfio_iova_range. */
export interface VfioIovaRange {
  readonly start: number;
  readonly end: number;
}

/** A user DMA mapping. Linux: struct vfio_dma. */
export interface VfioDma {
  /** Device address (bytes). */
  readonly iova: number;
  /** Process virtual address (bytes). */
  readonly vaddr: number;
  /** Size (bytes). */
  readonly size: number;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
  /** Physical address of each pinned page. */
  readonly pfns: Float64Array;
}

interface VfioDomain {
  readonly domain: IommuDomain;
  readonly groups: IommuGroup[];
}

/** Options of the type1 backend (module parameters and platform facts). */
export interface VfioType1Options {
  /** Module parameter allow_unsafe_interrupts (default false). */
  readonly allowUnsafeInterrupts?: boolean;
  /** The platform isolates MSIs (interrupt remapping; default true). Linux: iommu_group_has_isolated_msi(). */
  readonly isolatedMsi?: boolean;
  /** Module parameter dma_entry_limit (default 65535): most mappings per container. */
  readonly dmaEntryLimit?: number;
}

/**
 * One type1 IOMMU instance (VFIO_TYPE1_IOMMU or VFIO_TYPE1v2_IOMMU).
 * Linux: struct vfio_iommu.
 */
export class VfioIommuType1 {
  /** v2 semantics (VFIO_TYPE1v2_IOMMU): unmaps may not split a mapping. */
  readonly v2: boolean;
  private readonly core: IommuCore;
  private readonly mm: UserMemory;
  private readonly domains: VfioDomain[] = [];
  /** Mappings sorted by IOVA. Linux: dma_list. */
  private readonly dmas: VfioDma[] = [];
  private iovaList: VfioIovaRange[] = [];
  /** Mappings still allowed. Linux: dma_avail. */
  dmaAvail: number;
  private readonly allowUnsafeInterrupts: boolean;
  private readonly isolatedMsi: boolean;

  /**
   * A type1 instance with no domain and no mapping.
   * @param mm the address space vaddrs are pinned from; @param v2 VFIO_TYPE1v2_IOMMU semantics.
   * Linux: vfio_iommu_type1_open().
   */
  constructor(core: IommuCore, mm: UserMemory, v2: boolean, opts: VfioType1Options = {}) {
    this.core = core;
    this.mm = mm;
    this.v2 = v2;
    this.dmaAvail = opts.dmaEntryLimit ?? 65535;
    this.allowUnsafeInterrupts = opts.allowUnsafeInterrupts ?? false;
    this.isolatedMsi = opts.isolatedMsi ?? true;
  }

  /** The current mappings (a snapshot, by IOVA). */
  get mappings(): readonly VfioDma[] {
    return [...this.dmas];
  }

  /** The domains in use (a snapshot). */
  get iommuDomains(): readonly IommuDomain[] {
    return this.domains.map((d) => d.domain);
  }

  /** The valid IOVA ranges (a snapshot). */
  get iovaRanges(): readonly VfioIovaRange[] {
    return [...this.iovaList];
  }

  /**
   * The supported page sizes, ascending: the sizes every domain supports,
   * sizes below PAGE_SIZE replaced by PAGE_SIZE. Linux: vfio_update_pgsize_bitmap().
   */
  get pgsizes(): number[] {
    if (this.domains.length === 0) return [PAGE_SIZE];
    let sizes = [...this.domains[0]!.domain.pgsizes];
    for (const d of this.domains.slice(1)) sizes = sizes.filter((s) => d.domain.pgsizes.includes(s));
    if (sizes.some((s) => s < PAGE_SIZE)) sizes = [PAGE_SIZE, ...sizes.filter((s) => s > PAGE_SIZE)];
    return sizes;
  }

  /** The smallest supported page size. */
  get minPgsize(): number {
    return this.pgsizes[0] ?? PAGE_SIZE;
  }

  /** The first mapping intersecting [start, start + size), or null. Linux: vfio_find_dma(). */
  findDma(start: number, size: number): VfioDma | null {
    for (const d of this.dmas) {
      if (start + size <= d.iova) return null;
      if (start < d.iova + d.size) return d;
    }
    return null;
  }

  /** Linux: vfio_iommu_iova_dma_valid(). */
  private iovaValid(start: number, last: number): boolean {
    if (this.iovaList.length === 0) return true;
    return this.iovaList.some((r) => start >= r.start && last <= r.end);
  }

  /** Map pinned pages into one domain, physically contiguous runs at a time; all or nothing. */
  private mapInto(d: IommuDomain, dma: VfioDma): void {
    let done = 0;
    try {
      const n = dma.pfns.length;
      for (let i = 0; i < n; ) {
        let j = i + 1;
        while (j < n && dma.pfns[j] === dma.pfns[j - 1]! + PAGE_SIZE) j++;
        iommuMap(d, dma.iova + i * PAGE_SIZE, dma.pfns[i]!, (j - i) * PAGE_SIZE, dma.prot | IOMMU_CACHE);
        done = j * PAGE_SIZE;
        i = j;
      }
    } catch (e) {
      if (done > 0) iommuUnmap(d, dma.iova, done);
      throw e;
    }
  }

  /**
   * Map user memory [vaddr, vaddr + size) at `iova`: pin the pages and map
   * them into every domain. All or nothing.
   * @param prot IOMMU_READ and/or IOMMU_WRITE (non-zero).
   * @throws IommuError EINVAL (size 0; iova, vaddr or size not aligned to the
   *   smallest page size; wrap; outside the valid IOVA ranges), EEXIST (the
   *   range overlaps a mapping), ENOSPC (dma_entry_limit reached), EFAULT (a
   *   user page is not mapped, or read-only for a writable mapping), a
   *   domain's map error.
   * Linux: vfio_dma_do_map() → vfio_pin_map_dma().
   */
  map(vaddr: number, iova: number, size: number, prot: number): void {
    const pgsize = this.minPgsize;
    if (!size || iova % pgsize !== 0 || vaddr % pgsize !== 0 || size % pgsize !== 0) {
      throw new IommuError('EINVAL', `map: iova 0x${iova.toString(16)} vaddr 0x${vaddr.toString(16)} size 0x${size.toString(16)} must be non-zero multiples of 0x${pgsize.toString(16)}`);
    }
    if (iova + size > DMA_ADDR_END || vaddr + size > Number.MAX_SAFE_INTEGER) throw new IommuError('EINVAL', 'map: the IOVA or user range wraps');
    if (this.findDma(iova, size)) throw new IommuError('EEXIST', `map: [0x${iova.toString(16)}, +0x${size.toString(16)}) overlaps an existing mapping`);
    if (this.dmaAvail === 0) throw new IommuError('ENOSPC', 'map: dma_entry_limit reached');
    if (!this.iovaValid(iova, iova + size - 1)) throw new IommuError('EINVAL', `map: [0x${iova.toString(16)}, +0x${size.toString(16)}) is outside the valid IOVA ranges`);
    const pfns = this.mm.pinPages(vaddr, size / PAGE_SIZE, (prot & IOMMU_WRITE) !== 0);
    const dma: VfioDma = { iova, vaddr, size, prot, pfns };
    const done: IommuDomain[] = [];
    try {
      for (const d of this.domains) {
        this.mapInto(d.domain, dma);
        done.push(d.domain);
      }
    } catch (e) {
      for (const d of done) iommuUnmap(d, iova, size);
      throw e;
    }
    let at = this.dmas.findIndex((d) => d.iova > iova);
    if (at < 0) at = this.dmas.length;
    this.dmas.splice(at, 0, dma);
    this.dmaAvail--;
  }

  /** Linux: vfio_remove_dma() → vfio_unmap_unpin(). */
  private removeDma(dma: VfioDma): void {
    for (const d of this.domains) iommuUnmap(d.domain, dma.iova, dma.size);
    this.dmas.splice(this.dmas.indexOf(dma), 1);
    this.dmaAvail++;
  }

  /**
   * Unmap the mappings in [iova, iova + size) (`all`: every mapping, iova and
   * size 0). v2: a mapping the range would split fails EINVAL (checked before
   * anything is unmapped); v1: the walk stops at a mapping starting before
   * `iova`, and a mapping whose first byte is covered goes whole.
   * @returns bytes unmapped (0 if nothing was mapped there).
   * @throws IommuError EINVAL (iova or size not aligned, size 0 without
   *   `all`, `all` with a non-zero iova or size, wrap, a v2 split).
   * Linux: vfio_dma_do_unmap().
   */
  unmap(iova: number, size: number, all: boolean): number {
    const pgsize = this.minPgsize;
    if (iova % pgsize !== 0) throw new IommuError('EINVAL', `unmap: iova 0x${iova.toString(16)} is not aligned to 0x${pgsize.toString(16)}`);
    if (all) {
      if (iova || size) throw new IommuError('EINVAL', 'unmap all: iova and size must be 0');
      size = DMA_ADDR_END;
    } else if (!size || size % pgsize !== 0 || iova + size > DMA_ADDR_END) {
      throw new IommuError('EINVAL', `unmap: size 0x${size.toString(16)} is 0, unaligned, or wraps`);
    }
    if (this.v2 && !all) {
      const first = this.findDma(iova, 1);
      if (first && first.iova !== iova) throw new IommuError('EINVAL', `unmap: would split the mapping at 0x${first.iova.toString(16)}`);
      const last = this.findDma(iova + size - 1, 1);
      if (last && last.iova + last.size !== iova + size) throw new IommuError('EINVAL', `unmap: would split the mapping at 0x${last.iova.toString(16)}`);
    }
    let unmapped = 0;
    for (const dma of [...this.dmas]) {
      if (dma.iova + dma.size <= iova) continue;
      if (dma.iova >= iova + size) break;
      if (!this.v2 && iova > dma.iova) break;
      unmapped += dma.size;
      this.removeDma(dma);
    }
    return unmapped;
  }

  /** True if `group` is attached here. */
  hasGroup(group: IommuGroup): boolean {
    return this.domains.some((d) => d.groups.includes(group));
  }

  /**
   * Attach a DMA-owned group: allocate a paging domain from its IOMMU driver,
   * attach the group, narrow the valid IOVA list to the aperture minus the
   * group's reserved regions (except DIRECT_RELAXABLE), then move the group
   * to an existing domain of the same driver if there is one, else replay
   * every mapping into the new domain. All or nothing.
   * @throws IommuError EINVAL (already attached; the aperture or a reserved
   *   region conflicts with a mapping; no valid IOVA left), EPERM (MSIs not
   *   isolated and allow_unsafe_interrupts off), the domain allocation, attach
   *   or replay error (ENODEV, EBUSY, ENOMEM, …).
   * Linux: vfio_iommu_type1_attach_group().
   */
  attachGroup(group: IommuGroup): void {
    if (this.hasGroup(group)) throw new IommuError('EINVAL', `group ${group.id} is already attached`);
    const first = group.devices[0]?.dev;
    if (!first) throw new IommuError('ENODEV', `group ${group.id} has no device`);
    const domain = iommuPagingDomainAlloc(first);
    try {
      iommuAttachGroup(this.core, domain, group);
    } catch (e) {
      iommuDomainFree(domain);
      throw e;
    }
    const detachFree = (): void => {
      iommuDetachGroup(this.core, domain, group);
      iommuDomainFree(domain);
    };
    let newList: VfioIovaRange[];
    try {
      const geo = domain.geometry;
      if (this.aperConflict(geo.apertureStart, geo.apertureEnd)) throw new IommuError('EINVAL', `group ${group.id}: the domain aperture conflicts with the container's IOVA ranges or mappings`);
      const resv = this.core.groups.getGroupResvRegions(group);
      if (this.resvConflict(resv)) throw new IommuError('EINVAL', `group ${group.id}: a reserved region overlaps an existing mapping`);
      newList = resvExclude(aperResize(this.iovaList, geo.apertureStart, geo.apertureEnd), resv);
      if (!this.allowUnsafeInterrupts && !this.isolatedMsi) throw new IommuError('EPERM', 'no interrupt remapping support: use allow_unsafe_interrupts to enable VFIO IOMMU support on this platform');
    } catch (e) {
      detachFree();
      throw e;
    }
    // Try an existing domain of the same driver (enforce_cache_coherency is not modelled: all equal).
    for (const d of this.domains) {
      if (d.domain.owner !== domain.owner) continue;
      iommuDetachGroup(this.core, domain, group);
      try {
        iommuAttachGroup(this.core, d.domain, group);
        d.groups.push(group);
        iommuDomainFree(domain);
        this.iovaList = newList;
        return;
      } catch {
        iommuAttachGroup(this.core, domain, group);
      }
    }
    const replayed: VfioDma[] = [];
    try {
      for (const dma of this.dmas) {
        this.mapInto(domain, dma);
        replayed.push(dma);
      }
    } catch (e) {
      for (const dma of replayed) iommuUnmap(domain, dma.iova, dma.size);
      detachFree();
      throw e;
    }
    this.domains.push({ domain, groups: [group] });
    this.iovaList = newList;
  }

  /**
   * Detach a group: back to its core domain (blocking while owned); a domain
   * left without groups is freed, and with the last domain every mapping is
   * unmapped. The IOVA list is widened again.
   * Linux: vfio_iommu_type1_detach_group().
   */
  detachGroup(group: IommuGroup): void {
    const d = this.domains.find((x) => x.groups.includes(group));
    if (!d) return;
    iommuDetachGroup(this.core, d.domain, group);
    d.groups.splice(d.groups.indexOf(group), 1);
    if (d.groups.length === 0) {
      if (this.domains.length === 1) for (const dma of [...this.dmas]) this.removeDma(dma);
      this.domains.splice(this.domains.indexOf(d), 1);
      iommuDomainFree(d.domain);
    }
    this.refreshIovaList();
  }

  /** Detach every group and drop every mapping. Linux: vfio_iommu_type1_release(). */
  release(): void {
    for (const dma of [...this.dmas]) this.removeDma(dma);
    for (const d of [...this.domains]) for (const g of [...d.groups]) this.detachGroup(g);
    this.iovaList = [];
  }

  /** Linux: vfio_iommu_aper_conflict(). */
  private aperConflict(start: number, end: number): boolean {
    if (this.iovaList.length === 0) return false;
    const first = this.iovaList[0]!;
    const last = this.iovaList[this.iovaList.length - 1]!;
    if (start > last.end || end < first.start) return true;
    if (start > first.start && this.findDma(first.start, start - first.start)) return true;
    if (end < last.end && this.findDma(end + 1, last.end - end)) return true;
    return false;
  }

  /** Linux: vfio_iommu_resv_conflict(). */
  private resvConflict(resv: readonly IommuResvRegion[]): boolean {
    return resv.some((r) => r.type !== IommuResvType.DIRECT_RELAXABLE && this.findDma(r.start, r.length) !== null);
  }

  /** Recompute the IOVA list from the remaining domains' apertures and groups' reserved regions. Linux: vfio_iommu_aper_expand() + vfio_iommu_resv_refresh(). */
  private refreshIovaList(): void {
    if (this.domains.length === 0) {
      this.iovaList = [];
      return;
    }
    let start = 0;
    let end = DMA_ADDR_END - 1;
    const resv: IommuResvRegion[] = [];
    for (const d of this.domains) {
      start = Math.max(start, d.domain.geometry.apertureStart);
      end = Math.min(end, d.domain.geometry.apertureEnd);
      for (const g of d.groups) resv.push(...this.core.groups.getGroupResvRegions(g));
    }
    try {
      this.iovaList = resvExclude([{ start, end }], resv);
    } catch {
      // Linux keeps the old list when the refresh fails.
    }
  }
}

/** Linux: vfio_iommu_aper_resize(). */
function aperResize(list: readonly VfioIovaRange[], start: number, end: number): VfioIovaRange[] {
  if (list.length === 0) return [{ start, end }];
  const out: VfioIovaRange[] = [];
  for (const n of list) {
    if (n.end < start || n.start > end) continue;
    out.push({ start: Math.max(n.start, start), end: Math.min(n.end, end) });
  }
  return out;
}

/**
 * Cut the reserved regions (except DIRECT_RELAXABLE) out of the IOVA list.
 * @throws IommuError EINVAL if nothing is left.
 * Linux: vfio_iommu_resv_exclude().
 */
function resvExclude(list: readonly VfioIovaRange[], resv: readonly IommuResvRegion[]): VfioIovaRange[] {
  let cur = [...list];
  for (const r of resv) {
    if (r.type === IommuResvType.DIRECT_RELAXABLE) continue;
    const s = r.start;
    const e = r.start + r.length - 1;
    const next: VfioIovaRange[] = [];
    for (const n of cur) {
      if (s > n.end || e < n.start) {
        next.push(n);
        continue;
      }
      if (s > n.start) next.push({ start: n.start, end: s - 1 });
      if (e < n.end) next.push({ start: e + 1, end: n.end });
    }
    cur = next;
  }
  if (cur.length === 0) throw new IommuError('EINVAL', 'no valid IOVA range is left');
  return cur;
}

/** VFIO_DMA_MAP flags → IOMMU prot. Linux: vfio_dma_do_map(). */
export function vfioProt(read: boolean, write: boolean): number {
  return (read ? IOMMU_READ : 0) | (write ? IOMMU_WRITE : 0);
}

