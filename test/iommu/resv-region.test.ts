/**
 * Tests for src/iommu/resv-region.ts: Linux's insert/merge of reserved
 * regions (test vectors 25–27 of the spec, §12.2), the sysfs text, and a
 * property test of the merge against an independent per-type interval union.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import {
  allocResvRegion,
  formatResvRegions,
  groupResvRegions,
  insertResvRegion,
  IommuResvType,
  type IommuResvRegion,
} from '../../src/iommu/resv-region.js';

const RW = 3;
/** A region from an inclusive [start, end]. */
const r = (start: number, end: number, type: IommuResvType, prot = RW): IommuResvRegion =>
  allocResvRegion(start, end - start + 1, prot, type);

test('vector 25: adjacent direct regions of two devices coalesce; msi stays apart', () => {
  const devA = [r(0x1000, 0x1fff, IommuResvType.DIRECT)];
  const devB = [r(0x2000, 0x2fff, IommuResvType.DIRECT), r(0xfee00000, 0xfeefffff, IommuResvType.MSI)];
  assert.equal(
    formatResvRegions(groupResvRegions([devA, devB])),
    '0x0000000000001000 0x0000000000002fff direct\n0x00000000fee00000 0x00000000feefffff msi\n',
  );
});

test('vector 26: overlapping regions of different types never merge', () => {
  const devA = [r(0x1000, 0x1fff, IommuResvType.RESERVED)];
  const devB = [r(0x1800, 0x27ff, IommuResvType.DIRECT)];
  assert.equal(
    formatResvRegions(groupResvRegions([devA, devB])),
    '0x0000000000001000 0x0000000000001fff reserved\n0x0000000000001800 0x00000000000027ff direct\n',
  );
});

test('vector 27: SW_MSI prints as msi; every type string', () => {
  assert.equal(formatResvRegions([r(0x8000000, 0x80fffff, IommuResvType.SW_MSI)]), '0x0000000008000000 0x00000000080fffff msi\n');
  const all = [0, 1, 2, 3, 4].map((t, i) => r(i * 0x1000, i * 0x1000 + 0xfff, t as IommuResvType));
  assert.deepEqual(
    formatResvRegions(all).split('\n').map((l) => l.split(' ')[2]),
    ['direct', 'direct-relaxable', 'reserved', 'msi', 'msi', undefined],
  );
  assert.equal(formatResvRegions([]), '');
});

test('insert: sorted by start, then type; equal start goes before the first entry with type ≥ its own', () => {
  const list: IommuResvRegion[] = [];
  insertResvRegion(list, r(0x5000, 0x5fff, IommuResvType.MSI));
  insertResvRegion(list, r(0x5000, 0x5fff, IommuResvType.DIRECT));
  insertResvRegion(list, r(0x1000, 0x1fff, IommuResvType.RESERVED));
  insertResvRegion(list, r(0x5000, 0x5fff, IommuResvType.RESERVED));
  assert.deepEqual(
    list.map((x) => [x.start, x.type]),
    [
      [0x1000, IommuResvType.RESERVED],
      [0x5000, IommuResvType.DIRECT],
      [0x5000, IommuResvType.RESERVED],
      [0x5000, IommuResvType.MSI],
    ],
  );
});

test('insert: a bridging region merges everything of its type it touches, keeps the first prot', () => {
  const list: IommuResvRegion[] = [];
  insertResvRegion(list, r(0x1000, 0x1fff, IommuResvType.DIRECT, 1));
  insertResvRegion(list, r(0x1800, 0x1900, IommuResvType.MSI));
  insertResvRegion(list, r(0x3000, 0x3fff, IommuResvType.DIRECT, 2));
  assert.equal(list.length, 3);
  insertResvRegion(list, r(0x2000, 0x2fff, IommuResvType.DIRECT, 4));
  assert.deepEqual(list, [r(0x1000, 0x3fff, IommuResvType.DIRECT, 1), r(0x1800, 0x1900, IommuResvType.MSI)]);
  // contained region: no change
  insertResvRegion(list, r(0x1100, 0x1200, IommuResvType.DIRECT));
  assert.deepEqual(list, [r(0x1000, 0x3fff, IommuResvType.DIRECT, 1), r(0x1800, 0x1900, IommuResvType.MSI)]);
  // a gap of one byte does not merge
  insertResvRegion(list, r(0x4001, 0x4fff, IommuResvType.DIRECT));
  assert.equal(list.length, 3);
});

