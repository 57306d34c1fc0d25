/**
 * Arm LPAE (VMSAv8-64 long-descriptor) stage-1 I/O page table: 4 KiB granule,
 * 48-bit input (4 levels of 9 bits, walk starting at level 0), 48-bit output,
 * page sizes 4 KiB | 2 MiB | 1 GiB — the format SMMUv2/SMMUv3 stage-1 domains
 * use, with the descriptor bits Linux writes.
 *
 * Ground truth: Linux drivers/iommu/io-pgtable-arm.c, late-2025 mainline
 * (v6.18+: iommu_alloc_pages_node_sz(), IO_PGTABLE_QUIRK_NO_WARN,
 * iommu_pages_start_incoherent(), the selftests split out into
 * io-pgtable-arm-selftests.c), read from torvalds/linux-tracking copies:
 * intel-lab-lkp/linux @ 02c1ef03510368acb3690b8f62350e77408decee (ignoring the
 * unmerged CONFIG_IOMMU_IO_PGTABLE_CONTIG_HINT patch on top of it) and
 * kangharison/linux-study; i.e. after 33729a5fc0ca "iommu/io-pgtable-arm:
 * Remove split on unmap behavior" (v6.13) and 6093cd582f8e "iommu: Do not
 * return 0 from map_pages if it doesn't do anything" (v6.11). Descriptor
 * formats: Arm ARM (DDI 0487) D8.3 "Translation table descriptor formats".
 *
 * Descriptors (64-bit, little-endian, stored as two u32 words in
 * {@link PhysMem.pool}: `lo` = bits 31:0 at the even word, `hi` = bits 63:32):
 * - table (levels 0–2): `0b11` | next-level table address[47:12]. NSTABLE
 *   (bit 63) is set only with IO_PGTABLE_QUIRK_ARM_NS, which this model never
 *   sets; APTable/XNTable/PXNTable stay 0. The cfg is coherent
 *   (`coherent_walk = true`, the default for coherent SMMUs), so
 *   arm_lpae_install_table() never adds the software ARM_LPAE_PTE_SW_SYNC bit
 *   (bit 55) either: a table descriptor is exactly `table_pa | 3`.
 * - block (levels 1–2, 1 GiB / 2 MiB): `0b01` | attributes | OA[47:30 / 47:21].
 * - page (level 3): `0b11` | attributes | OA[47:12].
 * Attributes, from arm_lpae_prot_to_pte() for ARM_64_LPAE_S1 (no quirks):
 * - nG (bit 11) and AF (bit 10) always;
 * - SH[1:0] (bits 9:8) = 0b11 inner-shareable when IOMMU_CACHE, else 0b10
 *   outer-shareable. (Mainline keys SH on IOMMU_CACHE, not on the cfg; v4.x
 *   set SH_IS on every leaf in __arm_lpae_init_pte(). The DMA layer passes
 *   IOMMU_CACHE for coherent devices — dma_info_to_prot() — so "coherent ⇒
 *   inner-shareable" still holds end to end.)
 * - AP[2] RDONLY (bit 7) when READ without WRITE; AP[1] UNPRIV (bit 6) unless
 *   IOMMU_PRIV. Write-only is not expressible at stage 1: it maps read/write.
 * - AttrIndx[2:0] (bits 4:2): 2 = device (IOMMU_MMIO), else 1 = cacheable
 *   (IOMMU_CACHE), else 0 = non-cacheable (MAIR 0x44/0xff/0x04 at 0/1/2).
 * - XN (ARM_LPAE_PTE_XN = 3 << 53: PXN bit 53 and UXN/XN bit 54) for IOMMU_NOEXEC.
 * - NS (bit 5) and DBM (bit 51) need quirks this model does not set.
 *
 * Behaviour, as Linux:
 * - mapPages: arm_lpae_map_pages() + __arm_lpae_map(): tables are allocated
 *   on demand; one "call" fills entries up to the end of the current table
 *   (arm_lpae_max_entries()) and {@link ArmLpaeS1Pgtable.mapPages} repeats that
 *   as __iommu_map() does. Per call, arm_lpae_init_pte() first checks every
 *   target entry: an existing leaf → EEXIST (WARN + -EEXIST) with nothing
 *   written by that call; an existing *table* at the leaf level (e.g. a 2 MiB
 *   map over a level-3 table) is unmapped and freed, with whatever it mapped,
 *   and replaced by the block. A leaf on the way down → EEXIST.
 * - unmapPages: arm_lpae_unmap_pages() + __arm_lpae_unmap(): stops at the
 *   first empty entry; an entry at the unmap level that is a table (a 2 MiB or
 *   1 GiB unmap over smaller mappings) is cleared and the whole sub-tree freed
 *   (__arm_lpae_free_pgtable()). Intermediate tables emptied by 4 KiB unmaps
 *   stay allocated, as in Linux (only free() or a covering unmap frees them).
 * - PARTIAL unmap of a block (a 4 KiB unmap inside a 2 MiB/1 GiB block, or
 *   2 MiB inside 1 GiB): mainline since 33729a5fc0ca no longer splits the
 *   block (arm_lpae_split_blk_unmap() is gone); __arm_lpae_unmap() does
 *   WARN_ONCE("Unmap of a partial large IOPTE is not allowed") and returns 0.
 *   This model does the same: the block stays mapped, 0 bytes are unmapped
 *   (with count > 1 the bytes of earlier tables are still returned).
 * - iovaToPhys: arm_lpae_iova_to_phys(): leaf address | (iova & (block - 1)).
 *   Like Linux it does not check the IAS (the level-0 index is masked), so an
 *   IOVA ≥ 2^48 aliases; walk() is the hardware view and faults there.
 * - free: arm_lpae_free_pgtable(): every table page, root included.
 *
 * Deviations, all forced by the shared {@link IoPgtable} contract:
 * - IOVA ≥ 2^ias or paddr ≥ 2^oas: Linux returns -ERANGE; the model's errno
 *   set has no ERANGE and the contract says EINVAL.
 * - prot without READ|WRITE: Linux (since 6093cd582f8e, v6.11) returns
 *   -EINVAL; the contract (as Linux ≤ v6.10 did) maps nothing, returns 0 and
 *   sets no error. The check sits after the size/range checks, as it did then.
 * - iova/paddr not aligned to pgsize → EINVAL: the check iommu_map() makes
 *   (IS_ALIGNED(iova | paddr | size, min_pagesz)) and iommu_pgsize() implies.
 *   unmapPages likewise returns 0 for an unaligned IOVA.
 *
 * Performance: no allocation, BigInt, closure or exception on the success
 * paths of mapPages/unmapPages/iovaToPhys/walk. Level indexes are computed on
 * doubles (`(iova * 2^-shift) & 511`: exact scaling, ToInt32 truncates), and
 * table descriptors are followed with 32-bit arithmetic on the low word: the
 * pool is < 4 GiB, so `(table_pa − poolBase) mod 2^32` is the exact byte
 * offset. Table descriptors are only ever written by this class and always
 * point into the pool. map/unmap of a single 4K page first try a one-entry
 * software walk cache (the level-3 table of the 2 MiB region last walked),
 * which is dropped whenever any table is freed — the only way a level-3 table
 * stops being reachable — so a hit finds exactly what a walk from the root
 * would. iovaToPhys and walk likewise start from the cached level-2 table of
 * the 1 GiB region last looked up (an SMMU walk cache), dropped the same way;
 * so a level-0/1 descriptor rewritten behind the model's back (not through
 * this class) is only seen once some table is freed, as a hardware walk cache
 * needs an invalidation. The hot entry points are kept small enough for V8 to
 * inline them into callers (a call that is not inlined boxes its double
 * arguments).
 *
 * Linux: struct arm_lpae_io_pgtable, arm_64_lpae_alloc_pgtable_s1(),
 * drivers/iommu/io-pgtable-arm.c.
 */
