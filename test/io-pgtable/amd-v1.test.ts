/**
 * Tests for src/io-pgtable/amd-v1.ts: exact PTE words (hand-computed, per
 * bit), 2M leaves, next-level-7 replication, growth of the paging mode,
 * EEXIST/EINVAL, the classic-driver mode (linuxExact), free(), table memory
 * for 1 GiB of 4K pages, the page-size bitmap helpers, and a property test
 * against a reference map of pages checked through an independent walker
 * that reads the tables with PhysMem.read32 from `root`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import { PhysMem } from '../../src/mem/phys-mem.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, WALK_PGSIZE, WALK_PHYS } from '../../src/io-pgtable/io-pgtable.js';
import {
  AMD_IOMMU_PGSIZES,
  AMD_PTE_HI_FC,
  AMD_PTE_HI_IR,
  AMD_PTE_HI_IW,
  AmdV1Pgtable,
  pgsizeBitmapAnd,
  pgsizeBitmapHas,
  pgsizeBitmapMin,
  pgsizeBitmapPick,
  pgsizeBitmapSizes,
} from '../../src/io-pgtable/amd-v1.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const SZ_4K = 0x1000;
const SZ_32K = 0x8000;
const SZ_2M = 0x20_0000;
const SZ_32M = 0x200_0000;
const SZ_1G = 0x4000_0000;
/** Default PhysMem pool base 0xf0_0000_0000: table page k is at 0xf0_0000_0000 + k * 4096. */
const POOL = 0xf0_0000_0000;
const page = (k: number): number => POOL + k * SZ_4K;

/** The two 32-bit words of the 64-bit entry `index` of the table at `table`, as hardware reads them. */
function pte(mem: PhysMem, table: number, index: number): [number, number] {
  return [mem.read32(table + index * 8), mem.read32(table + index * 8 + 4)];
}

const hex = (w: [number, number]): string => `0x${w[1].toString(16).padStart(8, '0')}_${w[0].toString(16).padStart(8, '0')}`;

function walk(pt: AmdV1Pgtable, iova: number): [number, number, number] {
  const out = new Float64Array(2);
  const r = pt.walk(iova, out);
  return r < 0 ? [r, 0, 0] : [r, out[WALK_PHYS]!, out[WALK_PGSIZE]!];
}

/**
 * An independent walker, written from the AMD IOMMU specification's PTE
 * format (not from the implementation): from the root table of `levels`
 * levels, follow entries through mem.read32. PR bit 0; Next Level bits 11:9
 * (0 = leaf of the level's size, 7 = leaf whose size is encoded by the first
 * 0 address bit from bit 12, 1…6 = the level of the next table); address
 * bits 51:12; IR bit 61, IW bit 62, ANDed along the path.
 * Returns [perm, phys, size] or [-1, 0, 0].
 */
function specWalk(mem: PhysMem, root: number, levels: number, iova: number): [number, number, number] {
  if (levels < 6 && iova >= 2 ** (12 + 9 * levels)) return [-1, 0, 0];
  let table = root;
  let level = levels; // 1-based level of `table`
  let perm = RW;
  for (;;) {
    const shift = 12 + 9 * (level - 1);
    const index = Math.floor(iova / 2 ** shift) % 512;
    const lo = mem.read32(table + index * 8);
    const hi = mem.read32(table + index * 8 + 4);
    if (lo % 2 === 0) return [-1, 0, 0];
    const ir = Math.floor(hi / 2 ** 29) % 2;
    const iw = Math.floor(hi / 2 ** 30) % 2;
    perm &= (ir ? IOMMU_READ : 0) | (iw ? IOMMU_WRITE : 0);
    const nextLevel = Math.floor(lo / 512) % 8;
    const addr = (hi % 2 ** 20) * 2 ** 32 + Math.floor(lo / 4096) * 4096;
    if (nextLevel === 0 || nextLevel === 7 || level === 1) {
      let size = 2 ** shift;
      if (nextLevel === 7) {
        let bit = 12;
        while (Math.floor(addr / 2 ** bit) % 2 === 1) bit++;
        size = 2 ** (bit + 1);
      }
      const base = addr - (addr % size);
      return [perm, base + (iova % size), size];
    }
    if (nextLevel !== level - 1) return [-1, 0, 0];
    table = addr;
    level--;
  }
}

