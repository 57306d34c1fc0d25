// Several IOMMU drivers side by side: registration probes by firmware node (the 2023 seed thread), each
// device is probed by exactly its driver, and unregistering a unit releases exactly its devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { Device, deviceAdd, deviceDel } from '../../src/device/device.js';
import { IommuCore, devIommu } from '../../src/iommu/core.js';
import { devIommuFwspec, iommuFwspecAddIds, iommuFwspecInit } from '../../src/iommu/fwspec.js';
import { IommuUnit } from '../../src/iommu/iommu-unit.js';
import { createIntelIommu } from '../../src/drivers/intel-vt-d/index.js';
import { createVirtioIommu, VirtioIommuDevice } from '../../src/drivers/virtio-iommu/index.js';
import { createMockIommu } from '../../src/drivers/mock/index.js';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { PcieType } from '../../src/pci/regs.js';
import { renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { parseDmar } from '../../src/firmware/dmar.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IOMMU_READ } from '../../src/io-pgtable/io-pgtable.js';
import { header, table } from '../firmware/build.js';

/** Segment 0: a root port with an endpoint, two integrated endpoints. Segment 1 (behind virtio-iommu): two integrated endpoints. */
function topology() {
  const fns: [string, FunctionSpec][] = [
    ['0000:00:01.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 1 } }],
    ['0000:01:00.0', { pcieType: PcieType.ENDPOINT }],
    ['0000:00:02.0', { pcieType: PcieType.RC_END }],
    ['0000:00:03.0', { pcieType: PcieType.RC_END }],
    ['0001:00:01.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0001:00:02.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1042 }],
  ];
  const topo = buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  return { topo, dev: (bdf: string) => topo.byBdf.get(bdf)!.dev };
}

const VIRTIO_EPS = new Set(['0001:00:01.0', '0001:00:02.0']);
const unitOf = (d: Device): string | null => devIommu(d)?.unit.name ?? null;

function groupInvariants(core: IommuCore, all: Device[]): void {
  // Every probed device is in exactly one live group that lists it; unprobed devices are in none.
  const ids = new Set<number>();
  for (const d of all) {
    if (devIommu(d) === null) {
      assert.equal(d.iommuGroup, null, `${d.name}: a spurious group without a driver`);
      continue;
    }
    const g = core.groups.get(d)!;
    assert.ok(g.devices.some((x) => x.dev === d));
    ids.add(g.id);
    core.groups.put(g);
  }
  assert.equal([...core.groups].length, ids.size, 'no group without a member');
}

test('VT-d, virtio-iommu and the mock side by side: each device probed by exactly its driver', () => {
  const { topo, dev } = topology();
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus);
  // virtio-iommu first: its endpoints get firmware specs naming it and are probed at its registration.
  const vio = createVirtioIommu(core, new VirtioIommuDevice({ endpoints: [0x08, 0x10] }), { endpoints: VIRTIO_EPS });
  assert.deepEqual(topo.pciBus.devices.filter((d) => d.iommu).map((d) => d.name), ['0001:00:01.0', '0001:00:02.0']);
  const mock = createMockIommu(core);
  const m0 = mock.createDevice();
  // VT-d registers without a firmware node: it probes exactly the PCI devices nobody took.
  const vtd = createIntelIommu(core);
  const m1 = mock.createDevice(); // the seed's case: a mock device created after every registration
  const pci = topo.pciBus.devices;
  assert.deepEqual(
    pci.map((d) => [d.name, unitOf(d)]),
    [
      ['0000:00:01.0', 'dmar0'],
      ['0000:00:02.0', 'dmar0'],
      ['0000:00:03.0', 'dmar0'],
      ['0000:01:00.0', 'dmar0'],
      ['0001:00:01.0', 'virtio-iommu'],
      ['0001:00:02.0', 'virtio-iommu'],
    ],
  );
  assert.equal(unitOf(m0), mock.unit.name);
  assert.equal(unitOf(m1), mock.unit.name);
  assert.equal(devIommuFwspec(m1)!.iommuFwnode, mock.fwnode);
  assert.deepEqual(devIommuFwspec(dev('0001:00:02.0'))!.ids, [0x10]);
  assert.equal(devIommuFwspec(dev('0000:00:02.0')), null, 'VT-d devices have no firmware spec');
  assert.equal(core.opsForDevice(m1), mock.ops);
  assert.equal(core.opsForDevice(dev('0000:00:03.0')), vtd.ops);
  groupInvariants(core, [...pci, m0, m1]);
  // The sysfs view: one class entry per unit, each listing exactly its devices.
  const view = renderIommuSysfs(core.groups, { units: core.units });
  assert.deepEqual(view.readDir('class/iommu'), ['dmar0', 'iommufd_selftest_iommu', 'virtio-iommu'].sort());
  assert.deepEqual(view.readDir('devices/virtual/iommu/virtio-iommu/devices'), ['0001:00:01.0', '0001:00:02.0']);
  assert.equal(view.readLink('devices/pci0001:00/0001:00:01.0/iommu'), '../../virtual/iommu/virtio-iommu');
  assert.equal(view.readLink(`devices/${m1.name}/iommu`), '../virtual/iommu/iommufd_selftest_iommu');
});

test('the seed failure case: a mock device without a firmware spec is never taken by the mock nor given a group', () => {
  const { topo } = topology();
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus);
  createIntelIommu(core);
  const mock = createMockIommu(core);
  // Before the fix the mock had no node: a device on its bus resolved to the node-less ops — VT-d's — which
  // refuse it (ENODEV): no group, no mock unit. With the fix, createDevice() names the mock's node first.
  const bare = new Device('iommufd_mock_bare', mock.bus, null, mock.fwnode);
  deviceAdd(bare);
  assert.equal(core.opsForDevice(bare)!.name, 'intel-iommu');
  assert.equal(bare.iommuGroup, null);
  assert.equal(devIommu(bare), null);
  const good = mock.createDevice();
  assert.equal(unitOf(good), 'iommufd_selftest_iommu');
  // And the mock never takes a PCI device, whatever the order.
  for (const d of topo.pciBus.devices) assert.equal(unitOf(d), 'dmar0');
  assert.throws(() => mock.ops.probeDevice(topo.pciBus.devices[0]!), (e) => isIommuError(e, 'ENODEV'));
});

test('unregistering a unit releases exactly its devices; their groups go, the others stay', () => {
  const { topo, dev } = topology();
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus);
  const vio = createVirtioIommu(core, new VirtioIommuDevice({ endpoints: [0x08, 0x10] }), { endpoints: VIRTIO_EPS });
  const vtd = createIntelIommu(core);
  const mock = createMockIommu(core);
  const m = [mock.createDevice(), mock.createDevice()];
  const before = new Map([...topo.pciBus.devices, ...m].map((d) => [d, d.iommuGroup?.id ?? null]));
  core.iommuDeviceUnregister(vio.unit);
  for (const d of [dev('0001:00:01.0'), dev('0001:00:02.0')]) {
    assert.equal(devIommu(d), null);
    assert.equal(d.iommuGroup, null);
  }
  for (const d of [...topo.pciBus.devices.filter((x) => !VIRTIO_EPS.has(x.name)), ...m]) assert.equal(d.iommuGroup?.id, before.get(d), `${d.name} untouched`);
  assert.equal(vio.unit.devices.size, 0);
  assert.deepEqual(core.units.map((u) => u.name), ['dmar0', 'iommufd_selftest_iommu']);
  groupInvariants(core, [...topo.pciBus.devices, ...m]);
  // Unregistering the mock unhooks its bus: a later mock device is not probed.
  core.iommuDeviceUnregister(mock.unit);
  assert.equal(m[0]!.iommuGroup, null);
  const late = new Device('late', mock.bus, null, mock.fwnode);
  deviceAdd(late);
  assert.equal(late.iommuGroup, null);
  assert.throws(() => core.iommuDeviceUnregister(mock.unit), (e) => isIommuError(e, 'ENODEV'));
  // A released device's group id is free again; VT-d still holds its four devices.
  assert.equal(vtd.unit.devices.size, 4);
  groupInvariants(core, [...topo.pciBus.devices, ...m, late]);
  // Registering virtio-iommu's unit again probes its endpoints again (their specs are kept).
  core.iommuDeviceRegister(vio.unit);
  assert.equal(unitOf(dev('0001:00:01.0')), 'virtio-iommu');
});

