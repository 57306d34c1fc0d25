/**
 * Intel VT-d second-level (second-stage) I/O page table: 4-level (48-bit
 * IOVA) or 5-level (57-bit IOVA) tables of 64-bit entries, 512 per 4 KiB page.
 *
 * Revision followed. The driver behaviour (what map writes, which tables unmap
 * frees, how a partial large-page unmap rounds) follows the classic
 * drivers/iommu/intel/iommu.c + iommu.h of torvalds/linux at stored commit
 * 00939bebe51c23d325c9796ad57ace49833a5813 (the v6.17/v6.18-era code with
 * iommu_alloc_pages_node_sz() and iommu_pages_list freelists): pfn_to_dma_pte(),
 * __domain_mapping(), switch_to_super_page(), dma_pte_clear_level(),
 * domain_unmap(), intel_iommu_map()/intel_iommu_map_pages(),
 * intel_iommu_unmap()/intel_iommu_unmap_pages(), intel_iommu_iova_to_phys(),
 * intel_iommu_enforce_cache_coherency(). Mainline has since moved the second
 * stage to the generic page-table code (iommupt, drivers/iommu/generic_pt/
 * fmt/vtdss.h); its entry layout is the same one modelled here (R bit 0, W bit
 * 1, PS bit 7, SNP bit 11, OA bits 51:12, directory entries = table | R | W),
 * which is the layout the VT-d specification defines (section 9.8
 * "Second-Stage Paging Entries"). The table-freeing behaviour is the classic
 * code's, not iommupt's.
 *
 * Entry layout (the hardware's, as the classic code writes it):
 * - bit 0 R (DMA_PTE_READ), bit 1 W (DMA_PTE_WRITE); an entry is present iff
 *   R or W is set (dma_pte_present(): `val & 3`), there is no present bit;
 * - bit 7 PS (DMA_PTE_LARGE_PAGE) in a level-2 (2 MiB) or level-3 (1 GiB) leaf;
 * - bit 11 SNP (DMA_PTE_SNP) in leaves when the domain forces snooping;
 * - bits 51:12 the physical address (of the next table, or of the page);
 * - directory entries: next-table address | R | W (0x3), as pfn_to_dma_pte()
 *   writes them for a second-level domain.
 * Each 64-bit entry is two u32 words of {@link PhysMem.pool}: the low word
 * (bits 31:0) at the even word index, the high word (bits 63:32) after it.
 * Levels are numbered as Linux does: 1 = leaf table (4 KiB pages), 2 = 2 MiB,
 * 3 = 1 GiB, 4 = 512 GiB, 5 = 256 TiB per entry.
 *
 * Decisions and differences from the classic driver, all deliberate:
 * - Page sizes: 4K | 2M | 1G. Linux advertises 2M/1G only when the hardware's
 *   CAP.SLLPS allows (domain_super_pgsize_bitmap()); the model takes both as
 *   supported. oas is 52 (address bits 51:12).
 * - Each mapPages call maps exactly `pgsize` leaves. Linux's __domain_mapping()
 *   would also promote an aligned run of smaller pages to a superpage
 *   (hardware_largepage_caps()); the IOMMU core already picks the largest size
 *   (iommu_pgsize()), and keeping the caller's size keeps unmap granularity the
 *   same as the other io-pgtable formats.
 * - Mapping over a present leaf: Linux's try_cmpxchg64_local() fails, it
 *   WARNs, keeps the old entry and still returns 0; the model fails with
 *   EEXIST (the io-pgtable contract). Mapping a 2M/1G leaf where a lower table
 *   already hangs: Linux frees that table (switch_to_super_page()); the model
 *   does the same when the table holds no present leaf (tables left behind by
 *   4K unmaps) and fails with EEXIST when it still maps something. Mapping
 *   under an existing superpage fails with EEXIST (Linux would walk into the
 *   superpage's data as if it were a table).
 * - An IOVA range beyond the address width is EINVAL (intel_iommu_map()
 *   returns -EFAULT here, __domain_mapping() -EINVAL); a prot without
 *   IOMMU_READ or IOMMU_WRITE maps nothing and returns 0 with no error (the
 *   classic __domain_mapping() returns -EINVAL; the contract follows the
 *   io-pgtable formats).
 * - SNP: this revision ignores IOMMU_CACHE; intel_iommu_map() sets DMA_PTE_SNP
 *   on every leaf once the domain's `set_pte_snp` is set, which
 *   intel_iommu_enforce_cache_coherency() does only while the domain has never
 *   had a mapping. Modelled by {@link VtdSlOptions.forceSnooping} and
 *   {@link VtdSlPgtable.enforceCacheCoherency}; off by default.
 * - Unmap stops at the first hole (the io-pgtable contract; Linux's
 *   domain_unmap() clears the whole range regardless). A 4K/2M unmap at the
 *   first address of a larger leaf unmaps the whole leaf and returns its size
 *   (intel_iommu_unmap() rounds `size` up to the leaf found by
 *   pfn_to_dma_pte()). An unmap starting inside a large leaf, not at its first
 *   address, unmaps nothing and returns 0 (Linux would recurse into the
 *   superpage's data as a table). A later leaf that the range only partly
 *   covers ends the unmap before it.
 * - Table freeing: after the leaves are cleared, every table whose whole IOVA
 *   span lies inside the unmapped range is freed and its directory entry
 *   cleared, with everything below it, as dma_pte_clear_level() does. Tables
 *   only partly covered stay, even if empty (so unmapping 4K pages one at a
 *   time frees nothing, as in Linux). The root table is never freed by an
 *   unmap; {@link VtdSlPgtable.free} frees everything (intel_iommu_domain_free()
 *   -> domain_unmap(0, max)).
 *
 * Numbers: IOVAs and physical addresses are numbers. Everything below 2^53 is
 * exact; 5-level IOVAs between 2^53 and 2^57 are exact only when page-aligned
 * (every multiple of 4 KiB below 2^65 is representable), so beyond 2^53 only
 * page-aligned IOVAs are meaningful (walk()/iovaToPhys() of such an IOVA
 * return the page's address). Indexes are `(iova * 2^-shift) & 511`, exact.
 * The table pool must stay below 4 GiB (word indexes use `>>> 2`).
 *
 * Linux: the second-level paging structures built by
 * drivers/iommu/intel/iommu.c (struct dma_pte, drivers/iommu/intel/iommu.h).
 */
