// Property test for the IOASID allocator: random operations across several sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IommuError } from '../../src/base/errno.js';
import { IOASID_NOTIFY_BIND, IOASID_NOTIFY_FREE, IoasidAllocator, type IoasidNotifierCallback, type IoasidSet } from '../../src/iommu/ioasid.js';

type Op =
  | { k: 'alloc'; s: number; min: number; max: number }
  | { k: 'free'; pick: number }
  | { k: 'put'; pick: number }
  | { k: 'find'; s: number; id: number }
  | { k: 'notify'; id: number }
  | { k: 'sub'; sub: number; s: number }
  | { k: 'unsub'; sub: number }
  | { k: 'freeSet'; s: number }
  | { k: 'newSet'; quota: number };

const CAP = 40;
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('alloc' as const), s: fc.nat(3), min: fc.integer({ min: 0, max: 30 }), max: fc.integer({ min: 0, max: 45 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('free' as const), pick: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('put' as const), pick: fc.nat(1000) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('find' as const), s: fc.nat(3), id: fc.integer({ min: 0, max: 45 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('notify' as const), id: fc.integer({ min: 0, max: 45 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('sub' as const), sub: fc.nat(5), s: fc.integer({ min: -1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unsub' as const), sub: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('freeSet' as const), s: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('newSet' as const), quota: fc.integer({ min: 1, max: 15 }) }) },
);

test('property: unique ids, lowest free, quotas, exactly one FREE per subscriber, unsubscribed never run', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const cbErrors: unknown[] = [];
      const a = new IoasidAllocator({ capacity: CAP, onNotifierError: (e) => void cbErrors.push(e) });
      const sets: (IoasidSet | null)[] = [a.allocSet(null, 10), a.allocSet({}, 12), a.allocSet({}, 8), null];
      const model = new Map<number, IoasidSet>(); // id → set
      // subscribers: index → {cb, scope: null = global, set}
      const subs: ({ cb: IoasidNotifierCallback; scope: IoasidSet | null } | null)[] = Array(6).fill(null);
      let log: { sub: number; id: number; cmd: number }[] = [];
      const mk = (i: number): IoasidNotifierCallback => (x) => {
        assert.notEqual(subs[i], null, 'unsubscribed callback ran');
        log.push({ sub: i, id: x.id, cmd: x.cmd });
        assert.equal(x.setId, model.get(x.id)!.id);
        assert.equal(x.setToken, model.get(x.id)!.token);
      };
      const expectFree = (ids: number[]): void => {
        // each freed id: one FREE to each subscriber registered (global, or its set)
        const want: string[] = [];
        for (const id of ids) {
          const owner = model.get(id)!;
          subs.forEach((s, i) => { if (s !== null && (s.scope === null || s.scope === owner)) want.push(`${i}:${id}`); });
        }
        assert.deepEqual(log.filter((l) => l.cmd === IOASID_NOTIFY_FREE).map((l) => `${l.sub}:${l.id}`).sort(), want.sort());
      };
      const owned = (): number[] => [...model.keys()].sort((x, y) => x - y);
      for (const o of ops) {
        log = [];
        switch (o.k) {
          case 'alloc': {
            const s = sets[o.s];
            if (s == null) break;
            const lo = Math.max(1, o.min);
            const hi = Math.min(CAP, o.max);
            let want = -1;
            for (let i = lo; i <= hi; i++) if (!model.has(i)) { want = i; break; }
            const quotaFull = s.count >= s.quota;
            try {
              const id = a.alloc(s, o.min, o.max);
              assert.ok(!quotaFull && o.min <= o.max);
              assert.equal(id, want);
              model.set(id, s);
            } catch (e) {
              assert.ok(e instanceof IommuError);
              if (o.min > o.max) assert.equal(e.errno, 'EINVAL');
              else { assert.equal(e.errno, 'ENOSPC'); assert.ok(quotaFull || want === -1); }
            }
            break;
          }
          case 'free':
          case 'put': {
            const ids = owned();
            if (ids.length === 0) { assert.throws(() => a.free(null, 1), (e) => e instanceof IommuError && e.errno === 'EINVAL'); break; }
            const id = ids[o.pick % ids.length]!;
            if (o.k === 'free') a.free(model.get(id)!, id);
            else assert.equal(a.put(null, id), true);
            expectFree([id]);
            model.delete(id);
            break;
          }
          case 'find': {
            const s = sets[o.s] ?? null;
            const owner = model.get(o.id);
            if (owner === undefined) assert.throws(() => a.find(s, o.id), (e) => e instanceof IommuError && e.errno === 'ENOENT');
            else if (s !== null && s !== owner) assert.throws(() => a.find(s, o.id), (e) => e instanceof IommuError && e.errno === 'EACCES');
            else assert.equal(a.find(s, o.id), null);
            break;
          }
          case 'notify': {
            const owner = model.get(o.id);
            if (owner === undefined) { assert.throws(() => a.notify(o.id, IOASID_NOTIFY_BIND), (e) => e instanceof IommuError && e.errno === 'EINVAL'); break; }
            a.notify(o.id, IOASID_NOTIFY_BIND);
            const want = subs.flatMap((s, i) => (s !== null && (s.scope === null || s.scope === owner) ? [i] : []));
            assert.deepEqual(log.map((l) => l.sub).sort(), want.sort());
            break;
          }
          case 'sub': {
            if (subs[o.sub] !== null) break;
            const scope = o.s < 0 ? null : sets[o.s] ?? null;
            if (o.s >= 0 && scope === null) break;
            const cb = mk(o.sub);
            if (scope === null) a.registerNotifier(cb); else a.registerSetNotifier(scope, cb);
            subs[o.sub] = { cb, scope };
            break;
          }
          case 'unsub': {
            const s = subs[o.sub];
            if (s == null) break;
            if (s.scope === null) a.unregisterNotifier(s.cb); else a.unregisterSetNotifier(s.scope, s.cb);
            subs[o.sub] = null;
            break;
          }
          case 'freeSet': {
            const s = sets[o.s];
            if (s == null) break;
            const ids = owned().filter((id) => model.get(id) === s);
            a.freeSet(s);
            expectFree(ids);
            for (const id of ids) model.delete(id);
            sets[o.s] = null;
            subs.forEach((x, i) => { if (x !== null && x.scope === s) subs[i] = null; });
            break;
          }
          case 'newSet': {
            const i = sets.indexOf(null);
            if (i < 0) break;
            const reserved = sets.reduce((n, s) => n + (s?.quota ?? 0), 0);
            if (o.quota > CAP - reserved) { assert.throws(() => a.allocSet({}, o.quota), (e) => e instanceof IommuError && e.errno === 'ENOSPC'); break; }
            sets[i] = a.allocSet({}, o.quota);
            break;
          }
        }
        // invariants
        assert.deepEqual(cbErrors, []);
        assert.equal(a.count, model.size);
        for (const s of sets) if (s) { assert.ok(s.count <= s.quota); assert.equal(s.count, [...model.values()].filter((x) => x === s).length); }
        for (const [id, s] of model) assert.equal(a.setOf(id), s);
        assert.equal(a.capacityAvailable, CAP - sets.reduce((n, s) => n + (s?.quota ?? 0), 0));
      }
    }),
    { numRuns: 300 },
  );
});
