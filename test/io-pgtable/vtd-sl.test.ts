/**
 * Tests for src/io-pgtable/vtd-sl.ts (VT-d second-level page table):
 * - exact PTE words for known mappings (hand-computed, bit by bit), 4K/2M/1G
 *   leaves, 4- and 5-level roots, SNP;
 * - EINVAL / EEXIST / ENOMEM paths and prot without R|W;
 * - unmap: holes, rounding up to a large leaf, partial large-leaf unmaps,
 *   freeing the tables an unmap covers entirely (dma_pte_clear_level());
 * - an independent walker (BigInt, through mem.read32 from `root`) agreeing
 *   with walk()/iovaToPhys();
 * - table memory for 262,144 consecutive 4K pages;
 * - a fast-check property against a reference map of leaves, checking after
 *   every step the full leaf set, table accounting and table freeing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError, type ErrnoName } from '../../src/base/errno.js';
import { PhysMem } from '../../src/mem/phys-mem.js';
import { IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE, WALK_PGSIZE, WALK_PHYS } from '../../src/io-pgtable/io-pgtable.js';
import { DMA_PTE_LARGE_PAGE, DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE, VTD_SL_PGSIZE_BITMAP, VtdSlPgtable } from '../../src/io-pgtable/vtd-sl.js';

const K4 = 0x1000;
const M2 = 0x20_0000;
const G1 = 0x4000_0000;
const RW = IOMMU_READ | IOMMU_WRITE;
/** Default pool base 0xf0_0000_0000: table pages are 0xf0_0000_0000, 0xf0_0000_1000, … */
const POOL = 0xf0_0000_0000;

/** The 64-bit entry at physical `addr` as [lo, hi] u32 words. */
function pte(mem: PhysMem, addr: number): [number, number] {
  return [mem.read32(addr), mem.read32(addr + 4)];
}

interface HwLeaf {
  phys: number;
  size: number;
  perm: number;
  level: number;
}

/**
 * Independent second-level walker: 64-bit entries read through mem.read32 from
 * `root`, BigInt arithmetic, PS honoured at levels 2 and 3 only (the VT-d
 * specification's PDE/PDPTE), permissions ANDed over the levels.
 */
function hwWalk(mem: PhysMem, root: number, levels: number, iova: number): HwLeaf | null {
  const va = BigInt(iova);
  let table = BigInt(root);
  let perm = 3n;
  for (let l = levels; l >= 1; l--) {
    const shift = BigInt(12 + 9 * (l - 1));
    const idx = (va >> shift) & 511n;
    const at = Number(table + idx * 8n);
    const val = (BigInt(mem.read32(at + 4)) << 32n) | BigInt(mem.read32(at));
    if ((val & 3n) === 0n) return null;
    perm &= val & 3n;
    const addr = val & 0x000f_ffff_ffff_f000n; // bits 51:12
    if (l === 1 || ((l === 2 || l === 3) && (val & 0x80n) !== 0n)) {
      const size = 1n << shift;
      return { phys: Number(addr + (va & (size - 1n))), size: Number(size), perm: Number(perm), level: l };
    }
    table = addr;
  }
  return null;
}

interface Enumerated {
  leaves: Map<number, { size: number; pa: number; prot: number }>;
  tables: number;
  /** IOVA spans [base, base + size) of directory entries that point at tables. */
  tableSpans: [number, number][];
}

/** Enumerate every leaf and table reachable from `root`, independently of the implementation. */
function enumerate(mem: PhysMem, root: number, levels: number): Enumerated {
  const out: Enumerated = { leaves: new Map(), tables: 0, tableSpans: [] };
  const visit = (table: bigint, l: number, base: bigint): void => {
    out.tables++;
    const shift = BigInt(12 + 9 * (l - 1));
    for (let i = 0n; i < 512n; i++) {
      const at = Number(table + i * 8n);
      const lo = mem.read32(at);
      if ((lo & 3) === 0) continue;
      const val = (BigInt(mem.read32(at + 4)) << 32n) | BigInt(lo);
      const addr = val & 0x000f_ffff_ffff_f000n;
      const iova = base + (i << shift);
      if (l === 1 || ((l === 2 || l === 3) && (val & 0x80n) !== 0n)) {
        out.leaves.set(Number(iova), { size: Number(1n << shift), pa: Number(addr), prot: lo & 3 });
      } else {
        out.tableSpans.push([Number(iova), Number(1n << shift)]);
        visit(addr, l - 1, iova);
      }
    }
  };
  visit(BigInt(root), levels, 0n);
  return out;
}

test('vtd-sl: cfg, root and levels', () => {
  const mem = new PhysMem();
  const pt4 = new VtdSlPgtable(mem, { levels: 4 });
  assert.equal(pt4.format, 'vtd-sl');
  assert.deepEqual(pt4.cfg, { pgsizeBitmap: 0x1000 | 0x20_0000 | 0x4000_0000, ias: 48, oas: 52, levels: 4 });
  assert.equal(VTD_SL_PGSIZE_BITMAP, 0x4020_1000);
  assert.equal(pt4.root, POOL);
  assert.equal(mem.tablePagesInUse, 1);
  const pt5 = new VtdSlPgtable(mem, { levels: 5 });
  assert.deepEqual(pt5.cfg, { pgsizeBitmap: 0x4020_1000, ias: 57, oas: 52, levels: 5 });
  assert.equal(new VtdSlPgtable(mem).cfg.levels, 4);
  for (const levels of [3, 6, 4.5]) {
    assert.throws(() => new VtdSlPgtable(mem, { levels }), (e) => isIommuError(e, 'EINVAL'));
  }
  assert.throws(() => new VtdSlPgtable(new PhysMem({ maxTablePages: (1 << 20) + 1 })), (e) => isIommuError(e, 'EINVAL'));
  assert.deepEqual([DMA_PTE_READ, DMA_PTE_WRITE, DMA_PTE_LARGE_PAGE, DMA_PTE_SNP], [1, 2, 0x80, 0x800]);
});

