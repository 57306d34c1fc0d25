/**
 * Tests for src/iommu/iotlb.ts: hits and misses, large pages, LRU eviction,
 * tag isolation, each invalidation kind, counters, argument checks, and two
 * fast-check properties: soundness (every hit is what the latest insert of
 * that tag+page said, and nothing invalidated since is returned) and
 * agreement with an exact reference model of the sets and their LRU order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import { IOTLB_ADDR_LIMIT, IOTLB_NO_PASID, Iotlb, type IotlbStats } from '../../src/iommu/iotlb.js';

const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;
const R = 1;
const W = 2;
const RW = R | W;
const einval = (e: unknown) => isIommuError(e, 'EINVAL');

/** lookup() as a value: null on a miss, else [perms, phys, pgsize]. */
function look(t: Iotlb, dom: number, pasid: number, iova: number): [number, number, number] | null {
  const out = new Float64Array(2);
  const p = t.lookup(dom, pasid, iova, out);
  return p < 0 ? null : [p, out[0]!, out[1]!];
}

/** peek() as a value (no LRU update, no counters). */
function peek(t: Iotlb, dom: number, pasid: number, iova: number): [number, number, number] | null {
  const out = new Float64Array(2);
  const p = t.peek(dom, pasid, iova, out);
  return p < 0 ? null : [p, out[0]!, out[1]!];
}

const ZERO: IotlbStats = {
  hits: 0,
  misses: 0,
  inserts: 0,
  evictions: 0,
  rangeInvalidations: 0,
  pasidInvalidations: 0,
  domainInvalidations: 0,
  globalInvalidations: 0,
  entriesInvalidated: 0,
};

test('IOTLB_NO_PASID is Linux IOMMU_NO_PASID (0); default geometry is 512 entries, 4 ways', () => {
  assert.equal(IOTLB_NO_PASID, 0);
  const t = new Iotlb();
  assert.deepEqual([t.entries, t.ways, t.sets, t.used], [512, 4, 128, 0]);
  assert.deepEqual(t.stats(), ZERO);
});

test('hit and miss: a 4K entry translates every byte of its page, nothing else', () => {
  const t = new Iotlb();
  t.insert(1, IOTLB_NO_PASID, 0x7f00_0000_1000, K4, 0x1_2345_6000, RW);
  assert.deepEqual(look(t, 1, 0, 0x7f00_0000_1000), [RW, 0x1_2345_6000, K4]);
  assert.deepEqual(look(t, 1, 0, 0x7f00_0000_1abc), [RW, 0x1_2345_6abc, K4]);
  assert.deepEqual(look(t, 1, 0, 0x7f00_0000_1fff), [RW, 0x1_2345_6fff, K4]);
  assert.equal(look(t, 1, 0, 0x7f00_0000_2000), null);
  assert.equal(look(t, 1, 0, 0x7f00_0000_0fff), null);
  assert.equal(look(t, 2, 0, 0x7f00_0000_1000), null, 'other domain');
  assert.equal(look(t, 1, 1, 0x7f00_0000_1000), null, 'other PASID');
  assert.deepEqual(t.stats(), { ...ZERO, hits: 3, misses: 4, inserts: 1 });
  assert.equal(t.used, 1);
});

test('a miss leaves out alone; permissions 0 (mapped, no access) are a hit', () => {
  const t = new Iotlb();
  t.insert(1, 0, 0x5000, K4, 0x9000, 0);
  const out = new Float64Array([7, 8]);
  assert.equal(t.lookup(1, 0, 0x6000, out), -1);
  assert.deepEqual([...out], [7, 8]);
  assert.equal(t.lookup(1, 0, 0x5010, out), 0);
  assert.deepEqual([...out], [0x9010, K4]);
});

test('lookup never throws: junk arguments just miss', () => {
  const t = new Iotlb();
  t.insert(1, 0, 0, K4, 0x1000, R);
  t.insert(1, 0, IOTLB_ADDR_LIMIT - K4, K4, 0x2000, R);
  const out = new Float64Array(2);
  for (const [d, p, iova] of [
    [1, 0, NaN],
    [1, 0, -1],
    [1, 0, -K4],
    [1, 0, Infinity],
    [1, 0, IOTLB_ADDR_LIMIT],
    [1, 0, IOTLB_ADDR_LIMIT + K4],
    [1, 0, 2 ** 64],
    [1.5, 0, 0],
    [2 ** 32 + 1, 0, 0],
    [-1, 0, 0],
    [1, 0.5, 0],
    [1, -1, 0],
    [1, 2 ** 32, 0],
    [NaN, NaN, 0],
  ] as const) {
    assert.equal(t.lookup(d, p, iova, out), -1, `${d} ${p} ${iova}`);
  }
  // Near 2^57 doubles are 16 apart: 2^57 - 16 is the last address there is.
  assert.deepEqual(look(t, 1, 0, IOTLB_ADDR_LIMIT - 16), [R, 0x2ff0, K4], 'the top of the 57-bit space');
  assert.deepEqual(look(t, 1, 0, 0), [R, 0x1000, K4]);
});

