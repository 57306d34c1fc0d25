/**
 * Tests for the group notifiers of v3.5 – v5.18 (src/iommu/group-notify.ts,
 * IommuGroup.registerNotifier, IommuGroups.relayBusEvents): test vector 53.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { NOTIFY_BAD } from '../../src/base/notifier.js';
import { BusNotify, BusType } from '../../src/device/bus.js';
import { Device, deviceAdd, deviceBindDriver, deviceDel, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { groupNotifyFromBus, IommuGroupNotify } from '../../src/iommu/group-notify.js';
import { IommuGroups, type IommuGroup } from '../../src/iommu/group.js';

interface Seen {
  event: number;
  dev: string;
  onList: boolean;
  driver: string | null;
  refcount: number;
}

function recorder(group: IommuGroup, log: Seen[]) {
  return (event: number, dev: Device) => {
    log.push({
      event,
      dev: dev.name,
      onList: group.devices.some((d) => d.dev === dev),
      driver: dev.driver?.name ?? null,
      refcount: group.refcount,
    });
  };
}

test('event values are those of include/linux/iommu.h', () => {
  assert.deepEqual(IommuGroupNotify, {
    ADD_DEVICE: 1,
    DEL_DEVICE: 2,
    BIND_DRIVER: 3,
    BOUND_DRIVER: 4,
    UNBIND_DRIVER: 5,
    UNBOUND_DRIVER: 6,
  });
  assert.equal(groupNotifyFromBus(BusNotify.BIND_DRIVER), 3);
  assert.equal(groupNotifyFromBus(BusNotify.BOUND_DRIVER), 4);
  assert.equal(groupNotifyFromBus(BusNotify.UNBIND_DRIVER), 5);
  assert.equal(groupNotifyFromBus(BusNotify.UNBOUND_DRIVER), 6);
  for (const e of [BusNotify.ADD_DEVICE, BusNotify.DEL_DEVICE, BusNotify.REMOVED_DEVICE, BusNotify.DRIVER_NOT_BOUND]) {
    assert.equal(groupNotifyFromBus(e), null);
  }
});

test('vector 53: add ⇒ 1 after insertion; bind ⇒ 3 then 4; unbind ⇒ 5 then 6; remove ⇒ 2 before removal', () => {
  const bus = new BusType('pci');
  const groups = new IommuGroups();
  groups.relayBusEvents(bus);
  const d = new Device('0000:01:00.0', bus);
  const other = new Device('0000:02:00.0', bus);
  const g = groups.alloc();
  const log: Seen[] = [];
  g.registerNotifier(recorder(g, log));

  deviceAdd(d);
  deviceAdd(other); // not in the group: its events never reach g
  groups.addDevice(g, d);
  groups.put(g); // the member holds the group now
  deviceBindDriver(d, driverByName('vfio-pci'));
  deviceBindDriver(other, driverByName('e1000e'));
  deviceReleaseDriver(d);
  groups.removeDevice(d);
  deviceDel(d);

  assert.deepEqual(log, [
    { event: 1, dev: d.name, onList: true, driver: null, refcount: 2 },
    { event: 3, dev: d.name, onList: true, driver: null, refcount: 2 }, // relay holds a temporary reference
    { event: 4, dev: d.name, onList: true, driver: 'vfio-pci', refcount: 2 },
    { event: 5, dev: d.name, onList: true, driver: 'vfio-pci', refcount: 2 },
    { event: 6, dev: d.name, onList: true, driver: null, refcount: 2 },
    { event: 2, dev: d.name, onList: true, driver: null, refcount: 1 },
  ]);
  assert.ok(g.released);
});

test('relay: group callbacks cannot veto a bind; devices without a group are ignored; unrelay stops it', () => {
  const bus = new BusType('platform');
  const groups = new IommuGroups();
  groups.relayBusEvents(bus);
  assert.throws(() => groups.relayBusEvents(bus), (e) => isIommuError(e, 'EEXIST'));
  const d = new Device('foo', bus);
  deviceAdd(d);
  deviceBindDriver(d, driverByName('x')); // no group: nothing happens
  deviceReleaseDriver(d);
  const g = groups.alloc();
  groups.addDevice(g, d);
  const events: number[] = [];
  g.registerNotifier((e) => {
    events.push(e);
    return NOTIFY_BAD;
  });
  deviceBindDriver(d, driverByName('x'));
  assert.equal(d.driver?.name, 'x');
  groups.unrelayBusEvents(bus);
  assert.throws(() => groups.unrelayBusEvents(bus), (e) => isIommuError(e, 'ENOENT'));
  deviceReleaseDriver(d);
  assert.deepEqual(events, [3, 4]);
  assert.equal(g.refcount, 2);
});

test('notifier chain: priority order, unregister, duplicate ⇒ EEXIST, register from own callback ⇒ EBUSY', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  const order: string[] = [];
  const low = () => void order.push('low');
  const high = () => void order.push('high');
  g.registerNotifier(low);
  g.registerNotifier(high, 10);
  assert.throws(() => g.registerNotifier(low), (e) => isIommuError(e, 'EEXIST'));
  groups.addDevice(g, new Device('a', new BusType('x')));
  assert.deepEqual(order, ['high', 'low']);
  g.unregisterNotifier(high);
  assert.throws(() => g.unregisterNotifier(high), (e) => isIommuError(e, 'ENOENT'));
  const self = () => {
    assert.throws(() => g.registerNotifier(() => {}), (e) => isIommuError(e, 'EBUSY'));
  };
  g.registerNotifier(self);
  groups.addDevice(g, new Device('b', new BusType('x')));
  assert.deepEqual(order, ['high', 'low', 'low']);
});

test('a DEL_DEVICE callback that removes the device itself: removed once, one reference dropped', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  const d = new Device('d', new BusType('x'));
  groups.addDevice(g, d);
  let inner = 0;
  g.registerNotifier((e, dev) => {
    if (e === IommuGroupNotify.DEL_DEVICE && inner++ === 0) groups.removeDevice(dev);
  });
  groups.removeDevice(d);
  assert.equal(d.iommuGroup, null);
  assert.equal(g.refcount, 1);
  assert.equal(g.devices.length, 0);
});