test('vtd-sl: IOVA 0x1000 -> PA 0x12345000 R|W writes the known entries', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem, { levels: 4 });
  assert.equal(pt.mapPages(0x1000, 0x1234_5000, K4, 1, RW), K4);
  assert.equal(pt.error, null);
  // Tables in allocation order: root 0xf0_0000_0000, L3 +0x1000, L2 +0x2000, L1 +0x3000.
  // IOVA 0x1000: L4 index 0, L3 index 0, L2 index 0, L1 index 1.
  // Directory entry = next table | R | W:
  //   lo 0x00001003 = bits 31:12 0x00001 (table 0xf0_0000_1000) | bit 1 W | bit 0 R
  //   hi 0x000000f0 = address bits 51:32 of 0xf0_0000_1000
  assert.deepEqual(pte(mem, POOL + 0x0000), [0x0000_1003, 0xf0]);
  assert.deepEqual(pte(mem, POOL + 0x1000), [0x0000_2003, 0xf0]); // L3[0] -> L2
  assert.deepEqual(pte(mem, POOL + 0x2000), [0x0000_3003, 0xf0]); // L2[0] -> L1
  // Leaf L1[1] at 0xf0_0000_3008: lo 0x12345003 = PA bits 31:12 0x12345 | W (bit 1) | R (bit 0);
  // PS (bit 7) and SNP (bit 11) clear; hi 0 = PA bits 51:32.
  assert.deepEqual(pte(mem, POOL + 0x3008), [0x1234_5003, 0]);
  assert.deepEqual(pte(mem, POOL + 0x3000), [0, 0]); // L1[0] untouched
  assert.equal(mem.tablePagesInUse, 4);

  // Read-only and write-only leaves; IOMMU_CACHE / IOMMU_NOEXEC add no bits.
  assert.equal(pt.mapPages(0x2000, 0x1234_6000, K4, 1, IOMMU_READ | IOMMU_CACHE | IOMMU_NOEXEC), K4);
  assert.deepEqual(pte(mem, POOL + 0x3010), [0x1234_6001, 0]); // R only
  assert.equal(pt.mapPages(0x3000, 0x1234_7000, K4, 1, IOMMU_WRITE), K4);
  assert.deepEqual(pte(mem, POOL + 0x3018), [0x1234_7002, 0]); // W only
  // A physical address above 4 GiB: bits 51:32 go to the high word.
  assert.equal(pt.mapPages(0x4000, 0xa_bcde_f000, K4, 1, RW), K4);
  assert.deepEqual(pte(mem, POOL + 0x3020), [0xbcde_f003, 0xa]);
  // The highest page below 2^52: hi = 0xfffff (bits 51:32), lo = 0xfffff003.
  assert.equal(pt.mapPages(0x5000, 2 ** 52 - K4, K4, 1, RW), K4);
  assert.deepEqual(pte(mem, POOL + 0x3028), [0xffff_f003, 0xfffff]);

  const out = new Float64Array(2);
  assert.equal(pt.walk(0x1abc, out), RW);
  assert.deepEqual([out[WALK_PHYS], out[WALK_PGSIZE]], [0x1234_5abc, K4]);
  assert.equal(pt.walk(0x2000, out), IOMMU_READ);
  assert.equal(pt.walk(0x3fff, out), IOMMU_WRITE);
  assert.equal(pt.walk(0x0, out), -1);
  assert.equal(pt.iovaToPhys(0x1abc), 0x1234_5abc);
  assert.equal(pt.iovaToPhys(0x4123), 0xa_bcde_f123);
  assert.equal(pt.iovaToPhys(0x5fff), 2 ** 52 - 1);
  assert.equal(pt.iovaToPhys(0x6000), 0);
  assert.deepEqual(hwWalk(mem, pt.root, 4, 0x1abc), { phys: 0x1234_5abc, size: K4, perm: 3, level: 1 });
});

