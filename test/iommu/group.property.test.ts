/**
 * Property test of src/iommu/group.ts and src/iommu/sysfs-view.ts: random
 * sequences of alloc / get / refGet / put / addDevice / removeDevice /
 * setName run against an independent reference model (its own refcounts,
 * id choice, membership and link names). After every step:
 * - live ids are unique and each alloc got the smallest free id;
 * - a device is in at most one group, and `dev.iommuGroup` agrees;
 * - a group is released exactly when its last reference goes;
 * - the sysfs view agrees with the model: every member has both links, the
 *   name file exists iff a name is set, no link points to a dead group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIommuError, type ErrnoName } from '../../src/base/errno.js';
import { BusType } from '../../src/device/bus.js';
import { Device } from '../../src/device/device.js';
import { IommuGroups, type IommuGroup } from '../../src/iommu/group.js';
import { deviceSysfsPath, renderIommuSysfs } from '../../src/iommu/sysfs-view.js';

type Op =
  | { op: 'alloc' }
  | { op: 'get'; dev: number }
  | { op: 'refGet'; h: number }
  | { op: 'put'; h: number }
  | { op: 'putNull' }
  | { op: 'add'; h: number; dev: number }
  | { op: 'remove'; dev: number }
  | { op: 'setName'; h: number; name: string | null };

interface ModelGroup {
  id: number;
  live: boolean;
  callerRefs: number;
  members: { dev: number; link: string }[];
  name: string | null;
}

const NAMES = ['a', 'a', 'b', 'a.0', 'a', 'c'];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ op: 'alloc' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), dev: fc.nat(NAMES.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('refGet' as const), h: fc.nat(15) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('put' as const), h: fc.nat(15) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'putNull' as const }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), h: fc.nat(15), dev: fc.nat(NAMES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('remove' as const), dev: fc.nat(NAMES.length - 1) }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('setName' as const), h: fc.nat(15), name: fc.option(fc.constantFrom('x', 'vfio-noiommu', '')) }),
  },
);

function expectErr(fn: () => unknown, name: ErrnoName): void {
  assert.throws(fn, (e: unknown) => isIommuError(e, name), `expected ${name}`);
}

function run(ops: Op[]): void {
  const bus = new BusType('pci');
  const devs = NAMES.map((n, i) => new Device(n, bus, new Device(`parent${i}`, bus)));
  const groups = new IommuGroups();
  const model: ModelGroup[] = [];
  const real: IommuGroup[] = [];
  const releases: number[] = [];
  const memberOf = (dev: number): number => model.findIndex((g) => g.live && g.members.some((m) => m.dev === dev));
  const refs = (g: ModelGroup): number => g.callerRefs + g.members.length;
  const maybeRelease = (h: number): void => {
    const g = model[h]!;
    if (refs(g) === 0) g.live = false;
  };

  for (const o of ops) {
    switch (o.op) {
      case 'alloc': {
        const liveIds = new Set(model.filter((g) => g.live).map((g) => g.id));
        let id = 0;
        while (liveIds.has(id)) id++;
        const g = groups.alloc();
        assert.equal(g.id, id, 'alloc: smallest free id');
        const h = model.length;
        g.setIommudata(h, (x) => releases.push(x as number));
        model.push({ id, live: true, callerRefs: 1, members: [], name: null });
        real.push(g);
        break;
      }
      case 'get': {
        const h = memberOf(o.dev);
        const got = groups.get(devs[o.dev]!);
        if (h < 0) assert.equal(got, null);
        else {
          assert.equal(got, real[h]);
          model[h]!.callerRefs++;
        }
        break;
      }
      case 'refGet': {
        if (o.h >= model.length) break;
        const g = model[o.h]!;
        if (!g.live) expectErr(() => groups.refGet(real[o.h]!), 'EINVAL');
        else if (g.callerRefs > 0) {
          assert.equal(groups.refGet(real[o.h]!), real[o.h]);
          g.callerRefs++;
        }
        break;
      }
      case 'put': {
        if (o.h >= model.length) break;
        const g = model[o.h]!;
        if (!g.live) expectErr(() => groups.put(real[o.h]!), 'EINVAL');
        else if (g.callerRefs > 0) {
          groups.put(real[o.h]!);
          g.callerRefs--;
          maybeRelease(o.h);
        }
        break;
      }
      case 'putNull':
        groups.put(null);
        break;
      case 'add': {
        if (o.h >= model.length) break;
        const g = model[o.h]!;
        if (!g.live) {
          expectErr(() => groups.addDevice(real[o.h]!, devs[o.dev]!), 'EINVAL');
        } else if (memberOf(o.dev) >= 0) {
          expectErr(() => groups.addDevice(real[o.h]!, devs[o.dev]!), 'EEXIST');
        } else {
          groups.addDevice(real[o.h]!, devs[o.dev]!);
          const base = NAMES[o.dev]!;
          const taken = new Set(g.members.map((m) => m.link));
          let link = base;
          for (let i = 0; taken.has(link); i++) link = `${base}.${i}`;
          g.members.push({ dev: o.dev, link });
        }
        break;
      }
      case 'remove': {
        const h = memberOf(o.dev);
        groups.removeDevice(devs[o.dev]!);
        if (h >= 0) {
          const g = model[h]!;
          g.members = g.members.filter((m) => m.dev !== o.dev);
          maybeRelease(h);
        }
        break;
      }
      case 'setName': {
        if (o.h >= model.length) break;
        const g = model[o.h]!;
        if (!g.live) expectErr(() => real[o.h]!.setName(o.name), 'EINVAL');
        else if (g.name === null && o.name === null) expectErr(() => real[o.h]!.setName(null), 'ENOMEM');
        else {
          real[o.h]!.setName(o.name);
          g.name = o.name;
        }
        break;
      }
    }
    check();
  }

  function check(): void {
    const live = model.map((g, h) => ({ g, h })).filter(({ g }) => g.live);
    const liveIds = live.map(({ g }) => g.id).sort((a, b) => a - b);
    assert.equal(new Set(liveIds).size, liveIds.length, 'ids unique among live groups');
    assert.deepEqual([...groups].map((g) => g.id), liveIds);
    assert.equal(groups.count, live.length);
    // released exactly when the last reference went; iommudata released once, then
    assert.deepEqual(
      [...releases].sort((a, b) => a - b),
      model.map((g, h) => (g.live ? -1 : h)).filter((h) => h >= 0),
    );
    model.forEach((g, h) => {
      const r = real[h]!;
      assert.equal(r.released, !g.live);
      if (!g.live) return;
      assert.equal(r.refcount, refs(g));
      assert.equal(r.name, g.name);
      assert.deepEqual(
        r.devices.map((d) => [devs.indexOf(d.dev), d.name]),
        g.members.map((m) => [m.dev, m.link]),
      );
    });
    devs.forEach((d, i) => {
      const h = memberOf(i);
      assert.equal(d.iommuGroup, h < 0 ? null : real[h], `device ${i} in at most one group`);
    });
    // the sysfs view
    const view = renderIommuSysfs(groups);
    const entries = view.entries();
    const groupDirs = entries.filter((e) => /^kernel\/iommu_groups\/\d+$/.test(e.path)).map((e) => Number(e.path.split('/')[2]));
    assert.deepEqual(groupDirs.sort((a, b) => a - b), liveIds);
    let members = 0;
    for (const { g } of live) {
      const base = `kernel/iommu_groups/${g.id}`;
      assert.equal(view.exists(`${base}/name`), g.name !== null);
      if (g.name !== null) assert.equal(view.readFile(`${base}/name`), `${g.name}\n`);
      assert.deepEqual(view.readDir(`${base}/devices`), g.members.map((m) => m.link).sort());
      for (const m of g.members) {
        members++;
        const p = deviceSysfsPath(devs[m.dev]!);
        assert.equal(view.readLink(`${base}/devices/${m.link}`), `../../../../${p}`);
        assert.equal(view.readLink(`${p}/iommu_group`), `../../../${base}`);
        assert.deepEqual(view.readDir(`${base}/devices/${m.link}/iommu_group/devices`), view.readDir(`${base}/devices`));
      }
    }
    const devLinks = entries.filter((e) => e.kind === 'link' && e.path.endsWith('/iommu_group'));
    assert.equal(devLinks.length, members);
    for (const l of devLinks) assert.ok(view.exists(l.path), `${l.path} points to a live group`);
  }
}

test('property: random group operations keep the model invariants and the sysfs view consistent', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => run(ops)),
    { numRuns: 400 },
  );
});