import { IommuError, isIommuError } from '../base/errno.js';
import type { ErrnoName } from '../base/errno.js';
import type { PhysMem } from '../mem/phys-mem.js';
import { WALK_PGSIZE, WALK_PHYS } from './io-pgtable.js';
import type { IoPgtable, IoPgtableCfg } from './io-pgtable.js';

/** Read permission, bit 0 of every entry. Linux: DMA_PTE_READ, drivers/iommu/intel/iommu.h. */
export const DMA_PTE_READ = 1 << 0;
/** Write permission, bit 1 of every entry. Linux: DMA_PTE_WRITE, drivers/iommu/intel/iommu.h. */
export const DMA_PTE_WRITE = 1 << 1;
/** Page size (PS) bit 7: a level-2/3 entry is a 2 MiB/1 GiB leaf. Linux: DMA_PTE_LARGE_PAGE, drivers/iommu/intel/iommu.h. */
export const DMA_PTE_LARGE_PAGE = 1 << 7;
/** Snoop (SNP) bit 11 of a leaf: force snooping of the access. Linux: DMA_PTE_SNP, drivers/iommu/intel/iommu.h. */
export const DMA_PTE_SNP = 1 << 11;

const SZ_4K = 0x1000;
const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;
const TWO32 = 4294967296;
const INV_TWO32 = 2 ** -32;
const INV_4K = 2 ** -12;
const INV_2M = 2 ** -21;
const INV_1G = 2 ** -30;
/** 2^52: first physical address beyond oas. */
const MAX_PHYS = 2 ** 52;
const PS = DMA_PTE_LARGE_PAGE;
/** Mask of the address bits 51:32 in the high word. */
const HI_ADDR_MASK = 0xfffff;

