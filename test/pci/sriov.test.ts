import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, BUILT_ACS_CAP, BUILT_PASID_CAP, BUILT_SRIOV_CAP, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology, type PciTopology } from '../../src/pci/topology.js';
import { pciHotAdd, pciHotRemove } from '../../src/pci/hotplug.js';
import { pciDisableSriov, pciEnableSriov, pciNumVf, pciSriovGetTotalVfs } from '../../src/pci/sriov.js';
import { ConfigSpace } from '../../src/pci/config-space.js';
import type { PciBus, PciDev } from '../../src/pci/pci-dev.js';
import { BusNotify } from '../../src/device/bus.js';
import { IommuError, type ErrnoName } from '../../src/base/errno.js';
import {
  PcieType,
  PCI_ACS_SV,
  PCI_EXT_CAP_ID_ACS,
  PCI_EXT_CAP_ID_PASID,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
} from '../../src/pci/regs.js';

const rp = (sec: number, sub = sec): Uint8Array => buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: sec, subordinate: sub } });
const sriovEp = (sriov: NonNullable<FunctionSpec['sriov']>, spec: FunctionSpec = {}): Uint8Array =>
  buildConfig({ pcieType: PcieType.ENDPOINT, vendor: 0x8086, device: 0x1521, classCode: 0x020000, sriov, ...spec });

/** Root port 00:01.0 (buses 1..sub) with the PF 01:00.0; an endpoint without SR-IOV at 01:00.1. */
function withPf(sriov: NonNullable<FunctionSpec['sriov']>, sub = 3): { t: PciTopology; pf: PciDev } {
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1, sub), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: sriovEp(sriov, { multifunction: true }), origin: 'synthetic' },
    { bdf: '0000:01:00.1', config: buildConfig({ pcieType: PcieType.ENDPOINT, multifunction: true }), origin: 'synthetic' },
  ]);
  return { t, pf: t.byBdf.get('0000:01:00.0')! };
}

function record(t: PciTopology): string[] {
  const names = Object.fromEntries(Object.entries(BusNotify).map(([k, v]) => [v, k]));
  const log: string[] = [];
  t.pciBus.notifier.register((e, d) => {
    log.push(`${names[e]} ${d.name}`);
  });
  return log;
}

function allBuses(t: PciTopology): PciBus[] {
  const out: PciBus[] = [];
  const walk = (b: PciBus): void => {
    out.push(b);
    for (const c of b.children) walk(c);
  };
  for (const r of t.rootBuses) walk(r);
  return out;
}

function snapshot(t: PciTopology): unknown {
  return {
    devices: t.devices.map((d) => d.bdf),
    byBdf: [...t.byBdf.keys()],
    pciBus: t.pciBus.devices.map((d) => `${d.name}:${d.registered}`),
    buses: allBuses(t).map((b) => `${b.name}[${b.devices.map((d) => d.bdf).join(',')}] children=${b.children.map((c) => c.name).join(',')}`),
  };
}

const isErr = (errno: ErrnoName, input?: string) => (e: unknown): boolean =>
  e instanceof IommuError && e.errno === errno && (input === undefined || e.input === input);

test('config builder: the SR-IOV capability is found after ACS and PASID, and alone', () => {
  const sriov = { totalVfs: 7, firstVfOffset: 0x80, vfStride: 2, vfDevice: 0x10ed };
  const cases: [FunctionSpec, number][] = [
    [{ acs: { cap: PCI_ACS_SV, ctrl: 0 }, pasidWidth: 20 }, BUILT_SRIOV_CAP],
    [{ acs: { cap: PCI_ACS_SV, ctrl: 0 } }, BUILT_SRIOV_CAP],
    [{ pasidWidth: 20 }, BUILT_SRIOV_CAP],
    [{}, 0x100],
  ];
  for (const [extra, at] of cases) {
    const c = new ConfigSpace(buildConfig({ pcieType: PcieType.ENDPOINT, sriov, ...extra }));
    assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_SRIOV), at);
    assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_ACS), extra.acs ? BUILT_ACS_CAP : 0);
    assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_PASID), extra.pasidWidth === undefined ? 0 : extra.acs ? BUILT_PASID_CAP : 0x100);
    assert.equal(c.read16(at + PCI_SRIOV_TOTAL_VF), 7);
    assert.equal(c.read16(at + PCI_SRIOV_VF_OFFSET), 0x80);
    assert.equal(c.read16(at + PCI_SRIOV_VF_STRIDE), 2);
    assert.equal(c.read16(at + PCI_SRIOV_VF_DID), 0x10ed);
    assert.equal(c.read16(at + PCI_SRIOV_NUM_VF), 0);
    assert.deepEqual(c.problems, []);
  }
  // Without SR-IOV, the chain is as before.
  const plain = new ConfigSpace(buildConfig({ pcieType: PcieType.ENDPOINT, acs: { cap: PCI_ACS_SV, ctrl: 0 }, pasidWidth: 8 }));
  assert.equal(plain.findExtCapability(PCI_EXT_CAP_ID_SRIOV), 0);
  assert.equal(plain.findExtCapability(PCI_EXT_CAP_ID_PASID), BUILT_PASID_CAP);
  assert.throws(() => buildConfig({ sriov }), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
  assert.throws(() => buildConfig({ pcieType: 0, sriov: { ...sriov, totalVfs: 0x10000 } }), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
});