test('vtd-sl: 2M and 1G leaves carry PS (bit 7)', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem, { levels: 4 });
  // IOVA 0x4020_0000 = 1G + 2M: L4 index 0, L3 index 1, L2 index 1. Tables: root, L3 +0x1000, L2 +0x2000.
  assert.equal(pt.mapPages(0x4020_0000, 0x8000_0000, M2, 1, RW), M2);
  assert.deepEqual(pte(mem, POOL + 0x1008), [0x0000_2003, 0xf0]); // L3[1] -> L2
  // L2[1]: lo 0x80000083 = PA bits 31:21 (0x8000_0000) | PS bit 7 | W | R; hi 0.
  assert.deepEqual(pte(mem, POOL + 0x2008), [0x8000_0083, 0]);
  assert.equal(mem.tablePagesInUse, 3); // no level-1 table
  // IOVA 0x80_0000_0000 = 2^39: L4 index 1 -> new L3 at +0x3000, entry L3[0] is the 1G leaf.
  assert.equal(pt.mapPages(0x80_0000_0000, 0x1_4000_0000, G1, 1, IOMMU_READ), G1);
  assert.deepEqual(pte(mem, POOL + 0x0008), [0x0000_3003, 0xf0]); // root[1] -> L3
  // L3[0]: lo 0x40000081 = PA bits 31:30 (0x4000_0000) | PS | R; hi 0x1 = PA bit 32.
  assert.deepEqual(pte(mem, POOL + 0x3000), [0x4000_0081, 0x1]);
  assert.equal(mem.tablePagesInUse, 4);

  const out = new Float64Array(2);
  assert.equal(pt.walk(0x4020_0000 + 0x1_2345, out), RW);
  assert.deepEqual([out[WALK_PHYS], out[WALK_PGSIZE]], [0x8001_2345, M2]);
  assert.equal(pt.walk(0x80_0000_0000 + 0x3fff_ffff, out), IOMMU_READ);
  assert.deepEqual([out[WALK_PHYS], out[WALK_PGSIZE]], [0x1_7fff_ffff, G1]);
  assert.equal(pt.iovaToPhys(0x80_1234_5678), 0x1_5234_5678);
  assert.deepEqual(hwWalk(mem, pt.root, 4, 0x80_1234_5678), { phys: 0x1_5234_5678, size: G1, perm: 1, level: 3 });
  assert.deepEqual(hwWalk(mem, pt.root, 4, 0x4020_0fff), { phys: 0x8000_0fff, size: M2, perm: 3, level: 2 });

  // count > 1 large pages: consecutive PS entries, address stepping by the page size.
  assert.equal(pt.mapPages(0x4060_0000, 0x1_0000_0000, M2, 3, RW), 3 * M2);
  assert.deepEqual(pte(mem, POOL + 0x2018), [0x0000_0083, 0x1]);
  assert.deepEqual(pte(mem, POOL + 0x2020), [0x0020_0083, 0x1]);
  assert.deepEqual(pte(mem, POOL + 0x2028), [0x0040_0083, 0x1]);
});

test('vtd-sl: 5-level root indexes IOVA bits 56:48', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem, { levels: 5 });
  const iova = 2 ** 48 + 0x1000; // L5 index 1, L4..L2 index 0, L1 index 1
  assert.equal(pt.mapPages(iova, 0x5000, K4, 1, RW), K4);
  assert.deepEqual(pte(mem, POOL + 0x0008), [0x0000_1003, 0xf0]); // L5[1] -> L4 (+0x1000)
  assert.deepEqual(pte(mem, POOL + 0x1000), [0x0000_2003, 0xf0]); // L4[0] -> L3
  assert.deepEqual(pte(mem, POOL + 0x2000), [0x0000_3003, 0xf0]); // L3[0] -> L2
  assert.deepEqual(pte(mem, POOL + 0x3000), [0x0000_4003, 0xf0]); // L2[0] -> L1
  assert.deepEqual(pte(mem, POOL + 0x4008), [0x0000_5003, 0]); // L1[1] leaf
  assert.equal(pt.iovaToPhys(iova + 0x10), 0x5010);
  assert.equal(pt.iovaToPhys(0x1000), 0); // L5 index 0 is empty
  // The last page of the 57-bit space: every index 511 (IOVA above 2^53, page-aligned).
  const top = 2 ** 57 - K4;
  assert.equal(pt.mapPages(top, 0x7000, K4, 1, IOMMU_READ), K4);
  const out = new Float64Array(2);
  assert.equal(pt.walk(top, out), IOMMU_READ);
  assert.deepEqual([out[WALK_PHYS], out[WALK_PGSIZE]], [0x7000, K4]);
  assert.deepEqual(hwWalk(mem, pt.root, 5, top), { phys: 0x7000, size: K4, perm: 1, level: 1 });
  assert.deepEqual(pte(mem, POOL + 0xff8), [0x0000_5003, 0xf0]); // L5[511] -> sixth table (+0x5000)
  assert.equal(pt.mapPages(2 ** 57, 0, K4, 1, RW), 0);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.unmapPages(top, K4, 1), K4);
  assert.equal(pt.iovaToPhys(top), 0);

  // A 4-level table rejects the same IOVA.
  const pt4 = new VtdSlPgtable(mem, { levels: 4 });
  assert.equal(pt4.mapPages(iova, 0x5000, K4, 1, RW), 0);
  assert.equal(pt4.error, 'EINVAL');
  assert.equal(pt4.mapPages(2 ** 48 - K4, 0x5000, K4, 1, RW), K4);
  assert.equal(pt4.iovaToPhys(2 ** 48 - K4), 0x5000);
  assert.equal(pt4.iovaToPhys(2 ** 48), 0);
  assert.equal(pt4.walk(2 ** 48, out), -1);
});