test('amd-v1: a fresh table: mode 3, one root page, cfg as Linux sets it', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.format, 'amd-v1');
  assert.equal(IOMMU_READ, 1, 'amd-v1.ts inlines IOMMU_READ as 1');
  assert.equal(IOMMU_WRITE, 2, 'amd-v1.ts inlines IOMMU_WRITE as 2');
  assert.equal(pt.levels, 3, 'v1_alloc_pgtable(): PAGE_MODE_3_LEVEL');
  assert.equal(pt.cfg.levels, 3);
  assert.equal(pt.root, page(0));
  assert.equal(mem.tablePagesInUse, 1);
  assert.equal(pt.cfg.ias, 64, 'maxLevels 6 reaches the whole 64-bit space');
  assert.equal(pt.cfg.oas, 52);
  assert.equal(pt.cfg.pgsizeBitmap, AMD_IOMMU_PGSIZES);
  assert.equal(AMD_IOMMU_PGSIZES, 0xf_ff7f_ffff_f000, 'GENMASK_ULL(51, 12) ^ SZ_512G');
  assert.equal(pt.error, null);
  assert.equal(new AmdV1Pgtable(mem, { levels: 5 }).levels, 5);
  const small = new AmdV1Pgtable(mem, { maxLevels: 4 });
  assert.equal(small.cfg.ias, 48);
  assert.ok(pgsizeBitmapHas(small.cfg.pgsizeBitmap, 2 ** 47));
  assert.ok(!pgsizeBitmapHas(small.cfg.pgsizeBitmap, 2 ** 48), 'a 2^48 page needs mode 5');
  assert.equal(new AmdV1Pgtable(mem, { maxLevels: 5 }).cfg.ias, 57);
  for (const opts of [{ levels: 0 }, { levels: 7 }, { levels: 2.5 }, { maxLevels: 3 }, { maxLevels: 7 }, { levels: 5, maxLevels: 4 }]) {
    assert.throws(() => new AmdV1Pgtable(mem, opts), (e: unknown) => isIommuError(e, 'EINVAL'), JSON.stringify(opts));
  }
});

test('amd-v1: page-size bitmap helpers work above bit 31', () => {
  const b = AMD_IOMMU_PGSIZES;
  for (const [size, has] of [
    [2048, false],
    [SZ_4K, true],
    [0x2000, true],
    [SZ_32K, true],
    [SZ_2M, true],
    [SZ_1G, true],
    [2 ** 31, true],
    [2 ** 32, true],
    [2 ** 39, false], // 512G: hardware erratum
    [2 ** 40, true],
    [2 ** 51, true],
    [2 ** 52, false],
    [3 * SZ_4K, false],
    [0, false],
  ] as const) {
    assert.equal(pgsizeBitmapHas(b, size), has, `size 0x${size.toString(16)}`);
  }
  const sizes = pgsizeBitmapSizes(b);
  assert.equal(sizes.length, 39, '2^12 … 2^51 without 2^39');
  assert.equal(sizes[0], SZ_4K);
  assert.equal(sizes[sizes.length - 1], 2 ** 51);
  assert.equal(pgsizeBitmapMin(b), SZ_4K);
  assert.equal(pgsizeBitmapAnd(b, SZ_4K + SZ_2M + SZ_1G + 2 ** 39), SZ_4K + SZ_2M + SZ_1G);
  assert.equal(pgsizeBitmapPick(b, 0x4020_0000, 2 ** 31), SZ_2M, 'alignment limits the size');
  assert.equal(pgsizeBitmapPick(b, 2 ** 40, 2 ** 39), 2 ** 38, 'the size limits it, and 512G is skipped');
  assert.equal(pgsizeBitmapPick(b, 2 ** 40, 2 ** 40), 2 ** 40);
  assert.equal(pgsizeBitmapPick(b, 0x800, SZ_2M), 0);
});

test('amd-v1: a 4K mapping writes the PTE words Linux writes', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(0, 0x1234_5000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.error, null);
  assert.equal(mem.tablePagesInUse, 3, 'root (level 3) + level 2 + level 1');
  // Root entry 0 -> level-2 table at page(1) = 0xf0_0000_1000 (PM_LEVEL_PDE(2, …)):
  //   lo 0x00001401 = address bits 31:12 0x00001 | Next Level 2 (bits 11:9 = 010 -> 0x400) | PR (bit 0)
  //   hi 0x600000f0 = IW (bit 62 -> 0x40000000) | IR (bit 61 -> 0x20000000) | address bits 51:32 = 0xf0
  assert.equal(hex(pte(mem, pt.root, 0)), '0x600000f0_00001401');
  // Level-2 entry 0 -> level-1 table at page(2): Next Level 1 (0x200), same IR|IW.
  assert.equal(hex(pte(mem, page(1), 0)), '0x600000f0_00002201');
  // Level-1 entry 0, the 4K leaf: address 0x12345000 | Next Level 0 | PR;
  //   hi 0x70000000 = IW (0x40000000) | IR (0x20000000) | FC (bit 60 -> 0x10000000); U (bit 59) clear.
  assert.equal(hex(pte(mem, page(2), 0)), '0x70000000_12345001');
  assert.deepEqual(walk(pt, 0x123), [RW, 0x1234_5123, SZ_4K]);
  assert.equal(pt.iovaToPhys(0xfff), 0x1234_5fff);

  // Read-only and write-only leaves; IOMMU_CACHE does not change the entry (FC is always set).
  assert.equal(pt.mapPages(0x1000, 0x8_8000_0000, SZ_4K, 1, IOMMU_READ | IOMMU_CACHE), SZ_4K);
  assert.equal(hex(pte(mem, page(2), 1)), '0x30000008_80000001', 'FC|IR, address bits 35:32 = 8, 31:12 = 0x80000');
  assert.equal(pt.mapPages(0x2000, 0xf_ffff_f000_0000, SZ_4K, 1, IOMMU_WRITE), SZ_4K);
  assert.equal(hex(pte(mem, page(2), 2)), '0x500fffff_f0000001', 'FC|IW, address bits 51:32 all set');
  assert.deepEqual(walk(pt, 0x1000), [IOMMU_READ, 0x8_8000_0000, SZ_4K]);
  assert.deepEqual(walk(pt, 0x2abc), [IOMMU_WRITE, 0xf_ffff_f000_0abc, SZ_4K]);
  assert.equal(AMD_PTE_HI_FC | AMD_PTE_HI_IR | AMD_PTE_HI_IW, 0x7000_0000);
});

