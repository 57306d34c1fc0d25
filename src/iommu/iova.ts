/**
 * The IOVA allocator the DMA API uses: an IOVA domain hands out ranges of
 * I/O virtual page frames, top-down below a limit, with per-size "range
 * caches" (magazines) in front of the tree for the common small sizes.
 *
 * Units: every pfn and size here counts *granules* (the domain's IOVA page
 * size, `granule` bytes — 4 KiB on x86). A pfn `p` is the bus address
 * `p * granule`.
 *
 * Model range: pfns are plain numbers, limited to [0, {@link IOVA_MAX_PFN}] =
 * [0, 2^52 − 1] (exact in a double; for a 4 KiB granule that is Linux's own
 * bound `ULLONG_MAX >> iova_shift`). A `limitPfn` above it (a 64-bit DMA mask)
 * is clamped to it; no other argument may exceed it.
 *
 * Fidelity: given the same sequence of calls, the methods return exactly the
 * pfns Linux returns (NULL/0 where Linux returns NULL/0), including the
 * `cached_node`/`cached32_node` starting points of the top-down search, the
 * retry from the top, the `max32_alloc_size` shortcut, the size-aligned
 * rounding, reserve_iova()'s merging, and the magazine/depot behaviour of the
 * range caches. Differences, all deliberate:
 *
 * - One CPU. Linux keeps a `loaded`/`prev` magazine pair per CPU per size
 *   class; the model has one CPU, so `for_each_online_cpu()` visits one and
 *   `num_online_cpus()` is 1 (the depot trim keeps at most 1 magazine).
 * - No time. The depot trim Linux runs from delayed work 100 ms after a
 *   magazine is pushed is {@link IovaDomain.runDepotWork}, run on demand.
 * - Memory allocation never fails (no GFP_ATOMIC failures): a free into a full
 *   range cache always gets a new magazine.
 * - Cost, not result: Linux's search walks the tree one node at a time from the
 *   cached node (linear in the nodes skipped; the retry pass can walk the
 *   whole tree). The model walks the first {@link IOVA_SEARCH_WALK_STEPS}
 *   nodes the same way (Linux's walk usually ends there), then finds the node
 *   Linux would stop at with an O(log n) descent over an augmented tree
 *   (largest free gap per subtree), plus O(log n) per candidate gap that is
 *   big enough but fails size-alignment. reserve_iova() likewise starts at
 *   the first overlapping range instead of scanning from rb_first().
 * - Misuse Linux does not check (a bad pfn passed to free_iova_fast(), a
 *   double free into the caches) is reproduced, not refused, unless the domain
 *   was built with `debugChecks`. Arguments outside the model (non-integers,
 *   negative, > 2^52 − 1, pfn_lo > pfn_hi) throw IommuError EINVAL.
 *
 * Revision followed: mainline drivers/iommu/iova.c and include/linux/iova.h
 * after the Nov 2024 "kmemleak: iommu/iova: Fix transient kmemleak false
 * positive" (kmemleak_transient_leak() in iova_depot_pop()): the rbtree
 * allocator with iova_find_limit() and the Jan 2023 "retry_pfn + 1" overflow
 * fix, the magazine depot with depot_size and iova_depot_work_func(), and
 * alloc_iova_fast() rounding sizes < 32 up to a power of two. Read from the
 * mainline-tracking copy Kingxukai/linux @ 9b44fff655e2.
 *
 * Linux: drivers/iommu/iova.c, include/linux/iova.h.
 */
import { IommuError } from '../base/errno.js';
import { alignDown, flsLong } from './iova-bits.js';
import { IovaTree, NIL } from './iova-tree.js';

/**
 * Number of range-cache size classes: sizes 1, 2, 4, 8, 16 and 32 pfns
 * (orders 0..5) are cached; larger ones always go to the tree.
 * Linux: IOVA_RANGE_CACHE_MAX_SIZE, drivers/iommu/iova.c.
 */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;

/**
 * Pfns per range-cache magazine (127 keeps struct iova_magazine at 1 KiB).
 * Linux: IOVA_MAG_SIZE, drivers/iommu/iova.c.
 */
export const IOVA_MAG_SIZE = 127;

/**
 * Highest pfn the model supports: 2^52 − 1 (so every pfn and pfn + 1 is an
 * exact double). Linux's own bound is `ULLONG_MAX >> iova_shift`, the same for
 * a 4 KiB granule. Units: pfns.
 */
export const IOVA_MAX_PFN = 2 ** 52 - 1;

/**
 * The anchor node's pfn_lo/pfn_hi: above every usable pfn. Linux uses ~0UL;
 * the model uses 2^53 − 1, above {@link IOVA_MAX_PFN} + 1.
 * Linux: IOVA_ANCHOR, drivers/iommu/iova.c.
 */
export const IOVA_ANCHOR = Number.MAX_SAFE_INTEGER;

/** CPUs the range caches are modelled for (Linux: num_online_cpus()). */
const NUM_ONLINE_CPUS = 1;

/**
 * Default for {@link IovaDomainOptions.searchWalkSteps}: nodes the search walks
 * one by one, as Linux does, before it switches to the O(log n)
 * augmented-tree search. Model-only (Linux always walks); results do not
 * depend on it.
 */
export const IOVA_SEARCH_WALK_STEPS = 8;