test('vtd-sl: SNP only when the domain forces snooping (intel_iommu_enforce_cache_coherency)', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem, { levels: 4, forceSnooping: true });
  assert.equal(pt.forceSnooping, true);
  pt.mapPages(0x1000, 0x1234_5000, K4, 1, RW);
  // lo 0x12345803 = PA | SNP (bit 11) | W | R
  assert.deepEqual(pte(mem, POOL + 0x3008), [0x1234_5803, 0]);
  pt.mapPages(0x20_0000, 0x20_0000, M2, 1, IOMMU_READ);
  assert.deepEqual(pte(mem, POOL + 0x2008), [0x0020_0881, 0]); // PA | SNP | PS | R

  const plain = new VtdSlPgtable(mem);
  assert.equal(plain.forceSnooping, false);
  plain.mapPages(0x1000, 0x1234_5000, K4, 1, RW | IOMMU_CACHE);
  assert.equal(hwWalk(mem, plain.root, 4, 0x1000)!.phys, 0x1234_5000);
  assert.equal(plain.enforceCacheCoherency(), false); // already has mappings
  const fresh = new VtdSlPgtable(mem);
  assert.equal(fresh.enforceCacheCoherency(), true);
  assert.equal(fresh.enforceCacheCoherency(), true);
  fresh.mapPages(0x1000, 0x1234_5000, K4, 1, RW);
  assert.deepEqual(pte(mem, entryAddr(mem, fresh.root, 0x1000, 1)), [0x1234_5803, 0]); // SNP set
  assert.deepEqual(pte(mem, entryAddr(mem, plain.root, 0x1000, 1)), [0x1234_5003, 0]); // IOMMU_CACHE alone: no SNP
});

/** Physical address of the level-`l` entry for `iova` in a 4-level table. */
function entryAddr(mem: PhysMem, root: number, iova: number, l: number): number {
  let table = root;
  for (let lvl = 4; ; lvl--) {
    const at = table + (Math.floor(iova / 2 ** (12 + 9 * (lvl - 1))) % 512) * 8;
    if (lvl === l) return at;
    table = mem.read32(at + 4) * 2 ** 32 + (mem.read32(at) >>> 12) * K4;
  }
}

test('vtd-sl: EINVAL for bad size, alignment, range; prot without R|W is EINVAL', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem);
  const bad: [number, number, number, number][] = [
    [0x1000, 0x1000, 0x2000, 1], // 8K is not a page size
    [0x1000, 0x1000, 0, 1],
    [0x1000, 0x1000, 0x3000, 1],
    [0x1000, 0x1000, 0x10_0000_0000, 1], // 64G
    [0x1800, 0x1000, K4, 1], // IOVA not aligned
    [0x1000, 0x1800, K4, 1], // PA not aligned
    [0x1000, 0x20_0000, M2, 1], // IOVA not 2M-aligned
    [0x20_0000, 0x1000, M2, 1], // PA not 2M-aligned
    [0x4000_0000, 0x20_0000, G1, 1], // PA not 1G-aligned
    [-0x1000, 0x1000, K4, 1],
    [0x1000, -0x1000, K4, 1],
    [2 ** 48, 0x1000, K4, 1], // beyond 48 bits
    [2 ** 48 - K4, 0x1000, K4, 2], // the range crosses 2^48
    [0x1000, 2 ** 52, K4, 1], // beyond oas
    [0x1000, 2 ** 52 - K4, K4, 2],
    [0x1000, 0x1000, K4, 1.5],
    [0x1000, 0x1000, K4, -1],
    [NaN, 0x1000, K4, 1],
    [4096.5, 0x1000, K4, 1],
  ];
  for (const [iova, pa, size, count] of bad) {
    assert.equal(pt.mapPages(iova, pa, size, count, RW), 0, `${iova} ${pa} ${size} ${count}`);
    assert.equal(pt.error, 'EINVAL', `${iova} ${pa} ${size} ${count}`);
  }
  assert.equal(mem.tablePagesInUse, 1); // nothing allocated
  assert.equal(pt.mapPages(0x1000, 0x1000, K4, 1, 0), 0);
  assert.equal(pt.error, 'EINVAL'); // __domain_mapping(): no R/W is -EINVAL
  assert.equal(pt.mapPages(0x1000, 0x1000, K4, 1, IOMMU_CACHE | IOMMU_NOEXEC), 0);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.mapPages(0x1000, 0x1000, K4, 0, RW), 0);
  assert.equal(pt.error, null);
  assert.equal(pt.iovaToPhys(0x1000), 0);
  assert.equal(pt.enforceCacheCoherency(), true); // nothing was ever mapped
  // A failed call is followed by a good one: error clears.
  pt.mapPages(0x1800, 0x1000, K4, 1, RW);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.mapPages(0x1000, 0x1000, K4, 1, RW), K4);
  assert.equal(pt.error, null);
});