test('insert never mutates the caller’s region objects', () => {
  const a = { start: 0x1000, length: 0x1000, prot: RW, type: IommuResvType.DIRECT } as IommuResvRegion;
  const list: IommuResvRegion[] = [a];
  insertResvRegion(list, r(0x2000, 0x2fff, IommuResvType.DIRECT));
  assert.equal(a.length, 0x1000);
  assert.deepEqual(list, [r(0x1000, 0x2fff, IommuResvType.DIRECT)]);
});

test('group walk stops at a device without IOMMU ops (null)', () => {
  const msi = [r(0xfee00000, 0xfeefffff, IommuResvType.MSI)];
  assert.equal(groupResvRegions([null, msi]).length, 0);
  assert.deepEqual(groupResvRegions([msi, null, [r(0, 0xfff, IommuResvType.DIRECT)]]), msi);
});

test('invalid regions ⇒ EINVAL, the list is unchanged', () => {
  const list = [r(0x1000, 0x1fff, IommuResvType.DIRECT)];
  const bad: IommuResvRegion[] = [
    { start: -1, length: 1, prot: 0, type: 0 },
    { start: 0, length: 0, prot: 0, type: 0 },
    { start: 0.5, length: 1, prot: 0, type: 0 },
    { start: Number.MAX_SAFE_INTEGER, length: 2, prot: 0, type: 0 },
    { start: 0, length: 1, prot: -1, type: 0 },
    { start: 0, length: 1, prot: 0, type: 5 as IommuResvType },
  ];
  for (const b of bad) {
    assert.throws(() => insertResvRegion(list, b), (e) => isIommuError(e, 'EINVAL'));
    assert.deepEqual(list, [r(0x1000, 0x1fff, IommuResvType.DIRECT)]);
  }
  assert.equal(
    formatResvRegions([allocResvRegion(2 ** 52, 2 ** 52, 0, IommuResvType.RESERVED)]),
    '0x0010000000000000 0x001fffffffffffff reserved\n',
  );
});

test('property: merge = per-type union of [start, end] with adjacency coalescing, sorted by (start, type)', () => {
  const region = fc
    .record({ start: fc.integer({ min: 0, max: 200 }), len: fc.integer({ min: 1, max: 40 }), type: fc.integer({ min: 0, max: 4 }) })
    .map(({ start, len, type }) => allocResvRegion(start, len, RW, type as IommuResvType));
  fc.assert(
    fc.property(fc.array(fc.array(region, { maxLength: 6 }), { maxLength: 6 }), (devices) => {
      const got = groupResvRegions(devices);
      // Reference: per type, a byte set; then maximal runs.
      const expected: [number, number, number][] = [];
      for (let type = 0; type <= 4; type++) {
        const bytes = new Set<number>();
        for (const d of devices) for (const x of d) if (x.type === type) for (let b = x.start; b < x.start + x.length; b++) bytes.add(b);
        const sorted = [...bytes].sort((a, b) => a - b);
        let i = 0;
        while (i < sorted.length) {
          let j = i;
          while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
          expected.push([sorted[i]!, sorted[j]!, type]);
          i = j + 1;
        }
      }
      expected.sort((a, b) => a[0] - b[0] || a[2] - b[2]);
      assert.deepEqual(
        got.map((x) => [x.start, x.start + x.length - 1, x.type]),
        expected,
      );
    }),
    { numRuns: 500 },
  );
});
