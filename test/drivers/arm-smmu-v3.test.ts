// Arm SMMUv3: one unit per IORT SMMUv3 node, masters from their firmware specs (IORT ID mappings,
// DMA aliases), stream-ID range and aliasing rules, release, coexistence with a null-fwnode unit, DMA.
// IORT tables are built byte by byte after Arm DEN 0049 (IORT spec) §3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { BusType } from '../../src/device/bus.js';
import { Device, deviceAdd } from '../../src/device/device.js';
import { parseIort, type Iort } from '../../src/firmware/iort.js';
import { IommuCore } from '../../src/iommu/core.js';
import { devIommuFwspec, IOMMU_FWSPEC_PCI_RC_ATS } from '../../src/iommu/fwspec.js';
import { iommuAttachDevice, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuMap } from '../../src/iommu/domain.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IommuResvType } from '../../src/iommu/resv-region.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology, type PciTopology } from '../../src/pci/topology.js';
import { PcieType } from '../../src/pci/regs.js';
import { createIntelIommu } from '../../src/drivers/intel-vt-d/index.js';
import { createArmSmmuV3, MSI_IOVA_BASE, SID_OUT_OF_RANGE_ERRNO } from '../../src/drivers/arm-smmu-v3/index.js';
import { createArmSmmuV3FromIort, iortFirmwareConfig, iortSmmuV3Name } from '../../src/drivers/arm-smmu-v3/iort-config.js';
import { Bytes, header, table } from '../firmware/build.js';
import { bootSmall } from '../iommu/helpers.js';
import { bootIommu } from '../../src/machine/boot.js';
import { machineFromTopology } from '../../src/machine/machine.js';

// ---------------------------------------------------------------- IORT, byte by byte

/** An ID mapping (IORT spec §3.4, Table 4): input base, number of IDs − 1, output base, output node, flags. */
interface Map20 {
  readonly input: number;
  readonly count: number;
  readonly output: number;
  readonly to: string;
  readonly single?: boolean;
}

type NodeSpec =
  | { readonly kind: 'its'; readonly name: string }
  | { readonly kind: 'smmu3'; readonly name: string; readonly base: bigint; readonly maps: readonly Map20[] }
  | { readonly kind: 'rc'; readonly name: string; readonly segment: number; readonly ats: number; readonly maps: readonly Map20[] }
  | { readonly kind: 'nc'; readonly name: string; readonly path: string; readonly maps: readonly Map20[] };

/** Byte length of a node's fixed part (before its ID mappings); a named component's includes its padded name. */
function fixedLen(n: NodeSpec): number {
  switch (n.kind) {
    case 'its':
      return 24; // §3.2: header 16, ITS count 4, one ITS identifier 4
    case 'smmu3':
      return 68; // §3.1.7 (Table 14): header 16, base 8, flags 4, reserved 4, VATOS 8, model 4, 4 GSIVs 16, PXM 4, DeviceID mapping index 4
    case 'rc':
      return 36; // §3.1.4 (Table 17): header 16, memory access properties 8, ATS attribute 4, segment 4, memory size limit 1, reserved 3
    case 'nc':
      return (29 + n.path.length + 1 + 3) & ~3; // §3.1.3 (Table 15): header 16, flags 4, memory access 8, size limit 1, name, padded to 4
  }
}