test('enable: VF RIDs from offset and stride, crossing onto a shared virtual bus; IDs, flags, events', () => {
  const { t, pf } = withPf({ totalVfs: 8, firstVfOffset: 0x80, vfStride: 0x20, vfDevice: 0x10ed });
  assert.equal(pf.sriovCap, 0x100);
  assert.equal(pciSriovGetTotalVfs(pf), 8);
  assert.equal(pciNumVf(pf), 0);
  const log = record(t);
  const numVfSeen: number[] = [];
  t.pciBus.notifier.register(() => {
    numVfSeen.push(pciNumVf(pf));
  });
  const vfs = pciEnableSriov(t, pf, 8);
  const bdfs = ['01:10.0', '01:14.0', '01:18.0', '01:1c.0', '02:00.0', '02:04.0', '02:08.0', '02:0c.0'].map((b) => `0000:${b}`);
  assert.deepEqual(vfs.map((v) => v.bdf), bdfs);
  assert.deepEqual(log, bdfs.map((b) => `ADD_DEVICE ${b}`));
  assert.deepEqual(numVfSeen, Array(8).fill(0)); // num_VFs is set after the last VF, as in sriov_enable()
  assert.deepEqual(t.devices.slice(-8), vfs);
  assert.deepEqual(t.pciBus.devices.slice(-8), vfs.map((v) => v.dev));
  for (const b of bdfs) assert.ok(t.byBdf.has(b));
  const vbus = vfs[4]!.bus;
  assert.equal(vbus.self, null);
  assert.equal(vbus.parent, pf.bus);
  assert.equal(vbus.number, 2);
  assert.deepEqual(pf.bus.children, [vbus]);
  for (const v of vfs.slice(4)) assert.equal(v.bus, vbus);
  for (const v of vfs.slice(0, 4)) assert.equal(v.bus, pf.bus);
  assert.deepEqual(vbus.devices, vfs.slice(4));
  for (const v of vfs) {
    assert.equal(v.isVirtfn, true);
    assert.equal(v.physfn, pf);
    assert.equal(v.multifunction, false);
    assert.equal(v.vendor, 0x8086);
    assert.equal(v.device, 0x10ed);
    assert.equal(v.classCode, pf.classCode);
    assert.equal(v.hdrType, 0);
    assert.equal(v.isPcie, true);
    assert.equal(v.pcieType, PcieType.ENDPOINT);
    assert.equal(v.sriovCap, 0);
    assert.equal(v.config.size, 4096);
    assert.equal(v.dev.parent, pf.dev.parent);
    assert.equal(v.dev.registered, true);
  }
  assert.notEqual(vfs[0]!.config.bytes, vfs[1]!.config.bytes);
  assert.equal(pciNumVf(pf), 8);
  assert.equal(pf.config.read16(pf.sriovCap + PCI_SRIOV_NUM_VF), 8);
  assert.equal(pf.config.read16(pf.sriovCap + PCI_SRIOV_CTRL) & 1, 1);
  // VFs are not PFs.
  assert.equal(pciSriovGetTotalVfs(vfs[0]!), 0);
  assert.equal(pciNumVf(vfs[0]!), 0);
});

