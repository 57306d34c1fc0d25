/**
 * Tests for the IOVA allocator (src/iommu/iova.ts): call sequences whose
 * results were worked out by hand from Linux's drivers/iommu/iova.c
 * (mainline v6.13+): __alloc_and_insert_iova_range(),
 * __cached_rbnode_insert_update(), __cached_rbnode_delete_update(),
 * reserve_iova(), alloc_iova_fast() and the iova_rcache magazines.
 *
 * Notation in comments: H = limit_pfn + 1 (the exclusive limit Linux's search
 * uses), "cand" = (min(H, curr->pfn_lo) - size) & align_mask.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { alignDown, flsLong, orderBase2, roundupPowOfTwo } from '../../src/iommu/iova-bits.js';
import { IovaTree, NIL } from '../../src/iommu/iova-tree.js';
import { IOVA_MAG_SIZE, IOVA_MAX_PFN, IOVA_RANGE_CACHE_MAX_SIZE, IovaDomain } from '../../src/iommu/iova.js';

const G4K = 4096;
const LIM32 = 0xfffff; // dma_32bit_pfn - 1 for a 4 KiB granule

const r = (pfnLo: number, pfnHi: number) => ({ pfnLo, pfnHi });

function einval(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => isIommuError(e, 'EINVAL'));
}

// ------------------------------------------------------------------ helpers

test('bit helpers match fls_long / order_base_2 / roundup_pow_of_two', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 255, 256].map(flsLong), [0, 1, 2, 2, 3, 8, 9]);
  assert.equal(flsLong(2 ** 32), 33);
  assert.equal(flsLong(2 ** 52 - 1), 52);
  assert.deepEqual([1, 2, 3, 4, 5, 31, 32, 33].map(orderBase2), [0, 1, 2, 2, 3, 5, 5, 6]);
  assert.deepEqual([1, 2, 3, 17, 32].map(roundupPowOfTwo), [1, 2, 4, 32, 32]);
  assert.equal(alignDown(0xffffb, 4), 0xffff8);
  assert.equal(alignDown(-3, 4), -4); // stays below any low_pfn, as Linux's wrapped value fails its checks
});

test('IovaTree keeps order, gaps and subtree maxima through inserts, removes and setLo', () => {
  const t = new IovaTree(4);
  const slots = new Map<number, number>();
  let seed = 1;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
  for (let i = 0; i < 3000; i++) {
    const k = rnd(4000) * 4;
    if (slots.has(k)) {
      t.remove(slots.get(k)!);
      slots.delete(k);
    } else {
      slots.set(k, t.insert(k, k + rnd(3)));
    }
    if (i % 97 === 0) t.validate();
  }
  t.validate();
  assert.equal(t.size, slots.size);
  const keys = [...slots.keys()].sort((a, b) => a - b);
  assert.equal(t.lo(t.first), keys[0]);
  // find(): containment; lowerBound(); rightmostGapAtLeast() against a scan
  for (const k of keys.slice(0, 200)) assert.equal(t.find(k), slots.get(k));
  assert.equal(t.find(keys[0]! - 1), NIL);
  const order = keys.map((k) => slots.get(k)!);
  for (const bound of [0, 100, 5000, 9000, 16003]) {
    for (const g of [1, 2, 5, 9, 13]) {
      let want = NIL;
      for (const s of order) if (t.lo(s) <= bound && t.gap(s) >= g) want = s;
      assert.equal(t.rightmostGapAtLeast(bound, g), want, `bound ${bound} g ${g}`);
    }
  }
});

// ------------------------------------------------------------- construction

test('init_iova_domain: dma_32bit_pfn, start_pfn, empty tree, anchor', () => {
  const d = new IovaDomain(G4K, 1);
  assert.equal(d.shift, 12);
  assert.equal(d.dma32BitPfn, 0x100000);
  assert.equal(d.startPfn, 1);
  assert.equal(new IovaDomain(65536, 1).dma32BitPfn, 0x10000);
  assert.equal(new IovaDomain(512, 1).dma32BitPfn, 0x800000);
  assert.deepEqual(d.iovas(), []);
  assert.deepEqual(d.cachedState(), { cachedNode: null, cached32Node: null, max32AllocSize: 0x100000 });
  assert.equal(d.getStats().treeSize, 0);
  assert.equal(d.rcacheState().length, IOVA_RANGE_CACHE_MAX_SIZE);
  d.validate();
});

test('bad granules, start pfns and arguments throw EINVAL', () => {
  einval(() => new IovaDomain(3000, 1));
  einval(() => new IovaDomain(131072, 1)); // > 64 KiB: Linux BUG_ON(granule > PAGE_SIZE)
  einval(() => new IovaDomain(G4K, -1));
  einval(() => new IovaDomain(G4K, 2 ** 52));
  const d = new IovaDomain(G4K, 1);
  einval(() => d.allocIova(0, LIM32, false));
  einval(() => d.allocIova(1.5, LIM32, false));
  einval(() => d.allocIova(1, -1, false));
  einval(() => d.allocIova(1, NaN, false));
  einval(() => d.allocIovaFast(0, LIM32, false));
  einval(() => d.freeIovaFast(-5, 1));
  einval(() => d.freeIovaFast(5, 0));
  einval(() => d.findIova(2 ** 52));
  einval(() => d.reserveIova(10, 5));
});

// ------------------------------------------------------- the top-down search

test('first allocations: 1 page at the top of the 32-bit space, then a size-aligned 4', () => {
  const d = new IovaDomain(G4K, 1);
  // cached32 = anchor; H = 0x100000 <= dma_32bit_pfn. cand = 0x100000 - 1.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  // From cached32 = [0xfffff]: high = 0xfffff, (0xfffff - 4) & ~3 = 0xffff8.
  assert.deepEqual(d.allocIova(4, LIM32, true), r(0xffff8, 0xffffb));
  // Unaligned 1 page continues below: 0xffff8 - 1.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffff7, 0xffff7));
  // Unaligned 3 pages: 0xffff7 - 3 = 0xffff4 (no alignment).
  assert.deepEqual(d.allocIova(3, LIM32, false), r(0xffff4, 0xffff6));
  // Size-aligned 3 pages aligns to 4 (fls_long(2) = 2): (0xffff4 - 3) & ~3 = 0xffff0.
  assert.deepEqual(d.allocIova(3, LIM32, true), r(0xffff0, 0xffff2));
  // Size-aligned 5 aligns to 8: (0xffff0 - 5) & ~7 = 0xfffe8.
  assert.deepEqual(d.allocIova(5, LIM32, true), r(0xfffe8, 0xfffec));
  assert.deepEqual(d.cachedState(), { cachedNode: null, cached32Node: r(0xfffe8, 0xfffec), max32AllocSize: 0x100000 });
  assert.equal(d.getStats().treeSize, 6);
  d.validate();
});

test('holes above the cached node are skipped: the search never looks above cached32_node', () => {
  const d = new IovaDomain(G4K, 1);
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  assert.deepEqual(d.allocIova(4, LIM32, true), r(0xffff8, 0xffffb)); // leaves 0xffffc..0xffffe free
  // Size-aligned 2 from [0xffff8]: (0xffff8 - 2) & ~1 = 0xffff6.
  assert.deepEqual(d.allocIova(2, LIM32, true), r(0xffff6, 0xffff7));
  // 1 page: starts at cached32 = [0xffff6], so the 3-page hole above is not used.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffff5, 0xffff5));
});

test('limits above 4 GiB use cached_node, limits at or below use cached32_node', () => {
  const d = new IovaDomain(G4K, 1);
  // H = 2^32 > dma_32bit_pfn: cached_node (anchor) → top of the limit.
  assert.deepEqual(d.allocIova(1, 0xffffffff, false), r(0xffffffff, 0xffffffff));
  assert.deepEqual(d.cachedState().cachedNode, r(0xffffffff, 0xffffffff));
  assert.equal(d.cachedState().cached32Node, null);
  // A 32-bit request is unaffected: cached32 is still the anchor.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  // Limit exactly dma_32bit_pfn (H = 0x100001 > dma_32bit_pfn): the 64-bit cached
  // node [0xffffffff] is the start, so high = min(H, 0xffffffff) = H → 0x100000.
  assert.deepEqual(d.allocIova(1, 0x100000, false), r(0x100000, 0x100000));
  // pfn_hi 0x100000 is not < dma_32bit_pfn, so it became cached_node.
  assert.deepEqual(d.cachedState().cachedNode, r(0x100000, 0x100000));
  // A bigger 64-bit limit now starts from that low cached node: high = 0x100000,
  // cand = 0xfffff is taken by the 32-bit IOVA, walk on → 0xffffe. (Linux does not
  // go back up to the free space below 0xffffffff until a search fails.)
  assert.deepEqual(d.allocIova(1, 0xffffffff, false), r(0xffffe, 0xffffe));
  // ... which is below dma_32bit_pfn, so it moved cached32_node, not cached_node.
  assert.deepEqual(d.cachedState(), { cachedNode: r(0x100000, 0x100000), cached32Node: r(0xffffe, 0xffffe), max32AllocSize: 0x100000 });
  d.validate();
});

test('freeing at or above the cached node moves it to rb_next(); freeing below does not', () => {
  const d = new IovaDomain(G4K, 1);
  const [a, b, c, e] = [0, 1, 2, 3].map(() => d.allocIova(1, LIM32, false)!);
  assert.deepEqual([a, b, c, e].map((x) => x!.pfnLo), [0xfffff, 0xffffe, 0xffffd, 0xffffc]);
  assert.deepEqual(d.cachedState().cached32Node, r(0xffffc, 0xffffc));
  // free b: pfn_hi < dma_32bit_pfn && pfn_lo >= cached32->pfn_lo → cached32 = rb_next(b) = a.
  d.freeIova(0xffffe);
  assert.deepEqual(d.cachedState().cached32Node, r(0xfffff, 0xfffff));
  // free e (below cached32 = a): cached32 stays.
  d.freeIova(0xffffc);
  assert.deepEqual(d.cachedState().cached32Node, r(0xfffff, 0xfffff));
  // From a: cand 0xffffe clears c (0xffffd) → reuses b's hole.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffffe, 0xffffe));
  // From there: 0xffffd is c, walk on: from c, cand 0xffffc, nothing below → e's hole.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffffc, 0xffffc));
  // Freeing the cached node itself moves it up to rb_next (here: c).
  d.freeIova(0xffffc);
  assert.deepEqual(d.cachedState().cached32Node, r(0xffffd, 0xffffd));
  // Freeing the top IOVA moves cached32 to the anchor.
  d.freeIova(0xfffff);
  assert.equal(d.cachedState().cached32Node, null);
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  d.validate();
});

test('a failed search from the cached node retries from the top above retry_pfn', () => {
  // 16 usable pfns: 0xffff0..0xfffff.
  const d = new IovaDomain(G4K, 0xffff0);
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  assert.deepEqual(d.allocIova(4, LIM32, true), r(0xffff8, 0xffffb)); // hole 0xffffc..0xffffe
  assert.deepEqual(d.allocIova(8, LIM32, true), r(0xffff0, 0xffff7)); // (0xffff8 - 8) & ~7
  // From cached32 = [0xffff0]: cand 0xfffef < start_pfn → fail. retry_pfn =
  // 0xffff7 < H, so search again from the top with low_pfn = 0xffff8: the
  // anchor's cand 0xfffff is taken; from [0xfffff], 0xffffe clears 0xffffb.
  assert.equal(d.getStats().retryPasses, 0);
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffffe, 0xffffe));
  assert.equal(d.getStats().retryPasses, 1);
  d.validate();
});

test('max32_alloc_size: a failed 32-bit size fails at once until something below 4 GiB is freed', () => {
  const d = new IovaDomain(G4K, 0xffff0);
  d.allocIova(1, LIM32, false); // 0xfffff
  d.allocIova(4, LIM32, true); // 0xffff8..0xffffb
  d.allocIova(8, LIM32, true); // 0xffff0..0xffff7
  d.allocIova(1, LIM32, false); // 0xffffe (retry pass)
  // 4 unaligned: from [0xffffe] 0xffffa overlaps 0xffffb, 0xffff4 overlaps 0xffff7,
  // 0xfffec < start; retry above 0xffffe: only 0 free pfns. Fails; max32_alloc_size = 4.
  assert.equal(d.allocIova(4, LIM32, false), null);
  assert.equal(d.cachedState().max32AllocSize, 4);
  const before = d.getStats();
  // Now every 32-bit request of >= 4 pfns fails without searching...
  assert.equal(d.allocIova(4, LIM32, false), null);
  assert.equal(d.allocIova(5, LIM32, true), null);
  const after = d.getStats();
  assert.equal(after.max32Shortcuts - before.max32Shortcuts, 2);
  assert.equal(after.searchSteps, before.searchSteps);
  // ...even with room (a 3-page hole appears only after a free resets it) — but smaller ones search:
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffffd, 0xffffd));
  // Free the aligned 4 (pfn_lo < dma_32bit_pfn): max32_alloc_size = dma_32bit_pfn again.
  d.freeIova(0xffff9);
  assert.equal(d.cachedState().max32AllocSize, 0x100000);
  // Its pfn_lo is below cached32 [0xffffd], so cached32 stays; from there 0xffff9 clears 0xffff7.
  assert.deepEqual(d.allocIova(4, LIM32, false), r(0xffff9, 0xffffc));
  d.validate();
});

test('a failure at a 64-bit limit also sets max32_alloc_size (as Linux does)', () => {
  const d = new IovaDomain(G4K, 0x100000);
  assert.equal(d.allocIova(0x20, 0x10000f, false), null); // only 16 pfns above start
  assert.equal(d.cachedState().max32AllocSize, 0x20);
  assert.equal(d.allocIova(0x20, LIM32, false), null);
  assert.equal(d.getStats().max32Shortcuts, 1);
});

test('limits above the model range are clamped to 2^52 - 1', () => {
  const d = new IovaDomain(G4K, 1);
  assert.deepEqual(d.allocIova(1, 2 ** 60, false), r(IOVA_MAX_PFN, IOVA_MAX_PFN));
  // From cached_node [2^52 - 1]: (2^52 - 1 - 2) & ~1 = 2^52 - 4.
  assert.deepEqual(d.allocIova(2, Infinity, true), r(IOVA_MAX_PFN - 3, IOVA_MAX_PFN - 2));
  d.validate();
});

// -------------------------------------------------------------- reserve_iova

test('reserve_iova holes are skipped by the search', () => {
  const d = new IovaDomain(G4K, 1);
  assert.deepEqual(d.reserveIova(0xffff0, 0xffff7), r(0xffff0, 0xffff7));
  for (let p = 0xfffff; p >= 0xffff8; p--) assert.deepEqual(d.allocIova(1, LIM32, false), r(p, p));
  // From [0xffff8]: 0xffff7 is reserved; from the reservation: 0xffff0 - 1.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffef, 0xfffef));
  // A size-aligned 16 can't use 0xfffe0..0xfffee (15 pfns): (0xfffef - 16) & ~15 = 0xfffd0.
  assert.deepEqual(d.allocIova(16, LIM32, true), r(0xfffd0, 0xfffdf));
  // reservations do not move the cached nodes
  d.reserveIova(0xfffc0, 0xfffcf);
  assert.deepEqual(d.cachedState().cached32Node, r(0xfffd0, 0xfffdf));
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffbf, 0xfffbf));
  d.validate();
});

test('reserve_iova overlap: extends the first overlapping range down, fills holes, inserts the rest', () => {
  const d = new IovaDomain(G4K, 1);
  d.reserveIova(10, 20);
  d.reserveIova(30, 40);
  // [15, 35]: [10,20] is not extended (15 > 10); lo becomes 21; [30,40] is
  // extended down to 21 and covers the rest → returned, nothing inserted.
  assert.deepEqual(d.reserveIova(15, 35), r(21, 40));
  assert.deepEqual(d.iovas(), [r(10, 20), r(21, 40)]);
  // [5, 50]: [10,20] → [5,20]; [21,40] kept; [41,50] inserted and returned.
  assert.deepEqual(d.reserveIova(5, 50), r(41, 50));
  assert.deepEqual(d.iovas(), [r(5, 20), r(21, 40), r(41, 50)]);
  // Fully inside an existing range: that range, unchanged.
  const n = d.getStats().reserveInserts;
  assert.deepEqual(d.reserveIova(22, 30), r(21, 40));
  assert.equal(d.getStats().reserveInserts, n);
  // Disjoint: inserted as is.
  assert.deepEqual(d.reserveIova(100, 100), r(100, 100));
  // Gaps between overlapping ranges are filled by extending the upper one.
  assert.deepEqual(d.reserveIova(60, 99), r(60, 99));
  assert.deepEqual(d.reserveIova(55, 120), r(101, 120));
  assert.deepEqual(d.iovas(), [r(5, 20), r(21, 40), r(41, 50), r(55, 99), r(100, 100), r(101, 120)]);
  d.validate();
});

test('reserve_iova over an allocated IOVA extends that IOVA (Linux merges into it)', () => {
  const d = new IovaDomain(G4K, 1);
  d.allocIova(1, LIM32, false); // 0xfffff
  assert.deepEqual(d.reserveIova(0xffff0, 0xfffff), r(0xffff0, 0xfffff));
  assert.deepEqual(d.iovas(), [r(0xffff0, 0xfffff)]);
  assert.deepEqual(d.findIova(0xffff5), r(0xffff0, 0xfffff));
  d.freeIova(0xfffff); // frees the whole merged range
  assert.deepEqual(d.iovas(), []);
  d.validate();
});

test('reserve_iova: pfns above ULLONG_MAX >> iova_shift give null, above the model range EINVAL', () => {
  const d64k = new IovaDomain(65536, 1);
  assert.equal(d64k.reserveIova(1, 2 ** 48), null); // ULLONG_MAX >> 16 = 2^48 - 1
  assert.deepEqual(d64k.reserveIova(2 ** 48 - 2, 2 ** 48 - 1), r(2 ** 48 - 2, 2 ** 48 - 1));
  const d4k = new IovaDomain(G4K, 1);
  assert.equal(d4k.reserveIova(2 ** 52, 2 ** 52), null); // ULLONG_MAX >> 12 = 2^52 - 1
  const d512 = new IovaDomain(512, 1);
  einval(() => d512.reserveIova(2 ** 52, 2 ** 52)); // Linux accepts; beyond the model
});

// ----------------------------------------------------- find / free / __free

test('find_iova, free_iova, __free_iova', () => {
  const d = new IovaDomain(G4K, 1);
  const a = d.allocIova(8, LIM32, true)!;
  assert.deepEqual(a, r(0xffff8, 0xfffff));
  assert.deepEqual(d.findIova(0xffffb), a);
  assert.equal(d.findIova(0xffff7), null);
  d.freeIova(0x1234); // nothing there: no-op
  assert.equal(d.getStats().treeSize, 1);
  d.__freeIova(a);
  assert.equal(d.findIova(0xffffb), null);
  einval(() => d.__freeIova(a)); // stale
  const b = d.allocIova(2, LIM32, false)!;
  einval(() => d.__freeIova(r(b.pfnLo, b.pfnHi + 1))); // not the live range
  d.__freeIova(b);
  assert.equal(d.getStats().treeFrees, 2);
  d.validate();
});

// ------------------------------------------------------------- range caches

test('a freed 1-page IOVA is handed out again by the next allocIovaFast of its size, without the tree', () => {
  const d = new IovaDomain(G4K, 1);
  const p = d.allocIovaFast(1, LIM32, true);
  assert.equal(p, 0xfffff);
  d.freeIovaFast(p, 1);
  // still in the tree while cached
  assert.deepEqual(d.findIova(0xfffff), r(0xfffff, 0xfffff));
  assert.deepEqual(d.rcacheState()[0]!.loaded, [0xfffff]);
  const s0 = d.getStats();
  assert.equal(d.allocIovaFast(1, LIM32, true), 0xfffff);
  const s1 = d.getStats();
  assert.equal(s1.rcacheHits - s0.rcacheHits, 1);
  assert.equal(s1.treeAllocs, s0.treeAllocs);
  assert.equal(s1.searchSteps, s0.searchSteps);
  assert.equal(s1.treeSize, 1);
  assert.equal(s1.cachedIovas, 0);
  // A different size class does not see it
  d.freeIovaFast(0xfffff, 1);
  assert.equal(d.allocIovaFast(2, LIM32, true), 0xffffc); // (0xfffff - 2) & ~1 from cached32 = [0xfffff]
  assert.equal(d.getStats().rcacheMisses, 2);
  d.validate();
});

test('alloc_iova_fast rounds sizes below 32 up to a power of two and size-aligns', () => {
  const d = new IovaDomain(G4K, 1);
  const p = d.allocIovaFast(3, LIM32, false);
  assert.equal(p, 0xffffc); // 4 pfns: (0x100000 - 4) & ~3
  assert.deepEqual(d.findIova(p), r(0xffffc, 0xfffff));
  d.freeIovaFast(p, 3); // order_base_2(3) = 2: the 4-pfn class
  assert.deepEqual(d.rcacheState()[2]!.loaded, [0xffffc]);
  assert.equal(d.allocIovaFast(4, LIM32, false), 0xffffc);
  // 17..31 → 32 (class 5, cached); 32 exactly is class 5; 33 is not rounded and not cached.
  const q = d.allocIovaFast(17, LIM32, false);
  assert.deepEqual(d.findIova(q), r(0xfffc0, 0xfffdf)); // (0xffffc - 32) & ~31
  d.freeIovaFast(q, 17);
  assert.equal(d.allocIovaFast(32, LIM32, false), q);
  const big = d.allocIovaFast(33, LIM32, false);
  assert.deepEqual(d.findIova(big), r(0xfff80, 0xfffa0)); // 33 pfns aligned to 64: (0xfffc0 - 33) & ~63
  assert.equal(d.getStats().rcacheUncacheable, 1);
  d.freeIovaFast(big, 33); // order 6: straight to the tree
  assert.equal(d.findIova(big), null);
  assert.equal(d.getStats().rcacheBypassFrees, 1);
  d.validate();
});

test('iova_magazine_pop: the topmost cached pfn under the limit, the last one swapped into its place', () => {
  const d = new IovaDomain(G4K, 1);
  const p = [0, 1, 2, 3].map(() => d.allocIovaFast(1, 0xffffffff, false)); // 64-bit: top down from 2^32 - 1
  assert.deepEqual(p, [0xffffffff, 0xfffffffe, 0xfffffffd, 0xfffffffc]);
  const q = d.allocIovaFast(1, LIM32, false);
  assert.equal(q, 0xfffff);
  // Cache in the order: q (below 4 GiB) first, then the four above.
  for (const x of [q, ...p]) d.freeIovaFast(x, 1);
  assert.deepEqual(d.rcacheState()[0]!.loaded, [q, ...p]);
  // A 32-bit request: scan down from the top, skipping pfns > limit_pfn + 1 - size = 0xfffff;
  // take q (index 0) and move the top entry into its slot.
  assert.equal(d.allocIovaFast(1, LIM32, false), q);
  assert.deepEqual(d.rcacheState()[0]!.loaded, [0xfffffffc, 0xffffffff, 0xfffffffe, 0xfffffffd]);
  // Nothing cached fits any more: fall back to the tree (the cache is left as it
  // is); q is live again, so the tree continues below it.
  const s0 = d.getStats();
  assert.equal(d.allocIovaFast(1, LIM32, false), 0xffffe);
  assert.equal(d.getStats().rcacheMisses - s0.rcacheMisses, 1);
  assert.equal(d.allocIovaFast(1, 0xffffffff, false), 0xfffffffd);
});

test('magazines: 127 per magazine, loaded/prev swap, full pairs pushed to the depot, LIFO throughout', () => {
  const d = new IovaDomain(G4K, 1);
  const n = 2 * IOVA_MAG_SIZE + 1; // 255
  const pfns = Array.from({ length: n }, () => d.allocIovaFast(1, LIM32, false));
  assert.equal(pfns[0], 0xfffff);
  assert.equal(pfns[n - 1], 0xfffff - (n - 1));
  for (const p of pfns) d.freeIovaFast(p, 1);
  // Frees 1..127 fill loaded; the 128th finds loaded full and prev empty, so
  // they swap (prev = the first 127); 128..254 fill the new loaded; the 255th
  // finds both full, so loaded goes to the depot and a new magazine is loaded.
  const st = d.rcacheState()[0]!;
  assert.deepEqual(st.loaded, [pfns[254]]);
  assert.deepEqual(st.prev, pfns.slice(0, 127));
  assert.deepEqual(st.depot, [pfns.slice(127, 254)]);
  assert.equal(d.getStats().depotPushes, 1);
  assert.equal(d.getStats().cachedIovas, 255);
  assert.equal(d.getStats().treeSize, 255);
  // Allocations pop the top of loaded; an empty loaded swaps with prev, then
  // (both empty) is replaced by the depot's top magazine.
  const back = Array.from({ length: n }, () => d.allocIovaFast(1, LIM32, false));
  assert.deepEqual(back, [pfns[254], ...pfns.slice(0, 127).reverse(), ...pfns.slice(127, 254).reverse()]);
  const s = d.getStats();
  assert.equal(s.rcacheHits, n);
  assert.equal(s.depotPops, 1);
  assert.equal(s.treeAllocs, n);
  // Next one: caches empty → tree, continuing below the lowest allocated pfn.
  assert.equal(d.allocIovaFast(1, LIM32, false), 0xfffff - n);
  d.validate();
});

test('depot trim (iova_depot_work_func) frees magazines beyond num_online_cpus() = 1', () => {
  const d = new IovaDomain(G4K, 1);
  const n = 4 * IOVA_MAG_SIZE + 1;
  const pfns = Array.from({ length: n }, () => d.allocIovaFast(1, LIM32, false));
  for (const p of pfns) d.freeIovaFast(p, 1);
  assert.equal(d.getStats().depotMagazines, 3);
  // prev = pfns 0..126; depot, bottom to top: 127..253, 254..380, 381..507; loaded = [508].
  // The trim pops from the top of the depot: the most recently pushed magazines.
  assert.equal(d.runDepotWork(), 2);
  const st = d.rcacheState()[0]!;
  assert.deepEqual(st.depot, [pfns.slice(127, 254)]);
  assert.equal(d.getStats().treeSize, n - 2 * IOVA_MAG_SIZE);
  assert.equal(d.getStats().depotTrims, 2);
  assert.equal(d.findIova(pfns[254]!), null);
  assert.equal(d.findIova(pfns[507]!), null);
  assert.deepEqual(d.findIova(pfns[253]!), r(pfns[253]!, pfns[253]!));
  assert.equal(d.runDepotWork(), 0);
  d.validate();
});

test('alloc_iova_fast with flush_rcache: on failure the caches go back to the tree and it retries once', () => {
  const d = new IovaDomain(G4K, 0xffff0); // 16 pfns
  const pfns = Array.from({ length: 16 }, () => d.allocIovaFast(1, LIM32, true));
  assert.deepEqual(pfns, Array.from({ length: 16 }, (_, i) => 0xfffff - i));
  // Full: the search fails (max32_alloc_size = 1), the flush frees nothing, the
  // retry fails at once on the max32 shortcut.
  assert.equal(d.allocIovaFast(1, LIM32, true), 0);
  assert.equal(d.cachedState().max32AllocSize, 1);
  for (const p of pfns) d.freeIovaFast(p, 1); // cached: the tree is unchanged, max32 too
  // No 2-pfn range is cached; without flush_rcache: 0.
  assert.equal(d.allocIovaFast(2, LIM32, false), 0);
  assert.equal(d.getStats().cachedIovas, 16);
  // With flush_rcache: the tree allocation hits the max32 shortcut (2 >= 1), the
  // flush frees the 16 cached pages in magazine order — freeing 0xfffff (>= the
  // cached32 node) moves cached32 to the anchor, and any free below 4 GiB resets
  // max32_alloc_size — and the retry takes the top: (0x100000 - 2) & ~1 = 0xffffe.
  const s0 = d.getStats();
  assert.equal(d.allocIovaFast(2, LIM32, true), 0xffffe);
  const s1 = d.getStats();
  assert.equal(s1.rcacheFlushes - s0.rcacheFlushes, 1);
  assert.equal(s1.max32Shortcuts - s0.max32Shortcuts, 1);
  assert.equal(s1.cachedIovas, 0);
  assert.equal(s1.treeSize, 1);
  assert.deepEqual(d.cachedState().cached32Node, r(0xffffe, 0xfffff));
  d.validate();
});

test('free_cpu_cached_iovas / free_global_cached_iovas / flush', () => {
  const d = new IovaDomain(G4K, 1);
  const n = 4 * IOVA_MAG_SIZE + 1;
  const pfns = Array.from({ length: n }, () => d.allocIovaFast(1, LIM32, false));
  for (const p of pfns) d.freeIovaFast(p, 1);
  assert.equal(d.getStats().depotMagazines, 3);
  d.freeAllCpuCachedIovas(); // loaded (1) + prev (127) only
  assert.equal(d.getStats().cachedIovas, 3 * IOVA_MAG_SIZE);
  assert.equal(d.getStats().treeSize, 3 * IOVA_MAG_SIZE);
  d.freeGlobalCachedIovas();
  assert.equal(d.getStats().cachedIovas, 0);
  assert.equal(d.getStats().treeSize, 0);
  assert.equal(d.getStats().depotMagazines, 0);
  assert.deepEqual(d.cachedState().cached32Node, null);
  d.validate();
});

test('limit_pfn + 1 - size wraps in Linux when size > limit_pfn + 1: any cached range is accepted', () => {
  const d = new IovaDomain(G4K, 1);
  const p = d.allocIovaFast(16, LIM32, false);
  assert.equal(p, 0xffff0);
  d.freeIovaFast(p, 16);
  // limit_pfn 7: 7 + 1 - 16 wraps to a huge unsigned limit, so the cached 0xffff0 comes back.
  assert.equal(d.allocIovaFast(16, 7, false), 0xffff0);
});

test('pfn 0 reads as failure from alloc_iova_fast, as in Linux', () => {
  const d = new IovaDomain(G4K, 0);
  assert.equal(d.allocIovaFast(1, 0, false), 0); // allocated at pfn 0, reported as 0
  assert.deepEqual(d.findIova(0), r(0, 0));
  d.freeIovaFast(0, 1);
  // The cache hands back 0 → treated as a miss; the tree is full → 0.
  assert.equal(d.allocIovaFast(1, 0, false), 0);
  assert.equal(d.getStats().rcacheHits, 0);
});

test('debugChecks refuses bad fast frees that Linux would silently cache', () => {
  const d = new IovaDomain(G4K, 1, { debugChecks: true });
  const p = d.allocIovaFast(1, LIM32, false);
  einval(() => d.freeIovaFast(p + 0x100, 1)); // not a live IOVA
  einval(() => d.freeIovaFast(p, 2)); // wrong size class
  d.freeIovaFast(p, 1);
  einval(() => d.freeIovaFast(p, 1)); // double free
  assert.equal(d.allocIovaFast(1, LIM32, false), p);
  d.freeIovaFast(p, 1); // fine again once handed out
  // Without debugChecks the double free goes through, and the range is handed out twice.
  const u = new IovaDomain(G4K, 1);
  const q = u.allocIovaFast(1, LIM32, false);
  u.freeIovaFast(q, 1);
  u.freeIovaFast(q, 1);
  assert.deepEqual([u.allocIovaFast(1, LIM32, false), u.allocIovaFast(1, LIM32, false)], [q, q]);
});

test('a cached pfn whose IOVA was freed from the tree is a WARN when the cache is flushed', () => {
  const d = new IovaDomain(G4K, 1);
  const p = d.allocIovaFast(1, LIM32, false);
  d.freeIovaFast(p, 1);
  d.freeIova(p);
  d.flushRcaches();
  assert.equal(d.getStats().warnings, 1);
});

test('put_iova_domain: everything is freed and further use throws', () => {
  const d = new IovaDomain(G4K, 1);
  d.allocIovaFast(1, LIM32, false);
  d.allocIova(5, LIM32, false);
  d.reserveIova(1, 100);
  d.putIovaDomain();
  assert.equal(d.isPut, true);
  assert.equal(d.getStats().treeSize, 0);
  assert.deepEqual(d.iovas(), []);
  einval(() => d.allocIova(1, LIM32, false));
  einval(() => d.allocIovaFast(1, LIM32, false));
  einval(() => d.freeIovaFast(1, 1));
  einval(() => d.putIovaDomain());
});

test('slow path at scale: holes reached in O(log n), not by walking', () => {
  const d = new IovaDomain(G4K, 1, { initialCapacity: 16 });
  const n = 20000;
  const top = 0x100000;
  const pfns: number[] = [];
  for (let i = 0; i < n; i++) pfns.push(d.allocIova(1, LIM32, false)!.pfnLo);
  assert.equal(pfns[n - 1], top - n);
  // Free every other page from the top: freeing 0xfffff (>= cached32) moves cached32 to the anchor.
  for (let i = 0; i < n; i += 2) d.freeIova(pfns[i]!);
  assert.equal(d.cachedState().cached32Node, null);
  // 2 pages: every hole is 1 page, so Linux walks all n/2 nodes down from the
  // anchor and lands below the lowest; the model walks 8, then jumps.
  let steps = d.getStats().searchSteps;
  assert.deepEqual(d.allocIova(2, LIM32, false), r(top - n - 2, top - n - 1));
  assert.ok(d.getStats().searchSteps - steps <= 10);
  // 1 page starts at the new cached32 node, below all the holes.
  assert.deepEqual(d.allocIova(1, LIM32, false), r(top - n - 3, top - n - 3));
  // Use up the rest below: the next search fails from cached32, and the retry
  // pass from the top finds the highest hole, 0xfffff.
  d.reserveIova(1, top - n - 4);
  steps = d.getStats().searchSteps;
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xfffff, 0xfffff));
  assert.ok(d.getStats().searchSteps - steps <= 10);
  assert.equal(d.getStats().retryPasses, 1);
  // Then on down through the holes: 0xffffd, 0xffffb, ...
  assert.deepEqual(d.allocIova(1, LIM32, false), r(0xffffd, 0xffffd));
  d.validate();
});