test('amd-v1: a 2M page is an ordinary leaf (Next Level 0) in the level-2 table', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  const iova = SZ_1G + SZ_2M; // root index 1, level-2 index 1
  assert.equal(pt.mapPages(iova, 0x2_4060_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(mem.tablePagesInUse, 2, 'root + one level-2 table, no level-1 table');
  assert.equal(hex(pte(mem, pt.root, 1)), '0x600000f0_00001401', 'root[1] -> level 2 table at page(1), Next Level 2');
  assert.equal(hex(pte(mem, pt.root, 0)), '0x00000000_00000000');
  // Leaf: address 0x2_4060_0000 (lo 0x40600000, hi 0x2) | Next Level 0 | PR; hi FC|IR|IW.
  assert.equal(hex(pte(mem, page(1), 1)), '0x70000002_40600001');
  assert.deepEqual(walk(pt, iova + 0x12_3456), [RW, 0x2_4072_3456, SZ_2M]);
  assert.equal(pt.iovaToPhys(iova + SZ_2M - 1), 0x2_4060_0000 + SZ_2M - 1);
  assert.equal(pt.iovaToPhys(iova + SZ_2M), 0);
  // A 1G page is a Next Level 0 leaf in the root.
  assert.equal(pt.mapPages(3 * SZ_1G, 0x40_0000_0000, SZ_1G, 1, IOMMU_READ), SZ_1G);
  assert.equal(hex(pte(mem, pt.root, 3)), '0x30000040_00000001');
  assert.deepEqual(walk(pt, 3 * SZ_1G + 5), [IOMMU_READ, 0x40_0000_0005, SZ_1G]);
});

test('amd-v1: a 32K page is 8 replicated Next-Level-7 entries with the size in the address', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  const iova = 0x8000; // level-1 indexes 8 … 15
  assert.equal(pt.mapPages(iova, 0x1_0000_8000, SZ_32K, 1, RW), SZ_32K);
  // PAGE_SIZE_PTE(0x1_0000_8000, 32K) = (addr | 0x7fff) & ~0x4000 & PM_ADDR_MASK = 0x1_0000_b000:
  //   address bits 13:12 set (0x3000), bit 14 clear -> size 2^(14+1) = 32K.
  //   lo 0x0000be01 = 0xb000 | Next Level 7 (bits 11:9 = 111 -> 0xe00) | PR;  hi 0x70000001 = FC|IR|IW | address bit 32.
  for (let i = 8; i < 16; i++) assert.equal(hex(pte(mem, page(2), i)), '0x70000001_0000be01', `replica ${i}`);
  assert.equal(hex(pte(mem, page(2), 7)), '0x00000000_00000000');
  assert.equal(hex(pte(mem, page(2), 16)), '0x00000000_00000000');
  assert.deepEqual(walk(pt, iova + 0x7123), [RW, 0x1_0000_f123, SZ_32K]);
  assert.deepEqual(specWalk(mem, pt.root, pt.levels, iova + 0x7123), [RW, 0x1_0000_f123, SZ_32K]);
  assert.equal(pt.iovaToPhys(iova + 0x2001), 0x1_0000_a001);
  // Unmapping 4K in the middle unmaps the whole 32K page (fetch_pte() + first_pte_l7()).
  assert.equal(pt.unmapPages(iova + 0x2000, SZ_4K, 1), SZ_32K);
  for (let i = 8; i < 16; i++) assert.equal(hex(pte(mem, page(2), i)), '0x00000000_00000000');

  // 32M at level 2: PAGE_SIZE_PTE_COUNT = 2^((25-12) % 9) = 16 entries, address bits 23:12 set, bit 24 clear.
  assert.equal(pt.mapPages(SZ_32M, 0x3_0000_0000, SZ_32M, 1, IOMMU_WRITE), SZ_32M);
  for (let i = 16; i < 32; i++) assert.equal(hex(pte(mem, page(1), i)), '0x50000003_00fffe01', `replica ${i}`);
  assert.equal(hex(pte(mem, page(1), 32)), '0x00000000_00000000');
  assert.deepEqual(walk(pt, SZ_32M + 0x1ab_cdef), [IOMMU_WRITE, 0x3_01ab_cdef, SZ_32M]);
  // 1M at level 1: 256 entries, the whole second half of a table.
  assert.equal(pt.mapPages(SZ_1G + 0x10_0000, 0x10_0000, 0x10_0000, 1, RW), 0x10_0000);
  assert.deepEqual(walk(pt, SZ_1G + 0x1f_ffff), [RW, 0x1f_ffff, 0x10_0000]);
  assert.equal(pt.mapPages(SZ_1G + 0xf_f000, 0, SZ_4K, 1, RW), SZ_4K, 'the page below is free');
  assert.equal(pt.mapPages(SZ_1G + 0x1f_f000, 0, SZ_4K, 1, RW), 0, 'the last replica is taken');
  assert.equal(pt.error, 'EEXIST');
});

