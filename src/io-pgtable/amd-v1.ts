/**
 * AMD IOMMU v1 (host) I/O page table: 1 to 6 levels of 512 64-bit entries
 * per 4 KiB table, a paging mode that grows on demand, and every power-of-two
 * page size from 4 KiB up (non-default sizes by replicated "next level 7"
 * entries).
 *
 * Revision followed. The driver behaviour follows the classic
 * drivers/iommu/amd/io_pgtable.c of torvalds/linux at stored commit
 * 025d1371cc8c852ae1b3c2916cf7403902346350 (the v6.17/v6.18-era code with
 * iommu_alloc_pages_node_sz(), iommu_pages_list freelists, the
 * amd_iommu_hpt_level cap and the alloc_pte() fix that grows the mode for the
 * page size's level and for the page's last byte): first_pte_l7(),
 * free_pt_lvl(), free_sub_pt(), increase_address_space(), alloc_pte(),
 * fetch_pte(), free_clear_pte(), iommu_v1_map_pages(), iommu_v1_unmap_pages(),
 * iommu_v1_iova_to_phys(), v1_free_pgtable(), v1_alloc_pgtable(); macros from
 * drivers/iommu/amd/amd_iommu_types.h (stored commit 014e756247e8: PM_LEVEL_*,
 * PAGE_SIZE_LEVEL/PTE_COUNT/PTE, PTE_PAGE_SIZE, IOMMU_PTE_*), with
 * AMD_IOMMU_PGSIZES as mainline now defines it, `GENMASK_ULL(51, 12) ^
 * SZ_512G`. Mainline has since replaced io_pgtable.c with the generic page
 * table code (commit 789a5913b29c "iommu/amd: Use the generic iommu page
 * table", drivers/iommu/generic_pt/fmt/amdv1.h); this file models the classic
 * v1 code's behaviour and the hardware layout, which amdv1.h keeps bit for bit
 * (AMD I/O Virtualization Technology (IOMMU) Specification, "I/O Page Tables
 * for Host Translations").
 *
 * Entry layout (hardware; as Linux writes it):
 * - bit 0 PR (present); bits 11:9 Next Level; bits 51:12 address; bit 59 U
 *   (never set by Linux); bit 60 FC (force coherent); bit 61 IR; bit 62 IW.
 *   (Bits 5 A and 6 D are set by the hardware; the model's walk does not.)
 * - Directory entry (PM_LEVEL_PDE()): table address | Next Level = the level
 *   of the table pointed to (1-based: an entry of the level-3 root points to a
 *   level-2 table and holds 2) | PR | IR | IW.
 * - Leaf of the level's default size (4K in a level-1 table, 2M in level 2,
 *   1G in level 3, …): page address | Next Level 0 | PR | FC | IR/IW from prot.
 * - Leaf of a non-default size (8K…1M in level 1, 4M…256M in level 2, …):
 *   PAGE_SIZE_PTE_COUNT(size) = 2^((log2(size) - 12) % 9) identical entries,
 *   each PAGE_SIZE_PTE(addr, size) = addr with address bits 12 … log2(size)-2
 *   set and bit log2(size)-1 clear (the size is the position of the first 0
 *   above bit 11, plus one), | Next Level 7 | PR | FC | IR/IW.
 * Each 64-bit entry is two u32 words of {@link PhysMem.pool}: the low word
 * (bits 31:0) at the even word index, the high word (bits 63:32) after it.
 * In this file "level" is Linux's 0-based one (PM_LEVEL_SHIFT(level) = 12 +
 * 9·level): entries of a level-`l` table map 2^(12+9l) bytes; the root is at
 * level `mode - 1`. The 1-based hardware table level is `l + 1`.
 *
 * Paging mode. Linux starts every v1 domain at PAGE_MODE_3_LEVEL (39-bit,
 * 512 GiB); {@link AmdV1Options.levels} sets another initial mode. Mapping an
 * IOVA beyond the mode's reach, or a page whose level needs a higher root,
 * grows the mode one level at a time as increase_address_space() does: a new
 * root table whose entry 0 points to the old root. So {@link AmdV1Pgtable.root}
 * and `cfg.levels` change; Linux then rewrites the device-table entries'
 * page-table root pointer and mode (amd_iommu_update_and_flush_device_table()),
 * which a caller of this model does by re-reading `root` and `levels` after a
 * map. Growth stops at {@link AmdV1Options.maxLevels} (amd_iommu_hpt_level =
 * EFR.HATS + 4, default 6).
 *
 * Decisions and differences from the classic driver, all deliberate (set
 * {@link AmdV1Options.linuxExact} for the driver's own results instead):
 * - Mapping over anything mapped fails with EEXIST (the io-pgtable contract):
 *   a present leaf among the target entries, a larger leaf on the path, or a
 *   table at the target slot that still maps something. Linux's
 *   iommu_v1_map_pages() returns no error there: free_clear_pte() clears the
 *   old entries and frees any table hanging from them (free_sub_pt()), and
 *   alloc_pte() replaces a larger leaf on the path by a new table (clearing a
 *   replicated group with cmpxchg; a new 4K page on one replica of an 8K…1M
 *   page replaces that replica only). A table at the target slot that maps
 *   nothing (left behind by unmaps) is freed and replaced in both modes, as
 *   free_clear_pte() does; that is the only way the v1 code frees a table
 *   before {@link AmdV1Pgtable.free}.
 * - A prot without IOMMU_READ or IOMMU_WRITE maps nothing and returns 0 with
 *   no error (the contract); Linux returns -EINVAL (IOMMU_PROT_MASK check).
 * - Unmap stops at the first hole (the contract). Linux's fetch_pte() returns
 *   the level-0 entry of an existing level-1 table whether or not it is
 *   present, so iommu_v1_unmap_pages() counts 4K holes inside an existing
 *   table as unmapped and only stops at a missing table or higher-level hole.
 *   Both modes unmap whole leaves: an unmap that lands anywhere in a larger
 *   page clears that page's entries (all replicas) and counts its full size,
 *   continuing after it, so the result may exceed `pgsize * count`.
 * - Unmap never frees tables (nor does iommu_v1_unmap_pages()).
 * - Bad page size (not a power of two in the bitmap), misaligned iova/paddr
 *   (Linux: BUG_ON, after the core's -EINVAL), a range beyond 2^ias or paddr
 *   beyond 2^oas: EINVAL with nothing mapped. A range past the last mode
 *   would make Linux's alloc_pte() fail (WARN, -ENOMEM); here it is the
 *   up-front EINVAL. ENOMEM when the table pool is exhausted.
 * - The page-size bitmap is AMD_IOMMU_PGSIZES limited to sizes below 2^ias
 *   (with maxLevels 4, pages of 2^48 and up cannot be reached; the kernel
 *   advertises them anyway and fails the map).
 *
 * What a domain layer should assume of `cfg.pgsizeBitmap`: bits 12–51 are set
 * except bit 39, so the granule is 4K and bits above 31 are set. It is an
 * exact double but not a 32-bit integer: test and combine it with
 * {@link pgsizeBitmapHas}, {@link pgsizeBitmapSizes}, {@link pgsizeBitmapPick}
 * and {@link pgsizeBitmapAnd} (or `Math.floor(bitmap / size) % 2`), never with
 * `&`/`|`, and turn it into a size list once rather than per page. Any size in
 * it maps with one mapPages() call (level-aligned sizes as one entry, others
 * replicated).
 * - Flushes (amd_iommu_domain_flush_pages()) and the dirty bit are not
 *   modelled; the SME C-bit (__sme_set()) is not set.
 *
 * Performance (no allocation, BigInt, closure or exception on the success
 * path): PTEs are read and written as words of mem.pool, re-read after every
 * table allocation. The public methods are small enough for V8 to inline into
 * their callers and hand IOVAs to their slow paths through a Float64Array (V8
 * boxes a double argument of a call it does not inline). A one-entry software
 * walk cache (the level-0 table of the last 2 MiB block used) lets mapPages,
 * unmapPages and iovaToPhys of neighbouring 4K pages skip the walk; it is the
 * model's, not Linux's or the hardware's, it is reset whenever a table is
 * freed, and {@link AmdV1Pgtable.walk} never uses it. Table memory written
 * behind the object's back (mem.write32) is seen by walk() but not
 * necessarily by the cached paths.
 *
 * Numbers: IOVAs and physical addresses are numbers. Every multiple of 4 KiB
 * below 2^65 is an exact double, so page-aligned IOVAs are exact over the
 * whole 64-bit space (mode 6); byte-granular IOVAs (the offset in
 * {@link AmdV1Pgtable.iovaToPhys} / {@link AmdV1Pgtable.walk}) are exact
 * below 2^53. Physical addresses (< 2^52) are always exact. Table indexes are
 * computed as `(iova * 2^-shift) & 511`. Table positions are kept as int32
 * word indexes into mem.pool, so only the first 8 GiB of the table pool is
 * used (a table page beyond it is ENOMEM; the default pool is 4 GiB).
 *
 * Linux: drivers/iommu/amd/io_pgtable.c, drivers/iommu/amd/amd_iommu_types.h.
 */