test('fwspec: EPROBE_DEFER before the IOMMU registers, EINVAL for other ops, EINVAL for IDs without a spec', () => {
  const core = new IommuCore();
  const mock = createMockIommu(core);
  const d = new Device('x', mock.bus);
  assert.throws(() => iommuFwspecInit(core, d, { name: 'nobody' }), (e) => isIommuError(e, 'EPROBE_DEFER'));
  assert.throws(() => iommuFwspecAddIds(d, [1]), (e) => isIommuError(e, 'EINVAL'));
  assert.equal(devIommuFwspec(d), null, 'nothing half-made');
  iommuFwspecInit(core, d, mock.fwnode);
  iommuFwspecInit(core, d, mock.fwnode); // same ops: fine
  const other = new IommuUnit('other', { ...mock.ops, name: 'other' } as never, { fwnode: { name: 'other-node' } });
  core.iommuDeviceRegister(other);
  assert.throws(() => iommuFwspecInit(core, d, other.fwnode!), (e) => isIommuError(e, 'EINVAL'));
  iommuFwspecAddIds(d, [7, 7, 3]);
  assert.deepEqual(devIommuFwspec(d)!.ids, [7, 7, 3]);
  assert.throws(() => iommuFwspecAddIds(d, [-1]), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => core.iommuDeviceRegister(other), (e) => isIommuError(e, 'EEXIST'));
});

