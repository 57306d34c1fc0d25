/**
 * Tests for src/base/ida.ts: smallest-free allocation, range limits, errors,
 * a property test against a naive Set-based reference, and scale (2^20 ids).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import { IDA_MAX, Ida } from '../../src/base/ida.js';

test('ida: hands out 0, 1, 2 … and reuses the smallest freed id', () => {
  const ida = new Ida();
  assert.deepEqual([ida.alloc(), ida.alloc(), ida.alloc(), ida.alloc()], [0, 1, 2, 3]);
  ida.free(2);
  ida.free(1);
  assert.equal(ida.count, 2);
  assert.equal(ida.alloc(), 1);
  assert.equal(ida.alloc(), 2);
  assert.equal(ida.alloc(), 4);
  assert.ok(ida.has(4));
  assert.ok(!ida.has(5));
  assert.equal(ida.count, 5);
});

test('ida: alloc(min, max) is the smallest free id in [min, max]; ENOSPC when full', () => {
  const ida = new Ida();
  assert.equal(ida.alloc(1, 3), 1);
  assert.equal(ida.alloc(1, 3), 2);
  assert.equal(ida.alloc(1, 3), 3);
  assert.throws(() => ida.alloc(1, 3), (e) => isIommuError(e, 'ENOSPC'));
  assert.equal(ida.count, 3);
  assert.equal(ida.alloc(), 0);
  assert.equal(ida.alloc(100), 100);
  assert.equal(ida.alloc(31, 40), 31);
  assert.equal(ida.alloc(31, 40), 32);
  ida.free(2);
  assert.equal(ida.alloc(1, 3), 2);
});

test('ida: Linux argument quirks (negative min ⇒ ENOSPC, max clamped to INT_MAX, min > max ⇒ ENOSPC)', () => {
  const ida = new Ida();
  assert.throws(() => ida.alloc(-1), (e) => isIommuError(e, 'ENOSPC'));
  assert.throws(() => ida.alloc(5, 4), (e) => isIommuError(e, 'ENOSPC'));
  assert.throws(() => ida.alloc(1.5), (e) => isIommuError(e, 'EINVAL'));
  assert.equal(ida.alloc(0, 2 ** 40), 0);
  assert.equal(ida.alloc(0, -1), 1); // (unsigned)-1 = UINT_MAX ⇒ INT_MAX
  assert.throws(() => ida.alloc(IDA_MAX + 1), (e) => isIommuError(e, 'ENOSPC'));
  assert.equal(ida.count, 2);
});

test('ida: freeing a free id ⇒ EINVAL, nothing changes', () => {
  const ida = new Ida();
  ida.alloc();
  assert.throws(() => ida.free(1), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => ida.free(-1), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => ida.free(1 << 20), (e) => isIommuError(e, 'EINVAL'));
  ida.free(0);
  assert.throws(() => ida.free(0), (e) => isIommuError(e, 'EINVAL'));
  assert.equal(ida.count, 0);
  assert.equal(ida.alloc(), 0);
});

test('ida: 2^20 ids allocate, free and reallocate in order (smallest free first)', () => {
  const n = 1 << 20;
  const ida = new Ida();
  for (let i = 0; i < n; i++) assert.equal(ida.alloc(), i);
  assert.equal(ida.count, n);
  for (let i = 0; i < n; i += 3) ida.free(i);
  for (let i = 0; i < n; i += 3) assert.equal(ida.alloc(), i);
  ida.free(n - 1);
  ida.free(777_777);
  assert.equal(ida.alloc(), 777_777);
  assert.equal(ida.alloc(), n - 1);
  assert.equal(ida.alloc(), n);
  assert.equal(ida.alloc(1000), n + 1);
});

type Op = { kind: 'alloc'; min: number; max: number } | { kind: 'free'; id: number };

test('ida: random alloc/free sequences agree with a naive Set-based reference', () => {
  const small = fc.integer({ min: -2, max: 300 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('alloc' as const), min: small, max: small }),
    fc.record({ kind: fc.constant('alloc' as const), min: fc.constant(0), max: fc.constant(IDA_MAX) }),
    fc.record({ kind: fc.constant('free' as const), id: small }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const ida = new Ida();
      const ref = new Set<number>();
      for (const o of ops) {
        if (o.kind === 'alloc') {
          let expected: number | 'ENOSPC' = 'ENOSPC';
          const max = o.max < 0 ? IDA_MAX : o.max;
          if (o.min >= 0) {
            for (let id = o.min; id <= max; id++) {
              if (!ref.has(id)) {
                expected = id;
                break;
              }
            }
          }
          if (expected === 'ENOSPC') {
            assert.throws(() => ida.alloc(o.min, o.max), (e) => isIommuError(e, 'ENOSPC'));
          } else {
            assert.equal(ida.alloc(o.min, o.max), expected);
            ref.add(expected);
          }
        } else if (ref.has(o.id)) {
          ida.free(o.id);
          ref.delete(o.id);
        } else {
          assert.throws(() => ida.free(o.id), (e) => isIommuError(e, 'EINVAL'));
        }
        assert.equal(ida.count, ref.size);
      }
      for (let id = -1; id <= 310; id++) assert.equal(ida.has(id), ref.has(id), `has(${id})`);
    }),
    { numRuns: 300 },
  );
});