/**
 * One IOVA range as a snapshot: pfns `pfnLo..pfnHi` inclusive (units: pfns of
 * `granule` bytes). Linux: struct iova (pfn_lo, pfn_hi), include/linux/iova.h.
 */
export interface Iova {
  /** Lowest pfn. Linux: iova->pfn_lo. */
  readonly pfnLo: number;
  /** Highest pfn. Linux: iova->pfn_hi. */
  readonly pfnHi: number;
}

/**
 * Construction options of an {@link IovaDomain} (model-only; Linux has none).
 */
export interface IovaDomainOptions {
  /**
   * Refuse, with IommuError EINVAL, what Linux silently accepts on the fast
   * path: freeIovaFast() of a pfn that is not the pfn_lo of a live IOVA of
   * the size class, or that is already in a range cache. Costs an O(log n)
   * lookup per fast free. Default false.
   */
  readonly debugChecks?: boolean;
  /** Tree node records to preallocate (64 bytes each; grows by doubling). Default 256. */
  readonly initialCapacity?: number;
  /**
   * Nodes the tree search walks one at a time from the cached node, exactly
   * like Linux, before switching to the O(log n) augmented-tree search.
   * Results are identical for every value; it only trades speed (Linux's walk
   * usually ends within a node or two). Default {@link IOVA_SEARCH_WALK_STEPS} (8).
   */
  readonly searchWalkSteps?: number;
}

/**
 * Counters of an {@link IovaDomain}, for sizing and tuning an IOVA space.
 * Monotonic counts unless marked "current". Linux keeps none of these (except
 * the ones visible through its data structures); the model adds them.
 */
export interface IovaDomainStats {
  /** Current: IOVA ranges in the tree (allocated, reserved and range-cached), excluding the anchor. Linux: rbtree node count. */
  treeSize: number;
  /** Current: pfn ranges held in the range caches (loaded + prev magazines + depot). */
  cachedIovas: number;
  /** Current: full magazines in the depots, all size classes. Linux: sum of rcache->depot_size. */
  depotMagazines: number;
  /** allocIovaFast() calls answered from a range cache without touching the tree. */
  rcacheHits: number;
  /** allocIovaFast() calls of a cacheable size (≤ 32 pfns) the range cache could not answer. */
  rcacheMisses: number;
  /** allocIovaFast() calls too large to be cached (> 32 pfns). */
  rcacheUncacheable: number;
  /** freeIovaFast() calls that put the range into a range cache. */
  rcacheInserts: number;
  /** freeIovaFast() calls too large to cache, freed to the tree. */
  rcacheBypassFrees: number;
  /** Full magazines pushed to a depot. Linux: iova_depot_push(). */
  depotPushes: number;
  /** Full magazines taken back from a depot by an allocation. Linux: iova_depot_pop() in __iova_rcache_get(). */
  depotPops: number;
  /** Magazines freed back to the tree by the depot trim. Linux: iova_depot_work_func(). */
  depotTrims: number;
  /** Times allocIovaFast() flushed the range caches after a failed tree allocation. Linux: the flush_rcache retry in alloc_iova_fast(). */
  rcacheFlushes: number;
  /** Successful tree allocations. Linux: __alloc_and_insert_iova_range() returning 0. */
  treeAllocs: number;
  /** Failed tree allocations (including max32 shortcuts). Linux: __alloc_and_insert_iova_range() returning -ENOMEM. */
  treeAllocFailures: number;
  /** Tree allocations refused at once because size ≥ max32_alloc_size. Linux: the `goto iova32_full` shortcut. */
  max32Shortcuts: number;
  /** Tree allocations that failed from the cached node and searched again from the top. Linux: the `goto retry` path. */
  retryPasses: number;
  /** Nodes examined by tree searches: nodes walked one by one plus candidates from the augmented search (the model's cost; Linux walks every node). */
  searchSteps: number;
  /** IOVAs removed from the tree (free_iova, __free_iova, cache flushes and trims). Linux: remove_iova(). */
  treeFrees: number;
  /** Ranges created by reserveIova(). Linux: __insert_new_range(). */
  reserveInserts: number;
  /** WARN_ON()s Linux would print: a range-cached pfn with no IOVA in the tree. Linux: iova_magazine_free_pfns(). */
  warnings: number;
}

/**
 * Where Linux's allocator will start its next search, for tests and
 * debugging. `null` stands for the anchor node (the top of the space).
 * Linux: iovad->cached_node, iovad->cached32_node, iovad->max32_alloc_size.
 */
export interface IovaCachedState {
  /** Linux: iovad->cached_node (searches with limit_pfn + 1 > dma_32bit_pfn start here). */
  readonly cachedNode: Iova | null;
  /** Linux: iovad->cached32_node (searches with limit_pfn + 1 ≤ dma_32bit_pfn start here). */
  readonly cached32Node: Iova | null;
  /** Linux: iovad->max32_alloc_size (pfns): 32-bit allocations this large fail at once. */
  readonly max32AllocSize: number;
}

/**
 * Contents of one size class's range cache, for tests and debugging.
 * Linux: struct iova_rcache and its struct iova_cpu_rcache.
 */
export interface IovaRcacheState {
  /** Pfns per range in this class (1, 2, 4, 8, 16, 32). */
  readonly size: number;
  /** Pfns in the CPU's loaded magazine, bottom first. Linux: cpu_rcache->loaded. */
  readonly loaded: readonly number[];
  /** Pfns in the CPU's previous magazine, bottom first. Linux: cpu_rcache->prev. */
  readonly prev: readonly number[];
  /** Full magazines in the depot, top (next to pop) first. Linux: rcache->depot. */
  readonly depot: readonly (readonly number[])[];
}