test('disable: removes every VF (VF 0 first), frees the virtual bus, clears NumVFs; then a no-op', () => {
  const { t, pf } = withPf({ totalVfs: 8, firstVfOffset: 0x80, vfStride: 0x20, vfDevice: 0x10ed });
  const before = snapshot(t);
  const vfs = pciEnableSriov(t, pf, 8);
  const log = record(t);
  assert.equal(pciDisableSriov(t, pf), 8);
  const expected: string[] = [];
  for (const v of vfs) expected.push(`DEL_DEVICE ${v.bdf}`, `REMOVED_DEVICE ${v.bdf}`);
  assert.deepEqual(log, expected);
  assert.deepEqual(snapshot(t), before);
  assert.deepEqual(pf.bus.children, []);
  for (const v of vfs) assert.equal(v.dev.registered, false);
  assert.equal(pciNumVf(pf), 0);
  assert.equal(pf.config.read16(pf.sriovCap + PCI_SRIOV_NUM_VF), 0);
  assert.equal(pf.config.read16(pf.sriovCap + PCI_SRIOV_CTRL) & 1, 0);
  log.length = 0;
  assert.equal(pciDisableSriov(t, pf), 0);
  assert.equal(pciDisableSriov(t, t.byBdf.get('0000:01:00.1')!), 0); // not a PF: no-op
  assert.deepEqual(log, []);
});

test('enable, disable, enable again (with another count) works', () => {
  const { t, pf } = withPf({ totalVfs: 16, firstVfOffset: 0x10, vfStride: 1, vfDevice: 0x2 });
  const first = pciEnableSriov(t, pf, 3);
  assert.deepEqual(first.map((v) => v.bdf), ['0000:01:02.0', '0000:01:02.1', '0000:01:02.2']);
  assert.equal(pciDisableSriov(t, pf), 3);
  const second = pciEnableSriov(t, pf, 16);
  assert.equal(second.length, 16);
  assert.equal(second[0]!.bdf, '0000:01:02.0');
  assert.equal(second[15]!.bdf, '0000:01:03.7');
  assert.notEqual(second[0], first[0]);
  assert.equal(pciNumVf(pf), 16);
  assert.equal(pciDisableSriov(t, pf), 16);
  assert.equal(pciEnableSriov(t, pf, 1).length, 1);
});

test('enable errors: ENOSYS, EINVAL, ENOMEM, EEXIST, ENODEV leave everything unchanged and send nothing', () => {
  const { t, pf } = withPf({ totalVfs: 8, firstVfOffset: 0x80, vfStride: 0x20, vfDevice: 0x10ed }, 1);
  const log = record(t);
  const before = snapshot(t);
  const pfCfg = [...pf.config.bytes];
  const other = t.byBdf.get('0000:01:00.1')!;
  assert.throws(() => pciEnableSriov(t, other, 1), isErr('ENOSYS', '0000:01:00.1')); // no SR-IOV capability
  assert.throws(() => pciEnableSriov(t, pf, 9), isErr('EINVAL', '0000:01:00.0')); // > TotalVFs
  assert.throws(() => pciEnableSriov(t, pf, -1), isErr('EINVAL'));
  assert.throws(() => pciEnableSriov(t, pf, 1.5), isErr('EINVAL'));
  // VF 4 would be on bus 2, but the root port above routes only bus 1.
  assert.throws(() => pciEnableSriov(t, pf, 5), isErr('ENOMEM', '0000:01:00.0'));
  assert.deepEqual(pciEnableSriov(t, pf, 0), []); // 0: nothing to do, as Linux
  // A VF address that is taken.
  const squatter = pciHotAdd(t, '0000:01:14.0', buildConfig({ pcieType: PcieType.ENDPOINT }));
  log.length = 0;
  const withSquatter = snapshot(t);
  assert.throws(() => pciEnableSriov(t, pf, 2), isErr('EEXIST', '0000:01:00.0'));
  assert.deepEqual(snapshot(t), withSquatter);
  pciHotRemove(t, squatter);
  log.length = 0;
  assert.deepEqual(snapshot(t), before);
  assert.deepEqual([...pf.config.bytes], pfCfg);
  // Not (or no longer) a function of this topology.
  const elsewhere = withPf({ totalVfs: 1, firstVfOffset: 1, vfStride: 1, vfDevice: 1 }).pf;
  assert.throws(() => pciEnableSriov(t, elsewhere, 1), isErr('ENODEV'));
  assert.throws(() => pciDisableSriov(t, elsewhere), isErr('ENODEV'));
  assert.deepEqual(log, []);
  assert.equal(pciNumVf(pf), 0);
});

test('enable errors: a VF is not a PF (ENOSYS); VFs already enabled (EINVAL, as pci_enable_sriov())', () => {
  const { t, pf } = withPf({ totalVfs: 4, firstVfOffset: 8, vfStride: 1, vfDevice: 2 });
  const vfs = pciEnableSriov(t, pf, 2);
  const before = snapshot(t);
  assert.throws(() => pciEnableSriov(t, vfs[0]!, 1), isErr('ENOSYS', vfs[0]!.bdf));
  assert.throws(() => pciEnableSriov(t, pf, 2), isErr('EINVAL', '0000:01:00.0'));
  assert.deepEqual(snapshot(t), before);
  assert.equal(pciNumVf(pf), 2);
});

