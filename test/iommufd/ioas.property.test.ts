// Property: random IOAS map/unmap/copy sequences agree with a reference interval map — on the areas, on the errnos,
// and on what iommuIovaToPhys of the attached HWPT (and of a second, manual HWPT) returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IommuError } from '../../src/base/errno.js';
import { iommuIovaToPhys, type IommuDomain } from '../../src/iommu/domain.js';
import { IommufdContext, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from '../../src/iommufd/index.js';
import { bootNic, K4, M2, NIC } from './helpers.js';

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const WIN = 0x100_0000; // fixed small maps live in [16 MiB, 16 MiB + 64 pages)
const BIG = 0x4000_0000; // fixed 2 MiB maps at 1 GiB + slot × 2 MiB
const VA = 0x7e00_0000_0000;
const USER_PAGES = 4096; // 16 MiB of user memory

type Cmd =
  | { c: 'map'; page: number | null; npages: number; vpage: number }
  | { c: 'big'; slot: number; vslot: number }
  | { c: 'unmap'; page: number; npages: number }
  | { c: 'unmapBig'; slot: number; nslots: number }
  | { c: 'copy'; from: number; npages: number; to: number | null };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ c: fc.constant('map' as const), page: fc.option(fc.integer({ min: 0, max: 63 }), { freq: 3 }), npages: fc.integer({ min: 1, max: 8 }), vpage: fc.integer({ min: 0, max: USER_PAGES - 8 }) }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('big' as const), slot: fc.integer({ min: 0, max: 3 }), vslot: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ c: fc.constant('unmap' as const), page: fc.integer({ min: 0, max: 63 }), npages: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('unmapBig' as const), slot: fc.integer({ min: 0, max: 3 }), nslots: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('copy' as const), from: fc.integer({ min: 0, max: 63 }), npages: fc.integer({ min: 1, max: 8 }), to: fc.option(fc.integer({ min: 0, max: 63 }), { freq: 2 }) }) },
);

/** Reference area: [iova, iova + length) → one physical address per 4 KiB page. */
interface RefArea {
  iova: number;
  length: number;
  pas: number[];
}

function errnoOf(f: () => unknown): { ok: true; v: unknown } | { ok: false; errno: string } {
  try {
    return { ok: true, v: f() };
  } catch (e) {
    if (e instanceof IommuError) return { ok: false, errno: e.errno };
    throw e;
  }
}

