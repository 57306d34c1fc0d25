/**
 * The io_pagetable behind an iommufd IOAS: the areas (IOVA ranges mapped to
 * pinned user pages), the reserved IOVA ranges (device reserved regions,
 * domain apertures), the user's allowed ranges, and the iommu_domains (HWPTs)
 * that mirror every area.
 *
 * Pages are pinned lazily, as in Linux: an area of an IOAS without domains
 * records only the user VA range; its pages are pinned (looked up in the
 * {@link UserMemory}) when the first domain needs them and unpinned when the
 * last domain goes. Pinned pages are shared by the areas of IOAS_COPY.
 *
 * Errors follow drivers/iommu/iommufd/io_pagetable.c; every operation is all
 * or nothing (one deliberate difference, {@link IoPagetable.unmapIova}).
 *
 * IOVAs are numbers of bytes. The model's address space is [0, IOVA_LAST]
 * with IOVA_LAST = 2^53 − 1 (Linux: ULONG_MAX = 2^64 − 1) so that every byte
 * address and every inclusive `last` is exact; ranges reaching the top end at
 * IOVA_LAST.
 *
 * Linux: struct io_pagetable, struct iopt_area, struct iopt_pages,
 * iopt_map_pages(), iopt_alloc_iova(), iopt_check_iova(), iopt_get_pages(),
 * iopt_unmap_iova_range(), iopt_set_allow_iova(), iopt_reserve_iova(),
 * iopt_table_add_domain(), iopt_table_remove_domain(),
 * iopt_table_enforce_dev_resv_regions(), drivers/iommu/iommufd/io_pagetable.c
 * and pages.c (torvalds/linux v6.16-era, tree Kingxukai/linux 9b44fff6).
 */
import { IommuError } from '../base/errno.js';
import type { Device } from '../device/device.js';
import { iommuMap, iommuUnmap, isAligned, type IommuDomain } from '../iommu/domain.js';
import { IommuResvType, type IommuResvRegion } from '../iommu/resv-region.js';
import { IOMMU_WRITE } from '../io-pgtable/io-pgtable.js';
import { PAGE_SIZE } from '../mem/phys-mem.js';
import type { UserMemory } from './user-memory.js';

/** The last IOVA of the model's address space (bytes): 2^53 − 1. Linux: ULONG_MAX (2^64 − 1). */
export const IOVA_LAST = Number.MAX_SAFE_INTEGER;

/** Largest automatic IOVA alignment (bytes): HPAGE_SIZE with CONFIG_TRANSPARENT_HUGEPAGE (2 MiB on x86). Linux: iopt_alloc_iova() max_alignment. */
export const IOVA_MAX_ALIGNMENT = 0x20_0000;

/** An inclusive IOVA range [start, last] (bytes). Linux: struct iommu_iova_range. */
export interface IovaRange {
  readonly start: number;
  readonly last: number;
}

/**
 * User pages of one IOAS_MAP: a page-aligned user VA range of `npages`
 * pages, with a per-page pin count and, while pinned, the page's physical
 * address. Shared by every area made from it (IOAS_COPY).
 * Linux: struct iopt_pages, iopt_alloc_user_pages(), drivers/iommu/iommufd/pages.c.
 */
export class IoptPages {
  /** The address space the pages come from (current->mm at map time). */
  readonly mm: UserMemory;
  /** First user VA (bytes, page-aligned). Linux: iopt_pages.uptr. */
  readonly uptr: number;
  /** Number of pages. */
  readonly npages: number;
  /** Pinned for writing (the map asked for IOMMU_WRITE). Linux: iopt_pages.writable. */
  readonly writable: boolean;
  /** Physical address of each pinned page (valid while its pin count is > 0). */
  private readonly pfn: Float64Array;
  /** Pin count of each page (one per area slice filled into domains). */
  private readonly pinRef: Uint32Array;