test('large pages: a 2M entry answers for every 4K inside it with the right offset', () => {
  const t = new Iotlb();
  t.insert(3, 0, 0x4020_0000, M2, 0x8_0000_0000, R);
  for (let off = 0; off < M2; off += 0x1_1000) {
    assert.deepEqual(look(t, 3, 0, 0x4020_0000 + off + 0x123), [R, 0x8_0000_0000 + off + 0x123, M2]);
  }
  assert.deepEqual(look(t, 3, 0, 0x4020_0000 + M2 - 1), [R, 0x8_0000_0000 + M2 - 1, M2]);
  assert.equal(look(t, 3, 0, 0x4020_0000 + M2), null);
  assert.equal(look(t, 3, 0, 0x4020_0000 - 1), null);
});

test('large pages: 1G, 8 TiB (2^43) and 2^56 pages, and a page at the top of the 57-bit space', () => {
  const t = new Iotlb();
  t.insert(4, 7, 3 * G1, G1, 5 * G1, RW);
  t.insert(4, 7, 2 ** 44, 2 ** 43, 2 ** 43, R);
  t.insert(4, 7, 2 ** 56, 2 ** 56, 0, W);
  t.insert(4, 7, IOTLB_ADDR_LIMIT - 2 * M2, M2, 0x20_0000, RW);
  assert.deepEqual(look(t, 4, 7, 3 * G1 + 0x1234_5678), [RW, 5 * G1 + 0x1234_5678, G1]);
  assert.deepEqual(look(t, 4, 7, 2 ** 44 + 0x7_ffff_f123), [R, 2 ** 43 + 0x7_ffff_f123, 2 ** 43]);
  assert.deepEqual(look(t, 4, 7, 2 ** 44 + 2 ** 43 - 1), [R, 2 ** 44 - 1, 2 ** 43]);
  assert.equal(look(t, 4, 7, 2 ** 44 + 2 ** 43), null);
  // The 2M entry at the top lies inside the 2^56 page too: the smaller page answers.
  assert.deepEqual(look(t, 4, 7, IOTLB_ADDR_LIMIT - 2 * M2 + 0x50), [RW, 0x20_0050, M2]);
  assert.deepEqual(look(t, 4, 7, IOTLB_ADDR_LIMIT - M2), [W, 2 ** 56 - M2, 2 ** 56]);
  assert.deepEqual(look(t, 4, 7, 2 ** 56 + 0x1000), [W, 0x1000, 2 ** 56]);
  assert.equal(look(t, 4, 7, 2 ** 56 - 8), null); // 2^56 - 8: the double just below 2^56
});

test('overlapping entries of different sizes: the smallest page answers', () => {
  const t = new Iotlb();
  t.insert(1, 0, 0, M2, 0x4000_0000, R);
  t.insert(1, 0, 0x3000, K4, 0x7000, RW);
  t.insert(1, 0, 0, G1, 0x8000_0000, W);
  assert.deepEqual(look(t, 1, 0, 0x3008), [RW, 0x7008, K4]);
  assert.deepEqual(look(t, 1, 0, 0x4008), [R, 0x4000_4008, M2]);
  assert.deepEqual(look(t, 1, 0, M2 + 8), [W, 0x8000_0000 + M2 + 8, G1]);
});

test('any power-of-two page size from 4K up: 8K, 64K, 512M pages', () => {
  const t = new Iotlb({ entries: 64, ways: 4 });
  t.insert(9, 0, 0x6000, 0x2000, 0xa000, R);
  t.insert(9, 0, 0x30000, 0x10000, 0x50000, R);
  t.insert(9, 0, 0x6000_0000, 0x2000_0000, 0x2000_0000, R);
  assert.deepEqual(look(t, 9, 0, 0x7fff), [R, 0xbfff, 0x2000]);
  assert.deepEqual(look(t, 9, 0, 0x3abcd), [R, 0x5abcd, 0x10000]);
  assert.deepEqual(look(t, 9, 0, 0x7fff_ffff), [R, 0x3fff_ffff, 0x2000_0000]);
});

