/**
 * Layout and Linux-behaviour tests for src/io-pgtable/arm-lpae.ts: known
 * mappings produce known descriptor words (hand-derived below from the Arm ARM
 * VMSAv8-64 descriptor formats and the ARM_LPAE_PTE_* definitions of
 * drivers/iommu/io-pgtable-arm.c), an independent BigInt walker follows the
 * tables through PhysMem.read32 from `root`, and the Linux behaviours specific
 * to this format: no block split on partial unmap, table freeing on covering
 * unmaps, a block replacing a table, EEXIST per table chunk, ENOMEM.
 *
 * Bit reference (stage 1, 4 KiB granule):
 *   bits 1:0   type: 0b11 table (levels 0–2) / page (level 3), 0b01 block (levels 1–2)
 *   bits 4:2   AttrIndx (MAIR index: 0 NC, 1 cacheable, 2 device — ARM_LPAE_MAIR_ATTR_IDX_*)
 *   bit 5      NS (only with IO_PGTABLE_QUIRK_ARM_NS)
 *   bit 6      AP[1] = ARM_LPAE_PTE_AP_UNPRIV (unless IOMMU_PRIV)
 *   bit 7      AP[2] = ARM_LPAE_PTE_AP_RDONLY (READ without WRITE)
 *   bits 9:8   SH: 0b11 inner (IOMMU_CACHE) / 0b10 outer shareable
 *   bit 10     AF, bit 11 nG (always)
 *   bits 47:12 output / next-table address
 *   bits 54:53 UXN/XN and PXN = ARM_LPAE_PTE_XN (IOMMU_NOEXEC)
 *   bit 63     NSTable (only with IO_PGTABLE_QUIRK_ARM_NS)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import { ArmLpaeS1Pgtable } from '../../src/io-pgtable/arm-lpae.js';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  WALK_PGSIZE,
  WALK_PHYS,
} from '../../src/io-pgtable/io-pgtable.js';
import { DEFAULT_POOL_BASE, PhysMem } from '../../src/mem/phys-mem.js';

const SZ_4K = 0x1000;
const SZ_2M = 0x200000;
const SZ_1G = 0x40000000;
const RW = IOMMU_READ | IOMMU_WRITE;
const POOL = DEFAULT_POOL_BASE; // 0xF0_0000_0000: table pages are handed out in order from here

/** The 64-bit descriptor at `addr`, read as two little-endian u32 words through PhysMem.read32. */
function desc(mem: PhysMem, addr: number): bigint {
  return (BigInt(mem.read32(addr + 4)) << 32n) | BigInt(mem.read32(addr));
}

/** Descriptor `i` of the table at physical address `table`. */
function entry(mem: PhysMem, table: number, i: number): bigint {
  return desc(mem, table + 8 * i);
}

interface RefLeaf {
  pa: number;
  size: number;
  writable: boolean;
  desc: bigint;
}

/**
 * An independent stage-1 walker (Arm ARM VMSAv8-64, 4 KiB granule, T0SZ = 16,
 * start level 0): reads descriptors through PhysMem.read32 only, with BigInt.
 */
function refWalk(mem: PhysMem, root: number, iova: number): RefLeaf | null {
  const va = BigInt(iova);
  if (va >> 48n !== 0n) return null; // outside TTBR0's 48-bit region: translation fault
  let table = BigInt(root);
  let writable = true;
  for (let lvl = 0; lvl < 4; lvl++) {
    const shift = BigInt(39 - 9 * lvl);
    const d = desc(mem, Number(table + ((va >> shift) & 511n) * 8n));
    const type = d & 3n;
    if ((type & 1n) === 0n) return null; // invalid
    const isLeaf = lvl === 3 ? type === 3n : type === 1n;
    if (lvl === 3 && type !== 3n) return null; // 0b01 at level 3 is reserved
    if (lvl === 0 && type === 1n) return null; // no level-0 blocks with 4K granule (without LPA2)
    if (isLeaf) {
      const size = 1n << shift;
      const pa = (d & 0x0000_ffff_ffff_f000n & ~(size - 1n)) | (va & (size - 1n));
      return { pa: Number(pa), size: Number(size), writable: writable && ((d >> 7n) & 1n) === 0n, desc: d };
    }
    if (((d >> 62n) & 1n) === 1n) writable = false; // APTable[1]
    table = d & 0x0000_ffff_ffff_f000n;
  }
  return null;
}