import { IommuError, type ErrnoName } from '../base/errno.js';
import { PAGE_SIZE, type PhysMem } from '../mem/phys-mem.js';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  WALK_PGSIZE,
  WALK_PHYS,
  type IoPgtable,
  type IoPgtableCfg,
} from './io-pgtable.js';

const TWO32 = 4294967296;
/** 1 << ias = 1 << oas. */
const ADDR_LIMIT = 281474976710656; // 2^48
const SZ_4K = 0x1000;
const SZ_2M = 0x200000;
const SZ_1G = 0x40000000;
/** 2^-ARM_LPAE_LVL_SHIFT(0): multiply an IOVA by this to get the level-0 index bits. */
const INV_L0 = 1 / 549755813888; // 2^-39
const INV_L1 = 1 / 1073741824; // 2^-30
const INV_L2 = 1 / 2097152; // 2^-21
const INV_L3 = 1 / 4096; // 2^-12

// Low word (bits 31:0).
const PTE_TYPE_MASK = 0x3; // ARM_LPAE_PTE_TYPE_MASK
const PTE_TYPE_BLOCK = 0x1; // ARM_LPAE_PTE_TYPE_BLOCK
const PTE_TYPE_TABLE = 0x3; // ARM_LPAE_PTE_TYPE_TABLE
const PTE_TYPE_PAGE = 0x3; // ARM_LPAE_PTE_TYPE_PAGE
const PTE_AP_UNPRIV = 1 << 6; // ARM_LPAE_PTE_AP_UNPRIV
const PTE_AP_RDONLY = 1 << 7; // ARM_LPAE_PTE_AP_RDONLY
const PTE_SH_OS = 2 << 8; // ARM_LPAE_PTE_SH_OS
const PTE_SH_IS = 3 << 8; // ARM_LPAE_PTE_SH_IS
const PTE_AF = 1 << 10; // ARM_LPAE_PTE_AF
const PTE_NG = 1 << 11; // ARM_LPAE_PTE_nG
const ATTRINDX_SHIFT = 2; // ARM_LPAE_PTE_ATTRINDX_SHIFT
const MAIR_ATTR_IDX_CACHE = 1; // ARM_LPAE_MAIR_ATTR_IDX_CACHE
const MAIR_ATTR_IDX_DEV = 2; // ARM_LPAE_MAIR_ATTR_IDX_DEV
const PTE_LO_ADDR = 0xfffff000 | 0; // ARM_LPAE_PTE_ADDR_MASK bits 31:12 (as int32)
// High word (bit n of the descriptor is bit n-32 here).
const PTE_HI_XN = 3 << 21; // ARM_LPAE_PTE_XN = 3 << 53
const PTE_HI_ADDR = 0xffff; // ARM_LPAE_PTE_ADDR_MASK bits 47:32
const PTE_HI_APTABLE_RO = 1 << 30; // APTable[1] (bit 62) of a table descriptor: no write below (Arm ARM); Linux never sets it
const INV_TWO32 = 1 / TWO32;