import { isIommuError, type ErrnoName } from '../base/errno.js';
import { IommuError } from '../base/errno.js';
import type { PhysMem } from '../mem/phys-mem.js';
import type { IoPgtable, IoPgtableCfg } from './io-pgtable.js';

/**
 * Numeric constants as compile-time literals (exact powers of two), inlined
 * by tsc into the hot paths instead of module-level constants.
 */
const enum K {
  TWO32 = 4294967296,
  /** 2^-32. */
  INV_TWO32 = 2.3283064365386963e-10,
  /** 2^-21: multiply an IOVA by it and floor for its 2 MiB block number (one level-0 table). */
  BLK_INV = 4.76837158203125e-7,
  /** 2^-12. */
  PG_INV = 0.000244140625,
  /** 2^52: end of the output address space (oas 52). */
  OAS_END = 4503599627370496,
  /** IOMMU_READ and IOMMU_WRITE (include/linux/iommu.h; the test checks they match). */
  P_READ = 1,
  P_WRITE = 2,
}

/** PTE bit 0, present (low word). Linux: IOMMU_PTE_PR, amd_iommu_types.h. */
export const AMD_PTE_PR = 1;
/** Shift of the 3-bit Next Level field, bits 11:9 (low word). Linux: PM_LEVEL_ENC(), PM_PTE_LEVEL(). */
export const AMD_PTE_NEXT_LEVEL_SHIFT = 9;
/** Next Level value of a leaf with a non-default page size (replicated entries). Linux: PAGE_MODE_7_LEVEL. */
export const AMD_PTE_NEXT_LEVEL_SIZE = 7;
/** PTE bit 59, U (upstream-packet attribute), as bit 27 of the high word; Linux never sets it. Linux: IOMMU_PTE_U. */
export const AMD_PTE_HI_U = 1 << 27;
/** PTE bit 60, FC (force coherent), as bit 28 of the high word; set in every leaf. Linux: IOMMU_PTE_FC. */
export const AMD_PTE_HI_FC = 1 << 28;
/** PTE bit 61, IR (read permission), as bit 29 of the high word. Linux: IOMMU_PTE_IR. */
export const AMD_PTE_HI_IR = 1 << 29;
/** PTE bit 62, IW (write permission), as bit 30 of the high word. Linux: IOMMU_PTE_IW. */
export const AMD_PTE_HI_IW = 1 << 30;

/** Slots of AmdV1Pgtable.st (inlined by tsc). */
const enum S {
  BLK = 0,
  PHYS = 1,
  SIZE = 2,
  INV = 3,
  /** iova passed to a slow path. */
  IOVA = 4,
  /** paddr passed to a slow path. */
  PADDR = 5,
}

/**
 * The same bits as compile-time literals for the hot paths (a const enum is
 * inlined by tsc; module-level constants cost V8 a context load each).
 */
const enum B {
  PR = 1,
  NL_SHIFT = 9,
  /** Present | Next Level mask of a low word: `(lo & PR_NL) === PR` is a default-size leaf. */
  PR_NL = 0xe01,
  /** Next Level 7 in place. */
  NL7 = 0xe00,
  HI_FC = 0x10000000,
  HI_IR = 0x20000000,
  HI_IW = 0x40000000,
  /** Address bits 51:32 in the high word. Linux: PM_ADDR_MASK (upper half). */
  HI_ADDR = 0xfffff,
}

