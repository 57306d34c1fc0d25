import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BusNotify, BusType } from '../../src/device/bus.js';
import { Device, deviceAdd, deviceBindDriver, deviceDel, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { IommuError } from '../../src/base/errno.js';
import { NOTIFY_BAD, NOTIFY_DONE } from '../../src/base/notifier.js';

function record(bus: BusType): string[] {
  const log: string[] = [];
  const names = Object.fromEntries(Object.entries(BusNotify).map(([k, v]) => [v, k]));
  bus.notifier.register((e, d) => {
    log.push(`${names[e]} ${d.name}${d.driver ? ` [${d.driver.name}]` : ''}`);
    return NOTIFY_DONE;
  });
  return log;
}

test('device add, bind, unbind and delete send the bus events in Linux order', () => {
  const bus = new BusType('pci');
  const log = record(bus);
  const parent = new Device('pci0000:00', new BusType('host'));
  const d = new Device('0000:00:1f.2', bus, parent);
  deviceAdd(d);
  assert.deepEqual(bus.devices, [d]);
  deviceBindDriver(d, driverByName('ahci'));
  assert.equal(d.driver?.name, 'ahci');
  deviceReleaseDriver(d);
  assert.equal(d.driver, null);
  deviceBindDriver(d, driverByName('ahci'));
  deviceDel(d);
  assert.deepEqual(bus.devices, []);
  assert.deepEqual(log, [
    'ADD_DEVICE 0000:00:1f.2',
    'BIND_DRIVER 0000:00:1f.2',
    'BOUND_DRIVER 0000:00:1f.2 [ahci]',
    'UNBIND_DRIVER 0000:00:1f.2 [ahci]',
    'UNBOUND_DRIVER 0000:00:1f.2',
    'BIND_DRIVER 0000:00:1f.2',
    'BOUND_DRIVER 0000:00:1f.2 [ahci]',
    // device_del releases the driver first
    'UNBIND_DRIVER 0000:00:1f.2 [ahci]',
    'UNBOUND_DRIVER 0000:00:1f.2',
    'DEL_DEVICE 0000:00:1f.2',
    'REMOVED_DEVICE 0000:00:1f.2',
  ]);
});

test('a bus notifier can veto a bind: EBUSY, DRIVER_NOT_BOUND, no driver set', () => {
  const bus = new BusType('pci');
  const d = new Device('0000:01:00.0', bus);
  deviceAdd(d);
  const log = record(bus);
  const veto = (e: number): number => (e === BusNotify.BIND_DRIVER ? NOTIFY_BAD : NOTIFY_DONE);
  bus.notifier.register(veto, 100);
  assert.throws(() => deviceBindDriver(d, driverByName('e1000e')), (e: unknown) => e instanceof IommuError && e.errno === 'EBUSY');
  assert.equal(d.driver, null);
  assert.deepEqual(log, ['DRIVER_NOT_BOUND 0000:01:00.0']);
});

test('errors: double add EEXIST, same name on a bus EEXIST, bind twice EBUSY, unadded ENODEV', () => {
  const bus = new BusType('pci');
  const d = new Device('0000:02:00.0', bus);
  assert.throws(() => deviceBindDriver(d, driverByName('x')), (e: unknown) => e instanceof IommuError && e.errno === 'ENODEV');
  assert.throws(() => deviceDel(d), (e: unknown) => e instanceof IommuError && e.errno === 'ENODEV');
  deviceAdd(d);
  assert.throws(() => deviceAdd(d), (e: unknown) => e instanceof IommuError && e.errno === 'EEXIST');
  assert.throws(() => deviceAdd(new Device('0000:02:00.0', bus)), (e: unknown) => e instanceof IommuError && e.errno === 'EEXIST');
  assert.equal(bus.devices.length, 1);
  deviceBindDriver(d, driverByName('nvme'));
  assert.throws(() => deviceBindDriver(d, driverByName('vfio-pci')), (e: unknown) => e instanceof IommuError && e.errno === 'EBUSY');
  assert.equal(d.driver?.name, 'nvme');
});

test('driver_managed_dma is set for the drivers Linux sets it on', () => {
  for (const n of ['pcieport', 'pci-stub', 'vfio-pci']) assert.equal(driverByName(n).driverManagedDma, true, n);
  for (const n of ['ahci', 'e1000e', 'nvme', 'snd_hda_intel']) assert.equal(driverByName(n).driverManagedDma, false, n);
});