  /**
   * Pages for the user range [uptr, uptr + length) (bytes): from `uptr`
   * rounded down to a page, covering `length` bytes.
   * @throws IommuError EINVAL (length 0, or not below 2^53 − a page),
   *   EOVERFLOW (uptr + length beyond 2^53).
   * Linux: iopt_alloc_user_pages() / iopt_alloc_pages(), drivers/iommu/iommufd/pages.c.
   */
  static forUser(mm: UserMemory, uptr: number, length: number, writable: boolean): { pages: IoptPages; startByte: number } {
    if (length === 0 || length > IOVA_LAST - PAGE_SIZE) throw new IommuError('EINVAL', `user range length 0x${length.toString(16)} is empty or too large`);
    if (!Number.isSafeInteger(uptr) || uptr < 0 || uptr + length > IOVA_LAST) throw new IommuError('EOVERFLOW', `user range 0x${uptr.toString(16)} + 0x${length.toString(16)} overflows`);
    const base = uptr - (uptr % PAGE_SIZE);
    const startByte = uptr - base;
    return { pages: new IoptPages(mm, base, Math.ceil((startByte + length) / PAGE_SIZE), writable), startByte };
  }

  private constructor(mm: UserMemory, uptr: number, npages: number, writable: boolean) {
    this.mm = mm;
    this.uptr = uptr;
    this.npages = npages;
    this.writable = writable;
    this.pfn = new Float64Array(npages);
    this.pinRef = new Uint32Array(npages);
  }

  /**
   * Pin pages [i0, i1): the first pin of a page looks it up in the address
   * space. All or nothing.
   * @throws IommuError EFAULT (a page is not mapped, or read-only while the pages are writable).
   * Linux: pfn_reader_user_pin() → pin_user_pages_remote(), drivers/iommu/iommufd/pages.c.
   */
  pin(i0: number, i1: number): void {
    let i = i0;
    try {
      for (; i < i1; i++) {
        if (this.pinRef[i] === 0) this.pfn[i] = this.mm.translate(this.uptr + i * PAGE_SIZE, this.writable);
        this.pinRef[i]!++;
      }
    } catch (e) {
      this.unpin(i0, i);
      throw e;
    }
  }

  /** Unpin pages [i0, i1). Linux: iopt_pages_unfill_xarray() / unpin_user_pages(). */
  unpin(i0: number, i1: number): void {
    for (let i = i0; i < i1; i++) if (this.pinRef[i]! > 0) this.pinRef[i]!--;
  }

  /** Physical address of pinned page `i`. */
  pagePhys(i: number): number {
    return this.pfn[i]!;
  }

  /** Pin count of page `i` (0: not pinned). */
  pinCount(i: number): number {
    return this.pinRef[i]!;
  }
}

/**
 * One mapping of an IOAS: [iova, iova + length) → bytes [startByte,
 * startByte + length) of `pages`.
 * Linux: struct iopt_area.
 */
export interface IoptArea {
  /** First IOVA (bytes). */
  readonly iova: number;
  /** Length (bytes). */
  readonly length: number;
  /** The user pages. */
  readonly pages: IoptPages;
  /** Offset of the first byte in `pages` (bytes from pages.uptr). */
  readonly startByte: number;
  /** IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE. Linux: iopt_area.iommu_prot. */
  readonly prot: number;
  /** Its page slice is pinned (it is filled into at least one domain). */
  pinned: boolean;
}

/** A slice of user pages to map: what IOAS_MAP pins or IOAS_COPY takes from its source. Linux: struct iopt_pages_list. */
export interface PagesSlice {
  readonly pages: IoptPages;
  /** Offset in `pages` (bytes). */
  readonly startByte: number;
  /** Length (bytes). */
  readonly length: number;
}

interface Reserved {
  readonly start: number;
  readonly last: number;
  readonly owner: object;
}

function areaLast(a: IoptArea): number {
  return a.iova + a.length - 1;
}

/** The smallest power of two ≥ x (x ≥ 1). Linux: roundup_pow_of_two(). */
function roundupPow2(x: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return p;
}

/** The lowest set bit of a positive integer (as a power of two). Linux: 1UL << __ffs64(x). */
function lowestBit(x: number): number {
  let p = 1;
  while (Math.floor(x / p) % 2 === 0) p *= 2;
  return p;
}

/** `x | bits` where bits < 4096: the low 12 bits are OR-ed, the rest kept (exact for x < 2^53). */
function orLow(x: number, bits: number): number {
  const low = x % PAGE_SIZE;
  return x - low + (low | bits);
}

/** Merge sorted-by-start ranges (overlapping or touching) into disjoint ones. */
function mergeRanges(rs: readonly IovaRange[]): IovaRange[] {
  const s = [...rs].sort((a, b) => a.start - b.start);
  const out: { start: number; last: number }[] = [];
  for (const r of s) {
    const top = out[out.length - 1];
    if (top && r.start <= top.last + 1) top.last = Math.max(top.last, r.last);
    else out.push({ start: r.start, last: r.last });
  }
  return out;
}