test('inserting the same tag+page again replaces it in place (no eviction, no duplicate)', () => {
  const t = new Iotlb({ entries: 4, ways: 4 });
  t.insert(1, 0, 0x1000, K4, 0xa000, R);
  t.insert(1, 0, 0x1000, K4, 0xb000, RW);
  assert.equal(t.used, 1);
  assert.deepEqual(look(t, 1, 0, 0x1004), [RW, 0xb004, K4]);
  // Same address, other size: a different entry.
  t.insert(1, 0, 0, M2, 0, R);
  assert.equal(t.used, 2);
  assert.deepEqual(t.stats(), { ...ZERO, inserts: 3, hits: 1 });
});

test('eviction: a full set evicts its least recently used entry (insert and lookup both count as use)', () => {
  const t = new Iotlb({ entries: 4, ways: 4 }); // one set of four ways
  const [A, B, C, D, E, F, G] = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000];
  for (const p of [A, B, C, D]) t.insert(1, 0, p, K4, p + 0x10_0000, R);
  assert.equal(t.used, 4);
  assert.notEqual(look(t, 1, 0, A), null);
  assert.notEqual(look(t, 1, 0, C), null);
  // LRU → MRU is now B, D, A, C.
  t.insert(1, 0, E, K4, E, R); // evicts B
  assert.equal(peek(t, 1, 0, B), null);
  assert.deepEqual([A, C, D, E].map((p) => peek(t, 1, 0, p) !== null), [true, true, true, true]);
  t.insert(1, 0, F, K4, F, R); // evicts D
  assert.equal(peek(t, 1, 0, D), null);
  // Re-inserting A makes it the most recently used: LRU → MRU is C, E, F, A.
  t.insert(1, 0, A, K4, A, RW);
  t.insert(1, 0, G, K4, G, R); // evicts C
  assert.equal(peek(t, 1, 0, C), null);
  assert.deepEqual([A, E, F, G].map((p) => peek(t, 1, 0, p) !== null), [true, true, true, true]);
  t.insert(1, 0, B, K4, B, R); // evicts E
  assert.equal(peek(t, 1, 0, E), null);
  assert.equal(t.used, 4);
  assert.equal(t.stats().evictions, 4);
  // peek() did not disturb the order: F is the LRU now, not A.
  t.insert(1, 0, C, K4, C, R);
  assert.equal(peek(t, 1, 0, F), null);
  assert.notEqual(peek(t, 1, 0, A), null);
});

test('eviction is per set: pages of other sets are untouched (default 128 × 4 geometry)', () => {
  const t = new Iotlb();
  const set0 = t.setIndexOf(2, 0, 0, K4);
  const same: number[] = [];
  const other: number[] = [];
  for (let p = 0; same.length < 5 || other.length < 64; p += K4) {
    if (t.setIndexOf(2, 0, p, K4) === set0) {
      if (same.length < 5) same.push(p);
    } else if (other.length < 64) other.push(p);
  }
  for (const p of other) t.insert(2, 0, p, K4, p, R);
  for (const p of same) t.insert(2, 0, p, K4, p, R);
  assert.equal(peek(t, 2, 0, same[0]!), null, 'the oldest page of the full set went');
  for (const p of [...same.slice(1), ...other]) assert.notEqual(peek(t, 2, 0, p), null);
  assert.equal(t.stats().evictions, 1);
  assert.equal(t.used, 68);
});

test('a run of `sets` consecutive pages of one tag never conflicts', () => {
  const t = new Iotlb({ entries: 512, ways: 4 });
  const seen = new Set<number>();
  for (let i = 0; i < 128; i++) seen.add(t.setIndexOf(5, 9, 0x7f00_0000_0000 + i * K4, K4));
  assert.equal(seen.size, 128);
  for (let i = 0; i < 512; i++) t.insert(5, 9, 0x7f00_0000_0000 + i * K4, K4, i * K4, R);
  assert.equal(t.stats().evictions, 0);
  assert.equal(t.used, 512);
});

