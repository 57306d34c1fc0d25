import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockingNotifierHead, NOTIFY_BAD, NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP } from '../../src/base/notifier.js';
import { IommuError } from '../../src/base/errno.js';

test('callbacks run by priority (higher first), equal priorities in registration order', () => {
  const h = new BlockingNotifierHead<number, string>();
  const seen: string[] = [];
  h.register(() => void seen.push('a0'));
  h.register(() => void seen.push('b10'), 10);
  h.register(() => void seen.push('c0'));
  h.register(() => void seen.push('d-5'), -5);
  assert.equal(h.callChain(1, 'x'), NOTIFY_DONE);
  assert.deepEqual(seen, ['b10', 'a0', 'c0', 'd-5']);
});

test('a stop value ends the walk and is returned; the last value otherwise', () => {
  const h = new BlockingNotifierHead<number, null>();
  const seen: number[] = [];
  h.register(() => (seen.push(1), NOTIFY_OK));
  h.register(() => (seen.push(2), NOTIFY_STOP));
  h.register(() => (seen.push(3), NOTIFY_OK));
  assert.equal(h.callChain(0, null), NOTIFY_STOP);
  assert.deepEqual(seen, [1, 2]);
  const v = new BlockingNotifierHead<number, null>();
  v.register(() => NOTIFY_OK);
  v.register(() => NOTIFY_BAD);
  assert.equal(v.callChain(0, null), NOTIFY_BAD);
  const ok = new BlockingNotifierHead<number, null>();
  ok.register(() => NOTIFY_OK);
  assert.equal(ok.callChain(0, null), NOTIFY_OK);
});

test('event and data reach every callback', () => {
  const h = new BlockingNotifierHead<string, { n: number }>();
  const got: [string, number][] = [];
  h.register((e, d) => void got.push([e, d.n]));
  h.callChain('add', { n: 7 });
  assert.deepEqual(got, [['add', 7]]);
});

test('unregister removes; unknown callback is ENOENT; double register is EEXIST; no change on failure', () => {
  const h = new BlockingNotifierHead<number, null>();
  const cb = (): number => NOTIFY_OK;
  h.register(cb);
  assert.throws(() => h.register(cb), (e: unknown) => e instanceof IommuError && e.errno === 'EEXIST');
  assert.equal(h.size, 1);
  h.unregister(cb);
  assert.equal(h.size, 0);
  assert.throws(() => h.unregister(cb), (e: unknown) => e instanceof IommuError && e.errno === 'ENOENT');
});

test('changing the chain from inside its own callback is refused (EBUSY), not a corruption', () => {
  const h = new BlockingNotifierHead<number, null>();
  const other = (): number => NOTIFY_OK;
  let err: unknown = null;
  const self = (): number => {
    try {
      h.register(other);
    } catch (e) {
      err = e;
    }
    return NOTIFY_OK;
  };
  h.register(self);
  h.callChain(0, null);
  assert.ok(err instanceof IommuError && err.errno === 'EBUSY');
  assert.equal(h.size, 1);
  // After the walk the chain can change again.
  h.register(other);
  assert.equal(h.size, 2);
});