/** The attribute bits arm_lpae_prot_to_pte() (ARM_64_LPAE_S1, no quirks) yields, derived bit by bit. */
function expectedAttrs(prot: number): bigint {
  let a = (1n << 11n) | (1n << 10n); // nG, AF
  if ((prot & IOMMU_WRITE) === 0 && (prot & IOMMU_READ) !== 0) a |= 1n << 7n; // AP[2] RDONLY
  if ((prot & IOMMU_PRIV) === 0) a |= 1n << 6n; // AP[1] UNPRIV
  if ((prot & IOMMU_MMIO) !== 0) a |= 2n << 2n; // AttrIndx = ARM_LPAE_MAIR_ATTR_IDX_DEV
  else if ((prot & IOMMU_CACHE) !== 0) a |= 1n << 2n; // AttrIndx = ARM_LPAE_MAIR_ATTR_IDX_CACHE
  a |= (prot & IOMMU_CACHE) !== 0 ? 3n << 8n : 2n << 8n; // SH inner / outer
  if ((prot & IOMMU_NOEXEC) !== 0) a |= 3n << 53n; // ARM_LPAE_PTE_XN
  return a;
}

test('arm-lpae: cfg and root', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.format, 'arm-lpae-s1');
  assert.equal(pt.cfg.pgsizeBitmap, SZ_4K | SZ_2M | SZ_1G);
  assert.equal(pt.cfg.pgsizeBitmap, 0x40201000);
  assert.equal(pt.cfg.ias, 48);
  assert.equal(pt.cfg.oas, 48);
  assert.equal(pt.cfg.levels, 4);
  assert.equal(pt.cfg.coherentWalk, true);
  assert.equal(pt.cfg.quirks, 0);
  assert.equal(pt.root, POOL, 'the level-0 table is the first pool page');
  assert.equal(mem.tablePagesInUse, 1);
});

test('arm-lpae: 4K page 0x1000 → 0x80000000 READ|WRITE: three table descriptors and a page descriptor', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, 4, 'root + level-1/2/3 tables');
  // IOVA 0x1000: level-0 index 0, level-1 index 0, level-2 index 0, level-3 index 1.
  // Tables are allocated in walk order: L1 at POOL+0x1000, L2 at POOL+0x2000, L3 at POOL+0x3000.
  // Table descriptor = next-table address[47:12] | 0b11 (no NSTable, no APTable, no SW_SYNC: coherent walk):
  //   0xF0_0000_1000 | 0x3 = 0x000000F0_00001003.
  assert.equal(entry(mem, POOL, 0), 0x0000_00f0_0000_1003n, 'L0[0] → L1 table');
  assert.equal(entry(mem, POOL + 0x1000, 0), 0x0000_00f0_0000_2003n, 'L1[0] → L2 table');
  assert.equal(entry(mem, POOL + 0x2000, 0), 0x0000_00f0_0000_3003n, 'L2[0] → L3 table');
  // Page descriptor: OA 0x80000000 | nG 0x800 | AF 0x400 | SH=0b10 (outer: no IOMMU_CACHE) 0x200
  //   | AP[2]=0 (writable) | AP[1]=1 UNPRIV 0x40 | AttrIndx 0 (non-cacheable) | 0b11 page
  //   = 0x80000000 + 0xE43 = 0x00000000_80000E43.
  assert.equal(entry(mem, POOL + 0x3000, 1), 0x0000_0000_8000_0e43n, 'L3[1] page');
  assert.equal(entry(mem, POOL + 0x3000, 0), 0n);
  assert.equal(entry(mem, POOL + 0x3000, 2), 0n);
  assert.equal(entry(mem, POOL, 1), 0n);
  // The same as seen by the raw words of the pool (little-endian: low word first).
  assert.equal(mem.read32(POOL + 0x3008), 0x8000_0e43);
  assert.equal(mem.read32(POOL + 0x300c), 0);
  assert.equal(pt.iovaToPhys(0x1abc), 0x8000_0abc);
  const out = new Float64Array(2);
  assert.equal(pt.walk(0x1abc, out), RW);
  assert.deepEqual([...out], [0x8000_0abc, SZ_4K]);
});