/**
 * The v1 page sizes: every power of two from 4 KiB to 2^51 except 512 GiB
 * (2^39, a hardware erratum). Bits 12–51 fit a double exactly (0xf_ff7f_ffff_f000).
 * Linux: AMD_IOMMU_PGSIZES = GENMASK_ULL(51, 12) ^ SZ_512G, amd_iommu_types.h.
 */
export const AMD_IOMMU_PGSIZES = 2 ** 52 - 2 ** 12 - 2 ** 39;

/** Most levels a v1 table can have. Linux: PAGE_MODE_6_LEVEL. */
export const AMD_V1_MAX_LEVELS = 6;
/** The initial paging mode of a v1 domain. Linux: PAGE_MODE_3_LEVEL in v1_alloc_pgtable(). */
export const AMD_V1_DEFAULT_LEVELS = 3;

/** 2^-(12+9·l): multiply an IOVA by it and `& 511` for the level-l index. */
const LVL_INV = new Float64Array([2 ** -12, 2 ** -21, 2 ** -30, 2 ** -39, 2 ** -48, 2 ** -57, 2 ** -66]);
/** 2^(12+9·l): bytes mapped by one entry of a level-l table. Linux: PTE_LEVEL_PAGE_SIZE(). */
const LVL_SIZE = new Float64Array([2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39, 2 ** 48, 2 ** 57, 2 ** 66]);
/** Highest table word index used: tables must lie in the first 2^31 words (8 GiB) of the pool, so indexes stay int32. */
const MAX_WORD = 2 ** 31 - 1024;
/** 2^n and 2^-n for n = 0 … 64. */
const POW2 = new Float64Array(65);
const POW2_INV = new Float64Array(65);
for (let n = 0; n <= 64; n++) {
  POW2[n] = 2 ** n;
  POW2_INV[n] = 2 ** -n;
}

/** log2 of `x` if it is a power of two 2^0 … 2^64, else -1. */
function log2Pow2(x: number): number {
  if (!(x >= 1 && x <= 2 ** 64)) return -1;
  const n = Math.round(Math.log2(x));
  return POW2[n] === x ? n : -1;
}

/** Count of trailing zero bits of a non-zero int32. */
function ctz32(v: number): number {
  return 31 - Math.clz32(v & -v);
}

/** Bit n (0 … 63) of a bitmap held as a number, without 32-bit bitwise ops. */
function bitmapBit(bitmap: number, n: number): boolean {
  return Math.floor(bitmap * POW2_INV[n]!) % 2 === 1;
}

/**
 * True if `pgsize` is a page size in `bitmap` (bit n set = 2^n bytes). Works
 * for bits 31–63, where JS bitwise operators (32-bit) cannot be used: a
 * page-size bitmap with bits ≥ 31 (AMD v1 has bits 12–51) must only be tested
 * with these helpers or `Math.floor(bitmap / size) % 2`. Not meant for a
 * per-page hot path: a domain layer should turn its bitmap into a list of
 * sizes once ({@link pgsizeBitmapSizes}).
 * Linux: `pgsize & pgsize_bitmap`, drivers/iommu/iommu.c.
 */
export function pgsizeBitmapHas(bitmap: number, pgsize: number): boolean {
  const n = log2Pow2(pgsize);
  return n >= 0 && n < 64 && bitmapBit(bitmap, n);
}

/**
 * The page sizes in `bitmap`, ascending (bit n = 2^n bytes, n ≤ 63).
 * Linux: for_each_set_bit() over pgsize_bitmap.
 */
export function pgsizeBitmapSizes(bitmap: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < 64; n++) if (bitmapBit(bitmap, n)) out.push(POW2[n]!);
  return out;
}

/**
 * The smallest page size in `bitmap` (its lowest set bit), 0 if empty — the
 * IOVA granule. Linux: `1UL << __ffs(domain->pgsize_bitmap)`, iommu_map().
 */
export function pgsizeBitmapMin(bitmap: number): number {
  for (let n = 0; n < 64; n++) if (bitmapBit(bitmap, n)) return POW2[n]!;
  return 0;
}

/**
 * Bitwise AND of two page-size bitmaps (bits 0–63) without 32-bit operators.
 * Linux: `domain->pgsize_bitmap &= amd_iommu_pgsize_bitmap`.
 */
export function pgsizeBitmapAnd(a: number, b: number): number {
  let r = 0;
  for (let n = 0; n < 64; n++) if (bitmapBit(a, n) && bitmapBit(b, n)) r += POW2[n]!;
  return r;
}

/**
 * The largest page size in `bitmap` that is at most `size` and to which
 * `addrMerge` (iova | paddr, or any address both must be aligned to) is
 * aligned; 0 if none. Linux: the pgsize choice of iommu_pgsize(),
 * drivers/iommu/iommu.c.
 */
export function pgsizeBitmapPick(bitmap: number, addrMerge: number, size: number): number {
  for (let n = 63; n >= 0; n--) {
    const s = POW2[n]!;
    if (s > size || !bitmapBit(bitmap, n)) continue;
    if (Math.floor(addrMerge / s) * s === addrMerge) return s;
  }
  return 0;
}

/**
 * Options of {@link AmdV1Pgtable}: the inputs Linux takes from the domain and
 * the hardware. Linux: pgtable->mode set by v1_alloc_pgtable(),
 * amd_iommu_hpt_level (drivers/iommu/amd/init.c).
 */
export interface AmdV1Options {
  /**
   * Initial paging mode, 1 … maxLevels (default 3, PAGE_MODE_3_LEVEL, as
   * v1_alloc_pgtable() sets it). Grows on demand.
   */
  readonly levels?: number;
  /**
   * Highest paging mode growth may reach, 4 … 6 (default 6). Linux:
   * amd_iommu_hpt_level = EFR.HATS + PAGE_MODE_4_LEVEL, drivers/iommu/amd/init.c.
   * Sets ias: 48, 57 or 64 bits.
   */
  readonly maxLevels?: number;
  /**
   * Return what the classic driver returns where it departs from the
   * io-pgtable contract (default false): map over existing mappings replaces
   * them (freeing tables below, no error); a prot without READ/WRITE is
   * EINVAL; unmap counts non-present 4K entries of an existing level-1 table
   * as unmapped.
   */
  readonly linuxExact?: boolean;
}