/**
 * Page sizes a VT-d second-level table maps: 4 KiB, 2 MiB, 1 GiB.
 * Linux: domain->domain.pgsize_bitmap = SZ_4K | domain_super_pgsize_bitmap()
 * (paging_domain_alloc(), drivers/iommu/intel/iommu.c), with a 2-level
 * superpage capability (CAP.SLLPS = 2M and 1G) taken as present.
 */
export const VTD_SL_PGSIZE_BITMAP = SZ_4K | SZ_2M | SZ_1G;

/** Bytes mapped by one entry at level `l` (index 1..5). Linux: VTD_PAGE_SIZE << level_to_offset_bits(l). */
const LEVEL_SIZE = new Float64Array([0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48]);
/** 1 / LEVEL_SIZE[l] (exact: powers of two). */
const LEVEL_INV = new Float64Array([0, 2 ** -12, 2 ** -21, 2 ** -30, 2 ** -39, 2 ** -48]);

/** Options of {@link VtdSlPgtable}. */
export interface VtdSlOptions {
  /**
   * Paging levels: 4 (48-bit IOVA, AGAW 2) or 5 (57-bit IOVA, AGAW 3); default 4.
   * Linux: agaw_to_level(domain->agaw), ADDR_WIDTH_4LEVEL / ADDR_WIDTH_5LEVEL.
   */
  readonly levels?: number;
  /**
   * Start with snoop control enforced: every leaf gets DMA_PTE_SNP.
   * Linux: dmar_domain->set_pte_snp (set by intel_iommu_enforce_cache_coherency()).
   */
  readonly forceSnooping?: boolean;
}

/**
 * A VT-d second-level I/O page table in {@link PhysMem}.
 *
 * Implementation note: besides the tables, the object keeps a two-entry
 * software paging-structure cache — the level-1 table of the 2 MiB region and
 * the level-2 table of the 1 GiB region last walked — so nearby operations
 * skip the upper levels. Both are dropped whenever any table is freed, so they
 * never outlive what they point at and are invisible to callers.
 *
 * Linux: a second-level struct dmar_domain's page table (domain->pgd) and the
 * intel_iommu_ops domain ops map_pages/unmap_pages/iova_to_phys,
 * drivers/iommu/intel/iommu.c.
 */
export class VtdSlPgtable implements IoPgtable {
  /** The format name. */
  readonly format = 'vtd-sl' as const;
  /** pgsizeBitmap 4K|2M|1G, ias 48 or 57, oas 52, levels 4 or 5. Linux: domain->gaw, domain->agaw, pgsize_bitmap. */
  readonly cfg: IoPgtableCfg;
  /** The memory the tables live in. */
  readonly mem: PhysMem;
  /** Physical address of the top-level table (what the context/PASID entry's SLPTPTR points at). Linux: virt_to_phys(domain->pgd). */
  readonly root: number;
  /** The errno of the last failed {@link mapPages}, or null; cleared by each mapPages call. */
  error: ErrnoName | null = null;

  private snp: boolean;
  private mappedOnce = false;
  /** Word index of the root table in the pool, or -1 once freed. */
  private rootW: number;
  private readonly levels: number;
  private readonly poolBase: number;
  /** poolBase bits 63:32 and 31:12, to turn a table pointer into a word index with int32 arithmetic. */
  private readonly baseHi: number;
  private readonly basePage: number;
  /** 2^ias: first IOVA beyond the table. */
  private readonly limit: number;
  private readonly topInv: number;
  /** Walk cache: 2 MiB-region number floor(iova / 2M) whose level-1 table is at word c1W; NaN (equal to nothing) = empty. */
  private c1Key = NaN;
  private c1W = 0;
  /** Walk cache: 1 GiB-region number floor(iova / 1G) whose level-2 table is at word c2W; NaN = empty. */
  private c2Key = NaN;
  private c2W = 0;
  /** Level of the entry the last findLeaf() returned. */
  private leafLevel = 1;