test('tags isolate domains and PASIDs (including domains that share a mask bucket, and all-ones ids)', () => {
  const t = new Iotlb();
  const tags: [number, number][] = [
    [1, 0],
    [1, 1],
    [2, 0],
    [65, 0],
    [0xffff_ffff, 0xffff_ffff],
    [0, 0xffff_ffff],
  ];
  tags.forEach(([d, p], i) => t.insert(d, p, 0xffff_f000, K4, (i + 1) * 0x10_0000, i));
  tags.forEach(([d, p], i) => assert.deepEqual(look(t, d, p, 0xffff_f008), [i, (i + 1) * 0x10_0000 + 8, K4], `${d}/${p}`));
  assert.equal(look(t, 65, 1, 0xffff_f000), null);
  assert.equal(look(t, 129, 0, 0xffff_f000), null);
  // A large page in domain 1 does not answer for domain 65 (same bucket: probed, but the tag differs).
  t.insert(1, 0, 0, G1, 0, R);
  assert.equal(look(t, 65, 0, 0x1000), null);
  assert.deepEqual(look(t, 1, 0, 0x1000), [R, 0x1000, G1]);
});

test('tags isolate even when the only entry sits in the slot every cold lookup is hinted to', () => {
  // One set of four ways: the entry takes slot 0, and the hint table starts out all zero.
  const t = new Iotlb({ entries: 4, ways: 4 });
  t.insert(1, 0, 0x7000, K4, 0x9000, RW);
  for (let x = 1; x < 300; x++) {
    assert.equal(look(t, 1, x, 0x7000), null, `pasid ${x}`);
    assert.equal(look(t, 1 + 64 * x, 0, 0x7000), null, `domain ${1 + 64 * x}`);
    assert.equal(look(t, x + 1, 0, 0x7000), null, `domain ${x + 1}`);
  }
  assert.deepEqual(look(t, 1, 0, 0x7000), [RW, 0x9000, K4]);
});

/** An IOTLB holding, for each tag (1,0) (1,1) (2,0) (65,0), 4K pages at 0x1000…0x4000, a 2M page at 2M and a 1G page at 1G. */
function populated(): Iotlb {
  const t = new Iotlb();
  for (const [d, p] of [
    [1, 0],
    [1, 1],
    [2, 0],
    [65, 0],
  ] as const) {
    for (const a of [0x1000, 0x2000, 0x3000, 0x4000]) t.insert(d, p, a, K4, a, RW);
    t.insert(d, p, M2, M2, M2, RW);
    t.insert(d, p, G1, G1, G1, RW);
  }
  return t;
}
const PROBES = [0x1000, 0x2000, 0x3000, 0x4000, M2 + 0x5000, G1 + 0x6000];
function present(t: Iotlb, d: number, p: number): boolean[] {
  return PROBES.map((a) => peek(t, d, p, a) !== null);
}
const ALL = [true, true, true, true, true, true];

test('invalidateRange removes exactly the overlapped entries of the tag', () => {
  const t = populated();
  assert.equal(t.invalidateRange(1, 0, 0x2000, 0x1000), 1);
  assert.deepEqual(present(t, 1, 0), [true, false, true, true, true, true]);
  // Unaligned: [0x3fff, 0x4001) touches the pages at 0x3000 and 0x4000.
  assert.equal(t.invalidateRange(1, 0, 0x3fff, 2), 2);
  assert.deepEqual(present(t, 1, 0), [true, false, false, false, true, true]);
  // Ending exactly at a page boundary does not touch the next page.
  assert.equal(t.invalidateRange(1, 0, 0, 0x1000), 0);
  assert.deepEqual(present(t, 1, 0), [true, false, false, false, true, true]);
  for (const [d, p] of [
    [1, 1],
    [2, 0],
    [65, 0],
  ]) {
    assert.deepEqual(present(t, d!, p!), ALL, `tag ${d}/${p} untouched`);
  }
  assert.deepEqual(t.stats().rangeInvalidations, 3);
  assert.deepEqual(t.stats().entriesInvalidated, 3);
});

test('invalidateRange: a 4K range catches the 2M and 1G entries that contain it', () => {
  const t = populated();
  assert.equal(t.invalidateRange(2, 0, M2 + 0x1f_f000, K4), 1);
  assert.equal(peek(t, 2, 0, M2), null);
  assert.equal(t.invalidateRange(2, 0, G1 + 0x3fff_ffff, 1), 1);
  assert.equal(peek(t, 2, 0, G1), null);
  assert.deepEqual(present(t, 2, 0), [true, true, true, true, false, false]);
  assert.deepEqual(present(t, 1, 0), ALL);
});