test('amd-v1: count > 1 fills tables in one pass, across table boundaries and the 4 GiB line in phys', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  const iova = SZ_2M - 4 * SZ_4K;
  assert.equal(pt.mapPages(iova, 0xffff_e000, SZ_4K, 8, RW), 8 * SZ_4K);
  assert.equal(hex(pte(mem, page(2), 511)), '0x70000001_00001001', 'the 4th page: phys 0x1_0000_1000 (carry into the high word)');
  for (let k = 0; k < 8; k++) assert.equal(pt.iovaToPhys(iova + k * SZ_4K + 7), 0xffff_e000 + k * SZ_4K + 7);
  assert.equal(pt.mapPages(4 * SZ_1G, 4 * SZ_1G, SZ_32K, 100, RW), 100 * SZ_32K);
  for (let k = 0; k < 100; k++) assert.deepEqual(walk(pt, 4 * SZ_1G + k * SZ_32K + 9), [RW, 4 * SZ_1G + k * SZ_32K + 9, SZ_32K]);
  assert.equal(pt.unmapPages(4 * SZ_1G, SZ_32K, 100), 100 * SZ_32K);
});

test('amd-v1: mapping beyond the mode grows it: new root, old root becomes its entry 0', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(0x5000, 0x7000, SZ_4K, 1, RW), SZ_4K);
  const oldRoot = pt.root;
  const high = 2 ** 39 + 0x3000; // just above the 512 GiB a 3-level table reaches
  assert.equal(pt.mapPages(high, 0x9000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.levels, 4);
  assert.equal(pt.cfg.levels, 4);
  assert.notEqual(pt.root, oldRoot);
  // New root entry 0 = PM_LEVEL_PDE(3, old root): address 0xf0_0000_0000 | Next Level 3 (0x600) | PR, IR|IW.
  assert.equal(hex(pte(mem, pt.root, 0)), '0x600000f0_00000601');
  assert.equal(pte(mem, pt.root, 1)[0] & 0xe01, 0x601, 'root[1] -> a new level-3 table for 2^39 … 2^40 (Next Level 3)');
  assert.deepEqual(walk(pt, 0x5001), [RW, 0x7001, SZ_4K], 'old mappings stay reachable');
  assert.deepEqual(walk(pt, high + 2), [RW, 0x9002, SZ_4K]);
  assert.deepEqual(specWalk(mem, pt.root, 4, high + 2), [RW, 0x9002, SZ_4K]);
  // Up to mode 6 for the top of the 64-bit space (page-aligned IOVAs are exact doubles there).
  const top = 2 ** 64 - SZ_4K;
  assert.equal(pt.mapPages(top, 0xa000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.levels, 6);
  assert.deepEqual(walk(pt, top), [RW, 0xa000, SZ_4K]);
  assert.equal(pt.iovaToPhys(top), 0xa000);
  assert.deepEqual(specWalk(mem, pt.root, 6, top), [RW, 0xa000, SZ_4K]);
  assert.deepEqual(walk(pt, 0x5000), [RW, 0x7000, SZ_4K]);
  assert.equal(pt.unmapPages(top, SZ_4K, 1), SZ_4K);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
});

