// IOASID allocator (spec §6.3, vectors 51–52) with the set/notifier series semantics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IommuError } from '../../src/base/errno.js';
import {
  INVALID_IOASID, IOASID_NOTIFY_BIND, IOASID_NOTIFY_FREE, IOASID_NOTIFY_UNBIND, IoasidAllocator,
  type IoasidAllocatorOps, type IoasidNotifyArgs,
} from '../../src/iommu/ioasid.js';

const errno = (name: string) => (e: unknown) => e instanceof IommuError && e.errno === name;

test('vector 51: lowest free, find ENOENT/EACCES, custom allocator EAGAIN/EEXIST', () => {
  const a = new IoasidAllocator();
  const S = a.allocSet({}, 100);
  const T = a.allocSet({}, 100);
  assert.equal(a.alloc(S, 1, 10, 'p'), 1);
  assert.equal(a.alloc(S, 1, 10, 'q'), 2);
  assert.throws(() => a.find(T, 1), errno('EACCES'));
  assert.throws(() => a.find(S, 7), errno('ENOENT'));
  assert.equal(a.find(S, 1), 'p');
  assert.equal(a.find(null, 2), 'q');
  assert.equal(a.find(S, 1, () => false), null);
  const ops: IoasidAllocatorOps = { alloc: () => INVALID_IOASID, free: () => {} };
  assert.throws(() => a.registerAllocator(ops), errno('EAGAIN'));
  a.free(S, 1);
  a.free(S, 2);
  a.registerAllocator(ops);
  assert.throws(() => a.registerAllocator(ops), errno('EEXIST'));
  assert.equal(a.activeAllocator, ops);
});

test('custom allocators: shared functions share, fall back to next / default, bad results ENOSPC', () => {
  const a = new IoasidAllocator();
  const S = a.allocSet(null, 10);
  let next = 100;
  const freed: number[] = [];
  const allocFn = (): number => next++;
  const freeFn = (id: number): void => void freed.push(id);
  const A1: IoasidAllocatorOps = { alloc: allocFn, free: freeFn, pdata: 1 };
  const A2: IoasidAllocatorOps = { alloc: allocFn, free: freeFn, pdata: 2 };
  const B: IoasidAllocatorOps = { alloc: () => 5, free: () => {} };
  a.registerAllocator(A1);
  a.registerAllocator(A2); // shares A1's space
  a.registerAllocator(B); // waits
  assert.equal(a.alloc(S, 1, 1000), 100);
  a.unregisterAllocator(A1); // A2 keeps the space and its ids
  assert.equal(a.activeAllocator, A2);
  assert.equal(a.find(S, 100), null);
  assert.throws(() => a.unregisterAllocator(A2), errno('EBUSY'));
  a.free(S, 100);
  assert.deepEqual(freed, [100]);
  next = 5000; // out of range → freed back, ENOSPC, nothing allocated
  assert.throws(() => a.alloc(S, 1, 1000), errno('ENOSPC'));
  assert.deepEqual(freed, [100, 5000]);
  assert.equal(S.count, 0);
  a.unregisterAllocator(A2);
  assert.equal(a.activeAllocator, B);
  assert.equal(a.alloc(S, 1, 10), 5);
  a.free(S, 5);
  a.unregisterAllocator(B);
  assert.equal(a.activeAllocator, null);
  assert.equal(a.alloc(S, 1, 10), 1);
  assert.throws(() => a.unregisterAllocator(B), errno('ENOENT'));
});

test('vector 52: get/put refcount; put returns true when freed, id reusable', () => {
  const a = new IoasidAllocator();
  const S = a.allocSet(null, 10);
  const got: IoasidNotifyArgs[] = [];
  a.registerNotifier((x) => void got.push(x));
  assert.equal(a.alloc(S, 1, 10), 1);
  a.get(S, 1);
  assert.equal(a.put(S, 1), false);
  assert.equal(got.length, 0);
  assert.equal(a.put(S, 1), true);
  assert.equal(got.length, 1);
  assert.equal(got[0]!.cmd, IOASID_NOTIFY_FREE);
  assert.throws(() => a.put(S, 1), errno('EINVAL'));
  assert.throws(() => a.get(S, 1), errno('EINVAL'));
  assert.equal(a.alloc(S, 1, 10), 1);
  const T = a.allocSet(null, 1);
  assert.throws(() => a.get(T, 1), errno('EACCES'));
  assert.throws(() => a.put(T, 1), errno('EACCES'));
  assert.equal(a.refcount(1), 1);
});