test('arm-lpae: attribute encodings of 4K pages (CACHE, MMIO, PRIV, read-only, write-only)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  const l3 = POOL + 0x3000;
  // READ|WRITE|CACHE: SH=0b11 inner 0x300, AttrIndx=1 0x4 → 0x800|0x400|0x300|0x40|0x4|0x3 = 0xF47.
  assert.equal(pt.mapPages(0x1000, 0x8000_1000, SZ_4K, 1, RW | IOMMU_CACHE), SZ_4K);
  assert.equal(entry(mem, l3, 1), 0x0000_0000_8000_1f47n);
  // READ|WRITE|MMIO: AttrIndx=2 0x8, SH outer → 0x800|0x400|0x200|0x40|0x8|0x3 = 0xE4B.
  assert.equal(pt.mapPages(0x2000, 0x0900_0000, SZ_4K, 1, RW | IOMMU_MMIO), SZ_4K);
  assert.equal(entry(mem, l3, 2), 0x0000_0000_0900_0e4bn);
  // READ|WRITE|MMIO|CACHE: MMIO wins AttrIndx (2), CACHE still makes SH inner → 0xF4B.
  assert.equal(pt.mapPages(0x3000, 0x0900_1000, SZ_4K, 1, RW | IOMMU_MMIO | IOMMU_CACHE), SZ_4K);
  assert.equal(entry(mem, l3, 3), 0x0000_0000_0900_1f4bn);
  // READ|PRIV: AP[2] RDONLY 0x80, no UNPRIV → 0x800|0x400|0x200|0x80|0x3 = 0xE83.
  assert.equal(pt.mapPages(0x4000, 0x8000_4000, SZ_4K, 1, IOMMU_READ | IOMMU_PRIV), SZ_4K);
  assert.equal(entry(mem, l3, 4), 0x0000_0000_8000_4e83n);
  // WRITE only: RDONLY needs READ without WRITE, so this is the READ|WRITE encoding 0xE43.
  assert.equal(pt.mapPages(0x5000, 0x8000_5000, SZ_4K, 1, IOMMU_WRITE), SZ_4K);
  assert.equal(entry(mem, l3, 5), 0x0000_0000_8000_5e43n);
  // READ|WRITE|NOEXEC: + XN (bits 54 and 53) → high word 0x00600000.
  assert.equal(pt.mapPages(0x6000, 0x8000_6000, SZ_4K, 1, RW | IOMMU_NOEXEC), SZ_4K);
  assert.equal(entry(mem, l3, 6), 0x0060_0000_8000_6e43n);
  const out = new Float64Array(2);
  assert.equal(pt.walk(0x4000, out), IOMMU_READ);
  assert.equal(pt.walk(0x5000, out), RW);
  assert.equal(pt.walk(0x6000, out), RW);
});

test('arm-lpae: read-only NOEXEC 2M block', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  // IOVA 0x40200000: level-0 index 0, level-1 index 1, level-2 index 1.
  assert.equal(pt.mapPages(0x4020_0000, 0x1_2340_0000, SZ_2M, 1, IOMMU_READ | IOMMU_NOEXEC), SZ_2M);
  assert.equal(mem.tablePagesInUse, 3, 'root + level-1 + level-2 tables, no level-3 table');
  assert.equal(entry(mem, POOL, 0), 0x0000_00f0_0000_1003n);
  assert.equal(entry(mem, POOL + 0x1000, 1), 0x0000_00f0_0000_2003n);
  // Block descriptor: OA[47:21] 0x1_2340_0000 | nG 0x800 | AF 0x400 | SH outer 0x200
  //   | AP[2] RDONLY 0x80 | AP[1] UNPRIV 0x40 | AttrIndx 0 | 0b01 block → low word 0x23400EC1;
  //   high word: OA[47:32] = 0x0001 | XN = 3 << 53 → bits 22:21 of the high word = 0x00600000.
  assert.equal(entry(mem, POOL + 0x2000, 1), 0x0060_0001_2340_0ec1n);
  assert.equal(pt.iovaToPhys(0x4020_0000 + 0x1f_ffff), 0x1_2340_0000 + 0x1f_ffff);
  const out = new Float64Array(2);
  assert.equal(pt.walk(0x4030_0004, out), IOMMU_READ);
  assert.deepEqual([...out], [0x1_2350_0004, SZ_2M]);
});