/** The holes of disjoint sorted `used` inside [lo, hi]. Linux: interval_tree_for_each_span() (holes). */
function holes(used: readonly IovaRange[], lo: number, hi: number): IovaRange[] {
  const out: IovaRange[] = [];
  let cur = lo;
  for (const u of used) {
    if (u.last < cur) continue;
    if (u.start > hi) break;
    if (u.start > cur) out.push({ start: cur, last: u.start - 1 });
    cur = u.last + 1;
    if (cur > hi) return out;
  }
  if (cur <= hi) out.push({ start: cur, last: hi });
  return out;
}

/**
 * An IOAS's page table: areas, reserved and allowed ranges, and domains.
 * Linux: struct io_pagetable.
 */
export class IoPagetable {
  /** Areas sorted by IOVA, disjoint. Linux: area_itree. */
  private readonly areaList: IoptArea[] = [];
  /** Reserved ranges (may overlap), sorted by start. Linux: reserved_itree. */
  private reserved: Reserved[] = [];
  /** Allowed ranges, disjoint, sorted. Linux: allowed_itree. */
  private allowed: IovaRange[] = [];
  /** Domains mirroring the areas, in add order. Linux: io_pagetable.domains. */
  private readonly domainList: IommuDomain[] = [];
  /** Required IOVA/length alignment (bytes): 1 without domains, else the largest smallest page size. Linux: iova_alignment. */
  iovaAlignment = 1;

  /** The areas (a snapshot, sorted by IOVA). */
  get areas(): readonly IoptArea[] {
    return [...this.areaList];
  }

  /** The domains the areas are mapped into (a snapshot). */
  get domains(): readonly IommuDomain[] {
    return [...this.domainList];
  }

  /** The allowed ranges (a snapshot). */
  get allowedRanges(): readonly IovaRange[] {
    return [...this.allowed];
  }

  /** Reserved ranges (a snapshot), each with its owner (a Device or an IommuDomain). */
  get reservedRanges(): readonly { readonly start: number; readonly last: number; readonly owner: object }[] {
    return [...this.reserved];
  }

