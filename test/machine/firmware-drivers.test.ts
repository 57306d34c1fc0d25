// The VT-d and AMD-Vi drivers built from the ACPI DMAR / IVRS tables, against the real kernel: every
// oracle snapshot with a table is booted from it, and each function's unit and each group's
// reserved_regions must be the kernel's; then hand-built tables for what QEMU does not exercise
// (several DRHDs, RMRRs, functions outside every unit, IVRS aliases, IVMD unity maps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { IommuError } from '../../src/base/errno.js';
import { bootIommu } from '../../src/machine/boot.js';
import { firmwareIommuUnits, firmwareResvRegions } from '../../src/machine/firmware-units.js';
import { machineFromSysfs, machineFromTopology, type Machine } from '../../src/machine/machine.js';
import { devIommu } from '../../src/iommu/core.js';
import { iommuGroupClaimDmaOwner } from '../../src/iommu/dma-owner.js';
import { renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { IommuResvType } from '../../src/iommu/resv-region.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { PcieType } from '../../src/pci/regs.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';
import { groupsJson } from './helpers.js';
import { header, table, type Bytes } from '../firmware/build.js';

let differential = 0;
for (const c of fixtureCases('oracle')) {
  const src = openSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`);
  const reading = readPciSysfs(src);
  if (!reading.kernelGroups || !(reading.acpiTables['DMAR'] || reading.acpiTables['IVRS'])) continue;
  differential++;
  const meta = JSON.parse(readFileSync(`${FIXTURES}oracle/${c}/meta.json`, 'utf8')) as { kernel_cmdline: string };
  test(`${c}: booted from its ${reading.acpiTables['DMAR'] ? 'DMAR' : 'IVRS'} table, every unit and reserved_regions file is the kernel's`, async () => {
    const machine = machineFromSysfs(reading);
    const booted = bootIommu(machine, { cmdline: meta.kernel_cmdline });
    assert.deepEqual(booted.units.map((u) => u.name), reading.acpiTables['DMAR'] ? ['dmar0'] : ['ivhd0']);
    // (a) each function's unit is the kernel's `iommu` link (none: no group either).
    for (const f of reading.functions) {
      const pdev = machine.topology.byBdf.get(f.bdf)!;
      assert.equal(devIommu(pdev.dev)?.unit.name ?? null, f.iommu, `unit of ${f.bdf}`);
      assert.equal(pdev.dev.iommuGroup !== null, f.iommu !== null, `${f.bdf} grouped iff it has a unit`);
    }
    // (b) each group's reserved_regions, rendered as sysfs does, is the kernel's file for the same members.
    const view = renderIommuSysfs(booted.core.groups);
    const kernelByMembers = new Map(reading.kernelGroups!.map((g) => [[...g.devices].sort().join(' '), g]));
    for (const g of booted.core.groups) {
      const members = g.devices.map((d) => d.dev.name).sort().join(' ');
      const k = kernelByMembers.get(members);
      assert.ok(k, `model group {${members}} is a kernel group`);
      assert.equal(view.readFile(`kernel/iommu_groups/${g.id}/reserved_regions`), (k.reservedRegions ?? '') + '\n', `reserved_regions of {${members}}`);
    }
    // The groups JSON: the kernel's lines, and with --predict the model's equal them group by group.
    const path = `${FIXTURES}oracle/${c}/sys.tar.gz`;
    const kernelJson = await groupsJson(['groups', '--sysfs', path, '--json']);
    const predicted = await groupsJson(['groups', '--sysfs', path, '--predict', '--json']);
    const predictedByMembers = new Map(predicted.groups.map((g) => [g.devices.map((d) => d.bdf).sort().join(' '), g]));
    for (const g of kernelJson.groups) {
      const k = reading.kernelGroups!.find((x) => x.id === g.id)!;
      assert.deepEqual(g.reservedRegions, (k.reservedRegions ?? '').split('\n').filter((l) => l !== ''));
      const p = predictedByMembers.get(g.devices.map((d) => d.bdf).sort().join(' '));
      assert.ok(p, `predicted group for kernel group ${g.id}`);
      assert.deepEqual(p.reservedRegions, g.reservedRegions, `model reservedRegions of group ${g.id}`);
      for (const d of g.devices) assert.ok(d.reservedRegions && d.reservedRegions.some((r) => r.type === 'msi'), `${d.bdf} regions known`);
    }
  });
}

