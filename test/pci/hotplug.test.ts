import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology, type PciTopology } from '../../src/pci/topology.js';
import { pciHotAdd, pciHotRemove } from '../../src/pci/hotplug.js';
import { pciEnableSriov, pciNumVf } from '../../src/pci/sriov.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { bootIommu } from '../../src/machine/boot.js';
import { BusNotify } from '../../src/device/bus.js';
import { IommuError, type ErrnoName } from '../../src/base/errno.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, PCI_SRIOV_NUM_VF } from '../../src/pci/regs.js';

const ACS = { cap: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, ctrl: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF };
const rp = (sec: number, sub = sec): Uint8Array => buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: sec, subordinate: sub }, acs: ACS });
const ep = (spec: FunctionSpec = {}): Uint8Array => buildConfig({ pcieType: PcieType.ENDPOINT, ...spec });

/** 00:01.0 → 01:00.0; 00:02.0 → (empty bus 02); 00:1f.0 on the root bus. */
function small(): PciTopology {
  return buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: ep(), origin: 'synthetic' },
    { bdf: '0000:00:02.0', config: rp(2), origin: 'synthetic' },
    { bdf: '0000:00:1f.0', config: buildConfig({ classCode: 0x060100 }), origin: 'synthetic' },
  ]);
}

/** Record the `pci` bus events as `EVENT name`. */
function record(t: PciTopology): string[] {
  const names = Object.fromEntries(Object.entries(BusNotify).map(([k, v]) => [v, k]));
  const log: string[] = [];
  t.pciBus.notifier.register((e, d) => {
    log.push(`${names[e]} ${d.name}`);
  });
  return log;
}

/** Everything hotplug may change, as plain data. */
function snapshot(t: PciTopology): unknown {
  const buses: string[] = [];
  const walk = (b: (typeof t.rootBuses)[number]): void => {
    buses.push(`${b.name}[${b.devices.map((d) => d.bdf).join(',')}] self=${b.self?.bdf ?? '-'} children=${b.children.map((c) => c.name).join(',')}`);
    for (const c of b.children) walk(c);
  };
  for (const r of t.rootBuses) walk(r);
  return {
    devices: t.devices.map((d) => d.bdf),
    byBdf: [...t.byBdf.keys()],
    pciBus: t.pciBus.devices.map((d) => `${d.name}:${d.registered}`),
    buses,
  };
}

const isErr = (errno: ErrnoName, input?: string) => (e: unknown): boolean =>
  e instanceof IommuError && e.errno === errno && (input === undefined || e.input === input);

test('hot-add below a root port: parent is the port, lists appended, ADD_DEVICE sent', () => {
  const t = small();
  const log = record(t);
  const before = t.devices.length;
  const d = pciHotAdd(t, '0000:02:00.0', ep({ device: 0xbeef }));
  assert.equal(d.bdf, '0000:02:00.0');
  assert.equal(d.device, 0xbeef);
  assert.equal(d.bus.self?.bdf, '0000:00:02.0');
  assert.equal(d.dev.parent?.name, '0000:00:02.0');
  assert.equal(d.multifunction, false);
  assert.equal(d.origin, 'synthetic');
  assert.equal(t.devices.length, before + 1);
  assert.equal(t.devices.at(-1), d);
  assert.equal(t.byBdf.get('0000:02:00.0'), d);
  assert.deepEqual(d.bus.devices, [d]);
  assert.equal(t.pciBus.devices.at(-1), d.dev);
  assert.equal(d.dev.registered, true);
  assert.deepEqual(log, ['ADD_DEVICE 0000:02:00.0']);
  // `bb:dd.f` works too, and a function > 0 is marked multifunction as the slot scan would.
  const f1 = pciHotAdd(t, '02:00.1', ep());
  assert.equal(f1.bdf, '0000:02:00.1');
  assert.equal(f1.multifunction, true);
});

test('hot-add on a root bus: parent is the host bridge device', () => {
  const t = small();
  const log = record(t);
  const d = pciHotAdd(t, '0000:00:03.0', buildConfig({ pcieType: PcieType.RC_END }), 'lspci');
  assert.equal(d.bus, t.rootBuses[0]);
  assert.equal(d.dev.parent, t.hostBridges[0]);
  assert.equal(d.dev.parent?.name, 'pci0000:00');
  assert.equal(d.origin, 'lspci');
  assert.deepEqual(log, ['ADD_DEVICE 0000:00:03.0']);
});

test('hot-add copies the config space', () => {
  const t = small();
  const cfg = ep();
  const d = pciHotAdd(t, '0000:02:00.0', cfg);
  assert.notEqual(d.config.bytes, cfg);
  assert.deepEqual([...d.config.bytes], [...cfg]);
});