/**
 * arm_lpae_prot_to_pte() for ARM_64_LPAE_S1 without quirks, low word, for
 * every combination of the six IOMMU_* bits (index = prot & 63), with
 * __arm_lpae_init_pte()'s page type (0b11) already in; a block's low word is
 * this XOR 0b10. Only meaningful for a prot with READ or WRITE.
 */
const PROT_LO = new Int32Array(64);
/** The high word of the same: ARM_LPAE_PTE_XN for IOMMU_NOEXEC. */
const PROT_HI = new Int32Array(64);
for (let prot = 0; prot < 64; prot++) {
  let lo = PTE_NG | PTE_AF | PTE_TYPE_PAGE;
  if ((prot & IOMMU_WRITE) === 0 && (prot & IOMMU_READ) !== 0) lo |= PTE_AP_RDONLY;
  if ((prot & IOMMU_PRIV) === 0) lo |= PTE_AP_UNPRIV;
  if ((prot & IOMMU_MMIO) !== 0) lo |= MAIR_ATTR_IDX_DEV << ATTRINDX_SHIFT;
  else if ((prot & IOMMU_CACHE) !== 0) lo |= MAIR_ATTR_IDX_CACHE << ATTRINDX_SHIFT;
  lo |= (prot & IOMMU_CACHE) !== 0 ? PTE_SH_IS : PTE_SH_OS;
  PROT_LO[prot] = lo;
  PROT_HI[prot] = (prot & IOMMU_NOEXEC) !== 0 ? PTE_HI_XN : 0;
}

/**
 * Configuration of an {@link ArmLpaeS1Pgtable}.
 * Linux: struct io_pgtable_cfg as arm_64_lpae_alloc_pgtable_s1() leaves it
 * for a 4K-granule, 48-bit, coherent SMMU stage-1 domain.
 */