  /**
   * Allocate the (empty) top-level table.
   * @throws IommuError EINVAL if `levels` is not 4 or 5 or the pool can exceed 4 GiB; ENOMEM if the pool is full.
   * Linux: paging_domain_alloc() ("always allocate the top pgd"), drivers/iommu/intel/iommu.c.
   */
  constructor(mem: PhysMem, opts: VtdSlOptions = {}) {
    const levels = opts.levels ?? 4;
    if (levels !== 4 && levels !== 5) throw new IommuError('EINVAL', `VT-d second-level tables have 4 or 5 levels, not ${String(levels)}`);
    if (mem.maxTablePages > 1 << 20) throw new IommuError('EINVAL', `the VT-d model needs a table pool of at most 4 GiB (${mem.maxTablePages} pages)`);
    const ias = levels === 4 ? 48 : 57;
    this.mem = mem;
    this.levels = levels;
    this.cfg = { pgsizeBitmap: VTD_SL_PGSIZE_BITMAP, ias, oas: 52, levels };
    this.poolBase = mem.poolBase;
    this.baseHi = Math.floor(mem.poolBase * INV_TWO32) | 0;
    this.basePage = (mem.poolBase - this.baseHi * TWO32) / SZ_4K;
    this.limit = 2 ** ias;
    this.topInv = LEVEL_INV[levels]!;
    this.snp = opts.forceSnooping ?? false;
    this.root = mem.allocTablePage();
    this.rootW = (this.root - this.poolBase) >>> 2;
  }

  /** True once DMA_PTE_SNP is set on every new leaf. Linux: dmar_domain->set_pte_snp. */
  get forceSnooping(): boolean {
    return this.snp;
  }

  /**
   * Enforce cache coherency: from now on every leaf gets DMA_PTE_SNP. Refused
   * (false) once the table has ever had a mapping, as existing leaves would
   * lack SNP; true if already enforced.
   * Linux: intel_iommu_enforce_cache_coherency() / domain_set_force_snooping()
   * for a second-level domain, drivers/iommu/intel/iommu.c.
   */
  enforceCacheCoherency(): boolean {
    if (this.snp) return true;
    if (this.mappedOnce) return false;
    this.snp = true;
    return true;
  }

  /**
   * Map `count` leaves of `pgsize` (4K, 2M or 1G) from `iova` to `paddr`.
   * Returns bytes mapped; on failure sets {@link error} (EINVAL, EEXIST, ENOMEM)
   * and returns the bytes mapped before the failure.
   * Linux: intel_iommu_map_pages() -> intel_iommu_map() -> __domain_mapping(),
   * drivers/iommu/intel/iommu.c.
   */
  mapPages(iova: number, paddr: number, pgsize: number, count: number, prot: number): number {
    // Fast path: one 4K page in the 2 MiB region whose level-1 table is cached.
    if (pgsize === SZ_4K && count === 1 && Math.floor(iova * INV_2M) === this.c1Key) {
      const ipfn = iova * INV_4K;
      const ppfn = paddr * INV_4K;
      if (ipfn === Math.floor(ipfn) && ppfn === Math.floor(ppfn) && ppfn >= 0 && paddr < MAX_PHYS && (prot & 3) !== 0) {
        const pool = this.mem.pool;
        const e = this.c1W + ((ipfn & 511) << 1);
        if ((pool[e]! & 3) === 0) {
          this.error = null;
          this.mappedOnce = true;
          const phi = Math.floor(paddr * INV_TWO32);
          pool[e] = (paddr - phi * TWO32) | (prot & 3) | (this.snp ? DMA_PTE_SNP : 0);
          pool[e + 1] = phi;
          return SZ_4K;
        }
      }
    }
    return this.mapRange(iova, paddr, pgsize, count, prot);
  }