test('not a PF: SR-IOV on a root port, TotalVFs 0, First VF Offset 0 → ENOSYS and TotalVFs reads 0', () => {
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 1 }, sriov: { totalVfs: 2, firstVfOffset: 1, vfStride: 1, vfDevice: 1 } }), origin: 'synthetic' },
    { bdf: '0000:00:02.0', config: buildConfig({ pcieType: PcieType.ENDPOINT, sriov: { totalVfs: 0, firstVfOffset: 1, vfStride: 1, vfDevice: 1 } }), origin: 'synthetic' },
    { bdf: '0000:00:03.0', config: buildConfig({ pcieType: PcieType.ENDPOINT, sriov: { totalVfs: 2, firstVfOffset: 0, vfStride: 1, vfDevice: 1 } }), origin: 'synthetic' },
  ]);
  for (const b of ['0000:00:01.0', '0000:00:02.0', '0000:00:03.0']) {
    const d = t.byBdf.get(b)!;
    assert.ok(d.sriovCap > 0);
    assert.equal(pciSriovGetTotalVfs(d), 0);
    assert.throws(() => pciEnableSriov(t, d, 1), isErr('ENOSYS', b));
  }
});

test('enable: a bus notifier that throws on VF 5 undoes VFs 4..0 in reverse, frees the virtual bus, restores NumVFs', () => {
  const { t, pf } = withPf({ totalVfs: 8, firstVfOffset: 0x80, vfStride: 0x20, vfDevice: 0x10ed });
  const before = snapshot(t);
  const pfCfg = [...pf.config.bytes];
  const log = record(t);
  const boom = new Error('no');
  t.pciBus.notifier.register((e, d) => {
    if (e === BusNotify.ADD_DEVICE && d.name === '0000:02:04.0') throw boom;
  });
  assert.throws(() => pciEnableSriov(t, pf, 8), (e: unknown) => e === boom);
  assert.deepEqual(snapshot(t), before);
  assert.deepEqual([...pf.config.bytes], pfCfg);
  assert.equal(pciNumVf(pf), 0);
  const removed = log.filter((l) => l.startsWith('REMOVED')).map((l) => l.split(' ')[1]);
  assert.deepEqual(removed, ['0000:02:04.0', '0000:02:00.0', '0000:01:1c.0', '0000:01:18.0', '0000:01:14.0', '0000:01:10.0']);
});

test('VFs read from sysfs (buildPciTopology) are disabled by physfn; enable is refused while they exist', () => {
  const pfCfg = sriovEp({ totalVfs: 4, firstVfOffset: 0x10, vfStride: 1, vfDevice: 3 });
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: pfCfg, origin: 'synthetic' },
    { bdf: '0000:01:02.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic', isVirtfn: true, physfnBdf: '0000:01:00.0' },
    { bdf: '0000:01:02.1', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic', isVirtfn: true, physfnBdf: '0000:01:00.0' },
  ]);
  const pf = t.byBdf.get('0000:01:00.0')!;
  assert.throws(() => pciEnableSriov(t, pf, 1), isErr('EINVAL'));
  const log = record(t);
  assert.equal(pciDisableSriov(t, pf), 2);
  assert.deepEqual(log.filter((l) => l.startsWith('REMOVED')), ['REMOVED_DEVICE 0000:01:02.0', 'REMOVED_DEVICE 0000:01:02.1']);
  assert.deepEqual(t.devices.map((d) => d.bdf), ['0000:00:01.0', '0000:01:00.0']);
  assert.equal(pciEnableSriov(t, pf, 4).length, 4);
});

test('10,000 VFs on one PF (RIDs over 40 buses): enable and disable', () => {
  const { t, pf } = withPf({ totalVfs: 10000, firstVfOffset: 2, vfStride: 1, vfDevice: 0x10ed }, 0x40);
  const before = snapshot(t);
  const n0 = t.devices.length;
  let adds = 0;
  let removes = 0;
  t.pciBus.notifier.register((e) => {
    if (e === BusNotify.ADD_DEVICE) adds++;
    if (e === BusNotify.REMOVED_DEVICE) removes++;
  });
  const vfs = pciEnableSriov(t, pf, 10000);
  assert.equal(vfs.length, 10000);
  assert.equal(adds, 10000);
  assert.equal(t.devices.length, n0 + 10000);
  assert.equal(t.byBdf.size, n0 + 10000);
  assert.equal(t.pciBus.devices.length, n0 + 10000);
  for (const v of vfs) assert.equal(t.byBdf.get(v.bdf), v);
  assert.equal(vfs[0]!.bdf, '0000:01:00.2');
  assert.equal(vfs.at(-1)!.bdf, '0000:28:02.1'); // RID 0x100 + 2 + 9999 = 0x2811: bus 0x28, devfn 0x11
  assert.equal(pf.bus.children.length, 0x28 - 1); // virtual buses 02..28
  assert.equal(pciNumVf(pf), 10000);
  assert.equal(pciDisableSriov(t, pf), 10000);
  assert.equal(removes, 10000);
  assert.deepEqual(snapshot(t), before);
});