  /** Index of the first area whose last byte is ≥ `iova` (areas are disjoint, so lasts are sorted too). */
  private lowerBound(iova: number): number {
    let lo = 0;
    let hi = this.areaList.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (areaLast(this.areaList[mid]!) < iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The areas intersecting [start, last], in IOVA order. Linux: iopt_area_iter_first()/next(). */
  areasIn(start: number, last: number): IoptArea[] {
    const out: IoptArea[] = [];
    for (let i = this.lowerBound(start); i < this.areaList.length; i++) {
      const a = this.areaList[i]!;
      if (a.iova > last) break;
      out.push(a);
    }
    return out;
  }

  private anyArea(start: number, last: number): boolean {
    const i = this.lowerBound(start);
    return i < this.areaList.length && this.areaList[i]!.iova <= last;
  }

  private anyReserved(start: number, last: number): boolean {
    return this.reserved.some((r) => r.start <= last && r.last >= start);
  }

  private anyAllowed(start: number, last: number): boolean {
    return this.allowed.some((r) => r.start <= last && r.last >= start);
  }

  /**
   * Check a fixed IOVA range for a new mapping.
   * @throws IommuError EINVAL (iova not aligned to iovaAlignment, or a reserved
   *   range intersects), EOVERFLOW (past IOVA_LAST), EEXIST (an area intersects).
   * Linux: iopt_check_iova().
   */
  checkIova(iova: number, length: number): void {
    if (!isAligned(iova, this.iovaAlignment)) throw new IommuError('EINVAL', `IOVA 0x${iova.toString(16)} is not aligned to 0x${this.iovaAlignment.toString(16)}`);
    const last = iova + length - 1;
    if (last > IOVA_LAST) throw new IommuError('EOVERFLOW', `IOVA 0x${iova.toString(16)} + 0x${length.toString(16)} overflows`);
    if (this.anyReserved(iova, last)) throw new IommuError('EINVAL', `IOVA range [0x${iova.toString(16)}, 0x${last.toString(16)}] intersects a reserved range`);
    if (this.anyArea(iova, last)) throw new IommuError('EEXIST', `IOVA range [0x${iova.toString(16)}, 0x${last.toString(16)}] is already mapped`);
  }

  /**
   * Find a free IOVA for `length` bytes whose user address is `addr`: the
   * lowest IOVA ≥ 4 KiB, inside an allowed range (if any), outside reserved
   * ranges and areas, aligned to min(roundup_pow_of_two(length), the lowest
   * set bit of `addr`, 2 MiB) with `addr`'s page offset. Never IOVA 0.
   * @throws IommuError EOVERFLOW (length 0 or ≥ IOVA_LAST/2), EINVAL (that
   *   alignment is below iovaAlignment), ENOSPC (no room).
   * Linux: iopt_alloc_iova().
   */
  allocIova(addr: number, length: number): number {
    const pageOffset = addr % PAGE_SIZE;
    if (length === 0 || length >= IOVA_LAST / 2) throw new IommuError('EOVERFLOW', `cannot allocate 0x${length.toString(16)} bytes of IOVA`);
    let align = addr === 0 ? roundupPow2(length) : Math.min(roundupPow2(length), lowestBit(addr));
    if (align >= IOVA_MAX_ALIGNMENT) align = IOVA_MAX_ALIGNMENT;
    if (align < this.iovaAlignment) throw new IommuError('EINVAL', `the user address 0x${addr.toString(16)} allows an IOVA alignment of 0x${align.toString(16)} only, the IOAS needs 0x${this.iovaAlignment.toString(16)}`);
    const fits = (start: number, last: number): number => {
      let aligned = Math.ceil(start / align) * align;
      aligned = orLow(aligned, pageOffset);
      if (aligned >= last || last - aligned < length - 1) return -1;
      return aligned;
    };
    const lo = PAGE_SIZE;
    const hi = IOVA_LAST - PAGE_SIZE;
    const spans = this.allowed.length === 0 ? [{ start: lo, last: hi }] : this.allowed.filter((r) => r.last >= lo && r.start <= hi).map((r) => ({ start: Math.max(r.start, lo), last: Math.min(r.last, hi) }));
    const used = mergeRanges([...this.reserved, ...this.areaList.map((a) => ({ start: a.iova, last: areaLast(a) }))]);
    for (const span of spans) {
      if (fits(span.start, span.last) < 0) continue;
      for (const h of holes(used, span.start, span.last)) {
        const at = fits(h.start, h.last);
        if (at >= 0) return at;
      }
    }
    throw new IommuError('ENOSPC', `no free IOVA range of 0x${length.toString(16)} bytes`);
  }

  /**
   * Map `slices` back to back at `iova` (or at an allocated IOVA when `iova`
   * is null), one area per slice, and fill every domain (pinning the pages).
   * All or nothing.
   * @returns the IOVA of the first byte.
   * @throws IommuError EINVAL (length 0 or not aligned to iovaAlignment, a
   *   page offset not aligned, a reserved range), EEXIST, EOVERFLOW, ENOSPC
   *   (see {@link checkIova}, {@link allocIova}), EPERM (IOMMU_WRITE asked of
   *   pages pinned read-only), EFAULT (pinning), or a domain's map error.
   * Linux: iopt_map_pages() → iopt_alloc_area_pages(), iopt_insert_area(), iopt_fill_domains_pages().
   */
  mapPages(slices: readonly PagesSlice[], length: number, iova: number | null, prot: number): number {
    if (length === 0 || !isAligned(length, this.iovaAlignment)) throw new IommuError('EINVAL', `length 0x${length.toString(16)} is empty or not aligned to 0x${this.iovaAlignment.toString(16)}`);
    let dst: number;
    if (iova === null) {
      const first = slices[0]!;
      dst = this.allocIova(first.pages.uptr + first.startByte, length);
    } else {
      this.checkIova(iova, length);
      dst = iova;
    }
    const fresh: IoptArea[] = [];
    let cur = dst;
    for (const s of slices) {
      if (prot & IOMMU_WRITE && !s.pages.writable) throw new IommuError('EPERM', 'write access asked of pages pinned read-only');
      if (!isAligned(s.startByte % PAGE_SIZE, this.iovaAlignment)) throw new IommuError('EINVAL', `page offset 0x${(s.startByte % PAGE_SIZE).toString(16)} is not aligned to 0x${this.iovaAlignment.toString(16)}`);
      if (cur + s.length - 1 > IOVA_LAST) throw new IommuError('EOVERFLOW', 'IOVA range overflows');
      fresh.push({ iova: cur, length: s.length, pages: s.pages, startByte: s.startByte, prot, pinned: false });
      cur += s.length;
    }
    const filled: IoptArea[] = [];
    try {
      for (const a of fresh) {
        this.fillDomains(a);
        filled.push(a);
      }
    } catch (e) {
      for (const a of filled) this.unfillDomains(a);
      throw e;
    }
    for (const a of fresh) this.areaList.splice(this.lowerBound(a.iova), 0, a);
    return dst;
  }

  /** Pin the page slice of an area. */
  private pinArea(a: IoptArea): void {
    a.pages.pin(Math.floor(a.startByte / PAGE_SIZE), Math.ceil((a.startByte + a.length) / PAGE_SIZE));
    a.pinned = true;
  }

  private unpinArea(a: IoptArea): void {
    if (!a.pinned) return;
    a.pages.unpin(Math.floor(a.startByte / PAGE_SIZE), Math.ceil((a.startByte + a.length) / PAGE_SIZE));
    a.pinned = false;
  }

  /**
   * The physically contiguous pieces of a pinned area: [iova, pa, length] triples.
   * Linux: batch_to_domain() (drivers/iommu/iommufd/pages.c) maps each contiguous run with one iommu_map().
   */
  private *chunks(a: IoptArea): Generator<[number, number, number]> {
    const p = a.pages;
    const end = a.startByte + a.length;
    let b = a.startByte;
    while (b < end) {
      const i = Math.floor(b / PAGE_SIZE);
      const pa = p.pagePhys(i) + (b - i * PAGE_SIZE);
      let e = (i + 1) * PAGE_SIZE;
      while (e < end && p.pagePhys(e / PAGE_SIZE) === p.pagePhys(e / PAGE_SIZE - 1) + PAGE_SIZE) e += PAGE_SIZE;
      if (e > end) e = end;
      yield [a.iova + (b - a.startByte), pa, e - b];
      b = e;
    }
  }

  /** Map a pinned area into one domain, all or nothing (iommu_map picks the largest pages that fit). Linux: iopt_area_fill_domain(). */
  private mapArea(d: IommuDomain, a: IoptArea): void {
    let done = 0;
    try {
      for (const [iova, pa, len] of this.chunks(a)) {
        iommuMap(d, iova, pa, len, a.prot);
        done += len;
      }
    } catch (e) {
      if (done > 0) iommuUnmap(d, a.iova, done);
      throw e;
    }
  }

  /** Linux: iopt_area_unmap_domain() → iommu_unmap_nofail(). */
  private unmapArea(d: IommuDomain, a: IoptArea): void {
    iommuUnmap(d, a.iova, a.length);
  }

  /** Pin an area and map it into every domain; all or nothing. Linux: iopt_area_fill_domains(). */
  private fillDomains(a: IoptArea): void {
    if (this.domainList.length === 0) return;
    this.pinArea(a);
    const done: IommuDomain[] = [];
    try {
      for (const d of this.domainList) {
        this.mapArea(d, a);
        done.push(d);
      }
    } catch (e) {
      for (const d of done) this.unmapArea(d, a);
      this.unpinArea(a);
      throw e;
    }
  }

  /** Unmap an area from every domain and unpin it. Linux: iopt_area_unfill_domains(). */
  private unfillDomains(a: IoptArea): void {
    for (const d of this.domainList) this.unmapArea(d, a);
    this.unpinArea(a);
  }

  /**
   * The pages behind [iova, iova + length), which contiguous areas must cover
   * exactly from `iova` on (an area may be taken partly).
   * @throws IommuError EINVAL (length 0), EOVERFLOW, ENOENT (a hole in the range).
   * Linux: iopt_get_pages().
   */
  getPages(iova: number, length: number): PagesSlice[] {
    if (length === 0) throw new IommuError('EINVAL', 'length 0');
    const last = iova + length - 1;
    if (!Number.isSafeInteger(iova) || iova < 0 || last > IOVA_LAST) throw new IommuError('EOVERFLOW', `IOVA 0x${iova.toString(16)} + 0x${length.toString(16)} overflows`);
    const out: PagesSlice[] = [];
    let cur = iova;
    let i = this.lowerBound(iova);
    for (;;) {
      const a = this.areaList[i];
      if (!a || a.iova > cur) throw new IommuError('ENOENT', `IOVA 0x${cur.toString(16)} is not mapped`);
      const end = Math.min(last, areaLast(a));
      out.push({ pages: a.pages, startByte: a.startByte + (cur - a.iova), length: end - cur + 1 });
      if (last <= areaLast(a)) return out;
      cur = areaLast(a) + 1;
      i++;
    }
  }

  /**
   * Unmap every area inside [start, last]; each area must lie wholly inside.
   * Unlike Linux, the check is made before anything is unmapped (Linux
   * unmaps the areas before the first one that sticks out, then returns
   * ENOENT): a failed call changes nothing.
   * @returns bytes unmapped.
   * @throws IommuError ENOENT (no area in the range, or an area sticks out).
   * Linux: iopt_unmap_iova_range().
   */
  unmapRange(start: number, last: number): number {
    const hit = this.areasIn(start, last);
    if (hit.length === 0) throw new IommuError('ENOENT', `nothing is mapped in [0x${start.toString(16)}, 0x${last.toString(16)}]`);
    for (const a of hit) {
      if (a.iova < start || areaLast(a) > last) {
        throw new IommuError('ENOENT', `the area [0x${a.iova.toString(16)}, 0x${areaLast(a).toString(16)}] is not wholly inside [0x${start.toString(16)}, 0x${last.toString(16)}]: areas cannot be split`);
      }
    }
    let n = 0;
    for (const a of hit) {
      this.unfillDomains(a);
      this.areaList.splice(this.areaList.indexOf(a), 1);
      n += a.length;
    }
    return n;
  }

  /**
   * Unmap [iova, iova + length).
   * @throws IommuError EINVAL (length 0), EOVERFLOW, ENOENT (see {@link unmapRange}).
   * Linux: iopt_unmap_iova().
   */
  unmapIova(iova: number, length: number): number {
    if (length === 0) throw new IommuError('EINVAL', 'length 0');
    const last = iova + length - 1;
    if (last > IOVA_LAST) throw new IommuError('EOVERFLOW', `IOVA 0x${iova.toString(16)} + 0x${length.toString(16)} overflows`);
    return this.unmapRange(iova, last);
  }

  /** Unmap everything; returns bytes unmapped (0 if nothing was mapped). Linux: iopt_unmap_all(). */
  unmapAll(): number {
    if (this.areaList.length === 0) return 0;
    return this.unmapRange(0, IOVA_LAST);
  }

  /**
   * Replace the allowed ranges (already validated: start < last, disjoint).
   * @throws IommuError EADDRINUSE if a reserved range intersects one (the old list stays).
   * Linux: iopt_set_allow_iova().
   */
  setAllowIova(ranges: readonly IovaRange[]): void {
    for (const r of ranges) {
      if (this.anyReserved(r.start, r.last)) throw new IommuError('EADDRINUSE', `allowed range [0x${r.start.toString(16)}, 0x${r.last.toString(16)}] intersects a reserved range`);
    }
    this.allowed = [...ranges].sort((a, b) => a.start - b.start);
  }

  /**
   * Reserve [start, last] for `owner`.
   * @throws IommuError EADDRINUSE if an area or an allowed range intersects it.
   * Linux: iopt_reserve_iova().
   */
  reserve(start: number, last: number, owner: object): void {
    if (this.anyArea(start, last) || this.anyAllowed(start, last)) {
      throw new IommuError('EADDRINUSE', `[0x${start.toString(16)}, 0x${last.toString(16)}] cannot be reserved: it is mapped or allowed`);
    }
    let at = this.reserved.findIndex((r) => r.start > start);
    if (at < 0) at = this.reserved.length;
    this.reserved.splice(at, 0, { start, last, owner });
  }

  /** Drop every reserved range of `owner`. Linux: iopt_remove_reserved_iova(). */
  removeReserved(owner: object): void {
    this.reserved = this.reserved.filter((r) => r.owner !== owner);
  }

  /**
   * Reserve a device's reserved regions (all but DIRECT_RELAXABLE) with the
   * device as owner. All or nothing.
   * @throws IommuError EADDRINUSE (an area or allowed range is in the way),
   *   EINVAL (the driver reports both MSI and SW_MSI regions, or two SW_MSI).
   * Linux: iopt_table_enforce_dev_resv_regions().
   */
  enforceDevResvRegions(dev: Device, regions: readonly IommuResvRegion[]): void {
    let hwMsi = 0;
    let swMsi = 0;
    try {
      for (const r of regions) {
        if (r.type === IommuResvType.DIRECT_RELAXABLE) continue;
        if (r.type === IommuResvType.MSI) hwMsi++;
        if (r.type === IommuResvType.SW_MSI) swMsi++;
        this.reserve(r.start, r.start + r.length - 1, dev);
      }
      if ((swMsi && hwMsi) || swMsi > 1) throw new IommuError('EINVAL', `${dev.name}: the driver reports an invalid combination of MSI regions`);
    } catch (e) {
      this.removeReserved(dev);
      throw e;
    }
  }

  /**
   * Add a domain: reserve what lies outside its aperture, raise the IOVA
   * alignment to its smallest page size, and fill it with every area
   * (pinning pages not yet pinned). All or nothing.
   * @throws IommuError EEXIST (already added), EINVAL (its smallest page is
   *   above 4 KiB), EADDRINUSE (an area breaks the new alignment, or lies
   *   outside the aperture), EFAULT (pinning), or the domain's map error.
   * Linux: iopt_table_add_domain() → iopt_fill_domain().
   */
  addDomain(d: IommuDomain): void {
    if (this.domainList.includes(d)) throw new IommuError('EEXIST', `domain ${d.id} is already in this IOAS`);
    const newAlign = Math.max(d.minPgsize, this.iovaAlignment);
    if (newAlign > PAGE_SIZE) throw new IommuError('EINVAL', `domain ${d.id}'s smallest page 0x${d.minPgsize.toString(16)} is larger than PAGE_SIZE`);
    if (newAlign !== this.iovaAlignment) this.checkIovaAlignment(newAlign);
    const pinnedHere: IoptArea[] = [];
    const mapped: IoptArea[] = [];
    try {
      if (d.geometry.apertureStart !== 0) this.reserve(0, d.geometry.apertureStart - 1, d);
      if (d.geometry.apertureEnd < IOVA_LAST) this.reserve(d.geometry.apertureEnd + 1, IOVA_LAST, d);
      for (const a of this.areaList) {
        if (!a.pinned) {
          this.pinArea(a);
          pinnedHere.push(a);
        }
        this.mapArea(d, a);
        mapped.push(a);
      }
    } catch (e) {
      for (const a of mapped) this.unmapArea(d, a);
      for (const a of pinnedHere) this.unpinArea(a);
      this.removeReserved(d);
      throw e;
    }
    this.iovaAlignment = newAlign;
    this.domainList.push(d);
  }

  /** Linux: iopt_check_iova_alignment(). @throws IommuError EADDRINUSE. */
  private checkIovaAlignment(align: number): void {
    for (const a of this.areaList) {
      if (!isAligned(a.iova, align) || !isAligned(a.length, align) || !isAligned(a.startByte % PAGE_SIZE, align)) {
        throw new IommuError('EADDRINUSE', `the area at 0x${a.iova.toString(16)} is not aligned to 0x${align.toString(16)}`);
      }
    }
  }

  /**
   * Remove a domain: unmap every area from it, drop its reserved ranges,
   * unpin everything when it was the last, recompute the alignment.
   * Linux: iopt_table_remove_domain() → iopt_unfill_domain(), iopt_calculate_iova_alignment().
   */
  removeDomain(d: IommuDomain): void {
    const i = this.domainList.indexOf(d);
    if (i < 0) return;
    this.domainList.splice(i, 1);
    for (const a of this.areaList) this.unmapArea(d, a);
    if (this.domainList.length === 0) for (const a of this.areaList) this.unpinArea(a);
    this.removeReserved(d);
    this.iovaAlignment = this.domainList.reduce((m, x) => Math.max(m, x.minPgsize), 1);
  }

  /**
   * The usable IOVA ranges: the complement of the reserved ranges in
   * [0, IOVA_LAST] (Linux reports holes of the reserved tree only; the
   * allowed ranges are not intersected).
   * Linux: iommufd_ioas_iova_ranges().
   */
  iovaRanges(): IovaRange[] {
    return holes(mergeRanges(this.reserved), 0, IOVA_LAST);
  }
}