/**
 * The AMD IOMMU v1 host page table.
 * Linux: struct amd_io_pgtable with io_pgtable_amd_iommu_v1_init_fns,
 * drivers/iommu/amd/io_pgtable.c.
 */
export class AmdV1Pgtable implements IoPgtable {
  // Fields without an initializer are `declare`d so that the constructor's
  // first assignment, not an `undefined` from a class-field definition, fixes
  // their V8 representation (Smi/double): the walks read them unboxed.

  /** Always `'amd-v1'`. Linux: AMD_IOMMU_V1. */
  readonly format = 'amd-v1' as const;
  /** The memory the tables live in. */
  declare readonly mem: PhysMem;
  /** The errno of the last failed {@link mapPages}, or null (Linux: the -errno iommu_v1_map_pages() returns). */
  error: ErrnoName | null = null;
  /** Highest paging mode (amd_iommu_hpt_level). */
  declare readonly maxLevels: number;
  /** True if the driver's own results are returned (see {@link AmdV1Options.linuxExact}). */
  declare readonly linuxExact: boolean;

  declare private mode: number;
  /** Word index of the root table in mem.pool; -1 once freed. */
  declare private rootW: number;
  /** 2^(12+9·mode) capped at 2^64: IOVAs below it are reachable. 0 once freed. */
  declare private reachEnd: number;
  declare private curCfg: IoPgtableCfg;
  declare private readonly poolBase: number;
  /** Pool base: address bits 51:32, and bits 31:0 divided by 4 (word units). */
  declare private readonly poolHi: number;
  declare private readonly poolLoW: number;
  declare private readonly ias: number;
  /** 2^ias: end of the input address space. */
  declare private readonly iasEnd: number;
  /** log2 of the largest page size. */
  declare private readonly maxPgLg: number;
  declare private readonly bitmap: number;
  /**
   * Double-valued state and arguments, in a Float64Array. V8 boxes a double
   * (any IOVA ≥ 2^31) in a fresh HeapNumber when it is passed to, or returned
   * from, a call it does not inline, and may do so for double fields; the
   * public methods are kept small enough to be inlined into their callers
   * and hand IOVAs to their slow paths through this array instead (measured:
   * one allocation per call otherwise). Slots (enum S): BLK walk-cache key,
   * PHYS slow-path iovaToPhys result, SIZE/INV fetch() leaf size and its
   * inverse, IOVA/PADDR slow-path arguments.
   */
  private readonly st = new Float64Array(6);
  /** fetch() result: replicated entry count of the leaf. */
  private fCnt = 0;
  /**
   * Software walk cache (not part of the hardware or Linux model): st[S.BLK]
   * is the 2 MiB block number (iova / 2^21) whose level-0 table is at word
   * `cT`, or -0.5 for none. Valid because a table, once reachable for an IOVA,
   * stays the table for it until some table is freed (growth only adds levels
   * above the root); every table free and {@link free} resets it. Used by
   * mapPages, unmapPages and iovaToPhys; {@link walk} always walks from the
   * root.
   */
  private cT = 0;

  /**
   * Allocate the root table. Linux: v1_alloc_pgtable().
   * @throws IommuError EINVAL for bad levels/maxLevels; ENOMEM if the pool is full.
   */
  constructor(mem: PhysMem, opts: AmdV1Options = {}) {
    const maxLevels = opts.maxLevels ?? AMD_V1_MAX_LEVELS;
    if (!Number.isInteger(maxLevels) || maxLevels < 4 || maxLevels > AMD_V1_MAX_LEVELS) {
      throw new IommuError('EINVAL', `AMD v1 maxLevels ${maxLevels} is not 4, 5 or 6`);
    }
    const levels = opts.levels ?? Math.min(AMD_V1_DEFAULT_LEVELS, maxLevels);
    if (!Number.isInteger(levels) || levels < 1 || levels > maxLevels) {
      throw new IommuError('EINVAL', `AMD v1 paging mode ${levels} is not in 1 … ${maxLevels}`);
    }
    this.mem = mem;
    this.maxLevels = maxLevels;
    this.linuxExact = opts.linuxExact ?? false;
    this.poolBase = mem.poolBase;
    this.poolHi = Math.floor(mem.poolBase * K.INV_TWO32);
    this.poolLoW = ((mem.poolBase - this.poolHi * K.TWO32) / 4) | 0;
    this.ias = Math.min(64, 12 + 9 * maxLevels);
    this.iasEnd = 2 ** this.ias;
    this.maxPgLg = Math.min(51, this.ias - 1);
    this.bitmap = AMD_IOMMU_PGSIZES - (this.maxPgLg < 51 ? 2 ** 52 - 2 ** (this.maxPgLg + 1) : 0);
    const rootPa = mem.allocTablePage();
    if ((rootPa - this.poolBase) / 4 > MAX_WORD) {
      mem.freeTablePage(rootPa);
      throw new IommuError('ENOMEM', 'AMD v1 root table beyond the first 8 GiB of the table pool');
    }
    this.rootW = ((rootPa - this.poolBase) / 4) | 0;
    this.st[S.BLK] = -0.5;
    this.mode = levels;
    this.reachEnd = Math.min(LVL_SIZE[levels]!, 2 ** 64);
    this.curCfg = this.makeCfg();
  }

  private makeCfg(): IoPgtableCfg {
    return Object.freeze({ pgsizeBitmap: this.bitmap, ias: this.ias, oas: 52, levels: this.mode });
  }

  /**
   * The configuration: pgsizeBitmap (see {@link AMD_IOMMU_PGSIZES}; bits up to
   * 51, so test it with {@link pgsizeBitmapHas}, never `&`), ias (48/57/64 by
   * maxLevels: the whole space growth can reach), oas 52, levels = the current
   * paging mode (changes as the table grows). Linux: v1_alloc_pgtable() sets
   * cfg->pgsize_bitmap/ias/oas; the mode is pgtable->mode.
   */
  get cfg(): IoPgtableCfg {
    return this.curCfg;
  }

  /** The current paging mode (number of levels; 0 after {@link free}). Linux: amd_io_pgtable.mode. */
  get levels(): number {
    return this.mode;
  }