/** A magazine of cached pfn_lo values. Linux: struct iova_magazine. */
class Magazine {
  size = 0;
  readonly pfns = new Float64Array(IOVA_MAG_SIZE);
}

/** One size class's range cache, single CPU. Linux: struct iova_rcache + struct iova_cpu_rcache. */
class Rcache {
  loaded = new Magazine();
  prev = new Magazine();
  /** Stack of full magazines; the end is the head of Linux's list. */
  readonly depot: Magazine[] = [];
}

function einval(msg: string): never {
  throw new IommuError('EINVAL', msg);
}

/**
 * An IOVA space: the tree of allocated and reserved ranges, the anchor above
 * them, the cached search starting points, and the range caches.
 *
 * Units: pfns of `granule` bytes throughout. See the file comment for the
 * model's range (pfns ≤ 2^52 − 1) and its deliberate differences (one CPU,
 * no time, no allocation failures, O(log n) search).
 *
 * Linux: struct iova_domain, include/linux/iova.h; drivers/iommu/iova.c.
 */
export class IovaDomain {
  /** IOVA page size in bytes (a power of two). Linux: iovad->granule. */
  readonly granule: number;
  /** log2(granule). Linux: iova_shift(). */
  readonly shift: number;
  /** Lowest allocatable pfn. Linux: iovad->start_pfn. */
  readonly startPfn: number;
  /** First pfn at or above 4 GiB: 2^(32 − shift). Linux: iovad->dma_32bit_pfn. */
  readonly dma32BitPfn: number;
  /** Whether the fast path verifies its arguments (see {@link IovaDomainOptions.debugChecks}). */
  readonly debugChecks: boolean;
  /** See {@link IovaDomainOptions.searchWalkSteps}. */
  readonly searchWalkSteps: number;

  private readonly tree: IovaTree;
  /** Slot of the anchor node. Linux: iovad->anchor. */
  private anchor: number;
  /** Linux: iovad->cached_node. */
  private cachedNode: number;
  /** Linux: iovad->cached32_node. */
  private cached32Node: number;
  /** Linux: iovad->max32_alloc_size. */
  private max32AllocSize: number;
  /** Linux: iovad->rcaches; null once the domain is put. */
  private rcaches: Rcache[] | null;
  private readonly magPool: Magazine[] = [];
  /** Neighbours of the gap the last successful search found. */
  private foundPred = NIL;
  private foundSucc = NIL;
  /** In debugChecks mode: pfn_lo values currently in a range cache. */
  private readonly inCache: Set<number> | null;
  private readonly st: IovaDomainStats = {
    treeSize: 0,
    cachedIovas: 0,
    depotMagazines: 0,
    rcacheHits: 0,
    rcacheMisses: 0,
    rcacheUncacheable: 0,
    rcacheInserts: 0,
    rcacheBypassFrees: 0,
    depotPushes: 0,
    depotPops: 0,
    depotTrims: 0,
    rcacheFlushes: 0,
    treeAllocs: 0,
    treeAllocFailures: 0,
    max32Shortcuts: 0,
    retryPasses: 0,
    searchSteps: 0,
    treeFrees: 0,
    reserveInserts: 0,
    warnings: 0,
  };

  /**
   * Initialise an empty IOVA domain and its range caches.
   * @param granule IOVA page size in bytes: a power of two, at most 64 KiB
   *   (Linux: BUG_ON(granule > PAGE_SIZE || !is_power_of_2(granule))).
   * @param startPfn lowest allocatable pfn (units: granules), 0..2^52 − 1.
   *   Linux callers use ≥ 1, because pfn 0 is alloc_iova_fast()'s failure value.
   * @param options model-only knobs (see {@link IovaDomainOptions}); none changes a result.
   * @throws IommuError EINVAL for a bad granule, startPfn or option.
   * Linux: init_iova_domain() + iova_domain_init_rcaches(), drivers/iommu/iova.c.
   */
  constructor(granule: number, startPfn: number, options: IovaDomainOptions = {}) {
    if (!Number.isInteger(granule) || granule < 1 || granule > 65536 || (granule & (granule - 1)) !== 0) {
      einval(`IOVA granule ${granule} is not a power of two in [1, 65536]`);
    }
    if (!Number.isInteger(startPfn) || startPfn < 0 || startPfn > IOVA_MAX_PFN) {
      einval(`IOVA start_pfn ${startPfn} is not an integer in [0, 2^52 - 1]`);
    }
    this.granule = granule;
    this.shift = 31 - Math.clz32(granule);
    this.startPfn = startPfn;
    this.dma32BitPfn = 2 ** (32 - this.shift);
    this.max32AllocSize = this.dma32BitPfn;
    this.debugChecks = options.debugChecks ?? false;
    const walk = options.searchWalkSteps ?? IOVA_SEARCH_WALK_STEPS;
    if (!Number.isInteger(walk) || walk < 0) einval(`searchWalkSteps ${walk} is not a non-negative integer`);
    this.searchWalkSteps = walk;
    this.inCache = this.debugChecks ? new Set() : null;
    this.tree = new IovaTree(options.initialCapacity ?? 256);
    this.anchor = this.tree.insert(IOVA_ANCHOR, IOVA_ANCHOR);
    this.cachedNode = this.anchor;
    this.cached32Node = this.anchor;
    this.rcaches = [];
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.rcaches.push(new Rcache());
  }