test('amd-v1: a page whose level needs a higher root grows the mode too (2^48 page, 2M from mode 1)', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(2 ** 48, 2 ** 48, 2 ** 48, 1, RW), 2 ** 48);
  assert.equal(pt.levels, 5, 'PAGE_SIZE_LEVEL(2^48) = 4 needs mode 5');
  assert.equal(hex(pte(mem, pt.root, 1)), '0x70010000_00000001', 'a Next Level 0 leaf in the level-5 root; address bit 48');
  assert.deepEqual(walk(pt, 2 ** 48 + 0x1234), [RW, 2 ** 48 + 0x1234, 2 ** 48]);

  const one = new AmdV1Pgtable(mem, { levels: 1 });
  assert.equal(one.mapPages(0x1000, 0x1000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(one.levels, 1);
  assert.equal(one.mapPages(SZ_2M, SZ_2M, SZ_2M, 1, RW), SZ_2M);
  assert.equal(one.levels, 2);
  assert.equal(pte(mem, one.root, 0)[0] & 0xe01, 0x201, 'old level-1 root is entry 0, Next Level 1');
  assert.deepEqual(walk(one, 0x1fff), [RW, 0x1fff, SZ_4K]);
  assert.deepEqual(walk(one, SZ_2M + 1), [RW, SZ_2M + 1, SZ_2M]);

  const capped = new AmdV1Pgtable(mem, { maxLevels: 4 });
  assert.equal(capped.mapPages(2 ** 48, 0, SZ_4K, 1, RW), 0);
  assert.equal(capped.error, 'EINVAL', 'beyond 2^ias = 2^48');
  assert.equal(capped.mapPages(2 ** 48 - SZ_4K, 0, SZ_4K, 1, RW), SZ_4K);
  assert.equal(capped.levels, 4);
});

test('amd-v1: EEXIST over any mapping; a table that maps nothing is freed and replaced', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(SZ_2M, 0x10_0000, SZ_4K, 1, RW), SZ_4K);
  const before = pte(mem, page(2), 0);
  assert.equal(pt.mapPages(SZ_2M, 0x20_0000, SZ_4K, 1, IOMMU_READ), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.deepEqual(pte(mem, page(2), 0), before, 'the old entry is untouched');
  assert.equal(pt.mapPages(SZ_2M, 0x40_0000, SZ_2M, 1, RW), 0, '2M over a table holding a 4K page');
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(SZ_2M - SZ_4K, 0, SZ_4K, 3, RW), SZ_4K, 'count 3 stops at the mapped page');
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(0, 0x40_0000, SZ_32K, 1, RW), SZ_32K);
  assert.equal(pt.mapPages(0x4000, 0, SZ_4K, 1, RW), 0, '4K inside a 32K page');
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(4 * SZ_2M, 0, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt.mapPages(4 * SZ_2M + SZ_4K, 0, SZ_4K, 1, RW), 0, '4K under a 2M leaf');
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(0, 0, SZ_1G, 1, RW), 0, '1G over tables that map');
  assert.equal(pt.error, 'EEXIST');

  // Unmap leaves the level-1 table; a 2M mapping over it frees it (free_clear_pte()).
  assert.equal(pt.unmapPages(SZ_2M, SZ_4K, 1), SZ_4K);
  const used = mem.tablePagesInUse;
  assert.equal(pt.mapPages(SZ_2M, 0x40_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt.error, null);
  assert.equal(mem.tablePagesInUse, used - 1, 'the empty level-1 table is freed');
  assert.deepEqual(walk(pt, SZ_2M + 5), [RW, 0x40_0005, SZ_2M]);
});

test('amd-v1: EINVAL for bad sizes, alignment and ranges; prot without access is EINVAL', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  const used = mem.tablePagesInUse;
  const bad = (what: string, iova: number, paddr: number, size: number, count = 1): void => {
    assert.equal(pt.mapPages(iova, paddr, size, count, RW), 0, what);
    assert.equal(pt.error, 'EINVAL', what);
  };
  bad('2K', 0, 0, 2048);
  bad('12K', 0, 0, 3 * SZ_4K);
  bad('512G', 2 ** 39, 2 ** 39, 2 ** 39);
  bad('2^52', 0, 0, 2 ** 52);
  bad('NaN size', 0, 0, NaN);
  bad('iova misaligned', 0x800, 0, SZ_4K);
  bad('iova misaligned for 32K', 0x4000, 0, SZ_32K);
  bad('paddr misaligned', 0, 0x10, SZ_4K);
  bad('paddr misaligned for 2M', 0, SZ_4K, SZ_2M);
  bad('negative iova', -SZ_4K, 0, SZ_4K);
  bad('paddr = 2^52', 0, 2 ** 52, SZ_4K);
  bad('range past 2^52 in phys', 0, 2 ** 52 - SZ_4K, SZ_4K, 2);
  bad('iova = 2^64', 2 ** 64, 0, SZ_4K);
  bad('range past 2^64', 2 ** 64 - SZ_4K, 0, SZ_4K, 2);
  bad('count 1.5', 0, 0, SZ_4K, 1.5);
  bad('count -1', 0, 0, SZ_4K, -1);
  assert.equal(mem.tablePagesInUse, used, 'no table was allocated');
  assert.equal(pt.levels, 3, 'no growth');
  for (const prot of [0, IOMMU_CACHE]) {
    assert.equal(pt.mapPages(0, 0, SZ_4K, 1, prot), 0);
    assert.equal(pt.error, 'EINVAL', 'iommu_v1_map_pages: prot outside IOMMU_PROT_MASK');
  }
  assert.equal(pt.iovaToPhys(0), 0);
  assert.equal(pt.mapPages(0, 0x1000, SZ_4K, 0, RW), 0);
  assert.equal(pt.error, null, 'count 0 maps nothing');
  assert.equal(pt.unmapPages(0, 3 * SZ_4K, 1), 0, 'unmap with a bad size does nothing');
});

