/**
 * Tests for src/iommu/group.ts: the group object (spec §1, test vectors
 * 19–24), add/remove errors, the group lock (EDEADLK from forEachDev
 * callbacks), iommudata release, lookups and reserved regions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError, type ErrnoName } from '../../src/base/errno.js';
import { BusType } from '../../src/device/bus.js';
import { Device } from '../../src/device/device.js';
import { IommuGroup, IommuGroups } from '../../src/iommu/group.js';
import { allocResvRegion, IommuResvType } from '../../src/iommu/resv-region.js';

const pci = new BusType('pci');
const platform = new BusType('platform');
const dev = (name: string, parent: Device | null = null, bus = pci): Device => new Device(name, bus, parent);
const errno = (name: ErrnoName) => (e: unknown) => isIommuError(e, name);

/** A group holding `devices`, with the allocation reference already dropped. */
function groupOf(groups: IommuGroups, ...devices: Device[]): IommuGroup {
  const g = groups.alloc();
  for (const d of devices) groups.addDevice(g, d);
  groups.put(g);
  return g;
}

test('vector 19 (ids): groups are numbered in probe order from 0', () => {
  const groups = new IommuGroups();
  const rp = dev('0000:00:01.0');
  const ep = dev('0000:01:00.0', rp);
  const g0 = groupOf(groups, ep); // probed first (artificially)
  const g1 = groupOf(groups, rp);
  assert.deepEqual([g0.id, g1.id], [0, 1]);
  assert.equal(ep.iommuGroup, g0);
  assert.equal(rp.iommuGroup, g1);
});

test('vector 20: removing the only device of G1 frees it; the next group gets id 1', () => {
  const groups = new IommuGroups();
  const [a, b, c] = [dev('a'), dev('b'), dev('c')];
  const [g0, g1, g2] = [groupOf(groups, a), groupOf(groups, b), groupOf(groups, c)];
  assert.deepEqual([g0.id, g1.id, g2.id], [0, 1, 2]);
  groups.removeDevice(b);
  assert.ok(g1.released);
  assert.equal(b.iommuGroup, null);
  assert.deepEqual([...groups].map((g) => g.id), [0, 2]);
  assert.equal(groups.alloc().id, 1);
  assert.equal(groups.alloc().id, 3);
});

test('vector 21: alloc → add (ref 2) → put (ref 1) → remove (ref 0): released, iommudata released once', () => {
  const groups = new IommuGroups();
  const d = dev('d');
  const g = groups.alloc();
  const released: unknown[] = [];
  const cookie = { driver: 'smmu' };
  g.setIommudata(cookie, (data) => released.push(data));
  assert.equal(g.refcount, 1);
  groups.addDevice(g, d);
  assert.equal(g.refcount, 2);
  groups.put(g);
  assert.equal(g.refcount, 1);
  assert.equal(g.getIommudata(), cookie);
  assert.deepEqual(released, []);
  groups.removeDevice(d);
  assert.equal(g.refcount, 0);
  assert.ok(g.released);
  assert.deepEqual(released, [cookie]);
  assert.equal(groups.count, 0);
  // no second call, whatever happens next
  assert.throws(() => groups.put(g), errno('EINVAL'));
  groups.removeDevice(d);
  assert.deepEqual(released, [cookie]);
});

test('iommudata: replacing does not call the old release; release sees the current data; runs before the id is freed', () => {
  const groups = new IommuGroups();
  const calls: string[] = [];
  const g = groups.alloc();
  g.setIommudata('old', (x) => calls.push(`old:${x}`));
  g.setIommudata('new', (x) => {
    calls.push(`new:${x}`);
    assert.equal(groups.count, 0); // already gone from the registry …
    assert.equal(groups.alloc().id, 1); // … but its id is not free yet
  });
  groups.put(g);
  assert.deepEqual(calls, ['new:new']);
  assert.equal(groups.alloc().id, 0);
  assert.throws(() => g.getIommudata(), errno('EINVAL'));
});

test('iommudata: a throwing release still completes the release', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  g.setIommudata(1, () => {
    throw new Error('boom');
  });
  assert.throws(() => groups.put(g), /boom/);
  assert.ok(g.released);
  assert.equal(groups.count, 0);
  assert.equal(groups.alloc().id, 0);
});

test('vector 22: two devices named foo ⇒ links foo and foo.0 (then foo.1, and names are reused)', () => {
  const groups = new IommuGroups();
  const foo1 = dev('foo', dev('soc'), platform);
  const foo2 = dev('foo', dev('pci0000:00'), pci);
  const foo3 = dev('foo', dev('isa'), platform);
  const bar = dev('foo.0');
  const g = groupOf(groups, foo1, foo2);
  assert.deepEqual(g.devices.map((d) => d.name), ['foo', 'foo.0']);
  groups.addDevice(g, foo3);
  assert.deepEqual(g.devices.map((d) => d.name), ['foo', 'foo.0', 'foo.1']);
  groups.removeDevice(foo2);
  groups.addDevice(g, bar); // "foo.0" is free again, so a device named foo.0 gets it
  assert.deepEqual(g.devices.map((d) => d.name), ['foo', 'foo.1', 'foo.0']);
  groups.removeDevice(foo1);
  groups.addDevice(g, foo2);
  assert.deepEqual(g.devices.map((d) => d.name), ['foo.1', 'foo.0', 'foo']);
});