  /**
   * Physical address of the root table, as the DTE's page-table root pointer
   * holds it; changes when the table grows (0 after {@link free}).
   * Linux: amd_io_pgtable.root, set_dte_entry().
   */
  get root(): number {
    return this.rootW < 0 ? 0 : this.poolBase + this.rootW * 4;
  }

  /**
   * Word index in mem.pool of the table a directory entry (lo, hi) points to:
   * (address - poolBase) / 4, kept in int32 arithmetic (the hot walks inline
   * the same expression).
   */
  private child(lo: number, hi: number): number {
    return ((hi & B.HI_ADDR) - this.poolHi) * 1073741824 + ((lo >>> 2) & 0x3ffffc00) - this.poolLoW;
  }

  /** Write at word `w` a directory entry pointing to the table at word `t`, whose level (1-based) is `nl`. Linux: PM_LEVEL_PDE(). */
  private writePde(pool: Uint32Array, w: number, t: number, nl: number): void {
    const pa = this.poolBase + t * 4;
    const hi = Math.floor(pa * K.INV_TWO32);
    pool[w] = ((pa - hi * K.TWO32) | (nl << B.NL_SHIFT) | B.PR) >>> 0;
    pool[w + 1] = (hi | B.HI_IR | B.HI_IW) >>> 0;
  }

  /** Allocate a table page; its word index, or -1 with error = ENOMEM. Re-read mem.pool afterwards. */
  private allocTable(): number {
    let pa: number;
    try {
      pa = this.mem.allocTablePage();
    } catch (e) {
      if (isIommuError(e, 'ENOMEM')) {
        this.error = 'ENOMEM';
        return -1;
      }
      throw e;
    }
    const t = (pa - this.poolBase) / 4;
    if (t > MAX_WORD) {
      // Word indexes are kept in int32 (8 GiB of tables); a larger pool is not used.
      this.mem.freeTablePage(pa);
      this.error = 'ENOMEM';
      return -1;
    }
    return t | 0;
  }

  private freeTable(t: number): void {
    this.st[S.BLK] = -0.5;
    this.mem.freeTablePage(this.poolBase + t * 4);
  }

  /**
   * Free the table at word `t` and everything below it, `lvl` being its
   * 1-based level; leaves are skipped. Linux: free_pt_lvl().
   */
  private freePtLvl(t: number, lvl: number): void {
    const pool = this.mem.pool;
    for (let i = 0; i < 512; i++) {
      const lo = pool[t + 2 * i]!;
      if (!(lo & B.PR)) continue;
      const nl = (lo >>> B.NL_SHIFT) & 7;
      if (nl === 0 || nl === 7) continue;
      const c = this.child(lo, pool[t + 2 * i + 1]!);
      if (lvl > 2) this.freePtLvl(c, lvl - 1);
      else this.freeTable(c);
    }
    this.freeTable(t);
  }

  /** Free a sub-table given the Next Level (mode) of the entry that pointed to it. Linux: free_sub_pt(). */
  private freeSubPt(t: number, mode: number): void {
    if (mode === 0 || mode === 7) return;
    if (mode === 1) this.freeTable(t);
    else this.freePtLvl(t, mode);
  }

  /** True if the table at word `t` (1-based level `lvl`) or any table below it holds a present leaf. */
  private subtreeMaps(t: number, lvl: number): boolean {
    const pool = this.mem.pool;
    for (let i = 0; i < 512; i++) {
      const lo = pool[t + 2 * i]!;
      if (!(lo & B.PR)) continue;
      const nl = (lo >>> B.NL_SHIFT) & 7;
      if (lvl <= 1 || nl === 0 || nl === 7) return true;
      if (this.subtreeMaps(this.child(lo, pool[t + 2 * i + 1]!), lvl - 1)) return true;
    }
    return false;
  }

  /**
   * Add levels until IOVAs below `end` are reachable and the root is above
   * level `pgLvl`. False with error set on failure.
   * Linux: the loop at the top of alloc_pte() / increase_address_space().
   */
  private grow(end: number, pgLvl: number): boolean {
    while (end > this.reachEnd || this.mode - 1 < pgLvl) {
      if (this.mode >= this.maxLevels) {
        // increase_address_space(): WARN_ON_ONCE(mode == amd_iommu_hpt_level) -> alloc_pte() NULL -> -ENOMEM.
        this.error = 'ENOMEM';
        return false;
      }
      const t = this.allocTable();
      if (t < 0) return false;
      this.writePde(this.mem.pool, t, this.rootW, this.mode);
      this.rootW = t;
      this.mode++;
      this.reachEnd = Math.min(LVL_SIZE[this.mode]!, 2 ** 64);
      this.curCfg = this.makeCfg();
    }
    return true;
  }

  /**
   * Word index of the level-`endLvl` table that holds the entries for `iova`,
   * allocating missing tables; -1 with error set on failure.
   * Linux: alloc_pte() (the walk below the growth loop).
   */
  private tableFor(iova: number, endLvl: number): number {
    let level = this.mode - 1;
    let t = this.rootW;
    let pool = this.mem.pool;
    while (level > endLvl) {
      const w = t + (((iova * LVL_INV[level]!) & 511) << 1);
      const lo = pool[w]!;
      if (lo & B.PR) {
        const nl = (lo >>> B.NL_SHIFT) & 7;
        if (nl !== 0 && nl !== 7) {
          if (nl !== level) {
            // "No level skipping support yet": alloc_pte() returns NULL -> -ENOMEM.
            this.error = 'ENOMEM';
            return -1;
          }
          t = this.child(lo, pool[w + 1]!);
          level--;
          continue;
        }
        // A larger leaf covers iova.
        if (!this.linuxExact) {
          this.error = 'EEXIST';
          return -1;
        }
        if (nl === 7) {
          // Tear down the replicated group: first_pte_l7() + cmpxchg64(&lpte[i], __pte, 0).
          const hi = pool[w + 1]!;
          const cnt = AmdV1Pgtable.replCount(lo, hi);
          const first = w - ((((w >>> 1) & 511) & (cnt - 1)) << 1);
          for (let i = 0; i < cnt; i++) {
            const x = first + 2 * i;
            if (pool[x] === lo && pool[x + 1] === hi) {
              pool[x] = 0;
              pool[x + 1] = 0;
            }
          }
        }
        // A default-size leaf is simply overwritten by the new directory entry.
      }
      const nt = this.allocTable();
      if (nt < 0) return -1;
      pool = this.mem.pool;
      this.writePde(pool, w, nt, level);
      t = nt;
      level--;
    }
    return t;
  }