test('invalidateRange: a huge range (scan path) takes every page of the tag and nothing else', () => {
  const t = populated();
  t.insert(1, 0, 2 ** 44, 2 ** 43, 0, R);
  t.insert(1, 0, IOTLB_ADDR_LIMIT - K4, K4, 0, R);
  assert.equal(t.invalidateRange(1, 0, 0, 2 ** 64), 8);
  assert.deepEqual(present(t, 1, 0), [false, false, false, false, false, false]);
  assert.equal(peek(t, 1, 0, 2 ** 44), null);
  assert.deepEqual(present(t, 1, 1), ALL);
  assert.deepEqual(present(t, 65, 0), ALL);
  // Ranges starting past 2^57 are legal and remove nothing.
  assert.equal(t.invalidateRange(2, 0, 2 ** 60, 2 ** 12), 0);
  // A middle-sized range: [0x2000, 2M + 1) takes 0x2000…0x4000 and the 2M page; the probe path.
  assert.equal(t.invalidateRange(65, 0, 0x2000, M2 - 0x2000 + 1), 4);
  assert.deepEqual(present(t, 65, 0), [true, false, false, false, false, true]);
});

test('invalidatePasid removes every entry of that domain+PASID only', () => {
  const t = populated();
  assert.equal(t.invalidatePasid(1, 1), 6);
  assert.deepEqual(present(t, 1, 1), [false, false, false, false, false, false]);
  assert.deepEqual(present(t, 1, 0), ALL);
  assert.deepEqual(present(t, 2, 0), ALL);
  assert.equal(t.invalidatePasid(1, 1), 0);
  assert.equal(t.invalidatePasid(3, 0), 0);
  assert.equal(t.invalidatePasid(2, IOTLB_NO_PASID), 6);
  assert.deepEqual(present(t, 2, 0), [false, false, false, false, false, false]);
  assert.deepEqual(present(t, 1, 0), ALL);
  assert.deepEqual(t.stats().pasidInvalidations, 4);
});

test('invalidateDomain removes every PASID of the domain, not a domain sharing its bucket', () => {
  const t = populated();
  assert.equal(t.invalidateDomain(1), 12);
  assert.deepEqual(present(t, 1, 0), [false, false, false, false, false, false]);
  assert.deepEqual(present(t, 1, 1), [false, false, false, false, false, false]);
  assert.deepEqual(present(t, 65, 0), ALL);
  assert.deepEqual(present(t, 2, 0), ALL);
  assert.equal(t.used, 12);
  assert.deepEqual(t.stats().domainInvalidations, 1);
});

test('invalidateAll empties the IOTLB; it fills again afterwards', () => {
  const t = populated();
  assert.equal(t.invalidateAll(), 24);
  assert.equal(t.used, 0);
  for (const [d, p] of [
    [1, 0],
    [1, 1],
    [2, 0],
    [65, 0],
  ]) {
    assert.deepEqual(present(t, d!, p!), [false, false, false, false, false, false]);
  }
  t.insert(1, 0, 0x1000, K4, 0x9000, R);
  assert.deepEqual(look(t, 1, 0, 0x1001), [R, 0x9001, K4]);
  assert.deepEqual(t.stats().globalInvalidations, 1);
  assert.deepEqual(t.stats().entriesInvalidated, 24);
});

test('counters: hits, misses, inserts, evictions and invalidations by kind; resetStats keeps the entries', () => {
  const t = new Iotlb({ entries: 2, ways: 2 });
  t.insert(1, 0, 0x1000, K4, 0x1000, R);
  t.insert(1, 0, 0x2000, K4, 0x2000, R);
  t.insert(1, 0, 0x3000, K4, 0x3000, R); // evicts 0x1000
  look(t, 1, 0, 0x1000);
  look(t, 1, 0, 0x2000);
  look(t, 1, 0, 0x3000);
  look(t, 1, 0, 0x3fff);
  t.invalidateRange(1, 0, 0x2000, 1);
  t.invalidatePasid(1, 0);
  t.insert(1, 0, 0x1000, K4, 0x1000, R);
  t.invalidateDomain(1);
  t.invalidateAll();
  assert.deepEqual(t.stats(), {
    hits: 3,
    misses: 1,
    inserts: 4,
    evictions: 1,
    rangeInvalidations: 1,
    pasidInvalidations: 1,
    domainInvalidations: 1,
    globalInvalidations: 1,
    entriesInvalidated: 3,
  });
  t.insert(1, 0, 0x1000, K4, 0x1000, R);
  t.resetStats();
  assert.deepEqual(t.stats(), ZERO);
  assert.equal(t.used, 1);
  assert.notEqual(look(t, 1, 0, 0x1000), null);
  assert.deepEqual(t.stats(), { ...ZERO, hits: 1 });
});