test('amd-v1: unmap clears whole leaves, stops at holes and never frees tables', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.unmapPages(0, SZ_4K, 4), 0, 'nothing mapped');
  assert.equal(pt.mapPages(0, 0, SZ_4K, 2, RW), 2 * SZ_4K);
  assert.equal(pt.mapPages(3 * SZ_4K, 0, SZ_4K, 1, RW), SZ_4K);
  const used = mem.tablePagesInUse;
  assert.equal(pt.unmapPages(0, SZ_4K, 4), 2 * SZ_4K, 'stops at the hole at page 2');
  assert.equal(pt.unmapPages(2 * SZ_4K, SZ_4K, 1), 0, 'a hole inside an existing table');
  assert.equal(pt.unmapPages(3 * SZ_4K, SZ_4K, 1), SZ_4K);
  assert.equal(mem.tablePagesInUse, used, 'iommu_v1_unmap_pages() frees no table');
  assert.equal(pt.mapPages(SZ_1G, SZ_1G, SZ_2M, 2, RW), 2 * SZ_2M);
  assert.equal(pt.unmapPages(SZ_1G + 5 * SZ_4K, SZ_4K, 1), SZ_2M, 'a 4K unmap inside a 2M page unmaps the whole page');
  assert.equal(pt.iovaToPhys(SZ_1G), 0);
  assert.equal(pt.iovaToPhys(SZ_1G + SZ_2M), SZ_1G + SZ_2M);
  assert.equal(pt.unmapPages(SZ_1G + SZ_2M, SZ_4K, 1), SZ_2M);
  // After a large page the unmap continues at the page's end, not at iova + size.
  assert.equal(pt.mapPages(2 * SZ_1G, 0, SZ_32K, 1, RW), SZ_32K);
  assert.equal(pt.mapPages(2 * SZ_1G + SZ_32K, 0, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.unmapPages(2 * SZ_1G + SZ_4K, SZ_4K, 16), SZ_32K + SZ_4K, '32K from its middle, then the 4K after it, then a hole');
});