test('vector 23: set_name a, b, null, null ⇒ name a, b, cleared, then ENOMEM', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  assert.equal(g.name, null);
  g.setName('a');
  assert.equal(g.name, 'a');
  g.setName('b');
  assert.equal(g.name, 'b');
  g.setName(null);
  assert.equal(g.name, null);
  assert.throws(() => g.setName(null), errno('ENOMEM'));
  assert.equal(g.name, null);
  g.setName('vfio-noiommu');
  assert.equal(g.name, 'vfio-noiommu');
});

test('vector 24: forEachDev stops at the first non-zero return and returns it', () => {
  const groups = new IommuGroups();
  const devices = ['w', 'x', 'y', 'z'].map((n) => dev(n));
  const g = groupOf(groups, ...devices);
  const seen: string[] = [];
  const rets = [0, 0, 7, 9];
  assert.equal(
    g.forEachDev((d) => {
      seen.push(d.name);
      return rets[seen.length - 1];
    }),
    7,
  );
  assert.deepEqual(seen, ['w', 'x', 'y']);
  assert.equal(g.forEachDev(() => {}), 0);
  assert.equal(groups.alloc().forEachDev(() => 1), 0);
});

test('addDevice: a device already in a group ⇒ EEXIST (this group or another), nothing changes', () => {
  const groups = new IommuGroups();
  const d = dev('d');
  const g1 = groupOf(groups, d);
  const g2 = groups.alloc();
  assert.throws(() => groups.addDevice(g1, d), errno('EEXIST'));
  assert.throws(() => groups.addDevice(g2, d), errno('EEXIST'));
  assert.equal(d.iommuGroup, g1);
  assert.deepEqual([g1.refcount, g2.refcount], [1, 1]);
  assert.deepEqual(g1.devices.map((x) => x.dev), [d]);
  assert.deepEqual(g2.devices, []);
});

test('addDevice: a released group ⇒ EINVAL; a group of another registry ⇒ EINVAL', () => {
  const groups = new IommuGroups();
  const other = new IommuGroups();
  const g = groups.alloc();
  groups.put(g);
  const d = dev('d');
  assert.throws(() => groups.addDevice(g, d), errno('EINVAL'));
  assert.equal(d.iommuGroup, null);
  const og = other.alloc();
  assert.throws(() => groups.addDevice(og, d), errno('EINVAL'));
  assert.throws(() => groups.put(og), errno('EINVAL'));
  assert.throws(() => groups.refGet(og), errno('EINVAL'));
  other.addDevice(og, d);
  assert.throws(() => groups.get(d), errno('EINVAL'));
  assert.throws(() => groups.removeDevice(d), errno('EINVAL'));
  assert.equal(og.refcount, 2);
  assert.throws(() => new IommuGroup(Symbol('x'), groups, 5), errno('EINVAL'));
});

test('get / refGet / put / getById count references; removeDevice without a group is a no-op', () => {
  const groups = new IommuGroups();
  const d = dev('d');
  assert.equal(groups.get(d), null);
  groups.removeDevice(d);
  groups.put(null);
  const g = groupOf(groups, d);
  assert.equal(groups.get(d), g);
  assert.equal(groups.refGet(g), g);
  assert.equal(groups.getById(0), g);
  assert.equal(groups.getById(1), null);
  assert.equal(g.refcount, 4);
  groups.put(g);
  groups.put(g);
  groups.put(g);
  assert.equal(g.refcount, 1);
  assert.ok(!g.released);
  groups.removeDevice(d);
  assert.ok(g.released);
  assert.equal(groups.getById(0), null);
});

test('iteration yields live groups in id order; count', () => {
  const groups = new IommuGroups();
  const gs = [groups.alloc(), groups.alloc(), groups.alloc(), groups.alloc()];
  groups.put(gs[1]!);
  groups.put(gs[0]!);
  assert.equal(groups.alloc().id, 0);
  assert.deepEqual([...groups].map((g) => g.id), [0, 2, 3]);
  assert.equal(groups.count, 3);
});

/** Set up a 2-device group g (caller ref held) and an unrelated group h; run `op` inside g.forEachDev. */
function insideCallback(op: (ctx: { groups: IommuGroups; g: IommuGroup; h: IommuGroup; a: Device; b: Device; spare: Device }) => void) {
  const groups = new IommuGroups();
  const [a, b, spare, hd] = [dev('a'), dev('b'), dev('spare'), dev('hd')];
  const g = groups.alloc();
  groups.addDevice(g, a);
  groups.addDevice(g, b);
  g.setName('g');
  const release: unknown[] = [];
  g.setIommudata('data', (x) => release.push(x));
  const cb = () => {};
  g.registerNotifier(cb);
  const h = groupOf(groups, hd);
  const before = { refcount: g.refcount, devices: g.devices, name: g.name, data: g.getIommudata() };
  let calls = 0;
  g.forEachDev(() => {
    calls++;
    op({ groups, g, h, a, b, spare });
    return 1;
  });
  assert.equal(calls, 1);
  // g unchanged
  assert.equal(g.refcount, before.refcount);
  assert.deepEqual(g.devices, before.devices);
  assert.equal(g.name, before.name);
  assert.equal(g.getIommudata(), before.data);
  assert.deepEqual(release, []);
  assert.equal(a.iommuGroup, g);
  assert.equal(spare.iommuGroup, null);
  assert.throws(() => g.registerNotifier(cb), errno('EEXIST')); // still registered
  g.unregisterNotifier(cb);
  return { groups, g, h };
}

