/**
 * The I/O page-table interface every format implements: map pages, unmap
 * pages, IOVA-to-physical lookup, a walk for translation, and free.
 *
 * Tables are real tables of real PTE bits in {@link PhysMem}; `root` is the
 * physical address of the top-level table, as a hardware walker would be given
 * it (TTBR0 for Arm, SLPTPTR for VT-d, the DTE page-table root for AMD).
 *
 * Hot-path rules: no allocation, no BigInt, no exceptions on the success path.
 * Errors are reported through {@link IoPgtable.error} (Linux returns -errno
 * together with the bytes mapped so far through a `mapped` out-parameter).
 *
 * Linux: struct io_pgtable_ops (map_pages, unmap_pages, iova_to_phys),
 * struct io_pgtable_cfg, alloc_io_pgtable_ops()/free_io_pgtable_ops(),
 * include/linux/io-pgtable.h, drivers/iommu/io-pgtable.c.
 */
import type { ErrnoName } from '../base/errno.js';
import type { PhysMem } from '../mem/phys-mem.js';

/** Mapping permissions and attributes. Linux: IOMMU_READ … IOMMU_PRIV, include/linux/iommu.h. */
export const IOMMU_READ = 1 << 0;
/** Write permission. Linux: IOMMU_WRITE. */
export const IOMMU_WRITE = 1 << 1;
/** DMA cache coherency. Linux: IOMMU_CACHE. */
export const IOMMU_CACHE = 1 << 2;
/** No instruction fetch. Linux: IOMMU_NOEXEC. */
export const IOMMU_NOEXEC = 1 << 3;
/** Device memory (MMIO). Linux: IOMMU_MMIO. */
export const IOMMU_MMIO = 1 << 4;
/** Privileged access only. Linux: IOMMU_PRIV. */
export const IOMMU_PRIV = 1 << 5;

/** The formats the model implements. */
export type IoPgtableFormat = 'arm-lpae-s1' | 'vtd-sl' | 'amd-v1';

/** Configuration of a page table. Linux: struct io_pgtable_cfg. */
export interface IoPgtableCfg {
  /** Page sizes the table can map: bit n set = 2^n bytes. Linux: pgsize_bitmap. */
  readonly pgsizeBitmap: number;
  /** Input (IOVA) address size in bits. Linux: ias. */
  readonly ias: number;
  /** Output (physical) address size in bits. Linux: oas. */
  readonly oas: number;
  /** Number of translation levels (e.g. 4 or 5 for VT-d, 1–6 for AMD v1). */
  readonly levels: number;
}

/** Result of {@link IoPgtable.walk}: written into a caller-owned scratch array. */
export const WALK_PHYS = 0;
/** Index of the leaf page size (bytes) in the walk scratch array. */
export const WALK_PGSIZE = 1;

/** An I/O page table. */
export interface IoPgtable {
  /** The format. */
  readonly format: IoPgtableFormat;
  /** Its configuration. */
  readonly cfg: IoPgtableCfg;
  /** The memory the tables live in. */
  readonly mem: PhysMem;
  /** Physical address of the top-level table. */
  readonly root: number;
  /** The errno of the last failed {@link mapPages}, or null. Cleared by each call. */
  error: ErrnoName | null;

  /**
   * Map `count` pages of `pgsize` bytes from `iova` to `paddr` with `prot`
   * (IOMMU_READ | IOMMU_WRITE | …). Returns the bytes mapped; on failure stops,
   * sets {@link error} (EINVAL bad size/alignment/range, EEXIST already
   * mapped, ENOMEM no table memory) and returns what was mapped before.
   * A `prot` without READ or WRITE is EINVAL (as mainline: Arm since v6.11, VT-d, AMD).
   * Linux: io_pgtable_ops.map_pages.
   */
  mapPages(iova: number, paddr: number, pgsize: number, count: number, prot: number): number;

  /**
   * Unmap up to `count` pages of `pgsize` from `iova`; returns the bytes
   * unmapped, stopping at the first hole (0 if nothing was mapped at `iova`).
   * Linux: io_pgtable_ops.unmap_pages.
   */
  unmapPages(iova: number, pgsize: number, count: number): number;

  /** Physical address `iova` maps to, or 0 if unmapped. Linux: io_pgtable_ops.iova_to_phys. */
  iovaToPhys(iova: number): number;

  /**
   * Walk the tables for `iova` as the hardware would. Returns the access
   * permissions (IOMMU_READ | IOMMU_WRITE, 0 = mapped with no access) or -1 if
   * not present; on success writes the physical address of `iova` to
   * `out[WALK_PHYS]` and the leaf page size to `out[WALK_PGSIZE]`.
   */
  walk(iova: number, out: Float64Array): number;

  /** Free every table page. Linux: free_io_pgtable_ops(). */
  free(): void;
}