export interface ArmLpaeS1Cfg extends IoPgtableCfg {
  /** Page-table walks are cache-coherent: no DMA syncs, no SW_SYNC bit. Linux: io_pgtable_cfg.coherent_walk. */
  readonly coherentWalk: true;
  /** No IO_PGTABLE_QUIRK_* (no NS/NSTABLE, no DBM, no TTBR1). Linux: io_pgtable_cfg.quirks. */
  readonly quirks: 0;
}

/** The level whose leaves are `pgsize` bytes (1: 1G, 2: 2M, 3: 4K), or -1 for an unsupported size. */
function leafLevel(pgsize: number): number {
  return pgsize === SZ_4K ? 3 : pgsize === SZ_2M ? 2 : pgsize === SZ_1G ? 1 : -1;
}

/** 1 / (leaf size) per level. */
const LEVEL_INV = [0, INV_L1, INV_L2, INV_L3];

/**
 * An Arm LPAE stage-1 I/O page table (4 KiB granule, 48-bit IAS/OAS, 4 levels)
 * in simulated physical memory. See the module documentation for the exact
 * descriptor layout and the Linux revision it follows.
 *
 * Linux: ARM_64_LPAE_S1 io_pgtable_ops — arm_lpae_map_pages(),
 * arm_lpae_unmap_pages(), arm_lpae_iova_to_phys(), arm_lpae_free_pgtable(),
 * drivers/iommu/io-pgtable-arm.c.
 */
export class ArmLpaeS1Pgtable implements IoPgtable {
  /** Always `'arm-lpae-s1'`. Linux: enum io_pgtable_fmt ARM_64_LPAE_S1. */
  readonly format = 'arm-lpae-s1' as const;
  /** 4K|2M|1G, ias = oas = 48, 4 levels, coherent walk, no quirks. Linux: io_pgtable.cfg. */
  readonly cfg: ArmLpaeS1Cfg = {
    pgsizeBitmap: SZ_4K | SZ_2M | SZ_1G,
    ias: 48,
    oas: 48,
    levels: 4,
    coherentWalk: true,
    quirks: 0,
  };
  /** The memory holding the tables. */
  readonly mem: PhysMem;
  /** Physical address of the level-0 table (what TTBR0 would hold). Linux: arm_lpae_io_pgtable.pgd. */
  readonly root: number;
  /** Errno of the last failed {@link mapPages}, or null; cleared by every mapPages call. */
  error: ErrnoName | null = null;

  /** Word index of the root table in `mem.pool`. */
  private readonly rootWord: number;
  /** `poolBase mod 2^32` as int32: table descriptor → pool word is `((lo & ~0xfff) − baseLo) >>> 2`. */
  private readonly baseLo: number;
  private freed = false;
  /**
   * Software walk cache for map/unmap: the 2 MiB region number (iova / 2^21)
   * whose level-3 table was walked last, or NaN (matches nothing, not even a
   * negative IOVA's region), and that table's pool word.
   * Dropped whenever a table is freed (the only way a level-3 table stops
   * being reachable), so a hit is exactly what a walk from the root finds.
   */
  private c3Key = NaN;
  private c3W = 0;
  /**
   * Walk cache for lookups (iovaToPhys/walk): the 1 GiB region number
   * (iova / 2^30) whose level-2 table was found last, or NaN; that table's
   * pool word; the OR of the high words of the two table descriptors above it
   * (for APTable). Dropped with {@link c3Key} whenever a table is freed.
   */
  private c2Key = NaN;
  private c2W = 0;
  private c2Hi = 0;
  /** Set by {@link findLeaf}: the leaf's size in bytes. */
  private leafSize = SZ_4K;
  /** Set by {@link findLeaf}: the OR of the high words of the table descriptors above the leaf. */
  private leafTableHi = 0;