test('bad arguments throw EINVAL and change nothing', () => {
  const t = new Iotlb();
  t.insert(1, 0, 0x1000, K4, 0x1000, R);
  const before = t.stats();
  const bad: [string, () => unknown][] = [
    ['domain -1', () => t.insert(-1, 0, 0, K4, 0, R)],
    ['domain 2^32', () => t.insert(2 ** 32, 0, 0, K4, 0, R)],
    ['domain 1.5', () => t.insert(1.5, 0, 0, K4, 0, R)],
    ['pasid 2^32', () => t.insert(1, 2 ** 32, 0, K4, 0, R)],
    ['pgsize 2K', () => t.insert(1, 0, 0, 0x800, 0, R)],
    ['pgsize 12K', () => t.insert(1, 0, 0, 0x3000, 0, R)],
    ['pgsize 2^58', () => t.insert(1, 0, 0, 2 ** 58, 0, R)],
    ['unaligned iova', () => t.insert(1, 0, 0x1800, K4, 0, R)],
    ['iova in 4K but not 2M aligned', () => t.insert(1, 0, 0x1000, M2, 0, R)],
    ['unaligned phys', () => t.insert(1, 0, 0, M2, 0x1000, R)],
    ['iova past 2^57', () => t.insert(1, 0, IOTLB_ADDR_LIMIT, K4, 0, R)],
    ['phys past 2^57', () => t.insert(1, 0, 0, K4, IOTLB_ADDR_LIMIT, R)],
    ['negative iova', () => t.insert(1, 0, -K4, K4, 0, R)],
    ['NaN phys', () => t.insert(1, 0, 0, K4, NaN, R)],
    ['perms -1', () => t.insert(1, 0, 0, K4, 0, -1)],
    ['perms 256', () => t.insert(1, 0, 0, K4, 0, 256)],
    ['perms 1.5', () => t.insert(1, 0, 0, K4, 0, 1.5)],
    ['range size 0', () => t.invalidateRange(1, 0, 0x1000, 0)],
    ['range size 1.5', () => t.invalidateRange(1, 0, 0x1000, 1.5)],
    ['range iova -1', () => t.invalidateRange(1, 0, -1, K4)],
    ['range iova 2^64', () => t.invalidateRange(1, 0, 2 ** 64, K4)],
    ['range bad domain', () => t.invalidateRange(-1, 0, 0, K4)],
    ['range bad pasid', () => t.invalidateRange(1, -1, 0, K4)],
    ['pasid inv bad pasid', () => t.invalidatePasid(1, NaN)],
    ['domain inv bad domain', () => t.invalidateDomain(2 ** 32)],
    ['setIndexOf bad iova', () => t.setIndexOf(1, 0, -1, K4)],
    ['setIndexOf bad pgsize', () => t.setIndexOf(1, 0, 0, 5000)],
  ];
  for (const [what, f] of bad) assert.throws(f, einval, what);
  assert.deepEqual(t.stats(), before);
  assert.equal(t.used, 1);
  assert.deepEqual(look(t, 1, 0, 0x1000), [R, 0x1000, K4]);
});

test('geometry: entries / ways must be a power of two; fully associative and direct-mapped work', () => {
  for (const opts of [{ ways: 0 }, { ways: 1.5 }, { entries: 12, ways: 4 }, { entries: 10, ways: 4 }, { entries: 0 }, { entries: 2 ** 25, ways: 1 }]) {
    assert.throws(() => new Iotlb(opts), einval, JSON.stringify(opts));
  }
  const full = new Iotlb({ entries: 8, ways: 8 });
  for (let i = 0; i < 8; i++) full.insert(1, 0, i * 0x100_0000, K4, 0, R);
  assert.deepEqual([full.used, full.stats().evictions], [8, 0]);
  const dm = new Iotlb({ entries: 8, ways: 1 });
  assert.equal(dm.sets, 8);
  const odd = new Iotlb({ entries: 12, ways: 3 });
  assert.equal(odd.sets, 4);
  for (let i = 0; i < 12; i++) odd.insert(1, 0, i * K4, K4, 0, R);
  assert.equal(odd.used, 12);
});

// ---------------------------------------------------------------------------
// Properties.

type Op =
  | { op: 'insert'; d: number; p: number; addr: number; pg: number; phys: number; perms: number }
  | { op: 'lookup'; d: number; p: number; addr: number }
  | { op: 'range'; d: number; p: number; addr: number; size: number }
  | { op: 'pasid'; d: number; p: number }
  | { op: 'domain'; d: number }
  | { op: 'all' };

