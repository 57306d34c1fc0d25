/**
 * The io-pgtable conformance suite: behaviour every format must share,
 * exercised only through the {@link IoPgtable} interface and its cfg, so it
 * runs unchanged over every entry of IO_PGTABLE_VARIANTS
 * (conformance.test.ts). Format-specific details — PTE bits, what a partial
 * unmap of a large page does, whether mapping a large page replaces a table
 * that still maps something — belong to each format's own test file, and the
 * suite avoids those cases: it only unmaps whole leaves of the size they were
 * mapped with, and only relies on "stop at a hole" at the smallest page size.
 *
 * Covered: map/unmap/iovaToPhys/walk round trips at every supported page size;
 * count > 1 across table boundaries; EEXIST on overlap; EINVAL for bad sizes,
 * misalignment and out-of-range addresses; a prot without READ|WRITE;
 * unmap of nothing and unmap stopping at a hole; tables allocated on demand and
 * all returned by free(); table memory for 262,144 consecutive 4 KiB pages;
 * the root readable through PhysMem.read32; and a fast-check property comparing
 * random map/unmap sequences against a reference model.
 *
 * Linux: what drivers/iommu/io-pgtable-arm-selftests.c (arm_lpae_run_tests())
 * checks for one format, made generic over the model's formats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocIoPgtable } from '../../src/io-pgtable/index.js';
import {
  IOMMU_CACHE,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  WALK_PGSIZE,
  WALK_PHYS,
  type IoPgtable,
  type IoPgtableFormat,
} from '../../src/io-pgtable/io-pgtable.js';
import { PhysMem } from '../../src/mem/phys-mem.js';

/**
 * One entry of IO_PGTABLE_VARIANTS: a format and its level count.
 * Linux: the (enum io_pgtable_fmt, struct io_pgtable_cfg) pair a selftest passes to alloc_io_pgtable_ops().
 */
export interface ConformanceVariant {
  readonly name: string;
  readonly format: IoPgtableFormat;
  readonly levels?: number;
}

const SZ_4K = 0x1000;
const SZ_2M = 0x200000;
const SZ_1G = 0x40000000;
const RW = IOMMU_READ | IOMMU_WRITE;
/** A 4 GiB-aligned IOVA inside every format's input range (Arm 48, VT-d 48/57, AMD ≥ 39 bits). */
const BASE = 2 ** 32;

/**
 * The page sizes in a cfg.pgsizeBitmap (which may have bits above 31: no `&`).
 * Linux: for_each_set_bit() over cfg->pgsize_bitmap, as arm_lpae_run_tests() walks the page sizes.
 */
export function pageSizes(bitmap: number): number[] {
  const out: number[] = [];
  for (let k = 12; k < 64; k++) if (Math.floor(bitmap / 2 ** k) % 2 === 1) out.push(2 ** k);
  return out;
}

/** True if `size` is in the bitmap. */
function hasSize(bitmap: number, size: number): boolean {
  return Math.floor(bitmap / size) % 2 === 1;
}

function fresh(v: ConformanceVariant, mem = new PhysMem()): { mem: PhysMem; pt: IoPgtable } {
  return { mem, pt: allocIoPgtable(v.format, mem, v.levels) };
}

/** `walk()` wrapped: [perm, phys, pgsize]. */
function walk(pt: IoPgtable, iova: number): [number, number, number] {
  const out = new Float64Array(2);
  const perm = pt.walk(iova, out);
  return perm < 0 ? [perm, 0, 0] : [perm, out[WALK_PHYS]!, out[WALK_PGSIZE]!];
}

/** True if any 32-bit word of the 4 KiB page at `addr` is non-zero (read through PhysMem.read32). */
function pageNonZero(mem: PhysMem, addr: number): boolean {
  for (let o = 0; o < 4096; o += 4) if (mem.read32(addr + o) !== 0) return true;
  return false;
}

/**
 * Register the conformance tests for one variant.
 * Linux: the generic part of io-pgtable-arm-selftests.c, per format.
 */