  /** The general case of {@link mapPages}. Linux: intel_iommu_map(), __domain_mapping(). */
  private mapRange(iova: number, paddr: number, pgsize: number, count: number, prot: number): number {
    this.error = null;
    // __domain_mapping(): a mapping without read or write access is refused.
    if ((prot & (DMA_PTE_READ | DMA_PTE_WRITE)) === 0) {
      this.error = 'EINVAL';
      return 0;
    }
    let lvl: number;
    if (pgsize === SZ_4K) lvl = 1;
    else if (pgsize === SZ_2M) lvl = 2;
    else if (pgsize === SZ_1G) lvl = 3;
    else return this.fail('EINVAL', 0);
    if (count === 0) return 0;
    const inv = LEVEL_INV[lvl]!;
    const ipfn = iova * inv;
    const ppfn = paddr * inv;
    if (
      !(ipfn >= 0 && ppfn >= 0 && count > 0) ||
      ipfn !== Math.floor(ipfn) ||
      ppfn !== Math.floor(ppfn) ||
      count !== Math.floor(count) ||
      iova + pgsize * count > this.limit ||
      paddr + pgsize * count > MAX_PHYS ||
      this.rootW < 0
    ) {
      return this.fail('EINVAL', 0);
    }
    this.mappedOnce = true; // Linux: domain->has_mappings = true
    // Linux: attr = prot & (DMA_PTE_READ | DMA_PTE_WRITE | DMA_PTE_SNP); | DMA_PTE_LARGE_PAGE for a superpage.
    const attr = (prot & (DMA_PTE_READ | DMA_PTE_WRITE)) | (this.snp ? DMA_PTE_SNP : 0) | (lvl > 1 ? PS : 0);
    let phi = Math.floor(paddr * INV_TWO32);
    let plo = paddr - phi * TWO32;
    let addr = iova;
    let left = count;
    let mapped = 0;
    while (left > 0) {
      const w = this.tableFor(addr, lvl);
      if (w < 0) return this.fail(w === -1 ? 'ENOMEM' : 'EEXIST', mapped);
      const pool = this.mem.pool; // re-read: tableFor() may have grown the pool
      // Consecutive entries of this table, without re-walking.
      const idx = (addr * inv) & 511;
      let n = 512 - idx;
      if (n > left) n = left;
      let e = w + (idx << 1);
      for (let k = 0; k < n; k++, e += 2) {
        const lo = pool[e]!;
        if ((lo & 3) !== 0) {
          // Linux WARNs "DMA PTE for vPFN … already set" and keeps the old entry.
          if (lvl === 1 || (lo & PS) !== 0) return this.fail('EEXIST', mapped + k * pgsize);
          // A table where a superpage goes: switch_to_super_page() frees it.
          const child = this.childW(pool, e);
          if (this.hasLeaf(child, lvl - 1)) return this.fail('EEXIST', mapped + k * pgsize);
          this.freeTree(child, lvl - 1);
        }
        pool[e] = plo | attr;
        pool[e + 1] = phi;
        plo += pgsize;
        if (plo >= TWO32) {
          plo -= TWO32;
          phi++;
        }
      }
      left -= n;
      addr += n * pgsize;
      mapped += n * pgsize;
    }
    return mapped;
  }