  // ---------------------------------------------------------------- checks

  private live(): Rcache[] {
    const r = this.rcaches;
    if (r === null) einval('IOVA domain used after putIovaDomain()');
    return r;
  }

  private checkPfn(what: string, pfn: number): void {
    if (!Number.isInteger(pfn) || pfn < 0 || pfn > IOVA_MAX_PFN) einval(`IOVA ${what} ${pfn} is not an integer in [0, 2^52 - 1]`);
  }

  private checkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > IOVA_MAX_PFN + 1) einval(`IOVA size ${size} is not an integer in [1, 2^52]`);
  }

  /** Validate limit_pfn and clamp it to the model's top pfn. */
  private clampLimit(limitPfn: number): number {
    if (!(limitPfn >= 0) || !Number.isInteger(limitPfn)) {
      if (limitPfn !== Infinity) einval(`IOVA limit_pfn ${limitPfn} is not a non-negative integer`);
    }
    return limitPfn > IOVA_MAX_PFN ? IOVA_MAX_PFN : limitPfn;
  }

  private snap(s: number): Iova {
    return { pfnLo: this.tree.lo(s), pfnHi: this.tree.hi(s) };
  }

  // ------------------------------------------------------ the tree allocator

  /**
   * Linux's top-down walk: starting at node `start` with high_pfn = limitPfn
   * (exclusive), the pfn where Linux's loop
   * `do { high_pfn = min(high_pfn, curr->pfn_lo); new_pfn = (high_pfn - size)
   * & align_mask; curr = rb_prev(curr); } while (curr && new_pfn <= curr->pfn_hi
   * && new_pfn >= low_pfn)` stops with success, or −1 where Linux fails.
   *
   * The first {@link searchWalkSteps} iterations run literally (via O(1) rb_prev
   * links): in the common case Linux's walk ends within a node or two of the
   * cached node, and so does this. If it has not ended by then, the rest is
   * answered by {@link searchFrom} in O(log n).
   */
  private search(start: number, limitPfn: number, size: number, align: number, low: number): number {
    const t = this.tree;
    let curr = start;
    let high = limitPfn;
    const maxSteps = this.searchWalkSteps;
    for (let steps = 0; steps < maxSteps; steps++) {
      const clo = t.lo(curr);
      if (clo < high) high = clo;
      const cand = alignDown(high - size, align);
      const prev = t.prev(curr);
      this.st.searchSteps++;
      if (prev === NIL || cand > t.hi(prev) || cand < low) {
        if (cand < low) return -1; // also covers high_pfn < size (cand < 0)
        this.foundPred = prev;
        this.foundSucc = curr;
        return cand;
      }
      curr = prev;
    }
    // Every node walked so far has pfn_lo > curr's, so continuing at curr with
    // high_pfn = limitPfn is the same as continuing Linux's loop.
    return this.searchFrom(curr, limitPfn, size, align, low);
  }

  /**
   * {@link search} without the walk, by the augmented tree.
   *
   * Why it gives Linux's answer: along the walk high_pfn, hence new_pfn, never
   * grows, so the walk succeeds exactly at the highest node P (at or below
   * `start`) where new_pfn(P) clears P's lower neighbour, provided
   * new_pfn(P) ≥ low. Nodes at or above limitPfn all give new_pfn =
   * align(limitPfn − size), and only the lowest of them (P0) can clear its
   * neighbour. Below limitPfn, new_pfn(P) clears the neighbour only if P's gap
   * ≥ size; the tree finds the highest such P in O(log n), and a size-aligned
   * candidate that still misses is skipped the same way (O(log n) each).
   */
  private searchFrom(start: number, limitPfn: number, size: number, align: number, low: number): number {
    const t = this.tree;
    let bound: number;
    if (t.lo(start) >= limitPfn) {
      const p0 = t.lowerBound(limitPfn);
      const q = t.prev(p0);
      const cand = alignDown(limitPfn - size, align);
      this.st.searchSteps++;
      if (cand < low) return -1;
      if (q === NIL || cand > t.hi(q)) {
        this.foundPred = q;
        this.foundSucc = p0;
        return cand;
      }
      bound = t.lo(q);
    } else {
      bound = t.lo(start);
    }
    for (;;) {
      // Non-NIL: the lowest node has gap +∞ and is at or below `bound`.
      const p = t.rightmostGapAtLeast(bound, size);
      const plo = t.lo(p);
      const gap = t.gap(p);
      const cand = alignDown(plo - size, align);
      this.st.searchSteps++;
      if (cand < low) return -1;
      // cand > prev.pfn_hi, where prev.pfn_hi = plo - gap - 1.
      if (cand >= plo - gap) {
        this.foundPred = t.prev(p);
        this.foundSucc = p;
        return cand;
      }
      bound = plo - 1;
    }
  }

  /**
   * Allocate `size` pfns below `limitPfn` (exclusive, i.e. Linux's
   * `limit_pfn + 1`) into the tree; the new node's slot, or NIL.
   * Linux: __alloc_and_insert_iova_range(), drivers/iommu/iova.c.
   */
  private allocAndInsert(size: number, limitPfn: number, sizeAligned: boolean): number {
    const align = sizeAligned ? 2 ** flsLong(size - 1) : 1;
    const dma32 = this.dma32BitPfn;
    const st = this.st;
    if (limitPfn <= dma32 && size >= this.max32AllocSize) {
      st.max32Shortcuts++;
      st.treeAllocFailures++;
      return NIL;
    }
    const t = this.tree;
    // __get_cached_rbnode()
    const start = limitPfn <= dma32 ? this.cached32Node : this.cachedNode;
    const retryPfn = t.hi(start);
    let pfn = this.search(start, limitPfn, size, align, this.startPfn);
    // Linux retries while low_pfn == start_pfn; a cached node always ends at
    // or above start_pfn, so low_pfn = retry_pfn + 1 > start_pfn and the retry
    // happens at most once. iova_find_limit() returns the anchor or a node
    // ending at or above limit_pfn; any such start gives the anchor's result.
    if (pfn < 0 && retryPfn < limitPfn) {
      st.retryPasses++;
      pfn = this.search(this.anchor, limitPfn, size, align, retryPfn + 1);
    }
    if (pfn < 0) {
      this.max32AllocSize = size;
      st.treeAllocFailures++;
      return NIL;
    }
    const hi = pfn + size - 1;
    const s = t.insertBetween(pfn, hi, this.foundPred, this.foundSucc);
    // __cached_rbnode_insert_update()
    if (hi < dma32) this.cached32Node = s;
    else this.cachedNode = s;
    st.treeAllocs++;
    st.treeSize++;
    return s;
  }

  /**
   * Take node `s` out of the tree, moving the cached nodes as Linux does.
   * Linux: remove_iova() with __cached_rbnode_delete_update(), drivers/iommu/iova.c.
   */
  private removeIova(s: number): void {
    const t = this.tree;
    const next = t.next(s);
    const dma32 = this.dma32BitPfn;
    const c32 = this.cached32Node;
    if (s === c32 || (t.hi(s) < dma32 && t.lo(s) >= t.lo(c32))) this.cached32Node = next;
    if (t.lo(s) < dma32) this.max32AllocSize = dma32;
    if (t.lo(s) >= t.lo(this.cachedNode)) this.cachedNode = next;
    t.remove(s);
    this.st.treeFrees++;
    this.st.treeSize--;
  }

  /**
   * Allocate `size` pfns at or below `limitPfn`, top-down, at or above
   * `startPfn`; with `sizeAligned`, pfnLo is a multiple of the power of two
   * ≥ size (2^fls_long(size − 1)). Returns the new range, or null where Linux
   * returns NULL (no room; or a 32-bit request at least as large as one that
   * already failed, until something below 4 GiB is freed).
   * @param size pfns, integer ≥ 1.
   * @param limitPfn highest usable pfn (inclusive); above 2^52 − 1 it is clamped.
   * @param sizeAligned align pfnLo to the power of two ≥ size.
   * Cost: O(log n) expected (Linux: linear in the nodes its walk passes).
   * Linux: alloc_iova(), drivers/iommu/iova.c.
   */
  allocIova(size: number, limitPfn: number, sizeAligned: boolean): Iova | null {
    this.live();
    this.checkSize(size);
    const limit = this.clampLimit(limitPfn);
    const s = this.allocAndInsert(size, limit + 1, sizeAligned);
    return s === NIL ? null : this.snap(s);
  }

  /**
   * The range containing `pfn`, or null. O(log n).
   * Linux: find_iova(), drivers/iommu/iova.c.
   */
  findIova(pfn: number): Iova | null {
    this.live();
    this.checkPfn('pfn', pfn);
    const s = this.tree.find(pfn);
    return s === NIL ? null : this.snap(s);
  }

  /**
   * Free the range containing `pfn` (allocated or reserved); nothing if there
   * is none. O(log n).
   * Linux: free_iova(), drivers/iommu/iova.c.
   */
  freeIova(pfn: number): void {
    this.live();
    this.checkPfn('pfn', pfn);
    const s = this.tree.find(pfn);
    if (s !== NIL) this.removeIova(s);
  }

  /**
   * Free a range returned by allocIova(), reserveIova() or findIova().
   * Linux takes the struct iova itself; the model finds the live range that
   * still contains `iova.pfnLo` and ends at `iova.pfnHi` (reserve_iova() may
   * since have lowered its pfn_lo, as in Linux). O(log n).
   * @throws IommuError EINVAL if no such range is in the tree (Linux: a use
   *   after free).
   * Linux: __free_iova(), drivers/iommu/iova.c.
   */
  __freeIova(iova: Iova): void {
    this.live();
    this.checkPfn('pfn_lo', iova.pfnLo);
    const s = this.tree.find(iova.pfnLo);
    if (s === NIL || this.tree.hi(s) !== iova.pfnHi) {
      einval(`__free_iova: [0x${iova.pfnLo.toString(16)}, 0x${iova.pfnHi.toString(16)}] is not a live IOVA`);
    }
    this.removeIova(s);
  }

  /**
   * Keep pfns `pfnLo..pfnHi` out of allocations. Like Linux, overlapping
   * ranges are not merged into one node: the first overlapping range is
   * extended down to `pfnLo`, each following one down to the end of the one
   * before (filling the holes), and a new range is inserted for whatever lies
   * above the last. Returns the range that now covers the top of the request
   * (an existing one if it already did), or null where Linux returns NULL
   * (pfns above `ULLONG_MAX >> iova_shift`). Does not move the cached nodes.
   * Cost: O(log n + ranges overlapped) (Linux: linear from rb_first()).
   * @throws IommuError EINVAL for non-integer or negative pfns, pfnLo > pfnHi,
   *   or pfns above 2^52 − 1 that Linux would accept.
   * Linux: reserve_iova(), __adjust_overlap_range(), __insert_new_range(),
   * drivers/iommu/iova.c.
   */
  reserveIova(pfnLo: number, pfnHi: number): Iova | null {
    this.live();
    const linuxMax = 2 ** (64 - this.shift) - 1;
    if (Number.isInteger(pfnLo) && Number.isInteger(pfnHi) && (pfnLo > linuxMax || pfnHi > linuxMax)) return null;
    this.checkPfn('pfn_lo', pfnLo);
    this.checkPfn('pfn_hi', pfnHi);
    if (pfnLo > pfnHi) einval(`reserve_iova: pfn_lo 0x${pfnLo.toString(16)} > pfn_hi 0x${pfnHi.toString(16)}`);
    const t = this.tree;
    let lo = pfnLo;
    // Ranges are disjoint and sorted, so the ones overlapping [lo, pfnHi] are
    // consecutive from the first ending at or above lo; Linux's scan from
    // rb_first() skips the ones before and stops after the last.
    for (let n = t.firstHiAtLeast(lo); n !== NIL; n = t.next(n)) {
      if (lo <= t.hi(n) && pfnHi >= t.lo(n)) {
        if (lo < t.lo(n)) t.setLo(n, lo);
        if (pfnHi > t.hi(n)) lo = t.hi(n) + 1;
        if (lo >= t.lo(n) && pfnHi <= t.hi(n)) return this.snap(n);
      } else {
        // Linux breaks here once it has seen an overlap; before one, no range
        // further up can overlap either, so its scan would find nothing more.
        break;
      }
    }
    const s = t.insert(lo, pfnHi);
    this.st.treeSize++;
    this.st.reserveInserts++;
    return this.snap(s);
  }

  // ----------------------------------------------------------- range caches

  /**
   * Allocate `size` pfns ending at or below `limitPfn`, size-aligned, from
   * the range cache of its size class if it holds a fitting range, else from
   * the tree. Sizes below 32 are first rounded up to a power of two (so
   * `size` 3 takes 4 pfns, aligned to 4). If the tree has no room and
   * `flushRcache` is set, every cached range is returned to the tree and the
   * tree is tried once more. Returns pfn_lo, or 0 on failure (so a range at
   * pfn 0 reads as a failure, and is leaked, exactly as in Linux).
   * The cached path is allocation-free, O(1) unless the magazine's top ranges
   * are above the limit (then O(magazine size)).
   * @param size pfns, integer ≥ 1.
   * @param limitPfn highest usable pfn (inclusive; clamped to 2^52 − 1).
   * @param flushRcache on failure, flush the range caches and retry once.
   * Linux: alloc_iova_fast(), iova_rcache_get(), __iova_rcache_get(),
   * iova_magazine_pop(), drivers/iommu/iova.c.
   */
  allocIovaFast(size: number, limitPfn: number, flushRcache: boolean): number {
    const rcaches = this.rcaches;
    if (rcaches === null) return this.live() as never;
    let s = size;
    if (s < 32 && s >= 1 && (s | 0) === s) {
      // roundup_pow_of_two() for size < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1)
      if (s > 1) s = 1 << (32 - Math.clz32(s - 1));
    } else {
      this.checkSize(s);
    }
    const limit = limitPfn >= 0 && limitPfn <= IOVA_MAX_PFN && Number.isInteger(limitPfn) ? limitPfn : this.clampLimit(limitPfn);
    const st = this.st;
    if (s <= 32) {
      // iova_rcache_get(iovad, size, limit_pfn + 1) → __iova_rcache_get(rcache, limit_pfn + 1 - size);
      // the subtraction wraps in Linux when size > limit_pfn + 1, accepting every cached pfn.
      let magLimit = limit + 1 - s;
      if (magLimit < 0) magLimit = Infinity;
      const pfn = this.rcacheGet(rcaches[31 - Math.clz32(s)]!, magLimit);
      if (pfn !== 0) {
        st.rcacheHits++;
        st.cachedIovas--;
        if (this.inCache !== null) this.inCache.delete(pfn);
        return pfn;
      }
      st.rcacheMisses++;
    } else {
      st.rcacheUncacheable++;
    }
    let flush = flushRcache;
    for (;;) {
      const n = this.allocAndInsert(s, limit + 1, true);
      if (n !== NIL) return this.tree.lo(n);
      if (!flush) return 0;
      // Try replenishing IOVAs by flushing rcache.
      flush = false;
      st.rcacheFlushes++;
      this.freeCpuCachedIovas();
      this.freeGlobalCachedIovas();
    }
  }

  /** Linux: __iova_rcache_get() + iova_magazine_pop(); 0 if nothing fits. */
  private rcacheGet(rc: Rcache, limitPfn: number): number {
    let mag = rc.loaded;
    if (mag.size === 0) {
      const prev = rc.prev;
      if (prev.size !== 0) {
        rc.prev = mag;
        rc.loaded = prev;
        mag = prev;
      } else if (rc.depot.length !== 0) {
        this.magPool.push(mag);
        mag = rc.depot.pop()!;
        rc.loaded = mag;
        this.st.depotPops++;
        this.st.depotMagazines--;
      } else {
        return 0;
      }
    }
    // Only fall back to the tree if no pfn at all is below the limit.
    const pfns = mag.pfns;
    let i = mag.size - 1;
    while (pfns[i]! > limitPfn) {
      if (i === 0) return 0;
      i--;
    }
    const pfn = pfns[i]!;
    pfns[i] = pfns[--mag.size]!;
    return pfn;
  }

  /**
   * Free the range at `pfn` of `size` pfns (the size passed to
   * allocIovaFast(), before rounding) into the range cache of its size class
   * (order_base_2(size) < 6, i.e. size ≤ 32), or to the tree if it is larger.
   * The range stays in the tree while cached. Like Linux, the pfn is not
   * checked (unless `debugChecks`): freeing a pfn that is not a live range of
   * that size class, or freeing twice, makes a later allocIovaFast() return
   * it anyway. Allocation-free, O(1) (a full cache pushes a magazine to the depot).
   * @throws IommuError EINVAL (debugChecks only) for a pfn that is not the
   *   start of a live IOVA of the size class, or is already cached.
   * Linux: free_iova_fast(), iova_rcache_insert(), __iova_rcache_insert(),
   * drivers/iommu/iova.c.
   */
  freeIovaFast(pfn: number, size: number): void {
    const rcaches = this.rcaches;
    if (rcaches === null) return this.live() as never;
    if (!(pfn >= 0 && pfn <= IOVA_MAX_PFN) || !Number.isInteger(pfn)) this.checkPfn('pfn', pfn);
    let log: number;
    if (size >= 1 && size <= 32 && (size | 0) === size) {
      log = size === 1 ? 0 : 32 - Math.clz32(size - 1); // order_base_2()
    } else {
      this.checkSize(size);
      this.st.rcacheBypassFrees++;
      this.freeIova(pfn);
      return;
    }
    if (this.inCache !== null) this.debugCheckFree(pfn, log);
    const rc = rcaches[log]!;
    let mag = rc.loaded;
    if (mag.size === IOVA_MAG_SIZE) {
      const prev = rc.prev;
      if (prev.size !== IOVA_MAG_SIZE) {
        rc.prev = mag;
        rc.loaded = prev;
        mag = prev;
      } else {
        rc.depot.push(mag);
        this.st.depotPushes++;
        this.st.depotMagazines++;
        mag = this.magPool.pop() ?? new Magazine();
        mag.size = 0;
        rc.loaded = mag;
      }
    }
    mag.pfns[mag.size++] = pfn;
    this.st.rcacheInserts++;
    this.st.cachedIovas++;
  }

  private debugCheckFree(pfn: number, log: number): void {
    const s = this.tree.find(pfn);
    const hex = `0x${pfn.toString(16)}`;
    if (s === NIL || this.tree.lo(s) !== pfn) einval(`free_iova_fast: ${hex} is not the start of a live IOVA`);
    const pages = this.tree.hi(s) - pfn + 1;
    if (pages !== 2 ** log) einval(`free_iova_fast: IOVA at ${hex} is ${pages} pfns, not ${2 ** log} (its size class)`);
    if (this.inCache!.has(pfn)) einval(`free_iova_fast: IOVA at ${hex} is already in the range cache (double free)`);
    this.inCache!.add(pfn);
  }

  /** Return a magazine's ranges to the tree, in magazine order. Linux: iova_magazine_free_pfns(). */
  private magazineFreePfns(mag: Magazine): void {
    const t = this.tree;
    for (let i = 0; i < mag.size; i++) {
      const pfn = mag.pfns[i]!;
      this.inCache?.delete(pfn);
      const s = t.find(pfn);
      if (s === NIL) {
        this.st.warnings++; // WARN_ON(!iova)
        continue;
      }
      this.removeIova(s);
    }
    this.st.cachedIovas -= mag.size;
    mag.size = 0;
  }

  /**
   * Return the CPU's loaded and prev magazines of every size class to the
   * tree (one CPU in the model). The depot is left alone.
   * Linux: free_cpu_cached_iovas() (called when a CPU goes offline,
   * iova_cpuhp_dead()), drivers/iommu/iova.c.
   */
  freeCpuCachedIovas(): void {
    const rcaches = this.live();
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) {
      const rc = rcaches[i]!;
      this.magazineFreePfns(rc.loaded);
      this.magazineFreePfns(rc.prev);
    }
  }

  /**
   * Return the CPU caches of every online CPU to the tree — one CPU here, so
   * the same as {@link freeCpuCachedIovas}. The depot is left alone; use
   * {@link flushRcaches} for what alloc_iova_fast()'s flush does.
   * Linux: free_all_cpu_cached_iovas() (≤ v5.16; mainline now open-codes
   * `for_each_online_cpu(cpu) free_cpu_cached_iovas(cpu, iovad)`), drivers/iommu/iova.c.
   */
  freeAllCpuCachedIovas(): void {
    this.freeCpuCachedIovas();
  }

  /**
   * Return every depot magazine's ranges to the tree (top of each depot
   * first, size classes in order).
   * Linux: free_global_cached_iovas(), drivers/iommu/iova.c.
   */
  freeGlobalCachedIovas(): void {
    const rcaches = this.live();
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) {
      const depot = rcaches[i]!.depot;
      while (depot.length !== 0) {
        const mag = depot.pop()!;
        this.st.depotMagazines--;
        this.magazineFreePfns(mag);
        this.magPool.push(mag);
      }
    }
  }

  /**
   * Empty every range cache into the tree: the CPU magazines, then the
   * depots — what alloc_iova_fast() does before its retry.
   * Linux: the flush_rcache path of alloc_iova_fast(), drivers/iommu/iova.c.
   */
  flushRcaches(): void {
    this.freeCpuCachedIovas();
    this.freeGlobalCachedIovas();
  }

  /**
   * Run the depot trim to completion: while a size class's depot holds more
   * than num_online_cpus() (1) magazines, pop the top one and return its
   * ranges to the tree. Linux runs one step of this 100 ms (IOVA_DEPOT_DELAY)
   * after each depot push and reschedules itself while it trims; the model
   * has no clock, so call this where that time would have passed. Returns
   * the magazines trimmed.
   * Linux: iova_depot_work_func(), drivers/iommu/iova.c.
   */
  runDepotWork(): number {
    const rcaches = this.live();
    let n = 0;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) {
      const depot = rcaches[i]!.depot;
      while (depot.length > NUM_ONLINE_CPUS) {
        const mag = depot.pop()!;
        this.st.depotMagazines--;
        this.st.depotTrims++;
        this.magazineFreePfns(mag);
        this.magPool.push(mag);
        n++;
      }
    }
    return n;
  }

  /**
   * Destroy the domain: drop the range caches (their ranges are not returned
   * to the tree, just freed with it) and every range, anchor included. Any
   * later call throws IommuError EINVAL (Linux: a use after free).
   * Linux: put_iova_domain(), free_iova_rcaches(), drivers/iommu/iova.c.
   */
  putIovaDomain(): void {
    this.live();
    this.rcaches = null;
    this.magPool.length = 0;
    this.inCache?.clear();
    this.tree.clear();
    this.anchor = NIL;
    this.cachedNode = NIL;
    this.cached32Node = NIL;
    this.st.treeSize = 0;
    this.st.cachedIovas = 0;
    this.st.depotMagazines = 0;
  }

  // ------------------------------------------------------------ inspection

  /** Whether {@link putIovaDomain} has been called. */
  get isPut(): boolean {
    return this.rcaches === null;
  }

  /**
   * A snapshot of the counters (see {@link IovaDomainStats}).
   */
  getStats(): IovaDomainStats {
    return { ...this.st };
  }

  /**
   * Every range in the tree in address order (allocated, reserved and
   * range-cached alike), without the anchor. O(n).
   * Linux: an rb_first()/rb_next() walk of iovad->rbroot (as iova_dump()-style debug code does).
   */
  iovas(): Iova[] {
    const out: Iova[] = [];
    const t = this.tree;
    for (let s = t.first; s !== NIL && s !== this.anchor; s = t.next(s)) out.push(this.snap(s));
    return out;
  }

  /**
   * Where the next search starts, and the max32 shortcut (see {@link IovaCachedState}).
   * Linux: iovad->cached_node, cached32_node, max32_alloc_size.
   */
  cachedState(): IovaCachedState {
    this.live();
    return {
      cachedNode: this.cachedNode === this.anchor ? null : this.snap(this.cachedNode),
      cached32Node: this.cached32Node === this.anchor ? null : this.snap(this.cached32Node),
      max32AllocSize: this.max32AllocSize,
    };
  }

  /**
   * Contents of the range caches, one entry per size class (1..32 pfns).
   * Linux: iovad->rcaches[].
   */
  rcacheState(): IovaRcacheState[] {
    const rcaches = this.live();
    const mag = (m: Magazine): number[] => Array.from(m.pfns.subarray(0, m.size));
    return rcaches.map((rc, i) => ({
      size: 1 << i,
      loaded: mag(rc.loaded),
      prev: mag(rc.prev),
      depot: rc.depot.map(mag).reverse(),
    }));
  }

  /**
   * Check the tree's structural invariants and the domain's bookkeeping
   * (cached nodes live, counters consistent); throws IommuError EINVAL on the
   * first violation. O(n); for tests.
   */
  validate(): void {
    const rcaches = this.live();
    this.tree.validate();
    const t = this.tree;
    const liveSlot = (s: number): boolean => {
      for (let n = t.first; n !== NIL; n = t.next(n)) if (n === s) return true;
      return false;
    };
    if (!liveSlot(this.cachedNode) || !liveSlot(this.cached32Node)) einval('IovaDomain corrupt: a cached node is not in the tree');
    if (t.size !== this.st.treeSize + 1) einval(`IovaDomain corrupt: treeSize ${this.st.treeSize} but ${t.size - 1} ranges`);
    let cached = 0;
    let depot = 0;
    for (const rc of rcaches) {
      cached += rc.loaded.size + rc.prev.size;
      for (const m of rc.depot) {
        if (m.size !== IOVA_MAG_SIZE) einval('IovaDomain corrupt: a depot magazine is not full');
        cached += m.size;
        depot++;
      }
    }
    if (cached !== this.st.cachedIovas || depot !== this.st.depotMagazines) einval('IovaDomain corrupt: cache counters');
  }
}