test('amd-v1: linuxExact returns what the classic iommu_v1_* functions return', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, { linuxExact: true });
  assert.equal(pt.mapPages(0, 0x1000, SZ_4K, 1, 0), 0);
  assert.equal(pt.error, 'EINVAL', 'IOMMU_PROT_MASK check');
  assert.equal(pt.mapPages(0, 0x1000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.mapPages(0, 0x2000, SZ_4K, 1, IOMMU_READ), SZ_4K, 'map over a mapping replaces it');
  assert.equal(pt.error, null);
  assert.deepEqual(walk(pt, 0), [IOMMU_READ, 0x2000, SZ_4K]);
  // A 2M page over a level-1 table that still maps: free_clear_pte() frees the table.
  const used = mem.tablePagesInUse;
  assert.equal(pt.mapPages(0, 0x20_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(mem.tablePagesInUse, used - 1);
  assert.deepEqual(walk(pt, 0x1000), [RW, 0x20_1000, SZ_2M]);
  // A 4K page under the 2M leaf: alloc_pte() replaces the leaf by a new table.
  assert.equal(pt.mapPages(0x3000, 0x9000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, used);
  assert.equal(walk(pt, 0x1000)[0], -1, 'the rest of the 2M page is gone');
  assert.deepEqual(walk(pt, 0x3000), [RW, 0x9000, SZ_4K]);
  // A 4K page inside a 32K page: alloc_pte() returns the level-0 slot at once and
  // free_clear_pte() clears only that replica; the other 7 still map the 32K page.
  assert.equal(pt.mapPages(SZ_1G, 0x8000, SZ_32K, 1, RW), SZ_32K);
  assert.equal(pt.mapPages(SZ_1G + SZ_4K, 0x1_0000, SZ_4K, 1, RW), SZ_4K);
  assert.deepEqual(walk(pt, SZ_1G + SZ_4K), [RW, 0x1_0000, SZ_4K]);
  assert.deepEqual(walk(pt, SZ_1G + 2 * SZ_4K), [RW, 0xa000, SZ_32K]);
  // fetch_pte() returns level-0 entries whether present or not: unmap counts 4K holes of an existing table.
  assert.equal(pt.unmapPages(0x5000, SZ_4K, 1), SZ_4K);
  assert.equal(pt.unmapPages(0x3000, SZ_4K, 1), SZ_4K);
  assert.equal(pt.unmapPages(0x3000, SZ_4K, 1), SZ_4K, 'a second unmap "succeeds" too');
  assert.equal(pt.unmapPages(8 * SZ_1G, SZ_4K, 1), 0, 'no table there: fetch_pte() returns NULL');
  // A 4K page under a 4M page (2 replicas in a level-2 table): alloc_pte() clears the whole group.
  assert.equal(pt.mapPages(4 * SZ_1G, 0x80_0000, 2 * SZ_2M, 1, RW), 2 * SZ_2M);
  assert.equal(pt.mapPages(4 * SZ_1G + SZ_2M, 0x5000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(walk(pt, 4 * SZ_1G)[0], -1, 'the first replica is gone too');
  assert.deepEqual(walk(pt, 4 * SZ_1G + SZ_2M), [RW, 0x5000, SZ_4K]);
  pt.free();
});

test('amd-v1: walk() reads the tables as hardware does: IR/IW ANDed along the path, Next Level checked', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(0x7000, 0x1_2345_6000, SZ_4K, 1, RW), SZ_4K);
  const l2 = page(1);
  const [lo, hi] = pte(mem, l2, 0);
  // Clear IW (bit 62 = bit 30 of the high word) in the level-2 directory entry: no write access below it.
  mem.write32(l2 + 4, hi & ~AMD_PTE_HI_IW);
  assert.deepEqual(walk(pt, 0x7abc), [IOMMU_READ, 0x1_2345_6abc, SZ_4K]);
  assert.deepEqual(specWalk(mem, pt.root, 3, 0x7abc), [IOMMU_READ, 0x1_2345_6abc, SZ_4K]);
  mem.write32(l2 + 4, hi & ~(AMD_PTE_HI_IW | AMD_PTE_HI_IR));
  assert.deepEqual(walk(pt, 0x7abc), [0, 0x1_2345_6abc, SZ_4K], 'present but no access');
  mem.write32(l2 + 4, hi);
  // A directory whose Next Level is not the next level down (level skipping, which Linux never writes): not translated.
  mem.write32(pt.root, (pte(mem, pt.root, 0)[0] & ~0xe00) | (1 << 9));
  assert.equal(walk(pt, 0x7000)[0], -1);
  assert.equal(specWalk(mem, pt.root, 3, 0x7000)[0], -1);
  mem.write32(pt.root, (pte(mem, pt.root, 0)[0] & ~0xe00) | (2 << 9));
  assert.deepEqual(walk(pt, 0x7000), [RW, 0x1_2345_6000, SZ_4K]);
  assert.equal(lo & 0xe01, 0x201);
  assert.equal(AMD_PTE_HI_IR, 0x2000_0000);
});

test('amd-v1: free() returns every table page; the table is dead afterwards', () => {
  const mem = new PhysMem();
  const pt = new AmdV1Pgtable(mem, {});
  assert.equal(pt.mapPages(0, 0, SZ_4K, 1000, RW), 1000 * SZ_4K);
  assert.equal(pt.mapPages(SZ_1G, 0, SZ_32M, 3, RW), 3 * SZ_32M);
  assert.equal(pt.mapPages(2 ** 50, 0, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.mapPages(2 ** 60, 0, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt.levels, 6);
  assert.ok(mem.tablePagesInUse > 10);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
  assert.equal(pt.levels, 0);
  assert.equal(pt.root, 0);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0, 'a second free does nothing');
  assert.equal(pt.mapPages(0, 0, SZ_4K, 1, RW), 0);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.iovaToPhys(0), 0);
  assert.equal(walk(pt, 0)[0], -1);
  assert.equal(pt.unmapPages(0, SZ_4K, 1), 0);
  assert.equal(mem.tablePagesInUse, 0);
});

test('amd-v1: 262,144 consecutive 4K pages (1 GiB) take at most 2.2 MiB of tables', () => {
  const N = 262_144;
  const base = 5 * SZ_1G;
  for (const oneByOne of [false, true]) {
    const mem = new PhysMem();
    const pt = new AmdV1Pgtable(mem, {});
    if (oneByOne) {
      for (let i = 0; i < N; i++) assert.equal(pt.mapPages(base + i * SZ_4K, 0x1_0000_0000 + i * SZ_4K, SZ_4K, 1, RW), SZ_4K);
    } else {
      assert.equal(pt.mapPages(base, 0x1_0000_0000, SZ_4K, N, RW), N * SZ_4K);
    }
    assert.equal(mem.tablePagesInUse, 514, 'root + 1 level-2 + 512 level-1 tables');
    assert.ok(mem.tablePagesInUse * SZ_4K <= 2.2 * 2 ** 20);
    for (let i = 0; i < N; i += 4099) assert.equal(pt.iovaToPhys(base + i * SZ_4K + 1), 0x1_0000_0000 + i * SZ_4K + 1);
    assert.deepEqual(specWalk(mem, pt.root, 3, base + (N - 1) * SZ_4K), [RW, 0x1_0000_0000 + (N - 1) * SZ_4K, SZ_4K]);
    assert.equal(pt.unmapPages(base, SZ_4K, N), N * SZ_4K);
    pt.free();
    assert.equal(mem.tablePagesInUse, 0);
  }
});

/** One mapping of the reference model. */
interface RefMap {
  readonly iova: number;
  readonly size: number;
  readonly phys: number;
  readonly prot: number;
}

test('amd-v1: property: random map/unmap agrees with a reference map of pages and the spec walker', () => {
  const SIZES = [SZ_4K, 0x2000, SZ_32K, 0x1_0000, SZ_2M, 0x40_0000];
  const WINDOW = 64 * 2 ** 20; // 64 MiB: 32 level-1 tables' worth, so sizes collide
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('map' as const),
      size: fc.constantFrom(...SIZES),
      slot: fc.nat(),
      phys: fc.nat({ max: 2 ** 20 }),
      count: fc.integer({ min: 1, max: 3 }),
      prot: fc.constantFrom(IOMMU_READ, IOMMU_WRITE, RW, 0),
    }),
    fc.record({ kind: fc.constant('unmap' as const), page: fc.nat({ max: WINDOW / SZ_4K - 1 }), count: fc.integer({ min: 1, max: 4 }) }),
  );
  fc.assert(
    fc.property(fc.constantFrom(0, 2 ** 39 - WINDOW / 2, 2 ** 62), fc.array(op, { maxLength: 60 }), (windowBase, ops) => {
      const mem = new PhysMem();
      const pt = new AmdV1Pgtable(mem, {});
      const ref = new Map<number, RefMap>(); // 4K page number (of the window) -> its mapping
      const mappedAt = (iova: number): RefMap | undefined => ref.get((iova - windowBase) / SZ_4K);
      for (const o of ops) {
        if (o.kind === 'map') {
          const slots = WINDOW / o.size - o.count + 1;
          const iova = windowBase + (o.slot % slots) * o.size;
          const phys = Math.floor((o.phys * SZ_4K) / o.size) * o.size;
          let expect = 0;
          let err: string | null = null;
          if (!(o.prot & RW)) err = 'EINVAL';
          else {
            for (let k = 0; k < o.count; k++) {
              const a = iova + k * o.size;
              let busy = false;
              for (let p = 0; p < o.size; p += SZ_4K) if (mappedAt(a + p)) busy = true;
              if (busy) {
                err = 'EEXIST';
                break;
              }
              const m = { iova: a, size: o.size, phys: phys + k * o.size, prot: o.prot & RW };
              for (let p = 0; p < o.size; p += SZ_4K) ref.set((a + p - windowBase) / SZ_4K, m);
              expect += o.size;
            }
          }
          assert.equal(pt.mapPages(iova, phys, o.size, o.count, o.prot), expect, `map 0x${iova.toString(16)} ${o.size}×${o.count}`);
          assert.equal(pt.error, err);
        } else {
          let iova = windowBase + o.page * SZ_4K;
          let expect = 0;
          while (expect < o.count * SZ_4K) {
            const m = mappedAt(iova);
            if (!m) break;
            for (let p = 0; p < m.size; p += SZ_4K) ref.delete((m.iova + p - windowBase) / SZ_4K);
            expect += m.size;
            iova = m.iova + m.size;
          }
          assert.equal(pt.unmapPages(windowBase + o.page * SZ_4K, SZ_4K, o.count), expect);
        }
      }
      const exactBytes = windowBase + WINDOW < 2 ** 53;
      for (let pg = 0; pg < WINDOW / SZ_4K; pg += 7) {
        const iova = windowBase + pg * SZ_4K;
        const probe = exactBytes ? iova + 0x123 : iova;
        const m = ref.get(pg);
        const want: [number, number, number] = m ? [m.prot, m.phys + (probe - m.iova), m.size] : [-1, 0, 0];
        assert.deepEqual(walk(pt, probe), want, `walk 0x${probe.toString(16)}`);
        assert.deepEqual(specWalk(mem, pt.root, pt.levels, probe), want, `spec walk 0x${probe.toString(16)}`);
        assert.equal(pt.iovaToPhys(probe), m ? want[1] : 0);
      }
      pt.free();
      assert.equal(mem.tablePagesInUse, 0);
    }),
    { numRuns: 150 },
  );
});