test('10,000 VFs over four PFs: disabling the first PF while the others stay enabled', () => {
  const specs = [0, 1, 2, 3].map((f) => ({ totalVfs: 2500, firstVfOffset: 0x100 + 0xa00 * f - f, vfStride: 1, vfDevice: 0x100 + f }));
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1, 0x30), origin: 'synthetic' },
    ...specs.map((s, f) => ({ bdf: `0000:01:00.${f}`, config: sriovEp(s, { multifunction: true }), origin: 'synthetic' as const })),
  ]);
  const before = snapshot(t);
  const pfs = [0, 1, 2, 3].map((f) => t.byBdf.get(`0000:01:00.${f}`)!);
  const all = pfs.flatMap((pf) => pciEnableSriov(t, pf, 2500));
  assert.equal(all.length, 10000);
  assert.equal(new Set(all.map((v) => v.bdf)).size, 10000);
  assert.equal(t.byBdf.size, 5 + 10000);
  for (const v of all) assert.equal(t.byBdf.get(v.bdf), v);
  let removed: string[] = [];
  t.pciBus.notifier.register((e, d) => {
    if (e === BusNotify.REMOVED_DEVICE) removed.push(d.name);
  });
  assert.equal(pciDisableSriov(t, pfs[0]!), 2500);
  assert.deepEqual(removed, all.slice(0, 2500).map((v) => v.bdf));
  assert.equal(t.devices.length, 5 + 7500);
  assert.deepEqual(t.pciBus.devices.slice(5).map((d) => d.name), all.slice(2500).map((v) => v.bdf));
  for (const v of all.slice(0, 2500)) assert.equal(t.byBdf.has(v.bdf), false);
  for (const v of all.slice(2500)) assert.equal(t.byBdf.get(v.bdf), v);
  removed = [];
  // The whole port: the remaining 7,500 VFs, the PFs and the port go.
  pciHotRemove(t, t.byBdf.get('0000:00:01.0')!);
  assert.equal(removed.length, 7500 + 4 + 1);
  assert.equal(t.devices.length, 0);
  assert.equal(t.byBdf.size, 0);
  assert.equal(t.pciBus.devices.length, 0);
  assert.deepEqual(t.rootBuses[0]!.children, []);
  assert.deepEqual((before as { devices: string[] }).devices.length, 5);
});

test('hot-removing single VFs keeps NumVFs (as Linux); the last VF of a virtual bus takes the bus; disable removes the rest', () => {
  const { t, pf } = withPf({ totalVfs: 8, firstVfOffset: 0x80, vfStride: 0x20, vfDevice: 0x10ed });
  const before = snapshot(t);
  const vfs = pciEnableSriov(t, pf, 6); // 01:10.0 01:14.0 01:18.0 01:1c.0 | 02:00.0 02:04.0
  const vbus = vfs[4]!.bus;
  pciHotRemove(t, vfs[4]!);
  assert.deepEqual(pf.bus.children, [vbus]);
  pciHotRemove(t, vfs[5]!);
  assert.deepEqual(pf.bus.children, []);
  pciHotRemove(t, vfs[0]!);
  assert.equal(pciNumVf(pf), 6);
  assert.throws(() => pciHotRemove(t, vfs[0]!), isErr('ENODEV', '0000:01:10.0'));
  assert.equal(pciDisableSriov(t, pf), 3);
  assert.equal(pciNumVf(pf), 0);
  assert.deepEqual(snapshot(t), before);
  // Every VF gone one by one: disable has none to remove but still clears NumVFs / VF Enable.
  const again = pciEnableSriov(t, pf, 2);
  for (const v of again) pciHotRemove(t, v);
  assert.equal(pciNumVf(pf), 2);
  assert.equal(pciDisableSriov(t, pf), 0);
  assert.equal(pciNumVf(pf), 0);
});