test('property: IOAS map/unmap/copy agree with a reference interval map, on areas and on iova_to_phys of the HWPTs', () => {
  const b = bootNic();
  const ctx = new IommufdContext(b.core);
  ctx.mm.mmap(VA, USER_PAGES * K4);
  const devId = ctx.bindDevice(b.dev(NIC));
  const pa = (vpage: number): number => ctx.mm.translate(VA + vpage * K4);

  fc.assert(
    fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 40 }), (cmds) => {
      const ioas = ctx.ioasAlloc();
      const auto = ctx.deviceAttach(devId, ioas);
      const manual = ctx.hwptAlloc(devId, ioas);
      try {
        run(ioas, auto, manual, cmds);
      } finally {
        // Tear down whatever happened: the HWPTs, then the IOAS.
        ctx.deviceDetach(devId);
        ctx.destroy(manual);
        ctx.destroy(ioas);
      }
      assert.deepEqual(ctx.objectIds, [devId]);
    }),
    { numRuns: 150 },
  );
  ctx.close();

  function run(ioas: number, auto: number, manual: number, cmds: Cmd[]): void {
    const doms: IommuDomain[] = [ctx.hwptDomain(auto), ctx.hwptDomain(manual)];
    let ref: RefArea[] = [];
    const overlaps = (iova: number, len: number): boolean => ref.some((a) => a.iova < iova + len && iova < a.iova + a.length);
    const add = (iova: number, pas: number[]): void => {
      ref.push({ iova, length: pas.length * K4, pas });
      ref.sort((x, y) => x.iova - y.iova);
    };
    const checkAuto = (iova: number, len: number): void => {
      assert.ok(iova >= K4 && iova % K4 === 0, `auto IOVA 0x${iova.toString(16)}`);
      assert.ok(!overlaps(iova, len), 'auto IOVA overlaps an area');
      assert.ok(iova + len <= 0xfee0_0000 || iova > 0xfeef_ffff, 'auto IOVA in the MSI window');
    };
    /** Reference unmap of [start, start + len): null = ENOENT, else bytes. */
    const refUnmap = (start: number, len: number): number | null => {
      const hit = ref.filter((a) => a.iova < start + len && start < a.iova + a.length);
      if (hit.length === 0 || hit.some((a) => a.iova < start || a.iova + a.length > start + len)) return null;
      ref = ref.filter((a) => !hit.includes(a));
      return hit.reduce((n, a) => n + a.length, 0);
    };
    /** Reference source pages of [start, start + len): null = ENOENT (a hole). */
    const refPages = (start: number, len: number): RefArea[] | null => {
      const out: RefArea[] = [];
      let cur = start;
      while (cur < start + len) {
        const a = ref.find((x) => x.iova <= cur && cur < x.iova + x.length);
        if (!a) return null;
        const end = Math.min(start + len, a.iova + a.length);
        out.push({ iova: cur, length: end - cur, pas: a.pas.slice((cur - a.iova) / K4, (end - a.iova) / K4) });
        cur = end;
      }
      return out;
    };

    for (const cmd of cmds) {
      if (cmd.c === 'map' || cmd.c === 'big') {
        const iova = cmd.c === 'big' ? BIG + cmd.slot * M2 : cmd.page === null ? null : WIN + cmd.page * K4;
        const npages = cmd.c === 'big' ? 512 : cmd.npages;
        const vpage = cmd.c === 'big' ? cmd.vslot * 512 : cmd.vpage;
        const r = errnoOf(() => ctx.ioasMap(ioas, iova ?? 'auto', VA + vpage * K4, npages * K4, RW));
        const pas = Array.from({ length: npages }, (_, k) => pa(vpage + k));
        if (iova !== null && overlaps(iova, npages * K4)) {
          assert.deepEqual(r, { ok: false, errno: 'EEXIST' });
        } else {
          assert.equal(r.ok, true, JSON.stringify(r));
          const at = (r as { v: number }).v;
          if (iova === null) checkAuto(at, npages * K4);
          else assert.equal(at, iova);
          add(at, pas);
        }
      } else if (cmd.c === 'unmap' || cmd.c === 'unmapBig') {
        const start = cmd.c === 'unmap' ? WIN + cmd.page * K4 : BIG + cmd.slot * M2;
        const len = cmd.c === 'unmap' ? cmd.npages * K4 : cmd.nslots * M2;
        const want = refUnmap(start, len);
        const r = errnoOf(() => ctx.ioasUnmap(ioas, start, len));
        assert.deepEqual(r, want === null ? { ok: false, errno: 'ENOENT' } : { ok: true, v: want });
      } else {
        const src = WIN + cmd.from * K4;
        const len = cmd.npages * K4;
        const dst = cmd.to === null ? null : WIN + cmd.to * K4;
        const pieces = refPages(src, len);
        const r = errnoOf(() => ctx.ioasCopy(ioas, ioas, src, len, dst ?? 'auto', RW));
        if (pieces === null) assert.deepEqual(r, { ok: false, errno: 'ENOENT' });
        else if (dst !== null && overlaps(dst, len)) assert.deepEqual(r, { ok: false, errno: 'EEXIST' });
        else {
          assert.equal(r.ok, true, JSON.stringify(r));
          const at = (r as { v: number }).v;
          if (dst === null) checkAuto(at, len);
          else assert.equal(at, dst);
          let cur = at;
          for (const p of pieces) {
            add(cur, p.pas);
            cur += p.length;
          }
        }
      }
      // Areas agree.
      assert.deepEqual(
        ctx.ioasAreas(ioas).map((a) => [a.iova, a.length]),
        ref.map((a) => [a.iova, a.length]),
      );
    }
    // Every mapped page translates as the reference says, in both HWPTs; the pages around the window do not.
    for (const dom of doms) {
      for (const a of ref) a.pas.forEach((p, k) => assert.equal(iommuIovaToPhys(dom, a.iova + k * K4 + 0x18), p + 0x18));
      for (let page = -2; page < 80; page++) {
        const iova = WIN + page * K4;
        if (!overlaps(iova, K4)) assert.equal(iommuIovaToPhys(dom, iova), 0, `0x${iova.toString(16)} should be unmapped`);
      }
      for (let slot = 0; slot < 5; slot++) {
        const iova = BIG + slot * M2;
        if (!overlaps(iova, K4)) assert.equal(iommuIovaToPhys(dom, iova), 0);
      }
    }
  }
});