  /**
   * Allocate the level-0 table.
   * @throws IommuError ENOMEM if the table pool is full; EINVAL if the pool
   *   does not lie below 2^48 (the OAS) or could exceed 4 GiB.
   * Linux: arm_64_lpae_alloc_pgtable_s1() / arm_lpae_alloc_pgtable().
   */
  constructor(mem: PhysMem) {
    if (mem.poolBase + mem.maxTablePages * PAGE_SIZE > ADDR_LIMIT || mem.maxTablePages * PAGE_SIZE > TWO32) {
      throw new IommuError('EINVAL', `table pool 0x${mem.poolBase.toString(16)} (+${mem.maxTablePages} pages) must lie below 2^48 and span at most 4 GiB`);
    }
    this.mem = mem;
    this.root = mem.allocTablePage();
    this.rootWord = (this.root - mem.poolBase) >>> 2;
    this.baseLo = mem.poolBase | 0;
  }

  /**
   * Map `count` pages of `pgsize` (4K, 2M or 1G) from `iova` to `paddr`.
   * Returns the bytes mapped; on failure sets {@link error} (EINVAL, EEXIST,
   * ENOMEM) and returns the bytes of the table-sized chunks completed before.
   * Linux: arm_lpae_map_pages() / __arm_lpae_map() / arm_lpae_init_pte(),
   * drivers/iommu/io-pgtable-arm.c, looped as __iommu_map() does.
   */
  mapPages(iova: number, paddr: number, pgsize: number, count: number, prot: number): number {
    // Fast path: one 4K page in the 2 MiB region whose level-3 table is cached.
    if (pgsize === SZ_4K && count === 1 && Math.floor(iova * INV_L2) === this.c3Key && (prot & (IOMMU_READ | IOMMU_WRITE)) !== 0) {
      const ipfn = iova * INV_L3;
      const ppfn = paddr * INV_L3;
      if (ipfn === Math.floor(ipfn) && ppfn === Math.floor(ppfn) && paddr >= 0 && paddr < ADDR_LIMIT) {
        const pool = this.mem.pool;
        const e = this.c3W + ((ipfn & 511) << 1);
        if ((pool[e]! & PTE_TYPE_MASK) !== PTE_TYPE_PAGE) {
          this.error = null;
          pool[e] = PROT_LO[prot & 63]! | (paddr >>> 0);
          pool[e + 1] = PROT_HI[prot & 63]! | (paddr * INV_TWO32);
          return SZ_4K;
        }
      }
    }
    return this.mapSlow(iova, paddr, pgsize, count, prot);
  }

  /** mapPages() without the cached fast path. */
  private mapSlow(iova: number, paddr: number, pgsize: number, count: number, prot: number): number {
    this.error = null;
    const lvl = leafLevel(pgsize);
    if (lvl < 0) {
      this.error = 'EINVAL'; // WARN_ON(!pgsize || (pgsize & cfg->pgsize_bitmap) != pgsize)
      return 0;
    }
    const inv = LEVEL_INV[lvl]!; // 1 / pgsize
    if (
      this.freed ||
      !(iova >= 0 && paddr >= 0 && count >= 0) ||
      Math.floor(iova * inv) !== iova * inv ||
      Math.floor(paddr * inv) !== paddr * inv ||
      Math.floor(count) !== count ||
      iova >= ADDR_LIMIT || // Linux: -ERANGE
      paddr >= ADDR_LIMIT // Linux: -ERANGE
    ) {
      this.error = 'EINVAL';
      return 0;
    }
    // arm_lpae_map_pages(): no access is -EINVAL (since v6.11; earlier kernels silently mapped nothing).
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
      this.error = 'EINVAL';
      return 0;
    }

    // arm_lpae_prot_to_pte() (ARM_64_LPAE_S1, no quirks) + __arm_lpae_init_pte() type.
    const attrLo = lvl === 3 ? PROT_LO[prot & 63]! : PROT_LO[prot & 63]! ^ (PTE_TYPE_PAGE ^ PTE_TYPE_BLOCK);
    const attrHi = PROT_HI[prot & 63]!;
    const leafType = lvl === 3 ? PTE_TYPE_PAGE : PTE_TYPE_BLOCK;