  /** Page size (log2) of a Next-Level-7 leaf: one above the first 0 address bit from bit 12. Linux: PTE_PAGE_SIZE(). */
  private static l7SizeLg(lo: number, hi: number): number {
    const x = ~(lo | 0xfff);
    return (x !== 0 ? ctz32(x) : 32 + ctz32(~hi)) + 1;
  }

  /** Replicated entry count of a Next-Level-7 leaf. Linux: PAGE_SIZE_PTE_COUNT(PTE_PAGE_SIZE()). */
  private static replCount(lo: number, hi: number): number {
    return 1 << ((AmdV1Pgtable.l7SizeLg(lo, hi) - 12) % 9);
  }

  /**
   * Word index of the leaf entry for `iova` (the first of a replicated group),
   * or -1; sets st[S.SIZE], st[S.INV], fCnt. Like Linux, a level-0 entry is returned
   * whether or not it is present. Linux: fetch_pte() + first_pte_l7().
   */
  private fetch(iova: number): number {
    if (!(iova >= 0 && iova < this.reachEnd)) return -1;
    const pool = this.mem.pool;
    let level = this.mode - 1;
    let w = this.rootW + (((iova * LVL_INV[level]!) & 511) << 1);
    const ph = this.poolHi;
    const plw = this.poolLoW;
    let lo = pool[w]!;
    let nl = (lo >>> B.NL_SHIFT) & 7;
    while (level !== 0) {
      if (!(lo & B.PR)) return -1;
      if (nl === level) {
        // Directory to the next level down: descend.
        level--;
        w = ((pool[w + 1]! & B.HI_ADDR) - ph) * 1073741824 + ((lo >>> 2) & 0x3ffffc00) - plw + (((iova * LVL_INV[level]!) & 511) << 1);
        lo = pool[w]!;
        nl = (lo >>> B.NL_SHIFT) & 7;
        continue;
      }
      if (nl === 7 || nl === 0) break; // large leaf
      return -1; // "No level skipping support yet"
    }
    if (nl === 7) {
      const lg = AmdV1Pgtable.l7SizeLg(lo, pool[w + 1]!);
      const cnt = 1 << ((lg - 12) % 9); // first_pte_l7(): PAGE_SIZE_PTE_COUNT(PTE_PAGE_SIZE())
      this.st[S.SIZE] = POW2[lg]!;
      this.st[S.INV] = POW2_INV[lg]!;
      this.fCnt = cnt;
      if (level === 0) {
        this.st[S.BLK] = Math.floor(iova * K.BLK_INV);
        this.cT = w & ~1023;
      }
      return w - ((((w >>> 1) & 511) & (cnt - 1)) << 1);
    }
    if (level === 0) {
      this.st[S.BLK] = Math.floor(iova * K.BLK_INV);
      this.cT = w & ~1023;
    }
    this.st[S.SIZE] = LVL_SIZE[level]!;
    this.st[S.INV] = LVL_INV[level]!;
    this.fCnt = 1;
    return w;
  }

  private fail(errno: ErrnoName, mapped: number): number {
    this.error = errno;
    return mapped;
  }

  /**
   * Map `count` pages of `pgsize` from `iova` to `paddr`. Level-aligned sizes
   * (4K, 2M, 1G, 2^48) are one entry at their level; others are
   * PAGE_SIZE_PTE_COUNT replicated Next-Level-7 entries. Returns the bytes
   * mapped; on failure sets {@link error} (EINVAL, EEXIST, ENOMEM) and
   * returns the bytes mapped before it.
   * Linux: iommu_v1_map_pages(), drivers/iommu/amd/io_pgtable.c.
   */
  mapPages(iova: number, paddr: number, pgsize: number, count: number, prot: number): number {
    this.error = null;
    // Fast path, one 4K page into the cached level-0 table (kept small so V8
    // inlines it); everything else, and every error, goes to mapGeneric().
    if (pgsize === 4096 && count === 1 && prot & (K.P_READ | K.P_WRITE) && Math.floor(iova * K.BLK_INV) === this.st[S.BLK]!) {
      const ip = iova * K.PG_INV;
      const hi = Math.floor(paddr * K.INV_TWO32);
      const lo = paddr - hi * K.TWO32;
      if (Math.floor(ip) === ip && (lo & 0xfff) === 0 && hi < 0x100000 && hi >= 0) {
        const pool = this.mem.pool;
        const w = this.cT + ((ip & 511) << 1);
        if (!(pool[w]! & B.PR)) {
          pool[w] = lo | B.PR;
          pool[w + 1] = hi | B.HI_FC | (prot & K.P_READ ? B.HI_IR : 0) | (prot & K.P_WRITE ? B.HI_IW : 0);
          return 4096;
        }
      }
    }
    this.st[S.IOVA] = iova;
    this.st[S.PADDR] = paddr;
    return this.mapGeneric(pgsize, count, prot);
  }