for (const [what, op] of [
  ['addDevice', ({ groups, g, spare }) => groups.addDevice(g, spare)],
  ['removeDevice', ({ groups, b }) => groups.removeDevice(b)],
  ['removeDevice of the device being visited', ({ groups, a }) => groups.removeDevice(a)],
  ['setName', ({ g }) => g.setName('x')],
  ['setName(null)', ({ g }) => g.setName(null)],
  ['setIommudata', ({ g }) => g.setIommudata('other', null)],
  ['registerNotifier', ({ g }) => g.registerNotifier(() => {})],
  ['unregisterNotifier', ({ g }) => g.unregisterNotifier(() => {})],
  ['a nested forEachDev', ({ g }) => g.forEachDev(() => 0)],
  ['getGroupResvRegions', ({ groups, g }) => groups.getGroupResvRegions(g)],
] as [string, Parameters<typeof insideCallback>[0]][]) {
  test(`group lock: ${what} on the group being walked ⇒ EDEADLK, group unchanged`, () => {
    insideCallback((ctx) => assert.throws(() => op(ctx), errno('EDEADLK')));
  });
}

test('group lock: a put that would drop the last reference ⇒ EDEADLK (not dropped); other puts are fine', () => {
  const groups = new IommuGroups();
  const a = dev('a');
  const g = groupOf(groups, a); // refcount 1: the member's
  g.forEachDev(() => {
    const extra = groups.get(a)!;
    assert.equal(g.refcount, 2);
    groups.put(extra); // not the last one: allowed
    assert.throws(() => groups.put(g), errno('EDEADLK')); // over-put of the member's reference
    assert.equal(g.refcount, 1);
  });
  assert.ok(!g.released);
});

test('group lock: reading the group and changing other groups is allowed inside the callback', () => {
  const { groups, h } = insideCallback(({ groups, g, h, spare }) => {
    assert.equal(g.id, 0);
    assert.equal(g.name, 'g');
    assert.equal(g.getIommudata(), 'data');
    assert.equal(g.devices.length, 2);
    groups.addDevice(h, spare);
    h.setName('h');
    h.forEachDev(() => 0);
    assert.equal(groups.getGroupResvRegions(h).length, 0);
    const fresh = groups.alloc();
    groups.put(fresh);
    groups.removeDevice(spare);
  });
  assert.equal(h.name, 'h');
  assert.equal(groups.count, 2);
});

test('group lock is released when a callback throws', () => {
  const groups = new IommuGroups();
  const g = groupOf(groups, dev('a'));
  assert.throws(() =>
    g.forEachDev(() => {
      throw new Error('cb');
    }),
  );
  g.setName('ok');
  groups.addDevice(g, dev('b'));
  assert.equal(g.devices.length, 2);
});

test('reserved regions: merged over members in device order, provider precedence, null stops the walk', () => {
  const msi = allocResvRegion(0xfee00000, 0x100000, 3, IommuResvType.MSI);
  const isa = allocResvRegion(0, 0x1000000, 3, IommuResvType.DIRECT_RELAXABLE);
  const [a, b, c] = [dev('a'), dev('b'), dev('c')];
  const fromProvider = new Map<Device, readonly (typeof msi)[] | null>([[c, [isa]]]);
  const groups = new IommuGroups({ getResvRegions: (d) => fromProvider.get(d) });
  groups.setDeviceReservedRegions(a, [msi]);
  groups.setDeviceReservedRegions(b, [msi, isa]);
  groups.setDeviceReservedRegions(c, null); // overridden by the provider
  const g = groupOf(groups, a, b, c);
  assert.deepEqual(groups.getGroupResvRegions(g), [isa, msi]);
  fromProvider.set(b, null);
  assert.deepEqual(groups.getGroupResvRegions(g), [msi]);
  assert.throws(
    () => groups.setDeviceReservedRegions(a, [msi, { start: 0, length: 0, prot: 0, type: 0 }]),
    errno('EINVAL'),
  );
  assert.deepEqual(groups.getGroupResvRegions(g), [msi]); // a's regions unchanged
  // provider is called under the group lock
  const locked = new IommuGroups({
    getResvRegions: (d) => {
      assert.throws(() => locked.addDevice(d.iommuGroup as IommuGroup, dev('z')), errno('EDEADLK'));
      return undefined;
    },
  });
  locked.getGroupResvRegions(groupOf(locked, dev('y')));
});