/** The IORT of `nodes`; also the byte offset of each node by name. */
function buildIort(nodes: readonly NodeSpec[]): { bytes: Uint8Array; at: Map<string, number> } {
  const at = new Map<string, number>();
  let off = 48; // ACPI header 36 + node count 4 + node array offset 4 + reserved 4
  for (const n of nodes) {
    at.set(n.name, off);
    off += fixedLen(n) + ('maps' in n ? n.maps.length * 20 : 0);
  }
  const b = header('IORT').u32(nodes.length).u32(48).u32(0);
  const ref = (name: string): number => {
    const o = at.get(name);
    if (o === undefined) throw new Error(`no node ${name}`);
    return o;
  };
  for (const n of nodes) {
    const maps = 'maps' in n ? n.maps : [];
    const fixed = fixedLen(n);
    const start = b.length;
    const type = { its: 0, nc: 1, rc: 2, smmu3: 4 }[n.kind];
    const revision = { its: 1, nc: 4, rc: 4, smmu3: 4 }[n.kind];
    // Node header (§3.1, Table 3): type, length, revision, identifier, mapping count, mapping offset.
    b.u8(type).u16(fixed + maps.length * 20).u8(revision).u32(at.get(n.name)!).u32(maps.length).u32(maps.length ? fixed : 0);
    switch (n.kind) {
      case 'its':
        b.u32(1).u32(0);
        break;
      case 'smmu3':
        // Base, flags (COHACC override), reserved, VATOS, model (generic), event/PRI/GERR/sync GSIVs (0: MSIs), PXM, DeviceID mapping index.
        b.u64(n.base).u32(1).u32(0).u64(0n).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0);
        break;
      case 'rc':
        b.u64(1n).u32(n.ats).u32(n.segment).u8(48).raw([0, 0, 0]);
        break;
      case 'nc':
        b.u32(0).u64(1n).u8(48);
        for (const c of n.path) b.u8(c.charCodeAt(0));
        while (b.length - start < fixed) b.u8(0); // NUL terminator and padding
        break;
    }
    assert.equal(b.length - start, fixed);
    for (const m of maps) b.u32(m.input).u32(m.count).u32(m.output).u32(ref(m.to)).u32(m.single ? 1 : 0);
  }
  return { bytes: table(b), at };
}

/**
 * Two SMMUv3s (A, B), an ITS group, two root complexes and named components:
 * - RC segment 0 (ATS): bus 0 → A, SID = RID + 0x1000; bus 1 → B, SID = RID − 0x100 + 0x20;
 *   bus 2 → the ITS group only; buses 3–4 → A, SID = RID − 0x300 + 0x4000; RID 0x600 → the ITS only,
 *   0x601–0x6ff → A, SID = RID − 0x601 + 0x5000.
 * - RC segment 1: RIDs 0–0x7fff → B, SID = RID + 0x8000.
 * - `\_SB_.ETH0` → A, SID 0x7000 (single mapping); `\_SB_.DMA0` → the ITS only; `\_SB_.BIG0` → A, SID 0x12345.
 */
function twoSmmuIort(): { iort: Iort; at: Map<string, number> } {
  const { bytes, at } = buildIort([
    { kind: 'its', name: 'its' },
    { kind: 'smmu3', name: 'A', base: 0x2b400000n, maps: [{ input: 0, count: 0xffff, output: 0, to: 'its' }] },
    { kind: 'smmu3', name: 'B', base: 0x2b500000n, maps: [{ input: 0, count: 0xffff, output: 0x10000, to: 'its' }] },
    {
      kind: 'rc',
      name: 'rc0',
      segment: 0,
      ats: 1,
      maps: [
        { input: 0x000, count: 0xff, output: 0x1000, to: 'A' },
        { input: 0x100, count: 0xff, output: 0x20, to: 'B' },
        { input: 0x200, count: 0xff, output: 0x200, to: 'its' },
        { input: 0x300, count: 0x1ff, output: 0x4000, to: 'A' },
        { input: 0x600, count: 0, output: 0x600, to: 'its' },
        { input: 0x601, count: 0xfe, output: 0x5000, to: 'A' },
      ],
    },
    { kind: 'rc', name: 'rc1', segment: 1, ats: 0, maps: [{ input: 0, count: 0x7fff, output: 0x8000, to: 'B' }] },
    { kind: 'nc', name: 'eth0', path: '\\_SB_.ETH0', maps: [{ input: 0, count: 0, output: 0x7000, to: 'A', single: true }] },
    { kind: 'nc', name: 'dma0', path: '\\_SB_.DMA0', maps: [{ input: 0, count: 0, output: 0x55, to: 'its', single: true }] },
    { kind: 'nc', name: 'big0', path: '\\_SB_.BIG0', maps: [{ input: 0, count: 0, output: 0x12345, to: 'A', single: true }] },
  ]);
  return { iort: parseIort(bytes, 'two-smmu IORT'), at };
}