  /**
   * mapPages() beyond the fast path (iova and paddr in st): validation,
   * growth, table allocation, any size and count.
   */
  private mapGeneric(pgsize: number, count: number, prot: number): number {
    let iova = this.st[S.IOVA]!;
    let paddr = this.st[S.PADDR]!;
    const lg = pgsize === 4096 ? 12 : log2Pow2(pgsize);
    if (lg < 12 || lg > this.maxPgLg || lg === 39) return this.fail('EINVAL', 0);
    const inv = POW2_INV[lg]!;
    const ia = iova * inv;
    const pa = paddr * inv;
    if (!(ia >= 0 && pa >= 0 && Math.floor(ia) === ia && Math.floor(pa) === pa)) return this.fail('EINVAL', 0);
    if (!(count >= 0 && Math.floor(count) === count)) return this.fail('EINVAL', 0);
    const size = pgsize * count;
    if (iova + size > this.iasEnd || paddr + size > K.OAS_END || this.mode === 0) return this.fail('EINVAL', 0);
    // iommu_v1_map_pages(): prot outside IOMMU_PROT_MASK is -EINVAL.
    if (!(prot & (K.P_READ | K.P_WRITE))) return this.fail('EINVAL', 0);
    if (count === 0) return 0;

    const hiFlags = B.HI_FC | (prot & K.P_READ ? B.HI_IR : 0) | (prot & K.P_WRITE ? B.HI_IW : 0);
    const L = ((lg - 12) / 9) | 0; // PAGE_SIZE_LEVEL()
    const cnt = 1 << ((lg - 12) % 9); // PAGE_SIZE_PTE_COUNT()
    // PAGE_SIZE_PTE(): address | bits 12 … lg-2 (pgsize/2 - 4096), with Next Level 7.
    const repl = cnt > 1 ? pgsize / 2 - 4096 : 0;
    const loFlags = cnt > 1 ? B.NL7 | B.PR : B.PR;
    let done = 0;
    while (done < count) {
      let idx = (iova * LVL_INV[L]!) & 511;
      let n = (512 - idx) / cnt;
      if (n > count - done) n = count - done;
      const end = iova + n * pgsize;
      if ((end > this.reachEnd || this.mode - 1 < L) && !this.grow(end, L)) return done * pgsize;
      let t: number;
      if (L === 0 && Math.floor(iova * K.BLK_INV) === this.st[S.BLK]!) t = this.cT;
      else {
        t = this.tableFor(iova, L);
        if (t < 0) return done * pgsize;
        if (L === 0) {
          this.st[S.BLK] = Math.floor(iova * K.BLK_INV);
          this.cT = t | 0;
        }
      }
      const pool = this.mem.pool;
      let a = paddr + repl;
      let hi = Math.floor(a * K.INV_TWO32);
      let lo = a - hi * K.TWO32;
      if (cnt === 1) {
        let w = t + (idx << 1);
        for (let k = 0; k < n; k++, w += 2) {
          const old = pool[w]!;
          if (old & B.PR && !this.clearTarget(pool, w, 1, L)) return done * pgsize;
          pool[w] = (lo | loFlags) >>> 0;
          pool[w + 1] = (hi | hiFlags) >>> 0;
          done++;
          lo += pgsize;
          if (lo >= K.TWO32) {
            hi += Math.floor(lo * K.INV_TWO32);
            lo -= Math.floor(lo * K.INV_TWO32) * K.TWO32;
          }
        }
        iova += n * pgsize;
        paddr += n * pgsize;
      } else {
        for (let k = 0; k < n; k++) {
          const w = t + (idx << 1);
          if (!this.clearTarget(pool, w, cnt, L)) return done * pgsize;
          const l = (lo | loFlags) >>> 0;
          const h = (hi | hiFlags) >>> 0;
          for (let j = 0; j < cnt; j++) {
            pool[w + 2 * j] = l;
            pool[w + 2 * j + 1] = h;
          }
          done++;
          idx += cnt;
          iova += pgsize;
          paddr += pgsize;
          a = paddr + repl;
          hi = Math.floor(a * K.INV_TWO32);
          lo = a - hi * K.TWO32;
        }
      }
    }
    return done * pgsize;
  }

  /**
   * Make the `cnt` target entries from word `w` (level `L`) free for a new
   * leaf. Contract mode: false with EEXIST if any holds a present leaf or a
   * table that still maps something; otherwise tables are freed. linuxExact:
   * every entry is cleared and any table below freed.
   * Linux: the free_clear_pte() loop of iommu_v1_map_pages().
   */
  private clearTarget(pool: Uint32Array, w: number, cnt: number, L: number): boolean {
    if (!this.linuxExact) {
      for (let j = 0; j < cnt; j++) {
        const lo = pool[w + 2 * j]!;
        if (!(lo & B.PR)) continue;
        const nl = (lo >>> B.NL_SHIFT) & 7;
        if (L === 0 || nl === 0 || nl === 7 || this.subtreeMaps(this.child(lo, pool[w + 2 * j + 1]!), nl)) {
          this.error = 'EEXIST';
          return false;
        }
      }
    }
    for (let j = 0; j < cnt; j++) {
      const x = w + 2 * j;
      const lo = pool[x]!;
      const hi = pool[x + 1]!;
      pool[x] = 0;
      pool[x + 1] = 0;
      if (lo & B.PR) this.freeSubPt(this.child(lo, hi), (lo >>> B.NL_SHIFT) & 7);
    }
    return true;
  }

  /**
   * Unmap from `iova` until `pgsize * count` bytes are covered: each step
   * clears the whole leaf found at the IOVA (all replicas) and counts its
   * size. Stops at the first hole (linuxExact: at a missing table or
   * higher-level hole only). Never frees tables. Returns bytes unmapped.
   * Linux: iommu_v1_unmap_pages(), drivers/iommu/amd/io_pgtable.c.
   */
  unmapPages(iova: number, pgsize: number, count: number): number {
    if (pgsize === 4096 && count === 1 && Math.floor(iova * K.BLK_INV) === this.st[S.BLK]!) {
      // Walk-cache hit on a default-size 4K leaf, where fetch_pte() would land.
      const pool = this.mem.pool;
      const w = this.cT + (((iova * K.PG_INV) & 511) << 1);
      if ((pool[w]! & B.PR_NL) === B.PR) {
        pool[w] = 0;
        pool[w + 1] = 0;
        return 4096;
      }
    }
    this.st[S.IOVA] = iova;
    return this.unmapGeneric(pgsize, count);
  }

  /** unmapPages() beyond the fast path (iova in st). Linux: iommu_v1_unmap_pages(). */
  private unmapGeneric(pgsize: number, count: number): number {
    let iova = this.st[S.IOVA]!;
    if (log2Pow2(pgsize) < 0 || !(count > 0)) return 0;
    const size = pgsize * count;
    let unmapped = 0;
    while (unmapped < size) {
      const w = this.fetch(iova);
      if (w < 0) return unmapped;
      const pool = this.mem.pool;
      if (!(pool[w]! & B.PR) && !this.linuxExact) return unmapped;
      const sz = this.st[S.SIZE]!;
      const cnt = this.fCnt;
      if (cnt === 1) {
        pool[w] = 0;
        pool[w + 1] = 0;
      } else {
        pool.fill(0, w, w + 2 * cnt);
      }
      iova = Math.floor(iova * this.st[S.INV]!) * sz + sz;
      unmapped += sz;
    }
    return unmapped;
  }