test('quotas: ENOSPC at the set quota and at the system capacity; bad quota EINVAL; duplicate token EEXIST', () => {
  const a = new IoasidAllocator({ capacity: 8 });
  const tok = {};
  const S = a.allocSet(tok, 3);
  assert.throws(() => a.allocSet(tok, 1), errno('EEXIST'));
  assert.throws(() => a.allocSet({}, 6), errno('ENOSPC'));
  assert.throws(() => a.allocSet({}, -1), errno('EINVAL'));
  assert.throws(() => a.allocSet({}, 1.5), errno('EINVAL'));
  assert.equal(a.capacityAvailable, 5);
  for (let i = 1; i <= 3; i++) assert.equal(a.alloc(S, 1, 100), i);
  assert.throws(() => a.alloc(S, 1, 100), errno('ENOSPC'));
  assert.equal(a.allocOrInvalid(S, 1, 100), INVALID_IOASID);
  assert.equal(S.count, 3);
  const T = a.allocSet(null, 0); // 0: everything left (5)
  assert.equal(T.quota, 5);
  assert.throws(() => a.allocSet(null, 0), errno('ENOSPC'));
  for (let i = 4; i <= 8; i++) assert.equal(a.alloc(T, 1, 100), i);
  assert.throws(() => a.alloc(T, 1, 100), errno('ENOSPC'));
  a.free(S, 2);
  assert.throws(() => a.alloc(T, 1, 100), errno('ENOSPC')); // T's quota used up
  assert.equal(a.alloc(S, 1, 100), 2);
  // capacity exhausted inside the quota: a range with nothing free
  const b = new IoasidAllocator({ capacity: 4 });
  const U = b.allocSet(null, 4);
  b.alloc(U, 1, 2);
  b.alloc(U, 1, 2);
  assert.throws(() => b.alloc(U, 1, 2), errno('ENOSPC'));
  assert.equal(U.count, 2);
  assert.throws(() => b.installCapacity(100), errno('EBUSY'));
  const c = new IoasidAllocator();
  c.installCapacity(16);
  assert.throws(() => c.installCapacity(32), errno('EBUSY'));
  assert.throws(() => new IoasidAllocator().installCapacity(0), errno('EINVAL'));
});

test('freeSet frees every id with one FREE each, returns the quota; per-set subscribers only see their set', () => {
  const a = new IoasidAllocator({ capacity: 100 });
  const tokS = {};
  const S = a.allocSet(tokS, 10);
  const T = a.allocSet(null, 10);
  const all: IoasidNotifyArgs[] = [];
  const onlyS: IoasidNotifyArgs[] = [];
  const onlyT: IoasidNotifyArgs[] = [];
  a.registerNotifier((x) => void all.push(x));
  a.registerSetNotifier(S, (x) => void onlyS.push(x));
  a.registerSetNotifier(T, (x) => void onlyT.push(x));
  const ids = [a.alloc(S, 1, 50, { v: 1 }), a.alloc(T, 1, 50), a.alloc(S, 1, 50), a.alloc(S, 1, 50)];
  assert.deepEqual(ids, [1, 2, 3, 4]);
  a.freeSet(S);
  assert.deepEqual(all.map((x) => x.id), [1, 3, 4]);
  assert.deepEqual(onlyS.map((x) => x.id), [1, 3, 4]);
  assert.equal(onlyT.length, 0);
  assert.deepEqual(all[0], { id: 1, setId: S.id, setToken: tokS, pdata: { v: 1 }, cmd: IOASID_NOTIFY_FREE });
  assert.equal(a.has(1), false);
  assert.equal(a.has(2), true);
  assert.equal(a.capacityAvailable, 90);
  assert.throws(() => a.alloc(S, 1, 10), errno('EINVAL'));
  assert.throws(() => a.freeSet(S), errno('EINVAL'));
  a.notify(2, IOASID_NOTIFY_BIND);
  assert.equal(onlyT.length, 1);
  assert.deepEqual(onlyT[0], { id: 2, setId: T.id, setToken: null, pdata: null, cmd: IOASID_NOTIFY_BIND });
  assert.equal(onlyS.length, 3);
});