    const mem = this.mem;
    const baseLo = this.baseLo;
    let mapped = 0;
    let remaining = count;
    while (remaining > 0) {
      // Each map_pages call re-checks its range (__iommu_map's loop).
      if (iova >= ADDR_LIMIT || paddr >= ADDR_LIMIT) {
        this.error = 'EINVAL';
        return mapped;
      }
      let pool = mem.pool;
      let t = this.rootWord;
      let m = INV_L0;
      // __arm_lpae_map(): walk down to the leaf level, allocating tables.
      for (let l = 0; l < lvl; l++) {
        const w = t + (((iova * m) & 511) << 1);
        const lo = pool[w]!;
        const hi = pool[w + 1]!;
        if ((lo | hi) === 0) {
          if (mem.tablePagesInUse >= mem.maxTablePages) {
            this.error = 'ENOMEM';
            return mapped;
          }
          const a = mem.allocTablePage();
          pool = mem.pool; // may have grown
          pool[w] = (a >>> 0) | PTE_TYPE_TABLE; // arm_lpae_install_table(): paddr_to_iopte(table) | TYPE_TABLE
          pool[w + 1] = (a * INV_TWO32) >>> 0;
          t = ((a >>> 0) - baseLo) >>> 2;
        } else if ((lo & PTE_TYPE_MASK) === PTE_TYPE_BLOCK) {
          this.error = 'EEXIST'; // leaf on the way: "We require an unmap first"
          return mapped;
        } else {
          t = ((lo & PTE_LO_ADDR) - baseLo) >>> 2; // iopte_deref()
        }
        m *= 512;
      }
      if (lvl === 3) {
        this.c3Key = Math.floor(iova * INV_L2);
        this.c3W = t;
      }
      // m === inv: the leaf level's index.
      const idx = (iova * inv) & 511;
      let n = 512 - idx; // arm_lpae_max_entries()
      if (n > remaining) n = remaining;
      const w0 = t + (idx << 1);
      // arm_lpae_init_pte(): every target entry must be free (or a table, which is replaced).
      for (let i = 0, w = w0; i < n; i++, w += 2) {
        const type = pool[w]! & PTE_TYPE_MASK;
        if (type === leafType) {
          this.error = 'EEXIST';
          return mapped;
        }
        if (lvl < 3 && type === PTE_TYPE_TABLE) {
          // __arm_lpae_unmap(data, NULL, iova + i * sz, sz, 1, lvl, tblp): clear + free the sub-tree.
          const sub = ((pool[w]! & PTE_LO_ADDR) - baseLo) >>> 2;
          pool[w] = 0;
          pool[w + 1] = 0;
          this.freeTable(sub, lvl + 1);
        }
      }
      // __arm_lpae_init_pte(): write the entries.
      let p = paddr;
      for (let i = 0, w = w0; i < n; i++, w += 2, p += pgsize) {
        pool[w] = attrLo | (p >>> 0);
        pool[w + 1] = attrHi | (p * INV_TWO32);
      }
      const bytes = n * pgsize;
      mapped += bytes;
      remaining -= n;
      iova += bytes;
      paddr += bytes;
    }
    return mapped;
  }

  /**
   * Unmap up to `count` pages of `pgsize` from `iova`; returns the bytes
   * unmapped, stopping at the first empty entry, and 0 for a partial unmap of
   * a larger block (mainline: no block splitting). Invalid sizes, unaligned
   * or out-of-range IOVAs unmap nothing.
   * Linux: arm_lpae_unmap_pages() / __arm_lpae_unmap(),
   * drivers/iommu/io-pgtable-arm.c, looped as __iommu_unmap() does.
   */
  unmapPages(iova: number, pgsize: number, count: number): number {
    // Fast path: one 4K page in the 2 MiB region whose level-3 table is cached.
    if (pgsize === SZ_4K && count === 1 && Math.floor(iova * INV_L2) === this.c3Key) {
      const ipfn = iova * INV_L3;
      if (ipfn === Math.floor(ipfn)) {
        const pool = this.mem.pool;
        const e = this.c3W + ((ipfn & 511) << 1);
        if ((pool[e]! | pool[e + 1]!) === 0) return 0;
        pool[e] = 0;
        pool[e + 1] = 0;
        return SZ_4K;
      }
    }
    return this.unmapSlow(iova, pgsize, count);
  }

  /** unmapPages() without the cached fast path. */
  private unmapSlow(iova: number, pgsize: number, count: number): number {
    const lvl = leafLevel(pgsize);
    if (lvl < 0) return 0;
    const inv = LEVEL_INV[lvl]!;
    if (this.freed || !(iova >= 0 && count >= 1) || iova >= ADDR_LIMIT || Math.floor(iova * inv) !== iova * inv || Math.floor(count) !== count) {
      return 0;
    }
    const mem = this.mem;
    const baseLo = this.baseLo;
    let unmapped = 0;
    let remaining = count;
    for (;;) {
      const pool = mem.pool;
      let t = this.rootWord;
      let m = INV_L0;
      for (let l = 0; l < lvl; l++) {
        const w = t + (((iova * m) & 511) << 1);
        const lo = pool[w]!;
        if ((lo | pool[w + 1]!) === 0) return unmapped; // WARN_ON(!pte): nothing mapped here
        if ((lo & PTE_TYPE_MASK) === PTE_TYPE_BLOCK) return unmapped; // "Unmap of a partial large IOPTE is not allowed"
        t = ((lo & PTE_LO_ADDR) - baseLo) >>> 2; // "Keep on walkin'"
        m *= 512;
      }
      if (lvl === 3) {
        this.c3Key = Math.floor(iova * INV_L2);
        this.c3W = t;
      }
      const idx = (iova * inv) & 511;
      let n = 512 - idx;
      if (n > remaining) n = remaining;
      let w = t + (idx << 1);
      let i = 0;
      for (; i < n; i++, w += 2) {
        const lo = pool[w]!;
        if ((lo | pool[w + 1]!) === 0) break;
        pool[w] = 0;
        pool[w + 1] = 0;
        if (lvl < 3 && (lo & PTE_TYPE_MASK) === PTE_TYPE_TABLE) {
          // !iopte_leaf(): clear, flush partial walks, __arm_lpae_free_pgtable(lvl + 1).
          this.freeTable(((lo & PTE_LO_ADDR) - baseLo) >>> 2, lvl + 1);
        }
      }
      const bytes = i * pgsize;
      unmapped += bytes;
      if (i < n) return unmapped;
      remaining -= n;
      if (remaining === 0) return unmapped;
      iova += bytes;
      if (iova >= ADDR_LIMIT) return unmapped;
    }
  }

  /**
   * The physical address `iova` maps to, or 0.
   * Linux: arm_lpae_iova_to_phys() (via __arm_lpae_iopte_walk()): the leaf's
   * address | (iova & (block size − 1)), drivers/iommu/io-pgtable-arm.c.
   */
  iovaToPhys(iova: number): number {
    const w = this.findLeaf(iova);
    if (w < 0) return 0;
    const pool = this.mem.pool;
    return (pool[w + 1]! & PTE_HI_ADDR) * TWO32 + (((pool[w]! & PTE_LO_ADDR) | (iova & (this.leafSize - 1))) >>> 0);
  }

  /**
   * Walk the tables for `iova` as an SMMU stage-1 walker would: IOVAs ≥ 2^48
   * fault; level 0 must hold a table, levels 1–2 a table or block, level 3 a
   * page. Returns IOMMU_READ, plus IOMMU_WRITE unless AP[2] (RDONLY) or a
   * table's APTable[1] forbids writes; -1 if not mapped. Writes the output
   * address (OA[47:n] from the descriptor, IA[n-1:0] from the IOVA) to
   * `out[WALK_PHYS]` and the leaf size to `out[WALK_PGSIZE]`. Access-flag and
   * privilege (AP[1]) checks are not modelled.
   * Linux: the hardware side of io-pgtable-arm.c; Arm ARM D8 (VMSAv8-64 translation table walk).
   */
  walk(iova: number, out: Float64Array): number {
    if (!(iova >= 0 && iova < ADDR_LIMIT)) return -1;
    const w = this.findLeaf(iova);
    if (w < 0) return -1;
    const pool = this.mem.pool;
    const lo = pool[w]!;
    const mask = this.leafSize - 1;
    out[WALK_PHYS] = (pool[w + 1]! & PTE_HI_ADDR) * TWO32 + (((lo & PTE_LO_ADDR & ~mask) | (iova & mask)) >>> 0);
    out[WALK_PGSIZE] = this.leafSize;
    return (lo & PTE_AP_RDONLY) !== 0 || (this.leafTableHi & PTE_HI_APTABLE_RO) !== 0 ? IOMMU_READ : IOMMU_READ | IOMMU_WRITE;
  }

  /**
   * The pool word of the leaf descriptor for `iova` — a level-1/2 block or a
   * level-3 page — or -1; sets {@link leafSize} and {@link leafTableHi}.
   * Starts from the cached level-2 table of the IOVA's 1 GiB region when
   * there is one, else from the root. Indexes are masked as
   * ARM_LPAE_LVL_IDX() does (no IAS check). A level-0
   * "block" is invalid with the 4K granule (Linux's iopte_leaf() would accept
   * one; the model never writes one), a level-3 0b01 is reserved.
   * Linux: __arm_lpae_iopte_walk() / io_pgtable_visit().
   */
  private findLeaf(iova: number): number {
    if (!(iova >= 0)) return -1;
    const pool = this.mem.pool;
    const k2 = Math.floor(iova * INV_L1);
    let w = this.c2W;
    if (k2 !== this.c2Key) {
      w = this.lookupLevel2(iova, k2);
      if (w < 0) return w === -1 ? -1 : -2 - w; // -2 - w: a 1G block at word w
    }
    let tableHi = this.c2Hi;
    // Level 2: a 2M block or a table.
    w += ((iova * INV_L2) & 511) << 1;
    let lo = pool[w]!;
    let size = SZ_2M;
    if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_BLOCK) {
      if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) return -1;
      tableHi |= pool[w + 1]!;
      // Level 3: a page (0b01 is reserved here).
      w = (((lo & PTE_LO_ADDR) - this.baseLo) >>> 2) + (((iova * INV_L3) & 511) << 1);
      lo = pool[w]!;
      if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_PAGE) return -1;
      size = SZ_4K;
    }
    this.leafSize = size;
    this.leafTableHi = tableHi;
    return w;
  }

  /**
   * The slow half of {@link findLeaf}: walk levels 0–1 from the root. Returns
   * the level-2 table's pool word (and caches it for the 1 GiB region `k2`),
   * -1 if nothing is mapped, or `-2 - w` for a 1 GiB block at pool word `w`
   * (with {@link leafSize} and {@link leafTableHi} set).
   */
  private lookupLevel2(iova: number, k2: number): number {
    const pool = this.mem.pool;
    let w = this.rootWord + (((iova * INV_L0) & 511) << 1);
    let lo = pool[w]!;
    if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) return -1; // level 0: tables only
    let tableHi = pool[w + 1]!;
    w = (((lo & PTE_LO_ADDR) - this.baseLo) >>> 2) + (((iova * INV_L1) & 511) << 1);
    lo = pool[w]!;
    if ((lo & PTE_TYPE_MASK) === PTE_TYPE_BLOCK) {
      this.leafSize = SZ_1G;
      this.leafTableHi = tableHi;
      return -2 - w;
    }
    if ((lo & PTE_TYPE_MASK) !== PTE_TYPE_TABLE) return -1;
    tableHi |= pool[w + 1]!;
    w = ((lo & PTE_LO_ADDR) - this.baseLo) >>> 2;
    this.c2Key = k2;
    this.c2W = w;
    this.c2Hi = tableHi;
    return w;
  }

  /**
   * Free every table page, the root included; the table is unusable afterwards
   * (map/unmap then do nothing). A second call does nothing.
   * Linux: arm_lpae_free_pgtable() / __arm_lpae_free_pgtable(), drivers/iommu/io-pgtable-arm.c.
   */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.freeTable(this.rootWord, 0);
  }

  /**
   * Free the table at pool word `t` (level `lvl`) and every table below it.
   * Only table descriptors are followed (Linux follows any non-zero non-leaf
   * entry; the model never writes anything else).
   * Linux: __arm_lpae_free_pgtable().
   */
  private freeTable(t: number, lvl: number): void {
    this.c3Key = NaN;
    this.c2Key = NaN;
    const mem = this.mem;
    if (lvl < 3) {
      const pool = mem.pool;
      for (let w = t, end = t + 1024; w < end; w += 2) {
        const lo = pool[w]!;
        if ((lo & PTE_TYPE_MASK) === PTE_TYPE_TABLE) this.freeTable(((lo & PTE_LO_ADDR) - this.baseLo) >>> 2, lvl + 1);
      }
    }
    mem.freeTablePage(mem.poolBase + t * 4);
  }
}