const DOMS = [0, 1, 2, 65]; // 1 and 65 share a mask bucket
const PASIDS = [0, 1, 0xffff_ffff];
const PGSIZES = [K4, 0x2000, M2, G1, 2 ** 43, 2 ** 45];
const REGIONS = [0, G1 * 3, 2 ** 44, IOTLB_ADDR_LIMIT - 2 ** 45];

const arbAddr = fc
  .tuple(fc.constantFrom(...REGIONS), fc.oneof(fc.integer({ min: 0, max: 0x40_0000 }), fc.integer({ min: 0, max: 2 ** 30 })))
  .map(([r, o]) => r + o);
const arbTag = fc.tuple(fc.constantFrom(...DOMS), fc.constantFrom(...PASIDS));
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(arbTag, arbAddr, fc.constantFrom(...PGSIZES), fc.nat(), fc.integer({ min: 0, max: 3 })).map(([[d, p], addr, pg, ph, perms]) => ({ op: 'insert' as const, d, p, addr, pg, phys: ph, perms })) },
  { weight: 8, arbitrary: fc.tuple(arbTag, arbAddr).map(([[d, p], addr]) => ({ op: 'lookup' as const, d, p, addr })) },
  { weight: 2, arbitrary: fc.tuple(arbTag, arbAddr, fc.constantFrom(1, K4, 0x2001, M2 + 5, 2 ** 30, 2 ** 44)).map(([[d, p], addr, size]) => ({ op: 'range' as const, d, p, addr, size })) },
  { weight: 1, arbitrary: arbTag.map(([d, p]) => ({ op: 'pasid' as const, d, p })) },
  { weight: 1, arbitrary: fc.constantFrom(...DOMS).map((d) => ({ op: 'domain' as const, d })) },
  { weight: 1, arbitrary: fc.constant({ op: 'all' as const }) },
);
const arbGeometry = fc.constantFrom({ entries: 4, ways: 4 }, { entries: 8, ways: 2 }, { entries: 16, ways: 1 }, { entries: 12, ways: 3 }, { entries: 64, ways: 4 });

/** The page an insert op caches: its aligned base and a physical page that fits below 2^57. */
function insertArgs(o: Extract<Op, { op: 'insert' }>): { base: number; phys: number } {
  const base = Math.floor(o.addr / o.pg) * o.pg;
  const phys = (o.phys % (IOTLB_ADDR_LIMIT / o.pg)) * o.pg;
  return { base, phys };
}

/** [base, base + pg) overlaps [addr, addr + size), computed exactly (sums near 2^57 are not exact as doubles). */
function overlaps(base: number, pg: number, addr: number, size: number): boolean {
  return BigInt(base) < BigInt(addr) + BigInt(size) && BigInt(base) + BigInt(pg) > BigInt(addr);
}

interface RefEntry {
  d: number;
  p: number;
  base: number;
  pg: number;
  phys: number;
  perms: number;
  used: number;
}

test('property (soundness): every hit is what the latest insert of that tag+page said, never something invalidated since', () => {
  fc.assert(
    fc.property(arbGeometry, fc.array(arbOp, { maxLength: 300, size: 'max' }), (geo, ops) => {
      const t = new Iotlb(geo);
      // tag+page → the latest insert, deleted by any invalidation that covers it.
      const live = new Map<string, { phys: number; perms: number }>();
      const keyOf = (d: number, p: number, pg: number, base: number) => `${d}/${p}/${pg}/${base}`;
      const out = new Float64Array(2);
      let lookups = 0;
      for (const o of ops) {
        switch (o.op) {
          case 'insert': {
            const { base, phys } = insertArgs(o);
            t.insert(o.d, o.p, base, o.pg, phys, o.perms);
            live.set(keyOf(o.d, o.p, o.pg, base), { phys, perms: o.perms });
            // Just inserted: the address now hits (maybe through a smaller overlapping page).
            assert.ok(t.peek(o.d, o.p, o.addr, out) >= 0);
            break;
          }
          case 'lookup': {
            lookups++;
            const perms = t.lookup(o.d, o.p, o.addr, out);
            if (perms < 0) break;
            const pg = out[1]!;
            const base = Math.floor(o.addr / pg) * pg;
            const want = live.get(keyOf(o.d, o.p, pg, base));
            assert.ok(want, `hit on ${keyOf(o.d, o.p, pg, base)} which was never inserted or was invalidated`);
            assert.equal(perms, want.perms);
            assert.equal(out[0], want.phys + (o.addr - base));
            break;
          }
          case 'range': {
            t.invalidateRange(o.d, o.p, o.addr, o.size);
            for (const k of [...live.keys()]) {
              const [d, p, pg, base] = k.split('/').map(Number) as [number, number, number, number];
              if (d === o.d && p === o.p && overlaps(base, pg, o.addr, o.size)) live.delete(k);
            }
            break;
          }
          case 'pasid':
            t.invalidatePasid(o.d, o.p);
            for (const k of [...live.keys()]) if (k.startsWith(`${o.d}/${o.p}/`)) live.delete(k);
            break;
          case 'domain':
            t.invalidateDomain(o.d);
            for (const k of [...live.keys()]) if (k.startsWith(`${o.d}/`)) live.delete(k);
            break;
          case 'all':
            t.invalidateAll();
            live.clear();
            break;
        }
        assert.ok(t.used <= t.entries && t.used <= live.size);
      }
      const s = t.stats();
      assert.equal(s.hits + s.misses, lookups);
    }),
    { numRuns: 300 },
  );
});