test('hot-removed device: released, its group freed with it, and its DMA faults at the unit', () => {
  const { topo, dev } = topology();
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus);
  const vtd = createIntelIommu(core);
  const d = dev('0000:00:03.0');
  const gid = d.iommuGroup!.id;
  const groupsBefore = [...core.groups].length;
  deviceDel(d);
  assert.equal(d.iommuGroup, null);
  assert.equal(devIommu(d), null);
  assert.equal([...core.groups].length, groupsBefore - 1);
  assert.ok(![...core.groups].some((g) => g.id === gid));
  const faults = vtd.unit.faultCount;
  assert.equal(iommuTranslateOf(core, d, 0x1000), -1);
  assert.equal(vtd.unit.faultCount, faults + 1);
  assert.equal(vtd.unit.faultLog.at(-1)!.reason, 'no-translation');
  // Added back: probed again (the bus notifier), DMA no longer faults as removed.
  deviceAdd(d);
  assert.equal(unitOf(d), 'dmar0');
  assert.ok(d.iommuGroup);
});

function iommuTranslateOf(core: IommuCore, d: Device, iova: number): number {
  return iommuTranslate(core, d, iova, IOMMU_READ);
}

test('VT-d from a DMAR (INCLUDE_PCI_ALL on segment 0) registered first: segment 1 waits for virtio-iommu, whatever the order', () => {
  const b = header('DMAR').u8(38).u8(0).raw(new Array(10).fill(0));
  b.u16(0).u16(16).u8(1).u8(0).u16(0).u64(0xfed90000n); // DRHD, INCLUDE_PCI_ALL, segment 0
  const dmar = parseDmar(table(b), 'hand-built DMAR');
  for (const order of [['vtd', 'virtio', 'mock'], ['mock', 'virtio', 'vtd'], ['virtio', 'vtd', 'mock']] as const) {
    const { topo, dev } = topology();
    const core = new IommuCore({ strict: true });
    core.watchBus(topo.pciBus);
    let mock: ReturnType<typeof createMockIommu> | null = null;
    const early: Device[] = [];
    for (const which of order) {
      if (which === 'vtd') createIntelIommu(core, { dmar });
      else if (which === 'virtio') createVirtioIommu(core, new VirtioIommuDevice({ endpoints: [0x08, 0x10] }), { endpoints: VIRTIO_EPS });
      else {
        mock = createMockIommu(core);
        early.push(mock.createDevice());
      }
    }
    const late = mock!.createDevice();
    const units = topo.pciBus.devices.map((d) => unitOf(d));
    assert.deepEqual(units, ['dmar0', 'dmar0', 'dmar0', 'dmar0', 'virtio-iommu', 'virtio-iommu'], order.join(' → '));
    assert.equal(unitOf(early[0]!), 'iommufd_selftest_iommu');
    assert.equal(unitOf(late), 'iommufd_selftest_iommu');
    assert.equal(dev('0001:00:01.0').iommuGroup === null, false);
    groupInvariants(core, [...topo.pciBus.devices, early[0]!, late]);
  }
});