// ---------------------------------------------------------------- machine

const BR = (primary: number, secondary: number, subordinate = secondary) => ({ primary, secondary, subordinate });

/** Segment 0: root ports 00:01.0 → 01:00.0, 00:02.0 → 02:00.0, 00:03.0 → PCIe-to-PCI bridge 03:00.0 → 04:01.0, 04:02.0. Segment 1: 0001:00:01.0, 0001:00:02.0. */
const MAIN_FNS: [string, FunctionSpec][] = [
  ['0000:00:01.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 1) }],
  ['0000:01:00.0', { pcieType: PcieType.ENDPOINT }],
  ['0000:00:02.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 2) }],
  ['0000:02:00.0', { pcieType: PcieType.ENDPOINT }],
  ['0000:00:03.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 3, 4) }],
  ['0000:03:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: BR(3, 4) }],
  ['0000:04:01.0', {}],
  ['0000:04:02.0', {}],
  ['0001:00:01.0', { pcieType: PcieType.RC_END }],
  ['0001:00:02.0', { pcieType: PcieType.RC_END }],
];

interface Machine {
  readonly core: IommuCore;
  readonly topo: PciTopology;
  readonly platform: BusType;
  readonly dev: (name: string) => Device;
}

/** A core watching the PCI bus of `fns` and a platform bus with devices whose ACPI companions are `paths`. */
function machine(fns: [string, FunctionSpec][] = MAIN_FNS, paths: readonly string[] = ['\\_SB_.ETH0', '\\_SB_.DMA0']): Machine {
  const topo = buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  const platform = new BusType('platform');
  for (const p of paths) deviceAdd(new Device(p.slice(6).toLowerCase(), platform, null, { name: p }));
  const core = new IommuCore();
  core.watchBus(topo.pciBus);
  core.watchBus(platform);
  const dev = (name: string): Device => topo.byBdf.get(name)?.dev ?? platform.devices.find((d) => d.name === name) ?? assert.fail(`no device ${name}`);
  return { core, topo, platform, dev };
}

const specOf = (d: Device) => {
  const s = devIommuFwspec(d);
  return s ? { fwnode: s.iommuFwnode.name, ids: [...s.ids] } : null;
};
const unitOf = (d: Device): string | null => ((d.iommu as { unit?: { name: string } } | null)?.unit?.name ?? null);
const NAME_A = 'smmu3.0x000000002b400000';
const NAME_B = 'smmu3.0x000000002b500000';

// ---------------------------------------------------------------- tests

test('hand-built IORT with two SMMUv3s: nodes, offsets and the RID → stream ID mappings as parsed', () => {
  const { iort, at } = twoSmmuIort();
  assert.deepEqual(iort.nodes.map((n) => [n.offset, n.kind]), [
    [48, 'its-group'], [72, 'smmu-v3'], [160, 'smmu-v3'], [248, 'root-complex'], [404, 'root-complex'], [460, 'named-component'], [520, 'named-component'], [580, 'named-component'],
  ]);
  assert.equal(at.get('A'), 72);
  assert.deepEqual(iort.nodes.filter((n) => n.kind === 'named-component').map((n) => n.deviceName), ['\\_SB_.ETH0', '\\_SB_.DMA0', '\\_SB_.BIG0']);
  assert.deepEqual(iort.nodes.filter((n) => n.kind === 'smmu-v3').map(iortSmmuV3Name), [NAME_A, NAME_B]);
  assert.deepEqual(iort.notes, []);
});

test('IORT SMMUv3s: each device is a master of the SMMU its RID maps to, stream ID = RID − inputBase + outputBase', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  const a = smmus.get(at.get('A')!)!;
  const b = smmus.get(at.get('B')!)!;
  assert.deepEqual(m.core.units.map((u) => u.name), [NAME_A, NAME_B]);
  assert.equal(a.unit.fwnode, a.fwnode);
  assert.equal(a.fwnode.name, NAME_A);
  // Segment 0, bus 1 → B; segment 1 → B; bus 0 (root ports) → A.
  assert.deepEqual(specOf(m.dev('0000:01:00.0')), { fwnode: NAME_B, ids: [0x0100 - 0x100 + 0x20] });
  assert.deepEqual(specOf(m.dev('0001:00:01.0')), { fwnode: NAME_B, ids: [0x8008] });
  assert.deepEqual(specOf(m.dev('0001:00:02.0')), { fwnode: NAME_B, ids: [0x8010] });
  assert.deepEqual(specOf(m.dev('0000:00:01.0')), { fwnode: NAME_A, ids: [0x1008] });
  for (const d of ['0000:01:00.0', '0001:00:01.0', '0001:00:02.0']) assert.equal(unitOf(m.dev(d)), NAME_B, d);
  for (const d of ['0000:00:01.0', '0000:00:02.0', '0000:00:03.0', '0000:03:00.0', '0000:04:01.0']) assert.equal(unitOf(m.dev(d)), NAME_A, d);
  assert.equal(b.streamOwner(0x20), m.dev('0000:01:00.0'));
  assert.deepEqual(b.streams(), [0x20, 0x8008, 0x8010]);
  // Root complex ATS support is passed on (segment 0 has it, segment 1 not).
  assert.equal(devIommuFwspec(m.dev('0000:01:00.0'))!.flags & IOMMU_FWSPEC_PCI_RC_ATS, IOMMU_FWSPEC_PCI_RC_ATS);
  assert.equal(devIommuFwspec(m.dev('0001:00:01.0'))!.flags & IOMMU_FWSPEC_PCI_RC_ATS, 0);
  // The named component: its single mapping gives its stream ID.
  assert.deepEqual(specOf(m.dev('eth0')), { fwnode: NAME_A, ids: [0x7000] });
  assert.equal(unitOf(m.dev('eth0')), NAME_A);
  assert.equal(a.streamOwner(0x7000), m.dev('eth0'));
  // device_group: generic_device_group() for the platform device (a group of its own).
  assert.deepEqual(m.core.groups.get(m.dev('eth0'))!.devices.map((d) => d.name), ['eth0']);
});

test('IORT SMMUv3s: a PCIe-to-PCI bridge alias gives two stream IDs in one fwspec; a second device behind it aliases → ENODEV, nothing kept', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  const a = smmus.get(at.get('A')!)!;
  const d1 = m.dev('0000:04:01.0');
  const d2 = m.dev('0000:04:02.0');
  // pci_for_each_dma_alias(): own RID 04:01.0 (0x408), then the bridge's alias: secondary bus 4, devfn 0 (0x400).
  assert.deepEqual(specOf(d1), { fwnode: NAME_A, ids: [0x4108, 0x4100] });
  assert.deepEqual(a.streamIds(d1), [0x4108, 0x4100]);
  assert.equal(a.streamOwner(0x4100), d1);
  // 04:02.0 shares the bridge alias 0x4100: arm_smmu_insert_master() refuses it with -ENODEV (not probed, no error).
  assert.deepEqual(specOf(d2), { fwnode: NAME_A, ids: [0x4110, 0x4100] });
  assert.equal(d2.iommu, null);
  assert.equal(d2.iommuGroup, null);
  assert.equal(a.streamOwner(0x4110), null, 'its own stream ID was rolled back');
  assert.deepEqual(a.streamIds(d2), []);
  assert.ok(m.core.log.some((l) => /Aliasing StreamID 0x4100 \(from 0000:04:01\.0\) unsupported/.test(l)), m.core.log.join('\n'));
  assert.ok(!m.core.probeErrors.has(d2));
  // Asking again changes nothing.
  assert.equal(m.core.iommuProbeDevice(d2), null);
  assert.equal(a.streamOwner(0x4100), d1);
});

test('IORT SMMUv3s: the function at the bridge alias itself has its stream ID twice in its fwspec and owns it once', () => {
  const { iort, at } = twoSmmuIort();
  const fns: [string, FunctionSpec][] = [
    ['0000:00:03.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 3, 4) }],
    ['0000:03:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: BR(3, 4) }],
    ['0000:04:00.0', {}],
  ];
  const m = machine(fns, []);
  const a = createArmSmmuV3FromIort(m.core, iort).smmus.get(at.get('A')!)!;
  const d = m.dev('0000:04:00.0');
  assert.deepEqual(specOf(d), { fwnode: NAME_A, ids: [0x4100, 0x4100] });
  assert.equal(unitOf(d), NAME_A);
  assert.deepEqual(a.streamIds(d), [0x4100]);
  assert.equal(a.streamOwner(0x4100), d);
});

test('IORT SMMUv3s: IDs mapping to an ITS group only give no fwspec and no probe when only SMMUs are registered', () => {
  const { iort } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  for (const name of ['0000:02:00.0', 'dma0']) {
    const d = m.dev(name);
    assert.equal(devIommuFwspec(d), null, name);
    assert.equal(d.iommu, null, name);
    assert.equal(d.iommuGroup, null, name);
    assert.ok(m.core.log.some((l) => l.includes(`firmware configuration of ${d.name}`) && /no IOMMU/.test(l)), name);
  }
  for (const s of smmus.values()) assert.ok(!s.unit.devices.has(m.dev('0000:02:00.0')));
  // An IOMMU node without a firmware node (e.g. no driver for it): ENODEV, no spec.
  const lone = machine(MAIN_FNS.slice(0, 2), []);
  assert.throws(() => iortFirmwareConfig(iort, new Map())(lone.core, lone.dev('0000:01:00.0')), (e) => isIommuError(e, 'ENODEV') && /no IOMMU firmware node/.test(e.message));
  assert.equal(devIommuFwspec(lone.dev('0000:01:00.0')), null);
});

test('IORT SMMUv3s: a device whose own RID maps to an SMMU but whose bridge alias maps to the ITS only gets no fwspec (all or nothing)', () => {
  const { iort } = twoSmmuIort();
  const fns: [string, FunctionSpec][] = [
    ['0000:00:05.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 5, 6) }],
    ['0000:05:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: BR(5, 6) }],
    ['0000:06:01.0', {}],
  ];
  const m = machine(fns, []);
  createArmSmmuV3FromIort(m.core, iort);
  const d = m.dev('0000:06:01.0');
  // Own RID 0x608 → A (0x5007), bridge alias 0x600 → ITS only: iort_pci_iommu_init() fails with -ENODEV.
  // (Linux keeps the IDs of the aliases before the failing one; the model gives no spec.)
  assert.equal(devIommuFwspec(d), null);
  assert.equal(d.iommu, null);
  assert.ok(m.core.log.some((l) => l.includes('0000:06:01.0') && /requester ID 0x600 .* to no IOMMU/.test(l)), m.core.log.join('\n'));
  assert.equal(unitOf(m.dev('0000:00:05.0')), NAME_A);
});

test('IORT SMMUv3s: a stream ID beyond sidBits fails the registration (Linux: ERANGE) and leaves nothing behind', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  // B with 15-bit stream IDs: segment 1's 0x8008 is out of range.
  assert.throws(
    () => createArmSmmuV3FromIort(m.core, iort, { sidBits: (n) => (n.offset === at.get('B') ? 15 : 16) }),
    (e) => isIommuError(e, SID_OUT_OF_RANGE_ERRNO) && /stream ID 0x8008 is out of range .*15-bit/.test(e.message),
  );
  assert.deepEqual(m.core.units, []);
  for (const d of [...m.topo.pciBus.devices, ...m.platform.devices]) {
    assert.equal(d.iommu, null, d.name);
    assert.equal(d.iommuGroup, null, d.name);
    assert.equal(devIommuFwspec(d), null, d.name);
  }
  // The failed creation's configurer is disabled: a probe now gives no spec.
  assert.equal(m.core.iommuProbeDevice(m.dev('0000:01:00.0')), null);
  assert.equal(devIommuFwspec(m.dev('0000:01:00.0')), null);
  // The same IORT registers fine afterwards with wide enough stream IDs.
  const ok = createArmSmmuV3FromIort(m.core, iort);
  assert.equal(unitOf(m.dev('0001:00:01.0')), NAME_B);
  assert.equal(ok.smmus.size, 2);
});

test('IORT SMMUv3s: a hotplugged device with an out-of-range stream ID is not probed and holds no stream', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const a = createArmSmmuV3FromIort(m.core, iort).smmus.get(at.get('A')!)!;
  const before = a.streams();
  const big = new Device('big0', m.platform, null, { name: '\\_SB_.BIG0' });
  deviceAdd(big);
  assert.deepEqual(specOf(big), { fwnode: NAME_A, ids: [0x12345] });
  assert.ok(isIommuError(m.core.probeErrors.get(big), SID_OUT_OF_RANGE_ERRNO));
  assert.equal(big.iommu, null);
  assert.equal(big.iommuGroup, null);
  assert.deepEqual(a.streams(), before);
  assert.ok(!a.unit.devices.has(big));
});

test('IORT SMMUv3s: unregistering one SMMU releases exactly its masters and frees their stream IDs', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  const a = smmus.get(at.get('A')!)!;
  const b = smmus.get(at.get('B')!)!;
  const ofB = [...b.unit.devices];
  const ofA = [...a.unit.devices];
  assert.deepEqual(ofB.map((d) => d.name).sort(), ['0000:01:00.0', '0001:00:01.0', '0001:00:02.0']);
  const streamsA = a.streams();
  m.core.iommuDeviceUnregister(b.unit);
  assert.deepEqual(m.core.units.map((u) => u.name), [NAME_A]);
  for (const d of ofB) {
    assert.equal(d.iommu, null, d.name);
    assert.equal(d.iommuGroup, null, d.name);
    assert.equal(devIommuFwspec(d)!.iommuFwnode, b.fwnode, 'the firmware spec stays (it is firmware)');
  }
  assert.deepEqual(b.streams(), []);
  for (const d of ofA) assert.equal(unitOf(d), NAME_A, d.name);
  assert.deepEqual(a.streams(), streamsA);
  assert.equal(a.unit.devices.size, ofA.length);
  // Registering B again takes its devices back.
  m.core.iommuDeviceRegister(b.unit);
  assert.deepEqual([...b.unit.devices].map((d) => d.name).sort(), ofB.map((d) => d.name).sort());
  assert.deepEqual(b.streams(), [0x20, 0x8008, 0x8010]);
});

test('IORT SMMUv3s with a VT-d-style null-fwnode unit: every device goes to the unit of its spec, none to the wrong driver', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  const vtd = createIntelIommu(m.core);
  const a = smmus.get(at.get('A')!)!;
  const b = smmus.get(at.get('B')!)!;
  for (const d of [...m.topo.pciBus.devices, ...m.platform.devices]) {
    const spec = devIommuFwspec(d);
    const u = unitOf(d);
    if (spec) {
      // A spec names an SMMU: that SMMU or nobody (04:02.0's aliasing stream ID) — never VT-d.
      assert.ok(u === spec.iommuFwnode.name || (u === null && d.name === '0000:04:02.0'), `${d.name}: ${u}`);
    } else {
      // No spec: only the null-fwnode unit may take it (VT-d takes PCI only).
      assert.equal(u, toPci(d) ? vtd.unit.name : null, d.name);
    }
  }
  assert.deepEqual([...vtd.unit.devices].map((d) => d.name), ['0000:02:00.0']);
  assert.equal(a.unit.devices.has(m.dev('0000:02:00.0')), false);
  assert.equal(b.unit.devices.has(m.dev('0000:02:00.0')), false);
  // Hotplug after all three registered: a device under the SMMU goes there, not to VT-d.
  const eth = new Device('eth0b', m.platform, null, { name: '\\_SB_.ETH0' });
  deviceAdd(eth);
  assert.ok(!m.core.probeErrors.has(eth));
  assert.deepEqual(specOf(eth), { fwnode: NAME_A, ids: [0x7000] });
  assert.ok(m.core.log.some((l) => /eth0b: Aliasing StreamID 0x7000 \(from eth0\)/.test(l)));
  // ETH0's stream 0x7000 is already owned by eth0: the second device with it is refused (aliasing), not given to VT-d.
  assert.equal(eth.iommu, null);
  assert.equal(vtd.unit.devices.has(eth), false);
});

function toPci(d: Device): boolean {
  return d.bus.name === 'pci';
}

test('IORT SMMUv3s: DMA through a master on an SMMU paging domain translates; an unmapped IOVA faults on its SMMU', () => {
  const { iort, at } = twoSmmuIort();
  const m = machine();
  const { smmus } = createArmSmmuV3FromIort(m.core, iort);
  const a = smmus.get(at.get('A')!)!;
  const b = smmus.get(at.get('B')!)!;
  const dev = m.dev('0001:00:01.0');
  const d = iommuPagingDomainAlloc(dev);
  iommuMap(d, 0x10_0000, 0x8000_0000, 0x2000, IOMMU_READ | IOMMU_WRITE);
  iommuAttachDevice(m.core, d, dev);
  assert.equal(iommuTranslate(m.core, dev, 0x10_1234, IOMMU_WRITE), 0x8000_1234);
  const faultsA = a.unit.faultCount;
  assert.equal(iommuTranslate(m.core, dev, 0x30_0000, IOMMU_READ), -1);
  assert.equal(b.unit.faultCount, 1);
  assert.equal(a.unit.faultCount, faultsA);
  // The named component too, on A.
  const eth = m.dev('eth0');
  const d2 = iommuPagingDomainAlloc(eth);
  iommuMap(d2, 0x4000_0000, 0x1_2340_0000, 0x1000, IOMMU_READ);
  iommuAttachDevice(m.core, d2, eth);
  assert.equal(iommuTranslate(m.core, eth, 0x4000_0010, IOMMU_READ), 0x1_2340_0010);
  // The software MSI window is a reserved region of every master.
  const resv = (dev.iommu as { resvRegions: { start: number; type: number }[] }).resvRegions;
  assert.ok(resv.some((r) => r.start === MSI_IOVA_BASE && r.type === IommuResvType.SW_MSI));
});

test('createArmSmmuV3 without IORT: the identity iommu-map gives every PCI device stream ID = requester ID (and its aliases)', () => {
  const b = bootSmall('', 'arm-smmu-v3', [
    ['0000:00:03.0', { pcieType: PcieType.ROOT_PORT, bridge: BR(0, 3, 4) }],
    ['0000:03:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: BR(3, 4) }],
    ['0000:04:01.0', {}],
  ]);
  assert.deepEqual(specOf(b.dev('0000:01:00.0')), { fwnode: b.unit.name, ids: [0x0100] });
  assert.deepEqual(specOf(b.dev('0000:02:00.1')), { fwnode: b.unit.name, ids: [0x0201] });
  assert.deepEqual(specOf(b.dev('0000:04:01.0')), { fwnode: b.unit.name, ids: [0x0408, 0x0400] });
  for (const d of ['0000:00:01.0', '0000:01:00.0', '0000:02:00.0', '0000:02:00.1', '0000:04:01.0']) assert.equal(unitOf(b.dev(d)), b.unit.name, d);
});

test('SMMUv3 probe_device: ENODEV without a spec for this SMMU; EINVAL for bad sidBits; a spec for another unit is not taken', () => {
  const core = new IommuCore();
  const s = createArmSmmuV3(core, { fwnode: { name: 'smmu-x' }, name: 'smmu-x' });
  const bus = new BusType('platform');
  const lone = new Device('lone', bus);
  assert.throws(() => s.ops.probeDevice(lone), (e) => isIommuError(e, 'ENODEV'));
  assert.throws(() => createArmSmmuV3(core, { sidBits: 33, name: 'bad' }), (e) => isIommuError(e, 'EINVAL') && /sidBits/.test(e.message));
  assert.throws(() => createArmSmmuV3(core, { sidBits: 1.5, name: 'bad' }), (e) => isIommuError(e, 'EINVAL'));
  assert.deepEqual(core.units.map((u) => u.name), ['smmu-x']);
  // A name collision fails the registration (EEXIST) and leaves the first SMMU alone.
  assert.throws(() => createArmSmmuV3(core, { name: 'smmu-x' }), (e) => isIommuError(e, 'EEXIST'));
  assert.deepEqual(core.units, [s.unit]);
  // With an explicit fwnode no identity map is installed: a watched PCI device gets no spec.
  const m = machine(MAIN_FNS.slice(0, 2), []);
  const s2 = createArmSmmuV3(m.core, { fwnode: { name: 'smmu-y' }, name: 'smmu-y' });
  assert.equal(devIommuFwspec(m.dev('0000:01:00.0')), null);
  assert.equal(s2.unit.devices.size, 0);
});

test('bootIommu on an Arm machine with an IORT table: one unit per SMMUv3 node, devices behind the SMMU their RIDs map to', () => {
  const bytes = buildIort([
    { kind: 'its', name: 'its' },
    { kind: 'smmu3', name: 'A', base: 0x2b400000n, maps: [{ input: 0, count: 0xffff, output: 0, to: 'its' }] },
    { kind: 'smmu3', name: 'B', base: 0x2b500000n, maps: [{ input: 0, count: 0xffff, output: 0x10000, to: 'its' }] },
    { kind: 'rc', name: 'rc0', segment: 0, ats: 0, maps: [{ input: 0x000, count: 0xff, output: 0x1000, to: 'A' }, { input: 0x100, count: 0x3ff, output: 0x20, to: 'B' }] },
    { kind: 'rc', name: 'rc1', segment: 1, ats: 0, maps: [{ input: 0, count: 0x7fff, output: 0x8000, to: 'B' }] },
  ]).bytes;
  const topo = buildPciTopology(MAIN_FNS.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  const m = { ...machineFromTopology(topo), acpiTables: { IORT: bytes } };
  const booted = bootIommu(m, { driver: 'arm-smmu-v3' });
  assert.deepEqual(booted.units.map((u) => u.name), [NAME_A, NAME_B]);
  const dev = (bdf: string) => topo.byBdf.get(bdf)!.dev;
  for (const d of ['0000:00:01.0', '0000:00:02.0', '0000:00:03.0']) assert.equal(unitOf(dev(d)), NAME_A, d);
  for (const d of ['0000:01:00.0', '0000:02:00.0', '0000:03:00.0', '0000:04:01.0', '0001:00:01.0']) assert.equal(unitOf(dev(d)), NAME_B, d);
  assert.deepEqual(devIommuFwspec(dev('0001:00:02.0'))!.ids, [0x8010]);
  // An IORT with no SMMUv3 node: ENODEV before anything is probed.
  const itsOnly = buildIort([{ kind: 'its', name: 'its' }, { kind: 'rc', name: 'rc0', segment: 0, ats: 0, maps: [{ input: 0, count: 0xff, output: 0, to: 'its' }] }]).bytes;
  const topo2 = buildPciTopology(MAIN_FNS.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  assert.throws(() => bootIommu({ ...machineFromTopology(topo2), acpiTables: { IORT: itsOnly } }, { driver: 'arm-smmu-v3' }), (e) => isIommuError(e, 'ENODEV'));
  assert.ok(topo2.devices.every((p) => p.dev.iommuGroup === null));
});