test('notify: EINVAL with a clear message for an unknown id; attachData ENOENT; payload carries pdata', () => {
  const a = new IoasidAllocator();
  const S = a.allocSet(null, 4);
  assert.throws(() => a.notify(42, IOASID_NOTIFY_BIND), (e: unknown) => errno('EINVAL')(e) && /IOASID 42 is not allocated/.test((e as Error).message));
  assert.throws(() => a.attachData(42, 'x'), errno('ENOENT'));
  const id = a.alloc(S, 1, 10);
  a.attachData(id, 'data');
  const got: IoasidNotifyArgs[] = [];
  a.registerNotifier((x) => void got.push(x));
  a.notify(id, IOASID_NOTIFY_UNBIND);
  assert.equal(got[0]!.pdata, 'data');
  assert.equal(got[0]!.cmd, IOASID_NOTIFY_UNBIND);
  assert.throws(() => a.notify(id, 1 as never), errno('EINVAL'));
});

test('EDEADLK: re-entrant calls from a subscriber fail, state unchanged, other subscribers still called', () => {
  const a = new IoasidAllocator({ capacity: 100 });
  const S = a.allocSet(null, 10);
  const id = a.alloc(S, 1, 10, 'p');
  a.alloc(S, 1, 10);
  const errs: string[] = [];
  const reenter = (): void => {
    for (const f of [
      () => a.alloc(S, 1, 10), () => a.free(S, 2), () => a.find(S, 2), () => a.notify(2, IOASID_NOTIFY_BIND),
      () => a.registerNotifier(() => {}), () => a.unregisterNotifier(reenter), () => a.allocSet(null, 1), () => a.freeSet(S),
      () => a.get(S, 2), () => a.put(S, 2), () => a.attachData(2, 'z'),
      () => a.registerAllocator({ alloc: () => 1, free: () => {} }),
    ]) {
      try {
        f();
        errs.push('ok');
      } catch (e) {
        errs.push(e instanceof IommuError ? e.errno : 'other');
      }
    }
    throw new Error('subscriber blew up');
  };
  let second = 0;
  a.registerNotifier(reenter, 10);
  a.registerNotifier(() => void second++);
  a.free(S, id);
  assert.deepEqual(new Set(errs), new Set(['EDEADLK']));
  assert.equal(second, 1);
  assert.equal(a.has(id), false);
  assert.equal(S.count, 1);
  assert.equal(a.has(2), true);
  assert.equal(a.refcount(2), 1);
  assert.equal(a.find(S, 2), null);
  assert.equal(a.capacityAvailable, 90);
  assert.equal(a.activeAllocator, null);
  assert.equal(a.alloc(S, 1, 10), 1);
});

test('unsubscribed callbacks never run; duplicate subscription EEXIST; unknown ENOENT', () => {
  const a = new IoasidAllocator();
  const S = a.allocSet(null, 4);
  let n = 0;
  const cb = (): void => void n++;
  a.registerNotifier(cb);
  assert.throws(() => a.registerNotifier(cb), errno('EEXIST'));
  a.registerSetNotifier(S, cb);
  a.unregisterNotifier(cb);
  a.unregisterSetNotifier(S, cb);
  assert.throws(() => a.unregisterNotifier(cb), errno('ENOENT'));
  const id = a.alloc(S, 1, 4);
  a.notify(id, IOASID_NOTIFY_BIND);
  a.free(S, id);
  assert.equal(n, 0);
});