test('hot-add errors: EINVAL, EEXIST, ENODEV, EBUSY leave the topology unchanged and send nothing', () => {
  const t = small();
  const log = record(t);
  const before = snapshot(t);
  assert.throws(() => pciHotAdd(t, 'zz:00.0', ep()), isErr('EINVAL', 'zz:00.0'));
  assert.throws(() => pciHotAdd(t, '0000:02:20.0', ep()), isErr('EINVAL', '0000:02:20.0')); // slot 0x20 > 31
  assert.throws(() => pciHotAdd(t, '0000:02:00.0', new Uint8Array(63)), isErr('EINVAL', '0000:02:00.0'));
  assert.throws(() => pciHotAdd(t, '0000:01:00.0', ep()), isErr('EEXIST', '0000:01:00.0'));
  assert.throws(() => pciHotAdd(t, '0000:05:00.0', ep()), isErr('ENODEV', '0000:05:00.0'));
  assert.throws(() => pciHotAdd(t, '0001:00:00.0', ep()), isErr('ENODEV', '0001:00:00.0'));
  // A bridge whose bus numbers do not fit below its bus, or reuse a bus number.
  const bridge = (sec: number, sub: number): Uint8Array =>
    buildConfig({ pcieType: PcieType.DOWNSTREAM, bridge: { primary: 2, secondary: sec, subordinate: sub } });
  assert.throws(() => pciHotAdd(t, '0000:02:00.0', bridge(3, 3)), isErr('EINVAL', '0000:02:00.0')); // 00:02.0 routes only bus 2
  assert.throws(() => pciHotAdd(t, '0000:00:05.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 0, subordinate: 0 } })), isErr('EINVAL'));
  assert.throws(() => pciHotAdd(t, '0000:00:05.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 2, subordinate: 2 } })), isErr('EBUSY'));
  assert.throws(() => pciHotAdd(t, '0000:00:05.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 9, subordinate: 8 } })), isErr('EINVAL'));
  assert.deepEqual(snapshot(t), before);
  assert.deepEqual(log, []);
});

test('hot-add: a bus notifier that throws on ADD_DEVICE is undone (REMOVED_DEVICE sent), nothing left behind', () => {
  const t = small();
  const log = record(t);
  const before = snapshot(t);
  const boom = new Error('probe exploded');
  t.pciBus.notifier.register((e, d) => {
    if (e === BusNotify.ADD_DEVICE && d.name === '0000:02:00.0') throw boom;
  });
  assert.throws(() => pciHotAdd(t, '0000:02:00.0', ep()), (e: unknown) => e === boom);
  assert.deepEqual(snapshot(t), before);
  assert.deepEqual(log, ['ADD_DEVICE 0000:02:00.0', 'DEL_DEVICE 0000:02:00.0', 'REMOVED_DEVICE 0000:02:00.0']);
  // The address is free again.
  pciHotAdd(t, '0000:02:00.1', ep());
  assert.ok(t.byBdf.has('0000:02:00.1'));
});

test('a hot-added bridge gets an empty secondary bus that later hot-adds go below; removing it removes the subtree children first', () => {
  const t = small();
  const log = record(t);
  const before = snapshot(t);
  const port = pciHotAdd(t, '0000:00:03.0', rp(3, 5));
  assert.equal(port.subordinate?.number, 3);
  assert.equal(port.subordinate?.self, port);
  assert.deepEqual(port.subordinate?.devices, []);
  assert.ok(t.rootBuses[0]!.children.includes(port.subordinate!));
  const up = pciHotAdd(t, '0000:03:00.0', buildConfig({ pcieType: PcieType.UPSTREAM, multifunction: true, bridge: { primary: 3, secondary: 4, subordinate: 5 } }));
  const other = pciHotAdd(t, '0000:03:00.1', ep({ multifunction: true }));
  const down = pciHotAdd(t, '0000:04:00.0', buildConfig({ pcieType: PcieType.DOWNSTREAM, bridge: { primary: 4, secondary: 5, subordinate: 5 } }));
  const e0 = pciHotAdd(t, '0000:05:00.0', ep({ multifunction: true }));
  const e1 = pciHotAdd(t, '0000:05:00.1', ep({ multifunction: true }));
  assert.equal(e0.dev.parent, down.dev);
  assert.equal(down.dev.parent, up.dev);
  assert.equal(up.dev.parent, port.dev);
  assert.equal(other.bus, up.bus);
  log.length = 0;

  pciHotRemove(t, port);
  const removed = log.filter((l) => l.startsWith('REMOVED_DEVICE')).map((l) => l.split(' ')[1]);
  assert.deepEqual(removed, ['0000:03:00.1', '0000:05:00.1', '0000:05:00.0', '0000:04:00.0', '0000:03:00.0', '0000:00:03.0']);
  // Each function: DEL_DEVICE then REMOVED_DEVICE, before the next one.
  for (let i = 0; i < log.length; i += 2) {
    assert.equal(log[i]!.replace('DEL_DEVICE', 'X'), log[i + 1]!.replace('REMOVED_DEVICE', 'X'));
  }
  assert.equal(port.subordinate, null);
  assert.equal(up.subordinate, null);
  for (const d of [port, up, other, down, e0, e1]) assert.equal(d.dev.registered, false);
  assert.deepEqual(snapshot(t), before);
});

test('hot-remove of a leaf, then again: ENODEV; removing a function of another topology: ENODEV', () => {
  const t = small();
  const log = record(t);
  const d = t.byBdf.get('0000:01:00.0')!;
  pciHotRemove(t, d);
  assert.deepEqual(log, ['DEL_DEVICE 0000:01:00.0', 'REMOVED_DEVICE 0000:01:00.0']);
  assert.equal(t.byBdf.has('0000:01:00.0'), false);
  assert.deepEqual(t.byBdf.get('0000:00:01.0')!.subordinate?.devices, []);
  assert.equal(t.pciBus.devices.includes(d.dev), false);
  assert.throws(() => pciHotRemove(t, d), isErr('ENODEV', '0000:01:00.0'));
  const other = small();
  assert.throws(() => pciHotRemove(t, other.byBdf.get('0000:00:1f.0')!), isErr('ENODEV'));
  // Re-adding at the same address works.
  pciHotAdd(t, '0000:01:00.0', ep());
  assert.ok(t.byBdf.get('0000:01:00.0')!.dev.registered);
});

test('hot-removing a PF with VFs removes its VFs first (VF 0 first), then the PF', () => {
  const t = small();
  const pf = pciHotAdd(t, '0000:02:00.0', ep({ sriov: { totalVfs: 4, firstVfOffset: 1, vfStride: 1, vfDevice: 0x1234 } }));
  pciEnableSriov(t, pf, 3);
  const log = record(t);
  pciHotRemove(t, pf);
  assert.deepEqual(log.filter((l) => l.startsWith('REMOVED')), [
    'REMOVED_DEVICE 0000:02:00.1',
    'REMOVED_DEVICE 0000:02:00.2',
    'REMOVED_DEVICE 0000:02:00.3',
    'REMOVED_DEVICE 0000:02:00.0',
  ]);
  assert.equal(pf.config.read16(pf.sriovCap + PCI_SRIOV_NUM_VF), 0);
  assert.equal(pciNumVf(pf), 0);
  assert.deepEqual(t.byBdf.get('0000:00:02.0')!.subordinate?.devices, []);
});

test('hot-removing the root port above a PF with VFs on a virtual bus removes everything and the virtual bus', () => {
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1, 3), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: ep({ multifunction: true, sriov: { totalVfs: 4, firstVfOffset: 0xfe, vfStride: 1, vfDevice: 2 } }), origin: 'synthetic' },
    { bdf: '0000:01:00.1', config: ep({ multifunction: true }), origin: 'synthetic' },
  ]);
  const before = snapshot(t);
  const port = t.byBdf.get('0000:00:01.0')!;
  pciEnableSriov(t, t.byBdf.get('0000:01:00.0')!, 4); // RIDs 01:1f.6, 01:1f.7, 02:00.0, 02:00.1
  const bus1 = port.subordinate!;
  assert.equal(bus1.children.length, 1);
  const log = record(t);
  pciHotRemove(t, port);
  assert.deepEqual(log.filter((l) => l.startsWith('REMOVED')).map((l) => l.split(' ')[1]), [
    '0000:01:00.1',
    '0000:01:1f.6',
    '0000:01:1f.7',
    '0000:02:00.0',
    '0000:02:00.1',
    '0000:01:00.0',
    '0000:00:01.0',
  ]);
  assert.equal(bus1.children.length, 0);
  const after = snapshot(t) as { devices: string[] };
  assert.deepEqual(after.devices, (before as { devices: string[] }).devices.filter((b) => !b.startsWith('0000:01:') && b !== '0000:00:01.0'));
  assert.equal(t.rootBuses[0]!.children.includes(bus1), false);
});

test('with a booted IOMMU: a hot-added function is probed into a group, a hot-removed one released', () => {
  const t = small();
  const m = machineFromTopology(t);
  bootIommu(m, { cmdline: 'intel_iommu=on', driver: 'intel' });
  const d = pciHotAdd(t, '0000:02:00.0', ep());
  assert.notEqual(d.dev.iommuGroup, null);
  const pf = pciHotAdd(t, '0000:00:04.0', buildConfig({ pcieType: PcieType.RC_END, sriov: { totalVfs: 2, firstVfOffset: 8, vfStride: 8, vfDevice: 9 } }));
  const vfs = pciEnableSriov(t, pf, 2);
  for (const vf of vfs) assert.notEqual(vf.dev.iommuGroup, null);
  pciHotRemove(t, d);
  assert.equal(d.dev.iommuGroup, null);
  pciHotRemove(t, pf);
  for (const vf of [pf, ...vfs]) assert.equal(vf.dev.iommuGroup, null);
});