  /**
   * Word index of the level-`lvl` table that holds the entry for `iova`,
   * allocating missing tables on the way down (directory entry = table | R | W);
   * -1 when the pool is full, -2 when a superpage is in the way.
   * Linux: pfn_to_dma_pte(domain, pfn, &target_level, gfp), drivers/iommu/intel/iommu.c.
   */
  private tableFor(iova: number, lvl: number): number {
    const k1 = Math.floor(iova * INV_2M);
    if (lvl === 1 && k1 === this.c1Key) return this.c1W;
    const k2 = Math.floor(iova * INV_1G);
    let pool = this.mem.pool;
    let w: number;
    let l: number;
    let inv: number;
    if (lvl <= 2 && k2 === this.c2Key) {
      w = this.c2W;
      l = 2;
      inv = INV_2M;
    } else {
      w = this.rootW;
      l = this.levels;
      inv = this.topInv;
    }
    for (; l > lvl; l--, inv *= 512) {
      const e = w + (((iova * inv) & 511) << 1);
      const lo = pool[e]!;
      if ((lo & 3) === 0) {
        const t = this.allocTable();
        if (t < 0) return -1;
        pool = this.mem.pool;
        const ta = this.poolBase + t * 4;
        const thi = Math.floor(ta * INV_TWO32);
        pool[e] = (ta - thi * TWO32) | (DMA_PTE_READ | DMA_PTE_WRITE);
        pool[e + 1] = thi;
        w = t;
      } else if ((lo & PS) !== 0) {
        return -2;
      } else {
        w = (((pool[e + 1]! - this.baseHi) << 20) + (lo >>> 12) - this.basePage) << 10;
      }
      if (l === 3) {
        this.c2Key = k2;
        this.c2W = w;
      } else if (l === 2) {
        this.c1Key = k1;
        this.c1W = w;
      }
    }
    return w;
  }

  /**
   * Unmap up to `count` leaves of `pgsize` from `iova`, stopping at the first
   * hole; returns the bytes unmapped. A range starting at a larger leaf
   * unmaps the whole leaf. Frees the tables the unmapped range covers entirely.
   * Linux: intel_iommu_unmap_pages() -> intel_iommu_unmap() -> domain_unmap()
   * -> dma_pte_clear_level(), drivers/iommu/intel/iommu.c.
   */
  unmapPages(iova: number, pgsize: number, count: number): number {
    // Fast path: one 4K page in the 2 MiB region whose level-1 table is cached.
    if (pgsize === SZ_4K && count === 1 && Math.floor(iova * INV_2M) === this.c1Key) {
      const ipfn = iova * INV_4K;
      if (ipfn === Math.floor(ipfn)) {
        const pool = this.mem.pool;
        const e = this.c1W + ((ipfn & 511) << 1);
        if ((pool[e]! & 3) === 0) return 0;
        pool[e] = 0;
        pool[e + 1] = 0;
        return SZ_4K;
      }
    }
    return this.unmapRange(iova, pgsize, count);
  }

  /** The general case of {@link unmapPages}. Linux: intel_iommu_unmap(), domain_unmap(). */
  private unmapRange(iova: number, pgsize: number, count: number): number {
    let inv: number;
    if (pgsize === SZ_4K) inv = INV_4K;
    else if (pgsize === SZ_2M) inv = INV_2M;
    else if (pgsize === SZ_1G) inv = INV_1G;
    else return 0;
    const ipfn = iova * inv;
    if (!(ipfn >= 0 && count > 0 && iova < this.limit) || ipfn !== Math.floor(ipfn) || count !== Math.floor(count)) return 0;
    let end = iova + pgsize * count;
    if (end > this.limit) end = this.limit;
    const pool = this.mem.pool;
    let addr = iova;
    outer: while (addr < end) {
      let e = this.findLeaf(addr);
      if (e < 0) break;
      let lo = pool[e]!;
      if ((lo & 3) === 0) break; // hole
      const l = this.leafLevel;
      const sz = LEVEL_SIZE[l]!;
      if (l > 1) {
        const first = addr * LEVEL_INV[l]!;
        if (first !== Math.floor(first)) break; // inside a large leaf (only possible at iova: returns 0)
        if (addr + sz > end) {
          // A leaf larger than what is left of the range.
          if (addr !== iova) break;
          pool[e] = 0; // intel_iommu_unmap(): size rounded up to the leaf
          pool[e + 1] = 0;
          return sz;
        }
      }
      // Clear consecutive leaves of the same size in this table.
      let idx = (addr * LEVEL_INV[l]!) & 511;
      for (;;) {
        pool[e] = 0;
        pool[e + 1] = 0;
        addr += sz;
        if (++idx === 512 || addr + sz > end) break;
        e += 2;
        lo = pool[e]!;
        if ((lo & 3) === 0) break outer;
        if (l > 1 && (lo & PS) === 0) break; // a table: walk down again
      }
    }
    const unmapped = addr - iova;
    if (unmapped >= SZ_2M) this.freeCovered(this.rootW, this.levels, 0, iova, addr);
    return unmapped;
  }