test('the differential test covers every oracle snapshot with a DMAR or IVRS table', () => {
  assert.ok(differential >= 30, `${differential} snapshots`);
});

// ---- hand-built VT-d ------------------------------------------------------------------------------

/** DMAR header (host address width 39, flags 0). */
const dmarHeader = (): Bytes => header('DMAR').u8(38).u8(0).raw(new Array(10).fill(0));
/** A DRHD with `scopes` (raw bytes). */
const drhd = (b: Bytes, includeAll: boolean, base: bigint, scopes: number[]): Bytes =>
  b.u16(0).u16(16 + scopes.length).u8(includeAll ? 1 : 0).u8(0).u16(0).u64(base).raw(scopes);
/** A PCI device scope: type 1 endpoint / 2 bridge, start bus, path of [device, function]. */
const scope = (type: 1 | 2, startBus: number, path: [number, number][]): number[] => [type, 6 + 2 * path.length, 0, 0, 0, startBus, ...path.flat()];

function intelMachine(dmar: Uint8Array): Machine {
  const topology = buildPciTopology([
    { bdf: '0000:00:02.0', config: buildConfig({ pcieType: PcieType.RC_END, classCode: 0x030000 }), origin: 'synthetic' },
    { bdf: '0000:00:1c.0', config: buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 3, subordinate: 3 } }), origin: 'synthetic' },
    { bdf: '0000:03:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT, classCode: 0x010802 }), origin: 'synthetic' },
    { bdf: '0000:00:1d.0', config: buildConfig({ pcieType: PcieType.RC_END, classCode: 0x0c0320 }), origin: 'synthetic' },
  ]);
  return { ...machineFromTopology(topology, { iommuKind: 'intel' }), acpiTables: { DMAR: dmar } };
}