test('arm-lpae: 1G block READ|WRITE|CACHE|PRIV', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  // IOVA 0xC0000000: level-0 index 0, level-1 index 3.
  assert.equal(pt.mapPages(0xc000_0000, 0x1_4000_0000, SZ_1G, 1, RW | IOMMU_CACHE | IOMMU_PRIV), SZ_1G);
  assert.equal(mem.tablePagesInUse, 2, 'root + level-1 table only');
  // OA[47:30] 0x1_4000_0000 | nG 0x800 | AF 0x400 | SH inner 0x300 | AP[2]=0 | AP[1]=0 (PRIV)
  //   | AttrIndx 1 (cacheable) 0x4 | 0b01 block → 0x00000001_40000F05.
  assert.equal(entry(mem, POOL + 0x1000, 3), 0x0000_0001_4000_0f05n);
  assert.equal(pt.iovaToPhys(0xc000_0000 + 0x3fff_ffff), 0x1_7fff_ffff);
  const out = new Float64Array(2);
  assert.equal(pt.walk(0xd234_5678, out), RW);
  assert.deepEqual([...out], [0x1_5234_5678, SZ_1G]);
});

test('arm-lpae: output addresses above 4 GiB use the high word (count crossing 2^32 in phys)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0xffff_f000, SZ_4K, 2, RW), 2 * SZ_4K);
  assert.equal(entry(mem, POOL + 0x3000, 1), 0x0000_0000_ffff_fe43n);
  assert.equal(entry(mem, POOL + 0x3000, 2), 0x0000_0001_0000_0e43n);
  assert.equal(pt.mapPages(0x8000, 0xffff_ffff_f000, SZ_4K, 1, RW), SZ_4K, 'the highest 4K page of the 48-bit OA space');
  assert.equal(entry(mem, POOL + 0x3000, 8), 0x0000_ffff_ffff_fe43n);
  assert.equal(pt.iovaToPhys(0x8fff), 0xffff_ffff_ffff);
  assert.equal(pt.mapPages(0xa000, 2 ** 48, SZ_4K, 1, RW), 0);
  assert.equal(pt.error, 'EINVAL', 'paddr ≥ 2^oas (Linux: -ERANGE)');
});