  /**
   * The physical address `iova` maps to, or 0 if unmapped.
   * Linux: iommu_v1_iova_to_phys(), drivers/iommu/amd/io_pgtable.c.
   */
  iovaToPhys(iova: number): number {
    const pool = this.mem.pool;
    if (Math.floor(iova * K.BLK_INV) === this.st[S.BLK]!) {
      const w = this.cT + (((iova * K.PG_INV) & 511) << 1);
      const lo = pool[w]!;
      if ((lo & B.PR_NL) === B.PR) {
        return (pool[w + 1]! & B.HI_ADDR) * K.TWO32 + (lo >>> 12) * 4096 + (iova - Math.floor(iova * K.PG_INV) * 4096);
      }
    }
    this.st[S.IOVA] = iova;
    this.iovaToPhysWalk();
    return this.st[S.PHYS]!;
  }

  /**
   * iovaToPhys() past the walk cache: fetch_pte() inlined by hand, iova from
   * st[S.IOVA], result to st[S.PHYS] (no double argument or return value to
   * box). A leaf's size comes from its level, or for Next Level 7 from
   * PTE_PAGE_SIZE().
   */
  private iovaToPhysWalk(): void {
    const iova = this.st[S.IOVA]!;
    const pool = this.mem.pool;
    this.st[S.PHYS] = 0;
    if (!(iova >= 0 && iova < this.reachEnd)) return;
    const ph = this.poolHi;
    const plw = this.poolLoW;
    let level = this.mode - 1;
    let w = this.rootW + (((iova * LVL_INV[level]!) & 511) << 1);
    for (;;) {
      const lo = pool[w]!;
      if (!(lo & B.PR)) return;
      const nl = (lo >>> B.NL_SHIFT) & 7;
      const hi = pool[w + 1]!;
      if (nl === level && level !== 0) {
        level--;
        w = ((hi & B.HI_ADDR) - ph) * 1073741824 + ((lo >>> 2) & 0x3ffffc00) - plw + (((iova * LVL_INV[level]!) & 511) << 1);
        continue;
      }
      if (level !== 0 && nl !== 0 && nl !== 7) return; // "No level skipping support yet"
      if (level === 0) {
        this.st[S.BLK] = Math.floor(iova * K.BLK_INV);
        this.cT = w & ~1023;
      }
      const lg = nl === 7 ? AmdV1Pgtable.l7SizeLg(lo, hi) : 12 + 9 * level;
      const sz = POW2[lg]!;
      const inv = POW2_INV[lg]!;
      // (pte & PM_ADDR_MASK & ~offset_mask) | (iova & offset_mask)
      const addr = (hi & B.HI_ADDR) * K.TWO32 + (lo >>> 12) * 4096;
      this.st[S.PHYS] = Math.floor(addr * inv) * sz + (iova - Math.floor(iova * inv) * sz);
      return;
    }
  }

  /**
   * Translate `iova` as the IOMMU does: from the root, follow directory
   * entries whose Next Level is the next level down, to a leaf (Next Level 0
   * or 7, or any entry of a level-1 table). IR/IW are ANDed along the path.
   * Returns IOMMU_READ|IOMMU_WRITE, or -1 if not present (also for an IOVA
   * beyond the mode's reach, or a level-skipping entry, which Linux never
   * writes); on success out[WALK_PHYS] = physical address, out[WALK_PGSIZE] =
   * leaf size. Linux: the hardware walk (AMD IOMMU spec, "I/O Page Tables for
   * Host Translations"); fetch_pte() in software.
   */
  walk(iova: number, out: Float64Array): number {
    this.st[S.IOVA] = iova;
    return this.walkTables(out);
  }

  /** walk() proper, iova from st[S.IOVA] (so that no double argument is boxed). */
  private walkTables(out: Float64Array): number {
    const iova = this.st[S.IOVA]!;
    if (!(iova >= 0 && iova < this.reachEnd)) return -1;
    const pool = this.mem.pool;
    let level = this.mode - 1;
    let w = this.rootW + (((iova * LVL_INV[level]!) & 511) << 1);
    const ph = this.poolHi;
    const plw = this.poolLoW;
    let perm = 3;
    for (;;) {
      const lo = pool[w]!;
      if (!(lo & B.PR)) return -1;
      const hi = pool[w + 1]!;
      perm &= hi >>> 29; // IR -> bit 0 (IOMMU_READ), IW -> bit 1 (IOMMU_WRITE)
      const nl = (lo >>> B.NL_SHIFT) & 7;
      if (nl === level && level !== 0) {
        // Directory to the next level down: descend.
        level--;
        w = ((hi & B.HI_ADDR) - ph) * 1073741824 + ((lo >>> 2) & 0x3ffffc00) - plw + (((iova * LVL_INV[level]!) & 511) << 1);
        continue;
      }
      if (level === 0 || nl === 0 || nl === 7) {
        let sz: number;
        let inv: number;
        if (nl === 7) {
          const lg = AmdV1Pgtable.l7SizeLg(lo, hi);
          sz = POW2[lg]!;
          inv = POW2_INV[lg]!;
        } else {
          sz = LVL_SIZE[level]!;
          inv = LVL_INV[level]!;
        }
        const addr = (hi & B.HI_ADDR) * K.TWO32 + (lo >>> 12) * 4096;
        out[0 /* WALK_PHYS */] = Math.floor(addr * inv) * sz + (iova - Math.floor(iova * inv) * sz);
        out[1 /* WALK_PGSIZE */] = sz;
        return perm & 3;
      }
      return -1; // level skipping: never written by Linux, not modelled
    }
  }

  /**
   * Free every table page (the root and all tables below it); the table is
   * unusable afterwards (levels 0, root 0). A second call does nothing.
   * Linux: v1_free_pgtable() -> free_sub_pt(), drivers/iommu/amd/io_pgtable.c.
   */
  free(): void {
    if (this.mode === 0) return;
    this.freeSubPt(this.rootW, this.mode);
    this.mode = 0;
    this.rootW = -1;
    this.reachEnd = 0;
    this.st[S.BLK] = -0.5;
    this.curCfg = this.makeCfg();
  }
}