test('vtd-sl: EEXIST when something is mapped; empty leftover tables give way to a superpage', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0xa000, K4, 1, RW), K4);
  assert.equal(pt.mapPages(0x1000, 0xb000, K4, 1, IOMMU_READ), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.iovaToPhys(0x1000), 0xa000); // old entry kept
  // count > 1 stops at the existing page and reports what it mapped before.
  assert.equal(pt.mapPages(0x0, 0x10_0000, K4, 4, RW), K4);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.iovaToPhys(0x0), 0x10_0000);
  assert.equal(pt.iovaToPhys(0x2000), 0);
  // A 2M leaf over a level-1 table that still maps pages.
  assert.equal(pt.mapPages(0x0, 0x20_0000, M2, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  // A 1G leaf over a level-2 table below which pages are mapped.
  assert.equal(pt.mapPages(0x0, 0x4000_0000, G1, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  // 4K under a 2M superpage, 2M over 2M, 2M and 4K under a 1G superpage.
  assert.equal(pt.mapPages(0x20_0000, 0x20_0000, M2, 1, RW), M2);
  assert.equal(pt.mapPages(0x20_1000, 0x1000, K4, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(0x20_0000, 0x40_0000, M2, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(0x4000_0000, 0x4000_0000, G1, 1, RW), G1);
  assert.equal(pt.mapPages(0x4020_0000, 0x20_0000, M2, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.mapPages(0x4000_0000 + 0x5000, 0x5000, K4, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.iovaToPhys(0x4000_5000), 0x4000_5000);

  // Unmapping page by page leaves the level-1 table (as Linux); a 2M map then
  // frees it (switch_to_super_page()).
  assert.equal(pt.unmapPages(0x0, K4, 1), K4);
  assert.equal(pt.unmapPages(0x1000, K4, 1), K4);
  const before = mem.tablePagesInUse;
  assert.equal(pt.mapPages(0x0, 0x60_0000, M2, 1, RW), M2);
  assert.equal(pt.error, null);
  assert.equal(mem.tablePagesInUse, before - 1);
  assert.equal(pt.iovaToPhys(0x1234), 0x60_1234);
  assert.deepEqual(hwWalk(mem, pt.root, 4, 0x1234), { phys: 0x60_1234, size: M2, perm: 3, level: 2 });
  const t = enumerate(mem, pt.root, 4);
  assert.equal(t.tables, mem.tablePagesInUse);
});

test('vtd-sl: ENOMEM when the pool runs out, with the bytes mapped so far', () => {
  const mem = new PhysMem({ maxTablePages: 3 });
  const pt = new VtdSlPgtable(mem); // root = 1 page; a 4K map needs 3 more
  assert.equal(pt.mapPages(0x1000, 0x1000, K4, 1, RW), 0);
  assert.equal(pt.error, 'ENOMEM');
  assert.equal(pt.iovaToPhys(0x1000), 0);
  const mem2 = new PhysMem({ maxTablePages: 4 });
  const pt2 = new VtdSlPgtable(mem2);
  assert.equal(pt2.mapPages(0x0, 0x0, K4, 513, RW), M2); // the second level-1 table does not fit
  assert.equal(pt2.error, 'ENOMEM');
  assert.equal(pt2.iovaToPhys(0x1f_f000), 0x1f_f000);
  assert.equal(pt2.iovaToPhys(M2), 0);
  assert.equal(pt2.mapPages(M2, 0, M2, 1, RW), M2); // a superpage needs no new table
  assert.throws(() => new VtdSlPgtable(mem2), (e) => isIommuError(e, 'ENOMEM'));
});

test('vtd-sl: count > 1 runs across table boundaries', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem);
  const iova = 0x3fe0_0000 - 0x1000; // last page of a 2M region, just below 1G
  assert.equal(pt.mapPages(iova, 0x1_0000_0000, K4, 1 + 512 + 512 + 3, RW), (1 + 512 + 512 + 3) * K4);
  for (let i = 0; i < 1028; i++) assert.equal(pt.iovaToPhys(iova + i * K4), 0x1_0000_0000 + i * K4);
  assert.equal(pt.iovaToPhys(iova + 1028 * K4), 0);
  assert.equal(pt.iovaToPhys(iova - K4), 0);
  // root, L3, two L2 (the run crosses 1G), four L1
  assert.equal(mem.tablePagesInUse, 1 + 1 + 2 + 4);
  assert.equal(enumerate(mem, pt.root, 4).leaves.size, 1028);
  // 2M pages across a 1G boundary
  assert.equal(pt.mapPages(0x7fc0_0000, 0x2_0000_0000, M2, 4, RW), 4 * M2);
  assert.equal(pt.iovaToPhys(0x8000_0000 + 0x1234), 0x2_0040_1234);
});

test('vtd-sl: unmap returns bytes, stops at the first hole, rounds up to a large leaf', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem);
  pt.mapPages(0x0, 0x100_0000, K4, 8, RW);
  assert.equal(pt.unmapPages(0x2000, K4, 2), 2 * K4);
  assert.equal(pt.unmapPages(0x0, K4, 8), 2 * K4); // stops at the hole at 0x2000
  assert.equal(pt.unmapPages(0x2000, K4, 1), 0);
  assert.equal(pt.unmapPages(0x4000, K4, 100), 4 * K4);
  assert.equal(pt.unmapPages(0x10_0000_0000, K4, 1), 0); // nothing there, no tables either
  assert.equal(pt.unmapPages(2 ** 48, K4, 1), 0);
  assert.equal(pt.unmapPages(0x1800, K4, 1), 0);
  assert.equal(pt.unmapPages(0x0, 0x2000, 1), 0);
  assert.equal(pt.unmapPages(-K4, K4, 1), 0);
  assert.equal(pt.unmapPages(0x0, K4, 0), 0);

  // intel_iommu_unmap(): a 4K unmap at the start of a 2M leaf unmaps 2M.
  pt.mapPages(0x20_0000, 0x4000_0000, M2, 1, RW);
  assert.equal(pt.unmapPages(0x20_1000, K4, 1), 0); // inside the leaf: nothing
  assert.equal(pt.iovaToPhys(0x20_1000), 0x4000_1000);
  assert.equal(pt.unmapPages(0x20_0000, K4, 1), M2);
  assert.equal(pt.iovaToPhys(0x20_0000), 0);
  // ... and a 2M unmap at a 1G leaf unmaps 1G.
  pt.mapPages(0x4000_0000, 0x4000_0000, G1, 1, RW);
  assert.equal(pt.unmapPages(0x4020_0000, M2, 1), 0);
  assert.equal(pt.unmapPages(0x4000_0000, M2, 3), G1);
  assert.equal(pt.iovaToPhys(0x4000_0000), 0);
  // A run that reaches a larger leaf it only partly covers stops before it.
  pt.mapPages(0x8000_0000, 0x0, K4, 512, RW);
  pt.mapPages(0x8020_0000, 0x0, M2, 1, RW);
  assert.equal(pt.unmapPages(0x8000_0000, K4, 600), M2);
  assert.equal(pt.iovaToPhys(0x8020_0000), 0x0);
  // 4K leaves then a 2M leaf, fully covered.
  pt.mapPages(0x8000_0000, 0x0, K4, 512, RW);
  assert.equal(pt.unmapPages(0x8000_0000, K4, 1024), 2 * M2);
  assert.equal(pt.iovaToPhys(0x8020_0000), 0);
});

test('vtd-sl: an unmap that covers whole tables frees them (dma_pte_clear_level)', () => {
  const mem = new PhysMem();
  const pt = new VtdSlPgtable(mem);
  const base = 0x4000_0000; // 1G-aligned: L3 index 1
  pt.mapPages(base, 0x0, K4, 512, RW);
  assert.equal(mem.tablePagesInUse, 4); // root, L3, L2, L1
  const l2e = entryAddr(mem, pt.root, base, 2);
  assert.notDeepEqual(pte(mem, l2e), [0, 0]);
  assert.equal(pt.unmapPages(base, K4, 512), M2);
  assert.equal(mem.tablePagesInUse, 3); // the level-1 table is gone ...
  assert.deepEqual(pte(mem, l2e), [0, 0]); // ... and its directory entry cleared
  assert.equal(pt.iovaToPhys(base), 0);

  // One page at a time frees nothing (no single unmap covers the table), as in Linux.
  pt.mapPages(base, 0x0, K4, 512, RW);
  for (let i = 0; i < 512; i++) assert.equal(pt.unmapPages(base + i * K4, K4, 1), K4);
  assert.equal(mem.tablePagesInUse, 4);
  assert.equal(enumerate(mem, pt.root, 4).leaves.size, 0);
  // Partial coverage keeps the table.
  pt.mapPages(base, 0x0, K4, 512, RW);
  assert.equal(pt.unmapPages(base + K4, K4, 511), 511 * K4);
  assert.equal(mem.tablePagesInUse, 4);
  pt.unmapPages(base, K4, 1);

  // A whole 1G of 4K pages and 2M leaves: the level-2 table and the level-1
  // tables under it all go; the stale level-1 table left above too.
  pt.mapPages(base, 0x0, K4, 512, RW);
  pt.mapPages(base + M2, M2, M2, 511, RW);
  assert.equal(mem.tablePagesInUse, 4);
  assert.equal(pt.unmapPages(base, K4, 262144), G1);
  assert.equal(mem.tablePagesInUse, 2); // root and L3
  assert.deepEqual(pte(mem, entryAddr(mem, pt.root, base, 3)), [0, 0]);
  // 2M unmaps of 2M leaves covering a 1G: the level-2 table goes.
  pt.mapPages(base, 0x0, M2, 512, RW);
  assert.equal(mem.tablePagesInUse, 3);
  assert.equal(pt.unmapPages(base, M2, 512), G1);
  assert.equal(mem.tablePagesInUse, 2);
  // Tables freed, then reused for a different region: the walk cache must not
  // send a later map of the old region into the reused table.
  pt.mapPages(base, 0x1000, K4, 1, RW); // caches base's level-1 table
  assert.equal(pt.unmapPages(base, M2, 1), K4); // a 4K leaf then a hole: stops at the hole
  assert.equal(pt.iovaToPhys(base), 0);
  pt.mapPages(base, 0x1000, K4, 512, RW);
  assert.equal(pt.unmapPages(base, K4, 512), M2); // frees the level-1 table
  pt.mapPages(0x1_0000_0000, 0x9000, K4, 1, RW); // reuses freed pages
  assert.equal(pt.mapPages(base + K4, 0x7000, K4, 1, RW), K4);
  assert.equal(pt.iovaToPhys(0x1_0000_0000), 0x9000);
  assert.equal(pt.iovaToPhys(base + K4), 0x7000);
  assert.deepEqual(hwWalk(mem, pt.root, 4, base + K4)?.phys, 0x7000);
  assert.equal(pt.iovaToPhys(0x1_0000_1000), 0);
  assert.equal(enumerate(mem, pt.root, 4).tables, mem.tablePagesInUse);
});

test('vtd-sl: free() returns every table; the freed table maps nothing', () => {
  const mem = new PhysMem();
  const other = new VtdSlPgtable(mem);
  other.mapPages(0x1000, 0x1000, K4, 1, RW);
  const inUse = mem.tablePagesInUse;
  const pt = new VtdSlPgtable(mem, { levels: 5 });
  pt.mapPages(0x0, 0x0, K4, 1024, RW);
  pt.mapPages(0x4000_0000, 0x0, M2, 3, RW);
  pt.mapPages(2 ** 56, 0x0, G1, 2, RW);
  pt.free();
  assert.equal(mem.tablePagesInUse, inUse);
  pt.free();
  assert.equal(mem.tablePagesInUse, inUse);
  assert.equal(pt.mapPages(0x0, 0x0, K4, 1, RW), 0);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.iovaToPhys(0x0), 0);
  assert.equal(pt.walk(0x0, new Float64Array(2)), -1);
  assert.equal(pt.unmapPages(0x0, K4, 1), 0);
  assert.equal(other.iovaToPhys(0x1000), 0x1000);
});

test('vtd-sl: 262,144 consecutive 4K pages take at most 2.2 MiB of tables', () => {
  for (const levels of [4, 5]) {
    const mem = new PhysMem();
    const pt = new VtdSlPgtable(mem, { levels });
    const base = 0x1_0000_0000;
    for (let i = 0; i < 262144; i++) {
      if (pt.mapPages(base + i * K4, 0x2_0000_0000 + i * K4, K4, 1, RW) !== K4) assert.fail(`map ${i}: ${String(pt.error)}`);
    }
    assert.ok(mem.tablePagesInUse * K4 <= 2.2 * 1024 * 1024, `${mem.tablePagesInUse} pages`);
    assert.equal(mem.tablePagesInUse, levels + 511); // root … L2, 512 L1
    assert.equal(pt.iovaToPhys(base + 123_456 * K4 + 7), 0x2_0000_0000 + 123_456 * K4 + 7);
    for (let i = 0; i < 262144; i += 4099) assert.equal(hwWalk(mem, pt.root, levels, base + i * K4)?.phys, 0x2_0000_0000 + i * K4);
    // One call with count 262,144 builds the same tables.
    const mem2 = new PhysMem();
    const pt2 = new VtdSlPgtable(mem2, { levels });
    assert.equal(pt2.mapPages(base, 0x2_0000_0000, K4, 262144, RW), G1);
    assert.equal(mem2.tablePagesInUse, mem.tablePagesInUse);
    assert.deepEqual(mem2.pool.subarray(0, 1024 * mem2.tablePagesInUse), mem.pool.subarray(0, 1024 * mem.tablePagesInUse));
    // Unmapping them all at once frees everything below the level-3 table.
    assert.equal(pt2.unmapPages(base, K4, 262144), G1);
    assert.equal(mem2.tablePagesInUse, levels - 2);
  }
});

// ---------------------------------------------------------------------------
// Property test against a reference map of leaves.

interface RefLeaf {
  size: number;
  pa: number;
  prot: number;
}

/** Reference model: leaves keyed by IOVA, with the semantics documented in vtd-sl.ts. */
class RefTable {
  readonly leaves = new Map<number, RefLeaf>();
  constructor(readonly limit: number) {}

  find(addr: number): [number, RefLeaf] | undefined {
    for (const size of [K4, M2, G1]) {
      const start = Math.floor(addr / size) * size;
      const leaf = this.leaves.get(start);
      if (leaf && leaf.size === size) return [start, leaf];
    }
    return undefined;
  }

  overlaps(start: number, size: number): boolean {
    for (const [s, l] of this.leaves) if (s < start + size && start < s + l.size) return true;
    return false;
  }

  map(iova: number, pa: number, size: number, count: number, prot: number): [number, ErrnoName | null] {
    if ((prot & 3) === 0) return [0, 'EINVAL'];
    if (iova + size * count > this.limit) return [0, 'EINVAL'];
    for (let k = 0; k < count; k++) {
      const s = iova + k * size;
      if (this.overlaps(s, size)) return [k * size, 'EEXIST'];
      this.leaves.set(s, { size, pa: pa + k * size, prot: prot & 3 });
    }
    return [count * size, null];
  }

  unmap(iova: number, size: number, count: number): number {
    const end = Math.min(iova + size * count, this.limit);
    let addr = iova;
    while (addr < end) {
      const f = this.find(addr);
      if (!f || f[0] !== addr) break;
      const leaf = f[1];
      if (addr + leaf.size > end) {
        if (addr !== iova) break;
        this.leaves.delete(addr);
        return leaf.size;
      }
      this.leaves.delete(addr);
      addr += leaf.size;
    }
    return addr - iova;
  }
}

type PtOp =
  | { op: 'map'; region: number; i2: number; i4: number; size: number; count: number; pa: number; prot: number }
  | { op: 'unmap'; region: number; i2: number; i4: number; size: number; count: number }
  | { op: 'look'; region: number; i2: number; i4: number; off: number };

const SIZES = [K4, M2, G1];
const opArb: fc.Arbitrary<PtOp> = fc.oneof(
  fc.record({
    op: fc.constant('map' as const),
    region: fc.constantFrom(0, 0, 1, 2, 3),
    i2: fc.constantFrom(0, 1, 2, 511),
    i4: fc.constantFrom(0, 0, 1, 2, 511),
    size: fc.constantFrom(...SIZES),
    count: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 2, arbitrary: fc.constantFrom(511, 512, 513) }),
    pa: fc.integer({ min: 0, max: 7 }),
    prot: fc.constantFrom(1, 2, 3, 3, 0, 4 | 3),
  }),
  fc.record({
    op: fc.constant('unmap' as const),
    region: fc.constantFrom(0, 0, 1, 2, 3),
    i2: fc.constantFrom(0, 1, 2, 511),
    i4: fc.constantFrom(0, 0, 1, 2, 511),
    size: fc.constantFrom(...SIZES),
    count: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 2, arbitrary: fc.constantFrom(511, 512, 513, 262144) }),
  }),
  // Whole-table fills and clears, so that unmaps free tables and later
  // operations hit the regions whose tables were freed.
  fc.record({
    op: fc.constant('map' as const),
    region: fc.constantFrom(0, 0, 1, 2, 3),
    i2: fc.constantFrom(0, 1),
    i4: fc.constant(0),
    size: fc.constantFrom(K4, M2),
    count: fc.constant(512),
    pa: fc.integer({ min: 0, max: 7 }),
    prot: fc.constant(3),
  }),
  fc.record({
    op: fc.constant('unmap' as const),
    region: fc.constantFrom(0, 0, 1, 2, 3),
    i2: fc.constantFrom(0, 1),
    i4: fc.constant(0),
    size: fc.constantFrom(K4, M2),
    count: fc.constant(512),
  }),
  fc.record({
    op: fc.constant('look' as const),
    region: fc.constantFrom(0, 0, 1, 2, 3),
    i2: fc.constantFrom(0, 1, 2, 511),
    i4: fc.constantFrom(0, 0, 1, 2, 511),
    off: fc.constantFrom(0, 1, 0xfff),
  }),
);