  /**
   * Physical address `iova` translates to, or 0 if unmapped or out of range.
   * Linux: intel_iommu_iova_to_phys(), drivers/iommu/intel/iommu.c.
   */
  iovaToPhys(iova: number): number {
    const e = this.findLeaf(iova);
    if (e < 0) return 0;
    const pool = this.mem.pool;
    const lo = pool[e]!;
    if ((lo & 3) === 0) return 0;
    const l = this.leafLevel;
    // dma_pte_addr(pte) + (iova & (level size - 1))
    return (pool[e + 1]! & HI_ADDR_MASK) * TWO32 + (lo >>> 12) * SZ_4K + (iova - Math.floor(iova * LEVEL_INV[l]!) * LEVEL_SIZE[l]!);
  }

  /**
   * Walk the tables for `iova` as the remapping hardware does. Returns the
   * leaf's access rights (R = IOMMU_READ, W = IOMMU_WRITE; directory entries
   * always carry R|W, so the AND over the levels is the leaf's) or -1 if not
   * present; writes the physical address and the leaf size to `out`.
   * Linux: second-level translation, VT-d specification section 3.7;
   * pgtable_walk() / dmar_fault_dump_ptes() follow the same path.
   */
  walk(iova: number, out: Float64Array): number {
    const e = this.findLeaf(iova);
    if (e < 0) return -1;
    const pool = this.mem.pool;
    const lo = pool[e]!;
    if ((lo & 3) === 0) return -1;
    const l = this.leafLevel;
    const sz = LEVEL_SIZE[l]!;
    out[WALK_PHYS] = (pool[e + 1]! & HI_ADDR_MASK) * TWO32 + (lo >>> 12) * SZ_4K + (iova - Math.floor(iova * LEVEL_INV[l]!) * sz);
    out[WALK_PGSIZE] = sz;
    return lo & (DMA_PTE_READ | DMA_PTE_WRITE); // same values as IOMMU_READ | IOMMU_WRITE
  }

  /**
   * Free every table page, the root included; the table is unusable afterwards
   * (maps fail with EINVAL, lookups find nothing). Idempotent.
   * Linux: intel_iommu_domain_free() -> domain_unmap(0, DOMAIN_MAX_PFN) ->
   * iommu_put_pages_list(), drivers/iommu/intel/iommu.c.
   */
  free(): void {
    if (this.rootW < 0) return;
    this.freeTree(this.rootW, this.levels);
    this.rootW = -1;
  }

  private fail(errno: ErrnoName, mapped: number): number {
    this.error = errno;
    return mapped;
  }