test('VT-d from DMAR: two DRHDs (one INCLUDE_PCI_ALL), explicit unit registered first, an RMRR makes 03:00.0 require a 1:1 mapping', () => {
  const b = dmarHeader();
  drhd(b, true, 0xfed90000n, []); // dmar0: everything else
  drhd(b, false, 0xfed91000n, scope(2, 0, [[0x1c, 0]])); // dmar1: the root port's sub-hierarchy
  // RMRR [0x7c000000, 0x7c0fffff] for 03:00.0 (below 00:1c.0), and one for the USB controller 00:1d.0.
  const rmrr = (base: bigint, limit: bigint, sc: number[]): void => void b.u16(1).u16(24 + sc.length).u16(0).u16(0).u64(base).u64(limit).raw(sc);
  rmrr(0x7c000000n, 0x7c0fffffn, scope(1, 0, [[0x1c, 0], [0, 0]]));
  rmrr(0x7d000000n, 0x7d00ffffn, scope(1, 0, [[0x1d, 0]]));
  const machine = intelMachine(table(b));
  const booted = bootIommu(machine);
  assert.deepEqual(booted.units.map((u) => u.name), ['dmar0', 'dmar1']);
  assert.equal(booted.unit.name, 'dmar0');
  // Linux registers the explicit unit first: its functions are probed (and numbered) first.
  assert.deepEqual(booted.core.units.map((u) => u.name), ['dmar1', 'dmar0']);
  const unit = (bdf: string): string | undefined => devIommu(machine.topology.byBdf.get(bdf)!.dev)?.unit.name;
  assert.equal(unit('0000:00:1c.0'), 'dmar1');
  assert.equal(unit('0000:03:00.0'), 'dmar1');
  assert.equal(unit('0000:00:02.0'), 'dmar0');
  assert.equal(unit('0000:00:1d.0'), 'dmar0');
  const firstGroup = [...booted.core.groups].find((g) => g.id === 0)!;
  assert.ok(firstGroup.devices.some((d) => d.dev.name === '0000:00:1c.0'), 'group 0 is the explicit unit\'s');
  // The firmware-units prediction is the same matching.
  const fw = firmwareIommuUnits(intelMachine(table(b)))!;
  for (const d of machine.topology.devices) assert.equal(fw.units.get(d.bdf), unit(d.bdf));
  // The RMRR: direct for the NVMe function, relaxable for the USB controller.
  const nvme = devIommu(machine.topology.byBdf.get('0000:03:00.0')!.dev)!;
  assert.equal(nvme.requireDirect, true);
  assert.deepEqual(nvme.resvRegions.filter((r) => r.type === IommuResvType.DIRECT).map((r) => [r.start, r.length]), [[0x7c000000, 0x100000]]);
  const usb = devIommu(machine.topology.byBdf.get('0000:00:1d.0')!.dev)!;
  assert.equal(usb.requireDirect, false);
  assert.deepEqual(usb.resvRegions.filter((r) => r.type === IommuResvType.DIRECT_RELAXABLE).map((r) => [r.start, r.length]), [[0x7d000000, 0x10000]]);
  assert.equal(devIommu(machine.topology.byBdf.get('0000:00:02.0')!.dev)!.requireDirect, false);
  // A group with a direct region cannot be claimed for VFIO (it would have to be blocked).
  const g = booted.core.groups.get(machine.topology.byBdf.get('0000:03:00.0')!.dev)!;
  assert.throws(() => iommuGroupClaimDmaOwner(booted.core, g, {}), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL' && /1:1/.test(e.message));
  booted.core.groups.put(g);
  const text = renderIommuSysfs(booted.core.groups).readFile(`kernel/iommu_groups/${g.id}/reserved_regions`);
  assert.match(text, /^0x000000007c000000 0x000000007c0fffff direct$/m);
  // The predicted regions (no boot) are the driver's.
  const resv = firmwareResvRegions(intelMachine(table(b)))!;
  assert.deepEqual(resv.get('0000:03:00.0'), nvme.resvRegions);
});

test('VT-d from DMAR: a function no DRHD covers gets no unit and no group; hot-added functions are matched on probe', () => {
  const b = dmarHeader();
  drhd(b, false, 0xfed91000n, scope(2, 0, [[0x1c, 0]])); // only the root port's sub-hierarchy
  const machine = intelMachine(table(b));
  const booted = bootIommu(machine);
  const gpu = machine.topology.byBdf.get('0000:00:02.0')!;
  assert.equal(gpu.dev.iommu, null);
  assert.equal(gpu.dev.iommuGroup, null);
  assert.equal(booted.core.probeErrors.size, 0);
  assert.equal(devIommu(machine.topology.byBdf.get('0000:03:00.0')!.dev)!.unit.name, 'dmar0');
  assert.equal(firmwareIommuUnits(intelMachine(table(b)))!.units.get('0000:00:02.0'), null);
  assert.equal(firmwareResvRegions(intelMachine(table(b)))!.get('0000:00:02.0'), null);
});

test('VT-d: a DMAR table without DRHD is ENODEV before anything is probed; a malformed one EINVAL', () => {
  const m = intelMachine(table(dmarHeader()));
  assert.throws(() => bootIommu(m), (e: unknown) => e instanceof IommuError && e.errno === 'ENODEV');
  assert.equal(m.topology.devices.every((d) => d.dev.iommu === null), true);
  const bad = table(dmarHeader().u16(0).u16(40).u8(0));
  assert.throws(() => bootIommu(intelMachine(bad)), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
});

// ---- hand-built AMD-Vi ----------------------------------------------------------------------------

function amdMachine(entries: number[], ivmds: (b: Bytes) => void = () => {}): Machine {
  const b = header('IVRS').u32(0x2800).raw(new Array(8).fill(0));
  // IVHD type 0x10 for the IOMMU at 00:00.2.
  b.u8(0x10).u8(0xb0).u16(24 + entries.length).u16(0x0002).u16(0x40).u64(0xfeb80000n).u16(0).u16(0).u32(0).raw(entries);
  ivmds(b);
  const topology = buildPciTopology([
    { bdf: '0000:00:00.2', config: buildConfig({ vendor: 0x1022, device: 0x1481, classCode: 0x080600, pcieType: PcieType.RC_END }), origin: 'synthetic' },
    { bdf: '0000:00:02.0', config: buildConfig({ pcieType: PcieType.RC_END }), origin: 'synthetic' },
    { bdf: '0000:00:03.0', config: buildConfig({ pcieType: PcieType.RC_END }), origin: 'synthetic' },
    { bdf: '0000:00:04.0', config: buildConfig({ pcieType: PcieType.RC_END }), origin: 'synthetic' },
  ]);
  return { ...machineFromTopology(topology, { iommuKind: 'amd', acpiIvrsPresent: true }), acpiTables: { IVRS: table(b) } };
}
const SELECT = (devid: number): number[] => [0x02, devid & 0xff, devid >> 8, 0];
const ALIAS_RANGE = (from: number, to: number, alias: number): number[] => [0x43, from & 0xff, from >> 8, 0, 0, alias & 0xff, alias >> 8, 0, 0x04, to & 0xff, to >> 8, 0];

test('AMD-Vi from IVRS: an ALIAS_RANGE on the same bus merges two otherwise isolated functions into one group', () => {
  const plain = amdMachine([...SELECT(0x0002), ...SELECT(0x0010), ...SELECT(0x0018)]);
  bootIommu(plain, { driver: 'amd' });
  const g = (m: Machine, bdf: string): number | undefined => m.topology.byBdf.get(bdf)!.dev.iommuGroup?.id;
  assert.notEqual(g(plain, '0000:00:02.0'), g(plain, '0000:00:03.0'));
  const aliased = amdMachine([...SELECT(0x0002), ...SELECT(0x0010), ...ALIAS_RANGE(0x0018, 0x0018, 0x0010)]);
  const booted = bootIommu(aliased, { driver: 'amd' });
  assert.equal(g(aliased, '0000:00:02.0'), g(aliased, '0000:00:03.0'));
  assert.equal(aliased.topology.byBdf.get('0000:00:03.0')!.hasDmaAlias(0x10), true);
  // The IOMMU's own function and a function no IVHD entry covers: no group.
  assert.equal(aliased.topology.byBdf.get('0000:00:00.2')!.dev.iommuGroup, null);
  assert.equal(aliased.topology.byBdf.get('0000:00:04.0')!.dev.iommuGroup, null);
  assert.deepEqual(booted.units.map((u) => u.name), ['ivhd0']);
  assert.equal(booted.unit.hwdev, aliased.topology.byBdf.get('0000:00:00.2')!.dev);
  const fw = firmwareIommuUnits(amdMachine([...SELECT(0x0002), ...SELECT(0x0010), ...ALIAS_RANGE(0x0018, 0x0018, 0x0010)]))!;
  assert.deepEqual(['0000:00:00.2', '0000:00:02.0', '0000:00:03.0', '0000:00:04.0'].map((b) => fw.units.get(b)), [null, 'ivhd0', 'ivhd0', null]);
});

test('AMD-Vi from IVRS: an IVMD unity map is a direct region (page-aligned, R/W) of exactly the function it names', () => {
  const ivmd = (b: Bytes): void => {
    // IVMD select 00:02.0, unity + read + write, [0x9d000000, +0x1800) → aligned to 0x2000.
    b.u8(0x21).u8(0x07).u16(32).u16(0x0010).u16(0).u16(0).raw(new Array(6).fill(0)).u64(0x9d000000n).u64(0x1800n);
  };
  const m = amdMachine([...SELECT(0x0002), ...SELECT(0x0010), ...SELECT(0x0018)], ivmd);
  const booted = bootIommu(m, { driver: 'amd' });
  const di = devIommu(m.topology.byBdf.get('0000:00:02.0')!.dev)!;
  assert.equal(di.requireDirect, true);
  const direct = di.resvRegions.filter((r) => r.type === IommuResvType.DIRECT);
  assert.deepEqual(direct.map((r) => [r.start, r.length, r.prot]), [[0x9d000000, 0x2000, 3]]);
  assert.equal(devIommu(m.topology.byBdf.get('0000:00:03.0')!.dev)!.requireDirect, false);
  const g = booted.core.groups.get(m.topology.byBdf.get('0000:00:02.0')!.dev)!;
  assert.equal(
    renderIommuSysfs(booted.core.groups).readFile(`kernel/iommu_groups/${g.id}/reserved_regions`),
    '0x000000009d000000 0x000000009d001fff direct\n0x00000000fee00000 0x00000000feefffff msi\n0x000000fd00000000 0x000000ffffffffff reserved\n',
  );
  booted.core.groups.put(g);
  assert.throws(() => iommuGroupClaimDmaOwner(booted.core, booted.core.groups.get(m.topology.byBdf.get('0000:00:02.0')!.dev)!, {}), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
});