function regionBase(levels: number, region: number): number {
  const limit = 2 ** (levels === 4 ? 48 : 57);
  return [0, G1, 2 ** 39 + 5 * G1, limit - G1][region]!;
}

function opIova(levels: number, o: { region: number; i2: number; i4: number }, size: number): number {
  const b = regionBase(levels, o.region);
  if (size === G1) return b;
  if (size === M2) return b + o.i2 * M2;
  return b + o.i2 * M2 + o.i4 * K4;
}

function checkAgainst(pt: VtdSlPgtable, ref: RefTable, levels: number): void {
  const mem = pt.mem;
  const t = enumerate(mem, pt.root, levels);
  assert.equal(t.tables, mem.tablePagesInUse, 'every allocated table is reachable, none leaked');
  assert.equal(t.leaves.size, ref.leaves.size, 'leaf count');
  for (const [iova, leaf] of ref.leaves) {
    assert.deepEqual(t.leaves.get(iova), leaf, `leaf at 0x${iova.toString(16)}`);
  }
}

for (const levels of [4, 5]) {
  test(`vtd-sl: property — random map/unmap against a reference map of leaves (${levels}-level)`, () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 25 }), (ops) => {
        const mem = new PhysMem();
        const pt = new VtdSlPgtable(mem, { levels });
        const ref = new RefTable(2 ** pt.cfg.ias);
        const out = new Float64Array(2);
        for (const o of ops) {
          if (o.op === 'map') {
            const iova = opIova(levels, o, o.size);
            const pa = 2 ** 40 + o.pa * o.size;
            const want = ref.map(iova, pa, o.size, o.count, o.prot);
            const got = pt.mapPages(iova, pa, o.size, o.count, o.prot);
            assert.deepEqual([got, pt.error], want, JSON.stringify(o));
          } else if (o.op === 'unmap') {
            const iova = opIova(levels, o, o.size);
            const want = ref.unmap(iova, o.size, o.count);
            const got = pt.unmapPages(iova, o.size, o.count);
            assert.equal(got, want, JSON.stringify(o));
            // No table whose whole span lies in the unmapped range survives.
            for (const [s, size] of enumerate(mem, pt.root, levels).tableSpans) {
              assert.ok(!(got > 0 && s >= iova && s + size <= iova + got), `table at 0x${s.toString(16)} should be freed`);
            }
          } else {
            const page = opIova(levels, o, K4);
            const iova = page + (page < 2 ** 53 ? o.off : 0); // above 2^53 only page-aligned IOVAs are exact
            const f = ref.find(iova);
            const hw = hwWalk(mem, pt.root, levels, iova);
            const perm = pt.walk(iova, out);
            if (!f) {
              assert.equal(hw, null);
              assert.equal(perm, -1);
              assert.equal(pt.iovaToPhys(iova), 0);
            } else {
              const phys = f[1].pa + (iova - f[0]);
              assert.deepEqual(hw, { phys, size: f[1].size, perm: f[1].prot, level: f[1].size === K4 ? 1 : f[1].size === M2 ? 2 : 3 });
              assert.equal(perm, f[1].prot);
              assert.deepEqual([out[WALK_PHYS], out[WALK_PGSIZE]], [phys, f[1].size]);
              assert.equal(pt.iovaToPhys(iova), phys);
            }
          }
          checkAgainst(pt, ref, levels);
        }
        // Every leaf's last page translates the same through both walkers.
        for (const [iova, leaf] of ref.leaves) {
          const probe = iova + leaf.size - K4;
          assert.equal(pt.iovaToPhys(probe), leaf.pa + leaf.size - K4);
          assert.equal(hwWalk(mem, pt.root, levels, probe)?.phys, leaf.pa + leaf.size - K4);
        }
        pt.free();
        assert.equal(mem.tablePagesInUse, 0);
      }),
      { numRuns: 200 },
    );
  });
}