  /**
   * Word index of the entry that maps `iova` — a leaf, or at level 1 possibly
   * a non-present entry — with its level in leafLevel; -1 at a hole above
   * level 1 or out of range.
   * Linux: pfn_to_dma_pte(domain, pfn, &level = 0, …), drivers/iommu/intel/iommu.c.
   */
  private findLeaf(iova: number): number {
    const k1 = Math.floor(iova * INV_2M);
    if (k1 === this.c1Key) {
      this.leafLevel = 1;
      return this.c1W + (((iova * INV_4K) & 511) << 1);
    }
    const pool = this.mem.pool;
    const k2 = Math.floor(iova * INV_1G);
    let w: number;
    if (k2 === this.c2Key) {
      w = this.c2W;
    } else {
      if (!(iova >= 0 && iova < this.limit)) return -1;
      w = this.rootW;
      if (w < 0) return -1;
      let inv = this.topInv;
      for (let l = this.levels; l > 2; l--, inv *= 512) {
        const e = w + (((iova * inv) & 511) << 1);
        const lo = pool[e]!;
        if ((lo & 3) === 0) return -1;
        if ((lo & PS) !== 0) {
          this.leafLevel = l;
          return e;
        }
        w = (((pool[e + 1]! - this.baseHi) << 20) + (lo >>> 12) - this.basePage) << 10;
      }
      this.c2Key = k2;
      this.c2W = w;
    }
    const e = w + (((iova * INV_2M) & 511) << 1);
    const lo = pool[e]!;
    if ((lo & 3) === 0) return -1;
    if ((lo & PS) !== 0) {
      this.leafLevel = 2;
      return e;
    }
    w = (((pool[e + 1]! - this.baseHi) << 20) + (lo >>> 12) - this.basePage) << 10;
    this.c1Key = k1;
    this.c1W = w;
    this.leafLevel = 1;
    return w + (((iova * INV_4K) & 511) << 1);
  }

  /** Allocate a zeroed table; its word index, or -1 when the pool is full. */
  private allocTable(): number {
    try {
      return (this.mem.allocTablePage() - this.poolBase) >>> 2;
    } catch (e) {
      if (isIommuError(e, 'ENOMEM')) return -1;
      throw e;
    }
  }

  /** Word index of the table the directory entry at word `e` points to. */
  private childW(pool: Uint32Array, e: number): number {
    return (((pool[e + 1]! - this.baseHi) << 20) + (pool[e]! >>> 12) - this.basePage) << 10;
  }

  /** True if the level-`l` table at word `w` or any table below it holds a present leaf. */
  private hasLeaf(w: number, l: number): boolean {
    const pool = this.mem.pool;
    for (let e = w; e < w + 1024; e += 2) {
      const lo = pool[e]!;
      if ((lo & 3) === 0) continue;
      if (l === 1 || (lo & PS) !== 0 || this.hasLeaf(this.childW(pool, e), l - 1)) return true;
    }
    return false;
  }

  /** Free the level-`l` table at word `w` and every table below it. Linux: dma_pte_list_pagetables(). */
  private freeTree(w: number, l: number): void {
    this.c1Key = NaN;
    this.c2Key = NaN;
    if (l > 1) {
      const pool = this.mem.pool;
      for (let e = w; e < w + 1024; e += 2) {
        const lo = pool[e]!;
        if ((lo & 3) !== 0 && (lo & PS) === 0) this.freeTree(this.childW(pool, e), l - 1);
      }
    }
    this.mem.freeTablePage(this.poolBase + w * 4);
  }

  /**
   * Free the tables below the level-`l` table at word `w` (whose first entry
   * maps IOVA `base`) whose whole span lies in [start, end), clearing their
   * directory entries. The leaves in the range are already clear.
   * Linux: dma_pte_clear_level(), drivers/iommu/intel/iommu.c.
   */
  private freeCovered(w: number, l: number, base: number, start: number, end: number): void {
    const sz = LEVEL_SIZE[l]!;
    const pool = this.mem.pool;
    let i = start > base ? Math.floor((start - base) * LEVEL_INV[l]!) : 0;
    for (let eBase = base + i * sz; i < 512 && eBase < end; i++, eBase += sz) {
      const e = w + (i << 1);
      const lo = pool[e]!;
      if ((lo & 3) === 0 || l === 1 || (lo & PS) !== 0) continue;
      const child = this.childW(pool, e);
      if (start <= eBase && eBase + sz <= end) {
        this.freeTree(child, l - 1);
        pool[e] = 0;
        pool[e + 1] = 0;
      } else if (l > 2) {
        this.freeCovered(child, l - 1, eBase, start, end);
      }
    }
  }
}