test('arm-lpae: a table pool straddling 4 GiB (table descriptors with a non-zero high word)', () => {
  const mem = new PhysMem({ poolBase: 0xffff_0000 }); // 16 pages below 4 GiB, the rest above
  const pt = new ArmLpaeS1Pgtable(mem);
  for (let i = 0; i < 40; i++) assert.equal(pt.mapPages(i * SZ_2M + 0x5000, 0x7000_0000 + i * SZ_4K, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, 43);
  const l2 = 0xffff_2000; // root 0xffff0000, L1 0xffff1000, L2 0xffff2000, L3 for page i at 0xffff3000 + i·4K
  assert.equal(entry(mem, l2, 0), 0x0000_0000_ffff_3003n);
  assert.equal(entry(mem, l2, 13), 0x0000_0001_0000_0003n, 'the 17th pool page is 0x1_0000_0000');
  for (let i = 0; i < 40; i++) {
    assert.equal(pt.iovaToPhys(i * SZ_2M + 0x5010), 0x7000_0010 + i * SZ_4K);
    assert.equal(refWalk(mem, pt.root, i * SZ_2M + 0x5010)?.pa, 0x7000_0010 + i * SZ_4K);
  }
  assert.equal(pt.unmapPages(0, SZ_1G, 1), SZ_1G, 'a 1G unmap over the level-2 table frees it and all 40 level-3 tables');
  assert.equal(mem.tablePagesInUse, 2);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
});

test('arm-lpae: an independent walker through PhysMem.read32 agrees with walk() and iovaToPhys()', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          size: fc.constantFrom(SZ_4K, SZ_2M, SZ_1G),
          slot: fc.integer({ min: 0, max: 63 }),
          count: fc.integer({ min: 1, max: 3 }),
          pidx: fc.integer({ min: 1, max: 0xff_ffff }),
          prot: fc.integer({ min: 1, max: 63 }).filter((p) => (p & RW) !== 0),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      fc.array(fc.integer({ min: 0, max: 2 ** 36 - 1 }), { minLength: 1, maxLength: 20 }),
      (maps, probes) => {
        const mem = new PhysMem();
        const pt = new ArmLpaeS1Pgtable(mem);
        const out = new Float64Array(2);
        const mapped: { iova: number; size: number; prot: number; phys: number }[] = [];
        for (const m of maps) {
          // Spread the slots: 4K pages near 2M boundaries, 2M blocks near 1G boundaries, 1G blocks at 1G multiples.
          const iova = m.size === SZ_1G ? (16 + m.slot) * SZ_1G : m.size === SZ_2M ? SZ_1G * (m.slot >> 3) + SZ_2M * (508 + (m.slot & 7)) : SZ_2M * (m.slot >> 3) + SZ_4K * (508 + (m.slot & 7));
          const phys = ((m.pidx * SZ_4K) % 2 ** 40) - (((m.pidx * SZ_4K) % 2 ** 40) % m.size) + m.size;
          const got = pt.mapPages(iova, phys, m.size, m.count, m.prot);
          if (pt.error === null) {
            assert.equal(got, m.count * m.size);
            for (let i = 0; i < m.count; i++) mapped.push({ iova: iova + i * m.size, size: m.size, prot: m.prot, phys: phys + i * m.size });
          }
        }
        const targets = [...probes, ...mapped.map((m) => m.iova + m.size - 1), ...mapped.map((m) => m.iova)];
        for (const iova of targets) {
          const ref = refWalk(mem, pt.root, iova);
          const perm = pt.walk(iova, out);
          if (ref === null) {
            assert.equal(perm, -1);
            assert.equal(pt.iovaToPhys(iova), 0);
          } else {
            assert.equal(perm, ref.writable ? RW : IOMMU_READ);
            assert.equal(out[WALK_PHYS], ref.pa);
            assert.equal(out[WALK_PGSIZE], ref.size);
            assert.equal(pt.iovaToPhys(iova), ref.pa);
          }
        }
        for (const m of mapped) {
          const ref = refWalk(mem, pt.root, m.iova);
          assert.ok(ref !== null);
          // Attributes exactly as arm_lpae_prot_to_pte() builds them; type 0b11 page at level 3, 0b01 block above.
          const typeBits = m.size === SZ_4K ? 3n : 1n;
          assert.equal(ref.desc, expectedAttrs(m.prot) | typeBits | BigInt(m.phys), `descriptor of 0x${m.iova.toString(16)}`);
        }
        pt.free();
        assert.equal(mem.tablePagesInUse, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('arm-lpae: partial unmap of a block unmaps nothing (mainline: no split, WARN_ONCE + 0)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x20_0000, 0x4000_0000, SZ_2M, 1, RW), SZ_2M);
  const tables = mem.tablePagesInUse;
  assert.equal(pt.unmapPages(0x20_1000, SZ_4K, 1), 0, '4K inside a 2M block');
  assert.equal(pt.unmapPages(0x20_0000, SZ_4K, 1), 0, '4K at the start of a 2M block: still partial');
  assert.equal(pt.unmapPages(0x20_0000, SZ_4K, 512), 0, '512 × 4K is not a 2M unmap');
  assert.equal(mem.tablePagesInUse, tables, 'no table was allocated to split the block');
  assert.equal(pt.iovaToPhys(0x20_1234), 0x4000_1234, 'the block is intact');
  assert.equal(pt.mapPages(0x4000_0000, 0x8000_0000, SZ_1G, 1, RW), SZ_1G);
  assert.equal(pt.unmapPages(0x4020_0000, SZ_2M, 1), 0, '2M inside a 1G block');
  assert.equal(pt.iovaToPhys(0x4020_0000), 0x8020_0000);
  // A run of 4K unmaps that reaches a block: the first table's pages are unmapped, then 0 for the block.
  assert.equal(pt.mapPages(0x1f_f000, 0x5000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.unmapPages(0x1f_f000, SZ_4K, 2), SZ_4K);
  assert.equal(pt.iovaToPhys(0x20_0000), 0x4000_0000);
  // The whole block goes with an unmap of its own size.
  assert.equal(pt.unmapPages(0x20_0000, SZ_2M, 1), SZ_2M);
  assert.equal(pt.unmapPages(0x4000_0000, SZ_1G, 1), SZ_1G);
  assert.equal(pt.iovaToPhys(0x20_1234), 0);
  // Unaligned larger unmaps (iommu_pgsize() never produces them) unmap nothing.
  assert.equal(pt.mapPages(0x20_0000, 0x4000_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt.unmapPages(0x20_1000, SZ_2M, 1), 0);
  assert.equal(pt.iovaToPhys(0x20_0000), 0x4000_0000);
});

test('arm-lpae: unmapping a whole table at a higher level frees it (__arm_lpae_unmap + __arm_lpae_free_pgtable)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 3, RW), 3 * SZ_4K);
  assert.equal(pt.mapPages(0x40_1000, 0x8001_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, 5, 'root, L1, L2, two L3');
  // 4K unmaps leave the (now empty) level-3 table in place, as Linux does.
  assert.equal(pt.unmapPages(0x40_1000, SZ_4K, 1), SZ_4K);
  assert.equal(mem.tablePagesInUse, 5);
  // A 2M unmap over a level-3 table clears the level-2 entry and frees that table, whatever it maps.
  assert.equal(pt.unmapPages(0, SZ_2M, 1), SZ_2M);
  assert.equal(mem.tablePagesInUse, 4);
  assert.equal(pt.iovaToPhys(0x2000), 0);
  assert.equal(entry(mem, POOL + 0x2000, 0), 0n);
  // A 2M unmap over the empty table left at 0x400000 also "unmaps" 2M (the entry is non-zero).
  assert.equal(pt.unmapPages(0x40_0000, SZ_2M, 1), SZ_2M);
  assert.equal(mem.tablePagesInUse, 3);
  // A 1G unmap over the level-2 table frees it and everything below.
  assert.equal(pt.mapPages(0x3000_0000, 0x9000_0000, SZ_4K, 2, RW), 2 * SZ_4K);
  assert.equal(pt.mapPages(0x3800_0000, 0x9100_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(mem.tablePagesInUse, 4);
  assert.equal(pt.unmapPages(0, SZ_1G, 1), SZ_1G);
  assert.equal(mem.tablePagesInUse, 2, 'root and level-1 table remain');
  assert.equal(pt.iovaToPhys(0x3000_0000), 0);
  assert.equal(pt.iovaToPhys(0x3800_0000), 0);
  // Unmap stops at the first empty entry; an empty level-1 entry returns 0.
  assert.equal(pt.unmapPages(0, SZ_1G, 2), 0);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
});

test('arm-lpae: a block mapped over a table replaces it (arm_lpae_init_pte: unmap + free the old table)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x20_1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, 4);
  // Linux does not check what the old table maps: the 4K mapping is replaced by the block.
  assert.equal(pt.mapPages(0x20_0000, 0x4000_0000, SZ_2M, 1, IOMMU_READ), SZ_2M);
  assert.equal(pt.error, null);
  assert.equal(mem.tablePagesInUse, 3, 'the level-3 table was freed');
  assert.equal(pt.iovaToPhys(0x20_1000), 0x4000_1000);
  // The same one level up: a 1G block over a level-2 table (with a level-3 table below it).
  assert.equal(pt.mapPages(0x4000_1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(mem.tablePagesInUse, 5);
  assert.equal(pt.mapPages(0x4000_0000, 0xc000_0000, SZ_1G, 1, RW), SZ_1G);
  assert.equal(mem.tablePagesInUse, 3);
  assert.equal(pt.iovaToPhys(0x4000_1000), 0xc000_1000);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
});

test('arm-lpae: EEXIST checks a whole table chunk before writing it (arm_lpae_init_pte)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x3000, 0x9000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 4, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.iovaToPhys(0x1000), 0, 'nothing of the failing chunk was written');
  assert.equal(pt.iovaToPhys(0x2000), 0);
  // A conflict in the second table: the first chunk (to the end of its table) stays mapped.
  assert.equal(pt.mapPages(0x20_0000, 0x9100_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.mapPages(0x1f_e000, 0x8000_0000, SZ_4K, 4, RW), 2 * SZ_4K);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.iovaToPhys(0x1f_f000), 0x8000_1000);
  assert.equal(pt.iovaToPhys(0x20_0000), 0x9100_0000);
  assert.equal(pt.iovaToPhys(0x20_1000), 0);
  // A block on the way down.
  assert.equal(pt.mapPages(0x40_0000, 0xa000_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt.mapPages(0x40_0000, 0xb000_0000, SZ_4K, 1, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  // count 0 maps nothing and is no error.
  assert.equal(pt.mapPages(0x80_0000, 0xb000_0000, SZ_4K, 0, RW), 0);
  assert.equal(pt.error, null);
});

test('arm-lpae: ENOMEM when the table pool is full; tables already installed stay', () => {
  const mem = new PhysMem({ maxTablePages: 3 });
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 1, RW), 0);
  assert.equal(pt.error, 'ENOMEM');
  assert.equal(mem.tablePagesInUse, 3, 'root, level-1 and level-2 tables were installed before the failure');
  assert.equal(pt.iovaToPhys(0x1000), 0);
  assert.equal(pt.mapPages(0x20_0000, 0x4000_0000, SZ_2M, 1, RW), SZ_2M, 'a block needs no new table');
  assert.equal(pt.error, null);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
  assert.throws(() => {
    const full = new PhysMem({ maxTablePages: 1 });
    full.allocTablePage();
    return new ArmLpaeS1Pgtable(full);
  }, (e) => isIommuError(e, 'ENOMEM'));
});

test('arm-lpae: IOVA range: iovaToPhys masks like Linux, walk() faults like the hardware', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  // arm_lpae_iova_to_phys() does not check the IAS; ARM_LPAE_LVL_IDX masks the level-0 index.
  assert.equal(pt.iovaToPhys(2 ** 48 + 0x1000), 0x8000_0000);
  assert.equal(pt.walk(2 ** 48 + 0x1000, new Float64Array(2)), -1);
  assert.equal(pt.mapPages(2 ** 48 - SZ_4K, 0x8000_0000, SZ_4K, 1, RW), SZ_4K, 'the last page of the IAS');
  assert.equal(pt.iovaToPhys(2 ** 48 - 1), 0x8000_0fff);
  assert.equal(pt.mapPages(2 ** 48 - SZ_4K, 0x8000_0000, SZ_4K, 2, RW), 0);
  assert.equal(pt.error, 'EEXIST');
  assert.equal(pt.unmapPages(2 ** 48 - SZ_4K, SZ_4K, 2), SZ_4K, 'an unmap run stops at the end of the IAS');
  assert.equal(pt.mapPages(2 ** 48 - SZ_4K, 0x8000_0000, SZ_4K, 2, RW), SZ_4K, 'a map run maps up to the end of the IAS');
  assert.equal(pt.error, 'EINVAL', 'and then fails (Linux: -ERANGE)');
  assert.equal(pt.unmapPages(2 ** 48, SZ_4K, 1), 0);
});

test('arm-lpae: APTable[1] in a table descriptor makes walk() read-only (hardware hierarchical permissions)', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt.mapPages(0x4000_1000, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  const out = new Float64Array(2);
  assert.equal(pt.walk(0x4000_1000, out), RW);
  // Set it before the first lookup in that 1 GiB region (lookups cache the level-2 table, as a walk cache does).
  mem.write32(POOL + 0x1000 + 4, mem.read32(POOL + 0x1000 + 4) | (1 << 30)); // L1[0] APTable[1] (bit 62)
  assert.equal(pt.walk(0x1000, out), IOMMU_READ);
  assert.equal(pt.walk(0x4000_1000, out), RW, 'only the region below that table');
  assert.equal(refWalk(mem, pt.root, 0x1000)?.writable, false);
  assert.equal(pt.iovaToPhys(0x1000), 0x8000_0000, 'iovaToPhys ignores permissions');
});

test('arm-lpae: free() returns every page; the table is dead afterwards', () => {
  const mem = new PhysMem();
  const pt = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt.mapPages(0, 0x8000_0000, SZ_4K, 1024, RW), 1024 * SZ_4K);
  assert.equal(pt.mapPages(5 * SZ_1G, 0x8000_0000, SZ_1G, 2, RW), 2 * SZ_1G);
  assert.equal(pt.mapPages(2 ** 40, 0x8000_0000, SZ_2M, 3, RW), 3 * SZ_2M);
  assert.ok(mem.tablePagesInUse > 5);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
  pt.free();
  assert.equal(mem.tablePagesInUse, 0);
  assert.equal(pt.mapPages(0x1000, 0x8000_0000, SZ_4K, 1, RW), 0);
  assert.equal(pt.error, 'EINVAL');
  assert.equal(pt.unmapPages(0, SZ_4K, 1), 0);
  assert.equal(mem.tablePagesInUse, 0);
});

test('arm-lpae: the constructor rejects a pool the descriptors cannot address', () => {
  assert.throws(() => new ArmLpaeS1Pgtable(new PhysMem({ poolBase: 2 ** 48 - 8 * 4096, maxTablePages: 16 })), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => new ArmLpaeS1Pgtable(new PhysMem({ poolBase: 0x1000, maxTablePages: 2 ** 20 + 1 })), (e) => isIommuError(e, 'EINVAL'));
  const ok = new ArmLpaeS1Pgtable(new PhysMem({ poolBase: 2 ** 48 - 16 * 4096, maxTablePages: 16 }));
  assert.equal(ok.root, 2 ** 48 - 16 * 4096);
});

test('arm-lpae: the map/unmap fast path never writes into a table that was freed (walk cache dropped)', () => {
  const mem = new PhysMem();
  const pt1 = new ArmLpaeS1Pgtable(mem);
  const a = 0x4000_0000;
  assert.equal(pt1.mapPages(a, 0x8000_0000, SZ_4K, 1, RW), SZ_4K); // walks, caches the level-3 table
  assert.equal(pt1.mapPages(a + SZ_4K, 0x8000_1000, SZ_4K, 1, RW), SZ_4K); // cached
  // A block replaces the level-3 table: a 4K map there must now see the block.
  assert.equal(pt1.mapPages(a, 0x9000_0000, SZ_2M, 1, RW), SZ_2M);
  assert.equal(pt1.mapPages(a + 2 * SZ_4K, 0x8000_2000, SZ_4K, 1, RW), 0);
  assert.equal(pt1.error, 'EEXIST');
  assert.equal(pt1.unmapPages(a + SZ_4K, SZ_4K, 1), 0, 'partial unmap of the block, not a stale level-3 entry');
  assert.equal(pt1.iovaToPhys(a + SZ_4K), 0x9000_1000);
  assert.equal(pt1.unmapPages(a, SZ_2M, 1), SZ_2M);
  // Re-create a level-3 table, then free it with a covering unmap and let another table reuse the page.
  assert.equal(pt1.mapPages(a, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
  const l2 = POOL + 0x2000; // root, L1 (for 1 GiB index 1) at POOL+0x1000, L2 at POOL+0x2000
  const l3 = Number(entry(mem, l2, 0) & 0x0000_ffff_ffff_f000n);
  assert.equal(pt1.unmapPages(a, SZ_2M, 1), SZ_2M);
  const pt2 = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt2.root, l3, 'the freed level-3 page is now the other table\'s root');
  assert.equal(pt2.mapPages(0x1000, 0x7000_0000, SZ_4K, 1, RW), SZ_4K);
  const rootWord = mem.read32(l3);
  assert.equal(pt1.mapPages(a + SZ_4K, 0x8000_1000, SZ_4K, 1, RW), SZ_4K);
  assert.equal(pt1.unmapPages(a + 5 * SZ_4K, SZ_4K, 1), 0);
  assert.equal(mem.read32(l3), rootWord, 'pt2\'s root untouched');
  assert.equal(mem.read32(l3 + 8), 0);
  assert.equal(pt2.iovaToPhys(0x1000), 0x7000_0000);
  assert.equal(pt1.iovaToPhys(a + SZ_4K), 0x8000_1000);
  assert.equal(refWalk(mem, pt1.root, a + SZ_4K)?.pa, 0x8000_1000);
  // Lookups cache the level-2 table; a 1G unmap frees it and another table reuses the page.
  assert.equal(pt1.iovaToPhys(a + SZ_4K), 0x8000_1000);
  const l2b = Number(entry(mem, POOL + 0x1000, 1) & 0x0000_ffff_ffff_f000n);
  assert.equal(pt1.unmapPages(a, SZ_1G, 1), SZ_1G);
  const pt3 = new ArmLpaeS1Pgtable(mem);
  assert.equal(pt3.root, l2b, 'the freed level-2 page (freed last) is the new table\'s root');
  assert.equal(pt3.mapPages(0x1000, 0x6000_0000, SZ_4K, 1, RW), SZ_4K); // writes a table descriptor at l2b[0]
  assert.equal(pt3.mapPages(0x4000_0000, 0x6000_0000, SZ_4K, 1, RW), SZ_4K); // and one at index 1 of the table it points to
  assert.notEqual(entry(mem, l2b, 0), 0n);
  assert.equal(pt1.iovaToPhys(a + SZ_4K), 0, 'not read through the freed level-2 table');
  assert.equal(pt1.walk(a + SZ_4K, new Float64Array(2)), -1);
  pt3.free();
  assert.equal(pt1.mapPages(a + SZ_4K, 0x8000_1000, SZ_4K, 1, RW), SZ_4K);
  // free() drops the cache too.
  pt1.free();
  assert.equal(pt1.mapPages(a + 2 * SZ_4K, 0x8000_2000, SZ_4K, 1, RW), 0);
  assert.equal(pt1.error, 'EINVAL');
  assert.equal(pt1.unmapPages(a + SZ_4K, SZ_4K, 1), 0);
  assert.equal(pt2.iovaToPhys(0x1000), 0x7000_0000);
  pt2.free();
  assert.equal(mem.tablePagesInUse, 0);
});