export function runConformance(v: ConformanceVariant): void {
  const n = v.name;

  test(`${n}: cfg is sane`, () => {
    const { pt } = fresh(v);
    const sizes = pageSizes(pt.cfg.pgsizeBitmap);
    assert.ok(sizes.length > 0);
    assert.equal(sizes[0], SZ_4K, 'smallest page is 4 KiB');
    assert.ok(pt.cfg.ias >= 39 && pt.cfg.ias <= 64);
    assert.ok(pt.cfg.oas >= 40 && pt.cfg.oas <= 52);
    assert.equal(pt.format, v.format);
    assert.equal(pt.error, null);
    pt.free();
  });

  test(`${n}: map/iovaToPhys/walk/unmap round trip at every page size`, () => {
    const probe = fresh(v);
    const sizes = pageSizes(probe.pt.cfg.pgsizeBitmap).filter((s) => s * 4 <= 2 ** 53);
    const ias = probe.pt.cfg.ias;
    const oas = probe.pt.cfg.oas;
    probe.pt.free();
    for (const s of sizes) {
      const iova = s * (4 * s <= 2 ** ias ? 3 : 1);
      if (iova + s > 2 ** ias) continue;
      const phys = s * (6 * s <= 2 ** oas ? 5 : 1);
      if (phys + s > 2 ** oas) continue;
      const { mem, pt } = fresh(v);
      assert.equal(pt.mapPages(iova, phys, s, 1, RW), s, `map ${s}`);
      assert.equal(pt.error, null);
      for (const off of [0, 1, 4095, s / 2 + 8, s - 1]) {
        assert.equal(pt.iovaToPhys(iova + off), phys + off, `iovaToPhys size ${s} off ${off}`);
        assert.deepEqual(walk(pt, iova + off), [RW, phys + off, s], `walk size ${s} off ${off}`);
      }
      assert.equal(pt.iovaToPhys(iova + s), 0, 'the next page is not mapped');
      assert.equal(walk(pt, iova + s)[0], -1);
      if (iova >= s) {
        assert.equal(pt.iovaToPhys(iova - 1), 0, 'the byte before is not mapped');
        assert.equal(walk(pt, iova - 1)[0], -1);
      }
      assert.equal(pt.unmapPages(iova, s, 1), s, `unmap ${s}`);
      assert.equal(pt.iovaToPhys(iova), 0);
      assert.equal(pt.iovaToPhys(iova + s - 1), 0);
      assert.equal(walk(pt, iova)[0], -1);
      assert.equal(pt.unmapPages(iova, s, 1), 0, 'second unmap finds nothing');
      // Remap after unmap works (tables left behind are reused or replaced).
      const phys2 = phys + 2 * s <= 2 ** oas ? phys + s : phys;
      assert.equal(pt.mapPages(iova, phys2, s, 1, IOMMU_READ), s);
      assert.equal(pt.iovaToPhys(iova + 5), phys2 + 5);
      assert.equal(walk(pt, iova + 5)[0], IOMMU_READ);
      pt.free();
      assert.equal(mem.tablePagesInUse, 0, `free() returns every table (size ${s})`);
    }
  });

  test(`${n}: permissions: read-only, read-write, attributes that do not change access`, () => {
    const { pt } = fresh(v);
    const a = BASE;
    assert.equal(pt.mapPages(a, 0x1000_0000, SZ_4K, 1, IOMMU_READ), SZ_4K);
    assert.equal(pt.mapPages(a + SZ_4K, 0x1000_1000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(pt.mapPages(a + 2 * SZ_4K, 0x1000_2000, SZ_4K, 1, RW | IOMMU_CACHE | IOMMU_NOEXEC), SZ_4K);
    assert.equal(pt.mapPages(a + 3 * SZ_4K, 0x1000_3000, SZ_4K, 1, IOMMU_WRITE), SZ_4K);
    assert.equal(walk(pt, a)[0], IOMMU_READ);
    assert.equal(walk(pt, a + SZ_4K)[0], RW);
    assert.equal(walk(pt, a + 2 * SZ_4K)[0], RW);
    const wo = walk(pt, a + 3 * SZ_4K)[0];
    assert.ok(wo > 0 && (wo & IOMMU_WRITE) !== 0, 'a write-only mapping allows writes (Arm stage 1 can only say read/write)');
    assert.equal(pt.iovaToPhys(a + 3 * SZ_4K + 7), 0x1000_3007);
    pt.free();
  });

  test(`${n}: count > 1 crosses table boundaries (and the 4 GiB line in phys)`, () => {
    const { mem, pt } = fresh(v);
    // 1030 pages ending well past a 1 GiB (and 2 MiB) boundary of the IOVA space.
    const iova = BASE + SZ_1G - 7 * SZ_4K;
    const count = 1030;
    const phys = 0x3_0000_0000 - 40 * SZ_4K; // crosses 2^32 * 3 in the middle
    assert.equal(pt.mapPages(iova, phys, SZ_4K, count, RW), count * SZ_4K);
    assert.equal(pt.error, null);
    for (let i = 0; i < count; i++) assert.equal(pt.iovaToPhys(iova + i * SZ_4K + 12), phys + i * SZ_4K + 12, `page ${i}`);
    assert.equal(pt.iovaToPhys(iova - SZ_4K), 0);
    assert.equal(pt.iovaToPhys(iova + count * SZ_4K), 0);
    for (const i of [0, 6, 7, 8, 511, 512, 1029]) assert.deepEqual(walk(pt, iova + i * SZ_4K), [RW, phys + i * SZ_4K, SZ_4K]);
    assert.equal(pt.unmapPages(iova, SZ_4K, count), count * SZ_4K);
    for (let i = 0; i < count; i += 7) assert.equal(pt.iovaToPhys(iova + i * SZ_4K), 0);
    assert.equal(pt.iovaToPhys(iova + (count - 1) * SZ_4K), 0);

    if (hasSize(pt.cfg.pgsizeBitmap, SZ_2M)) {
      const b = BASE + SZ_1G * 2 - 2 * SZ_2M; // 5 blocks across a 1 GiB boundary
      assert.equal(pt.mapPages(b, SZ_1G, SZ_2M, 5, IOMMU_READ), 5 * SZ_2M);
      for (let i = 0; i < 5; i++) {
        assert.equal(pt.iovaToPhys(b + i * SZ_2M + 0x1234), SZ_1G + i * SZ_2M + 0x1234);
        assert.deepEqual(walk(pt, b + i * SZ_2M), [IOMMU_READ, SZ_1G + i * SZ_2M, SZ_2M]);
      }
      assert.equal(pt.unmapPages(b, SZ_2M, 5), 5 * SZ_2M);
      assert.equal(pt.iovaToPhys(b + 4 * SZ_2M), 0);
    }
    pt.free();
    assert.equal(mem.tablePagesInUse, 0);
  });

  test(`${n}: EEXIST when mapping over a mapping`, () => {
    const { pt } = fresh(v);
    const x = BASE + 0x10_0000;
    assert.equal(pt.mapPages(x, 0x5000_0000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(pt.mapPages(x, 0x6000_0000, SZ_4K, 1, RW), 0);
    assert.equal(pt.error, 'EEXIST');
    assert.equal(pt.iovaToPhys(x), 0x5000_0000, 'the old mapping is untouched');
    // A run whose third page collides: fails, maps at most the pages before.
    const r = pt.mapPages(x - 2 * SZ_4K, 0x7000_0000, SZ_4K, 4, RW);
    assert.equal(pt.error, 'EEXIST');
    assert.ok(r < 4 * SZ_4K && r % SZ_4K === 0 && r <= 2 * SZ_4K, `returned ${r}`);
    assert.equal(pt.iovaToPhys(x), 0x5000_0000);
    assert.equal(pt.iovaToPhys(x + SZ_4K), 0, 'nothing after the collision');
    // The error is cleared by the next call.
    assert.equal(pt.mapPages(x + 8 * SZ_4K, 0x8000_0000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(pt.error, null);

    if (hasSize(pt.cfg.pgsizeBitmap, SZ_2M)) {
      const y = BASE + 64 * SZ_2M;
      assert.equal(pt.mapPages(y, 0x4000_0000, SZ_2M, 1, RW), SZ_2M);
      assert.equal(pt.mapPages(y, 0x4020_0000, SZ_2M, 1, RW), 0);
      assert.equal(pt.error, 'EEXIST');
      assert.equal(pt.mapPages(y + SZ_4K, 0x9000_0000, SZ_4K, 1, RW), 0, '4K inside a 2M block');
      assert.equal(pt.error, 'EEXIST');
      assert.equal(pt.mapPages(y + SZ_2M - SZ_4K, 0x9000_0000, SZ_4K, 1, RW), 0, 'last 4K of a 2M block');
      assert.equal(pt.error, 'EEXIST');
      assert.equal(pt.iovaToPhys(y + SZ_4K + 3), 0x4000_1003);
      assert.deepEqual(walk(pt, y + SZ_4K), [RW, 0x4000_1000, SZ_2M]);
    }
    pt.free();
  });

  test(`${n}: EINVAL for bad page sizes, misalignment and out-of-range addresses`, () => {
    const { mem, pt } = fresh(v);
    const bitmap = pt.cfg.pgsizeBitmap;
    const used = mem.tablePagesInUse;
    const bad = (what: string, iova: number, paddr: number, size: number, count = 1): void => {
      assert.equal(pt.mapPages(iova, paddr, size, count, RW), 0, what);
      assert.equal(pt.error, 'EINVAL', what);
    };
    bad('pgsize 0', BASE, 0x1000_0000, 0);
    bad('pgsize 2K', BASE, 0x1000_0000, 2048);
    bad('pgsize 12K (not a power of two)', BASE, 0x1000_0000, 3 * SZ_4K);
    bad('pgsize NaN', BASE, 0x1000_0000, NaN);
    for (let k = 13; k < Math.min(pt.cfg.ias, 52); k++) {
      if (!hasSize(bitmap, 2 ** k)) {
        bad(`pgsize 2^${k} not in the bitmap`, 2 ** k, 2 ** k, 2 ** k);
        break;
      }
    }
    bad('iova not 4K-aligned', BASE + 0x800, 0x1000_0000, SZ_4K);
    bad('paddr not 4K-aligned', BASE, 0x1000_0010, SZ_4K);
    bad('negative iova', -SZ_4K, 0x1000_0000, SZ_4K);
    bad('iova = 2^ias', 2 ** pt.cfg.ias, 0x1000_0000, SZ_4K);
    bad('iova beyond 2^ias', 2 ** pt.cfg.ias + 2 ** 40, 0x1000_0000, SZ_4K);
    bad('paddr = 2^oas', BASE, 2 ** pt.cfg.oas, SZ_4K);
    if (hasSize(bitmap, SZ_2M)) {
      bad('iova not 2M-aligned', BASE + SZ_4K, 0x4000_0000, SZ_2M);
      bad('paddr not 2M-aligned', BASE, 0x4000_1000, SZ_2M);
    }
    assert.equal(pt.iovaToPhys(BASE), 0, 'nothing was mapped');
    assert.equal(mem.tablePagesInUse, used, 'no table was allocated');
    assert.equal(pt.mapPages(BASE, 0x1000_0000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(pt.error, null, 'a good call clears the error');
    pt.free();
  });

  test(`${n}: a prot without READ or WRITE is EINVAL and maps nothing (mainline)`, () => {
    const { pt } = fresh(v);
    for (const prot of [0, IOMMU_CACHE, IOMMU_NOEXEC | IOMMU_CACHE]) {
      assert.equal(pt.mapPages(BASE, 0x1000_0000, SZ_4K, 1, prot), 0);
      assert.equal(pt.error, 'EINVAL');
      assert.equal(pt.iovaToPhys(BASE), 0);
      assert.equal(walk(pt, BASE)[0], -1);
    }
    pt.free();
  });

  test(`${n}: unmap of nothing returns 0; unmap stops at a hole`, () => {
    const { pt } = fresh(v);
    for (const s of pageSizes(pt.cfg.pgsizeBitmap).filter((s) => s <= SZ_1G)) {
      assert.equal(pt.unmapPages(BASE + 8 * SZ_1G, s, 1), 0, `fresh table, size ${s}`);
      assert.equal(pt.unmapPages(BASE + 8 * SZ_1G, s, 4), 0, `fresh table, size ${s}, count 4`);
    }
    const a = BASE + 0x40_0000;
    for (const i of [0, 1, 2, 4]) assert.equal(pt.mapPages(a + i * SZ_4K, 0x2000_0000 + i * SZ_4K, SZ_4K, 1, RW), SZ_4K);
    assert.equal(pt.unmapPages(a + 3 * SZ_4K, SZ_4K, 1), 0, 'a hole inside an existing table');
    assert.equal(pt.unmapPages(a + 3 * SZ_4K, SZ_4K, 2), 0, 'stops at once');
    assert.equal(pt.unmapPages(a, SZ_4K, 5), 3 * SZ_4K, 'pages 0..2, then the hole at 3');
    assert.equal(pt.iovaToPhys(a + 4 * SZ_4K), 0x2000_4000, 'page 4 survives');
    assert.equal(pt.iovaToPhys(a + 2 * SZ_4K), 0);
    assert.equal(pt.unmapPages(a, SZ_4K, 1), 0, 'already unmapped');
    assert.equal(pt.unmapPages(a + 4 * SZ_4K, SZ_4K, 1), SZ_4K);
    // A run crossing a table boundary stops at the hole in the next table.
    const b = BASE + SZ_2M * 9 - 2 * SZ_4K;
    assert.equal(pt.mapPages(b, 0x3000_0000, SZ_4K, 3, RW), 3 * SZ_4K);
    assert.equal(pt.unmapPages(b, SZ_4K, 10), 3 * SZ_4K);
    pt.free();
  });

  test(`${n}: tables are allocated on demand and all freed by free()`, () => {
    const mem = new PhysMem();
    const { pt } = fresh(v, mem);
    const initial = mem.tablePagesInUse;
    assert.ok(initial >= 1, 'the root table exists');
    assert.equal(pt.mapPages(BASE, 0x1000_0000, SZ_4K, 1, RW), SZ_4K);
    const one = mem.tablePagesInUse;
    assert.ok(one > initial, 'mapping allocated tables');
    assert.equal(pt.mapPages(BASE + SZ_4K, 0x1000_1000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(mem.tablePagesInUse, one, 'a neighbour reuses them');
    assert.equal(pt.mapPages(BASE + 16 * SZ_1G, 0x1000_2000, SZ_4K, 1, RW), SZ_4K);
    assert.ok(mem.tablePagesInUse > one, 'a distant page needs more');
    assert.equal(pt.unmapPages(BASE, SZ_4K, 2), 2 * SZ_4K);
    assert.ok(mem.tablePagesInUse >= initial);
    pt.free();
    assert.equal(mem.tablePagesInUse, 0, 'free() returns every table page, root included');
    pt.free();
    assert.equal(mem.tablePagesInUse, 0, 'a second free() does nothing');
  });

  test(`${n}: 262,144 consecutive 4K pages need at most 2.2 MiB of tables`, () => {
    const mem = new PhysMem();
    const { pt } = fresh(v, mem);
    const count = 262_144;
    const phys = 0x10_0000_0000;
    assert.equal(pt.mapPages(BASE, phys, SZ_4K, count, RW), count * SZ_4K);
    const bytes = mem.tablePagesInUse * 4096;
    assert.ok(bytes <= 2.2 * 1024 * 1024, `${mem.tablePagesInUse} table pages = ${bytes} bytes`);
    for (let i = 0; i < count; i += 4099) assert.equal(pt.iovaToPhys(BASE + i * SZ_4K + 1), phys + i * SZ_4K + 1);
    assert.equal(pt.iovaToPhys(BASE + (count - 1) * SZ_4K), phys + (count - 1) * SZ_4K);
    assert.equal(pt.iovaToPhys(BASE + count * SZ_4K), 0);
    assert.equal(pt.unmapPages(BASE, SZ_4K, count), count * SZ_4K);
    assert.equal(pt.iovaToPhys(BASE + 12345 * SZ_4K), 0);
    pt.free();
    assert.equal(mem.tablePagesInUse, 0);
  });

  test(`${n}: the root is a table page a generic reader can see through PhysMem.read32`, () => {
    const { mem, pt } = fresh(v);
    assert.ok(mem.inPool(pt.root), 'root lies in the table pool');
    assert.equal(pt.root % 4096, 0, 'root is page-aligned');
    assert.equal(pageNonZero(mem, pt.root), false, 'an empty table is all zeroes');
    assert.equal(pt.mapPages(BASE, 0x1000_0000, SZ_4K, 1, RW), SZ_4K);
    assert.ok(mem.inPool(pt.root));
    assert.equal(pageNonZero(mem, pt.root), true, 'mapping wrote an entry into the root');
    pt.free();
  });

  test(`${n}: walk and iovaToPhys of unmapped and out-of-range IOVAs`, () => {
    const { pt } = fresh(v);
    assert.equal(pt.iovaToPhys(0), 0);
    assert.equal(pt.iovaToPhys(BASE), 0);
    assert.equal(walk(pt, BASE)[0], -1);
    assert.equal(walk(pt, 2 ** pt.cfg.ias)[0], -1);
    assert.equal(pt.mapPages(BASE, 0x1000_0000, SZ_4K, 1, RW), SZ_4K);
    assert.equal(walk(pt, 2 ** pt.cfg.ias)[0], -1);
    pt.free();
  });

  test(`${n}: property: random map/unmap sequences agree with a reference model`, () => {
    const probe = fresh(v);
    const bitmap = probe.pt.cfg.pgsizeBitmap;
    probe.pt.free();
    const sizes = [SZ_4K, 0x10000, SZ_2M, SZ_1G].filter((s) => hasSize(bitmap, s));
    const minSize = SZ_4K;

    /** Reference: leaf base page number (iova / 4K) → mapping. */
    interface Ref {
      iova: number;
      size: number;
      phys: number;
      prot: number;
    }

    // Slots: two 1 GiB regions; 2M slots 0..3 and 510..511 of each; 4K slots
    // 0..7 and 508..511 of each of those (so runs cross table boundaries).
    const slot = (size: number, region: number, j: number, k: number): number => {
      const rb = BASE + region * SZ_1G;
      if (size >= SZ_1G) return rb;
      const jj = j < 4 ? j : 506 + j; // 0..3, 510..511
      const mb = rb + jj * SZ_2M;
      if (size >= SZ_2M) return mb;
      const kk = k < 8 ? k : 500 + k; // 0..7, 508..511
      return mb + Math.floor((kk * SZ_4K) / size) * size;
    };
    const protArb = fc.constantFrom(IOMMU_READ, RW, RW | IOMMU_CACHE, IOMMU_READ | IOMMU_NOEXEC);
    const mapArb = fc.record({
      op: fc.constant('map' as const),
      size: fc.constantFrom(...sizes),
      region: fc.integer({ min: 0, max: 1 }),
      j: fc.integer({ min: 0, max: 5 }),
      k: fc.integer({ min: 0, max: 11 }),
      count: fc.integer({ min: 1, max: 4 }),
      pidx: fc.integer({ min: 1, max: 1 << 20 }),
      prot: protArb,
    });
    const unmapArb = fc.record({
      op: fc.constant('unmap' as const),
      pick: fc.nat(),
      count: fc.integer({ min: 1, max: 6 }),
    });
    const holeArb = fc.record({
      op: fc.constant('hole' as const),
      region: fc.integer({ min: 0, max: 1 }),
      j: fc.integer({ min: 0, max: 5 }),
      k: fc.integer({ min: 0, max: 11 }),
    });
    const probeArb = fc.array(fc.record({ region: fc.integer({ min: 0, max: 1 }), j: fc.integer({ min: 0, max: 5 }), k: fc.integer({ min: 0, max: 11 }), off: fc.integer({ min: 0, max: 4095 }) }), {
      minLength: 1,
      maxLength: 8,
    });
    const opArb = fc.tuple(fc.oneof({ weight: 5, arbitrary: mapArb }, { weight: 3, arbitrary: unmapArb }, { weight: 1, arbitrary: holeArb }), probeArb);

    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const mem = new PhysMem();
        const pt = allocIoPgtable(v.format, mem, v.levels);
        const ref = new Map<number, Ref>();
        const find = (iova: number): Ref | undefined => {
          for (const s of sizes) {
            const base = Math.floor(iova / s) * s;
            const r = ref.get(base / SZ_4K);
            if (r !== undefined && r.size === s) return r;
          }
          return undefined;
        };
        const overlaps = (a: number, len: number): boolean => {
          for (const r of ref.values()) if (r.iova < a + len && a < r.iova + r.size) return true;
          return false;
        };
        const out = new Float64Array(2);
        const check = (iova: number): void => {
          const r = find(iova);
          const want = r === undefined ? 0 : r.phys + (iova - r.iova);
          assert.equal(pt.iovaToPhys(iova), want, `iovaToPhys(0x${iova.toString(16)})`);
          const perm = pt.walk(iova, out);
          if (r === undefined) {
            assert.equal(perm, -1, `walk(0x${iova.toString(16)}) of an unmapped IOVA`);
          } else {
            assert.equal(perm, r.prot & RW, `walk(0x${iova.toString(16)}) permissions`);
            assert.equal(out[WALK_PHYS], want);
            assert.equal(out[WALK_PGSIZE], r.size);
          }
        };
        try {
          for (const [o, probes] of ops) {
            if (o.op === 'map') {
              const iova = slot(o.size, o.region, o.j, o.k);
              const len = o.count * o.size;
              if (overlaps(iova, len)) continue; // collisions: the EEXIST test; formats differ in detail
              const phys = ((o.pidx % Math.max(1, 2 ** 38 / o.size)) + 1) * o.size;
              assert.equal(pt.mapPages(iova, phys, o.size, o.count, o.prot), len, `map 0x${iova.toString(16)} ${o.size}×${o.count}`);
              assert.equal(pt.error, null);
              for (let i = 0; i < o.count; i++) {
                ref.set((iova + i * o.size) / SZ_4K, { iova: iova + i * o.size, size: o.size, phys: phys + i * o.size, prot: o.prot });
              }
            } else if (o.op === 'unmap') {
              if (ref.size === 0) continue;
              const keys = [...ref.keys()].sort((x, y) => x - y);
              const start = ref.get(keys[o.pick % keys.length]!)!;
              const s = start.size;
              let run = 0;
              while (run < o.count) {
                const r = ref.get((start.iova + run * s) / SZ_4K);
                if (r === undefined || r.size !== s) break;
                run++;
              }
              let count = o.count;
              if (run < count) {
                // Only a min-size hole with nothing around it is a hole for every format.
                const next = start.iova + run * s;
                if (s !== minSize || overlaps(next, s)) count = run;
              }
              assert.equal(pt.unmapPages(start.iova, s, count), run * s, `unmap 0x${start.iova.toString(16)} ${s}×${count}`);
              for (let i = 0; i < run; i++) ref.delete((start.iova + i * s) / SZ_4K);
            } else {
              const iova = slot(minSize, o.region, o.j, o.k);
              if (overlaps(iova, minSize)) continue;
              assert.equal(pt.unmapPages(iova, minSize, 1), 0, `unmap of the hole 0x${iova.toString(16)}`);
            }
            for (const p of probes) check(slot(minSize, p.region, p.j, p.k) + p.off);
            for (const r of ref.values()) check(r.iova + (r.size - 1 - (r.iova % 4093)));
          }
          for (const r of [...ref.values()]) assert.equal(pt.unmapPages(r.iova, r.size, 1), r.size);
          ref.clear();
          for (let region = 0; region < 2; region++) for (let j = 0; j < 6; j++) check(slot(SZ_2M, region, j, 0) + 0x1234);
        } finally {
          pt.free();
        }
        assert.equal(mem.tablePagesInUse, 0);
      }),
      { numRuns: 150 },
    );
  });
}