test('property (exact): hits, results, evictions and counters agree with a reference model of the sets with true LRU', () => {
  fc.assert(
    fc.property(arbGeometry, fc.array(arbOp, { maxLength: 300, size: 'max' }), (geo, ops) => {
      const t = new Iotlb(geo);
      // The reference trusts only setIndexOf(); everything else is modelled independently.
      const sets: RefEntry[][] = Array.from({ length: t.sets }, () => []);
      let clock = 0;
      const stats = { ...ZERO };
      const out = new Float64Array(2);
      const removeWhere = (pred: (e: RefEntry) => boolean) => {
        let n = 0;
        for (const s of sets) {
          for (let i = s.length - 1; i >= 0; i--) {
            if (pred(s[i]!)) {
              s.splice(i, 1);
              n++;
            }
          }
        }
        return n;
      };
      for (const o of ops) {
        switch (o.op) {
          case 'insert': {
            const { base, phys } = insertArgs(o);
            t.insert(o.d, o.p, base, o.pg, phys, o.perms);
            stats.inserts++;
            const set = sets[t.setIndexOf(o.d, o.p, base, o.pg)]!;
            const same = set.find((e) => e.d === o.d && e.p === o.p && e.pg === o.pg && e.base === base);
            if (same) {
              Object.assign(same, { phys, perms: o.perms, used: ++clock });
              break;
            }
            if (set.length === geo.ways) {
              let lru = 0;
              for (let i = 1; i < set.length; i++) if (set[i]!.used < set[lru]!.used) lru = i;
              set.splice(lru, 1);
              stats.evictions++;
            }
            set.push({ d: o.d, p: o.p, base, pg: o.pg, phys, perms: o.perms, used: ++clock });
            break;
          }
          case 'lookup': {
            let best: RefEntry | null = null;
            for (const s of sets) {
              for (const e of s) {
                if (e.d === o.d && e.p === o.p && o.addr >= e.base && o.addr < e.base + e.pg && (!best || e.pg < best.pg)) best = e;
              }
            }
            const perms = t.lookup(o.d, o.p, o.addr, out);
            if (!best) {
              stats.misses++;
              assert.equal(perms, -1);
              break;
            }
            stats.hits++;
            best.used = ++clock;
            assert.deepEqual([perms, out[0], out[1]], [best.perms, best.phys + (o.addr - best.base), best.pg]);
            break;
          }
          case 'range': {
            const n = removeWhere((e) => e.d === o.d && e.p === o.p && overlaps(e.base, e.pg, o.addr, o.size));
            assert.equal(t.invalidateRange(o.d, o.p, o.addr, o.size), n);
            stats.rangeInvalidations++;
            stats.entriesInvalidated += n;
            break;
          }
          case 'pasid': {
            const n = removeWhere((e) => e.d === o.d && e.p === o.p);
            assert.equal(t.invalidatePasid(o.d, o.p), n);
            stats.pasidInvalidations++;
            stats.entriesInvalidated += n;
            break;
          }
          case 'domain': {
            const n = removeWhere((e) => e.d === o.d);
            assert.equal(t.invalidateDomain(o.d), n);
            stats.domainInvalidations++;
            stats.entriesInvalidated += n;
            break;
          }
          case 'all': {
            const n = removeWhere(() => true);
            assert.equal(t.invalidateAll(), n);
            stats.globalInvalidations++;
            stats.entriesInvalidated += n;
            break;
          }
        }
        assert.equal(t.used, sets.reduce((n, s) => n + s.length, 0));
      }
      assert.deepEqual(t.stats(), stats);
    }),
    { numRuns: 300 },
  );
});
