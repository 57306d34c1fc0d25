// virtio-iommu: the device's request rules (virtio 1.2 §5.13) and the Linux driver over it.
import { test } from 'node:test';
import { devIommuFwspec } from '../../src/iommu/fwspec.js';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { IommuCore } from '../../src/iommu/core.js';
import { iommuIovaToPhys, iommuMap, iommuUnmap } from '../../src/iommu/domain.js';
import { iommuAttachDevice, iommuDetachDevice, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IommuResvType } from '../../src/iommu/resv-region.js';
import { IOMMU_MMIO, IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { PcieType } from '../../src/pci/regs.js';
import {
  createVirtioIommu,
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_MAP_F,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM,
  VIRTIO_IOMMU_RESV_MEM_T,
  VIRTIO_IOMMU_S as S,
  VIRTIO_IOMMU_T,
  VirtioIommuDevice,
} from '../../src/drivers/virtio-iommu/index.js';

const RW = VIRTIO_IOMMU_MAP_F.READ | VIRTIO_IOMMU_MAP_F.WRITE;

function dev0(config = {}) {
  return new VirtioIommuDevice({ endpoints: [8, 16, 24], config: { domainRange: { start: 1, end: 100 }, inputRange: { start: 0, end: 2 ** 40 - 1 }, ...config } });
}

test('virtio-iommu device: ATTACH status codes and moving an endpoint between domains', () => {
  const d = dev0();
  assert.equal(d.attach(0, 8), S.RANGE); // outside domain_range
  assert.equal(d.attach(101, 8), S.RANGE);
  assert.equal(d.attach(1, 99), S.NOENT); // unknown endpoint
  assert.equal(d.attach(1, 8, 0x80), S.INVAL); // unknown flag
  assert.equal(d.attach(1, 8), S.OK);
  assert.equal(d.attach(1, 8), S.OK); // again: no-op
  assert.equal(d.attach(1, 16), S.OK);
  assert.equal(d.map(1, 0x1000, 0x1fff, 0x5000, RW), S.OK);
  // Moving 8 to domain 2 detaches it from 1 (which keeps 16 and its mapping).
  assert.equal(d.attach(2, 8), S.OK);
  assert.equal(d.endpointDomain(8), 2);
  assert.equal(d.translate(8, 0x1000, VIRTIO_IOMMU_MAP_F.READ), -1);
  assert.equal(d.translate(16, 0x1234, VIRTIO_IOMMU_MAP_F.READ), 0x5234);
  // Moving the last endpoint away: domain 1 ceases to exist with its mappings.
  assert.equal(d.attach(2, 16), S.OK);
  assert.equal(d.hasDomain(1), false);
  assert.equal(d.map(1, 0x1000, 0x1fff, 0, RW), S.NOENT);
  // Bypass: identity translation; a bypass flag disagreeing with the domain is INVAL.
  assert.equal(d.attach(3, 24, VIRTIO_IOMMU_ATTACH_F_BYPASS), S.OK);
  assert.equal(d.translate(24, 0xabc000, VIRTIO_IOMMU_MAP_F.WRITE), 0xabc000);
  assert.equal(d.attach(2, 24, VIRTIO_IOMMU_ATTACH_F_BYPASS), S.INVAL);
  assert.equal(d.map(3, 0, 0xfff, 0, RW), S.INVAL);
  const nb = dev0({ bypassConfig: false });
  assert.equal(nb.attach(3, 24, VIRTIO_IOMMU_ATTACH_F_BYPASS), S.INVAL);
  // The generic request entry point and an unknown request type.
  assert.equal(d.request({ type: VIRTIO_IOMMU_T.ATTACH, domain: 5, endpoint: 8 }).status, S.OK);
  assert.equal(d.request({ type: 42 } as never).status, S.UNSUPP);
});

test('virtio-iommu device: DETACH status codes', () => {
  const d = dev0();
  assert.equal(d.detach(1, 99), S.NOENT);
  assert.equal(d.detach(1, 8), S.INVAL); // no such domain
  d.attach(1, 8);
  d.attach(2, 16);
  assert.equal(d.detach(2, 8), S.INVAL); // not attached to that domain
  d.map(1, 0, 0xfff, 0x1000, RW);
  assert.equal(d.detach(1, 8), S.OK);
  assert.equal(d.endpointDomain(8), null);
  assert.equal(d.hasDomain(1), false);
  assert.equal(d.translate(8, 0, VIRTIO_IOMMU_MAP_F.READ), -1);
});

test('virtio-iommu device: MAP status codes (alignment, range, flags, overlap)', () => {
  const d = dev0();
  assert.equal(d.map(1, 0, 0xfff, 0, RW), S.NOENT);
  d.attach(1, 8);
  assert.equal(d.map(1, 0x1000, 0x1fff, 0x2000, RW), S.OK);
  assert.equal(d.map(1, 0x1800, 0x27ff, 0, RW), S.RANGE); // unaligned to 4K
  assert.equal(d.map(1, 0x3000, 0x37ff, 0, RW), S.RANGE); // end+1 unaligned
  assert.equal(d.map(1, 0x3000, 0x3fff, 0x800, RW), S.RANGE); // phys unaligned
  assert.equal(d.map(1, 0x3000, 0x2fff, 0, RW), S.RANGE); // reversed
  assert.equal(d.map(1, 2 ** 40, 2 ** 40 + 0xfff, 0, RW), S.RANGE); // outside input_range
  assert.equal(d.map(1, 0x3000, 0x3fff, 0, VIRTIO_IOMMU_MAP_F.MMIO), S.INVAL); // no F_MMIO
  assert.equal(d.map(1, 0x3000, 0x3fff, 0, 0x40), S.INVAL);
  assert.equal(d.map(1, 0x0, 0x1fff, 0, RW), S.INVAL); // overlaps
  assert.equal(d.map(1, 0x1fff + 1 - 0x1000, 0x1fff, 0, RW), S.INVAL); // same range
  assert.equal(d.map(1, 0x2000, 0x2fff, 0x9000, VIRTIO_IOMMU_MAP_F.READ), S.OK); // adjacent is fine
  assert.equal(dev0({ mmio: true }).attach(1, 8), S.OK);
  const m = dev0({ mmio: true });
  m.attach(1, 8);
  assert.equal(m.map(1, 0, 0xfff, 0, VIRTIO_IOMMU_MAP_F.MMIO), S.OK);
  // Permissions at translation.
  assert.equal(d.translate(8, 0x2004, VIRTIO_IOMMU_MAP_F.READ), 0x9004);
  assert.equal(d.translate(8, 0x2004, VIRTIO_IOMMU_MAP_F.WRITE), -1);
});

test('virtio-iommu device: UNMAP removes whole mappings and refuses a split with S_RANGE', () => {
  const d = dev0();
  assert.equal(d.unmap(1, 0, 0xfff), S.NOENT);
  d.attach(1, 8);
  d.map(1, 0x0000, 0x1fff, 0x10000, RW); // A: 8 KiB
  d.map(1, 0x4000, 0x4fff, 0x20000, RW); // B
  d.map(1, 0x8000, 0x8fff, 0x30000, RW); // C
  assert.equal(d.unmap(1, 0x1000, 0x1fff), S.RANGE); // tail of A
  assert.equal(d.unmap(1, 0x0000, 0x0fff), S.RANGE); // head of A
  assert.equal(d.unmap(1, 0x0000, 0x4800), S.RANGE); // A whole but B split: nothing removed
  assert.equal(d.mappings(1).length, 3);
  assert.equal(d.unmap(1, 0x2fff, 0x1fff), S.INVAL);
  assert.equal(d.unmap(1, 0x10000, 0x20000), S.OK); // no mappings: OK
  assert.equal(d.unmap(1, 0x0000, 0x7fff), S.OK); // A and B entirely contained (holes allowed)
  assert.deepEqual(d.mappings(1).map((m) => m.virtStart), [0x8000]);
  assert.equal(d.request({ type: VIRTIO_IOMMU_T.UNMAP, domain: 1, virtStart: 0, virtEnd: 2 ** 40 - 1 }).status, S.OK);
  assert.equal(d.mappings(1).length, 0);
});

test('virtio-iommu device: PROBE reports reserved memory; S_NOENT / S_UNSUPP', () => {
  const d = dev0();
  const r = d.probe(8);
  assert.equal(r.status, S.OK);
  assert.deepEqual(r.properties, [{ type: VIRTIO_IOMMU_PROBE_T_RESV_MEM, subtype: VIRTIO_IOMMU_RESV_MEM_T.MSI, start: 0xfee00000, end: 0xfeefffff }]);
  assert.equal(d.probe(99).status, S.NOENT);
  assert.equal(dev0({ probeSize: 0 }).request({ type: VIRTIO_IOMMU_T.PROBE, endpoint: 8 }).status, S.UNSUPP);
});

function machine() {
  const fns: [string, object][] = [
    ['0000:00:01.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0000:00:02.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0000:00:03.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
  ];
  const topo = buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus); // the registration probes the bus
  const dev = (bdf: string) => topo.byBdf.get(bdf)!.dev;
  return { core, topo, dev };
}

test('virtio-iommu driver: probes only the endpoints of its topology; PCI grouping; PROBE → reserved regions', () => {
  const { core, topo, dev } = machine();
  const device = new VirtioIommuDevice({ endpoints: [0x08, 0x10] });
  const vio = createVirtioIommu(core, device, { endpoints: new Set(['0000:00:01.0', '0000:00:02.0']) });
  const taken = topo.pciBus.devices.filter((d) => d.iommu !== null);
  assert.deepEqual(taken.map((d) => d.name), ['0000:00:01.0', '0000:00:02.0']);
  assert.deepEqual(devIommuFwspec(dev('0000:00:02.0'))?.ids, [0x10], 'the topology gave it a firmware spec with its endpoint ID');
  assert.equal(devIommuFwspec(dev('0000:00:03.0')), null);
  assert.equal(dev('0000:00:03.0').iommuGroup, null);
  assert.throws(() => vio.ops.probeDevice(dev('0000:00:03.0')), (e) => isIommuError(e, 'ENODEV'));
  assert.notEqual(dev('0000:00:01.0').iommuGroup!.id, dev('0000:00:02.0').iommuGroup!.id);
  assert.equal(vio.endpointId(dev('0000:00:02.0')), 0x10);
  const resv = vio.ops.getResvRegions!(dev('0000:00:01.0'));
  assert.deepEqual(resv.map((r) => [r.start, r.length, r.type]), [[0xfee00000, 0x100000, IommuResvType.MSI]]);
  // The default DMA domain is attached on the device side.
  assert.equal(device.endpointDomain(0x08), vio.domainId(core.groups.get(dev('0000:00:01.0'))!.domain as never));
  // A listed endpoint the device does not know: the PROBE fails (ENOENT), the core gets no group.
  const { core: core2, dev: dev2 } = machine();
  // The registration's bus probe fails, so the registration does (iommu_device_register() unwinds).
  assert.throws(() => createVirtioIommu(core2, new VirtioIommuDevice({ endpoints: [] }), { endpoints: new Set(['0000:00:01.0']) }), (e) => isIommuError(e, 'ENOENT'));
  assert.equal(dev2('0000:00:01.0').iommuGroup, null);
  assert.equal(core2.units.length, 0);
  // Without MSI in PROBE: the software MSI window.
  const { core: core3, dev: dev3 } = machine();
  const vio3 = createVirtioIommu(core3, new VirtioIommuDevice({ endpoints: [8], config: { probeSize: 0 } }), { endpoints: new Set(['0000:00:01.0']) });
  assert.deepEqual(vio3.ops.getResvRegions!(dev3('0000:00:01.0')).map((r) => r.type), [IommuResvType.SW_MSI]);
});

test('virtio-iommu driver: DMA through it — iommuMap sends MAP, iommuTranslate resolves, iommuUnmap sends UNMAP', () => {
  const { core, topo, dev } = machine();
  const device = new VirtioIommuDevice({ endpoints: [0x08, 0x10] });
  const vio = createVirtioIommu(core, device, { endpoints: new Set(['0000:00:01.0', '0000:00:02.0']) });
  const a = dev('0000:00:01.0');
  const d = iommuPagingDomainAlloc(a);
  assert.equal(d.pgtable, null);
  // Mappings made before any attach live in the driver and are replayed on ATTACH.
  iommuMap(d, 0x10_0000, 0x8000_0000, 0x2000, IOMMU_READ | IOMMU_WRITE);
  const id = vio.domainId(d);
  assert.equal(device.hasDomain(id), false);
  iommuAttachDevice(core, d, a);
  assert.equal(device.endpointDomain(0x08), id);
  assert.deepEqual(device.mappings(id), [{ virtStart: 0x10_0000, virtEnd: 0x10_1fff, physStart: 0x8000_0000, flags: RW }]);
  iommuMap(d, 0x20_0000, 0x9000_0000, 0x20_1000, IOMMU_READ); // 2M + 4K: two MAP requests
  assert.equal(device.mappings(id).length, 3);
  assert.equal(iommuTranslate(core, a, 0x10_1234, IOMMU_WRITE), 0x8000_1234);
  assert.equal(iommuTranslate(core, a, 0x40_0010, IOMMU_READ), 0x9020_0010);
  assert.equal(iommuIovaToPhys(d, 0x20_0008), 0x9000_0008);
  assert.equal(iommuTranslate(core, a, 0x30_0000_0000, IOMMU_READ), -1);
  // Mapping over an existing mapping: EINVAL (the device's S_INVAL rule), nothing changes.
  assert.throws(() => iommuMap(d, 0x10_1000, 0, 0x1000, IOMMU_READ), (e) => isIommuError(e, 'EINVAL'));
  // MMIO without VIRTIO_IOMMU_F_MMIO: EINVAL.
  assert.throws(() => iommuMap(d, 0x50_0000, 0, 0x1000, IOMMU_READ | IOMMU_MMIO), (e) => isIommuError(e, 'EINVAL'));
  // Unmapping part of a mapping is refused (0 bytes); the whole one goes.
  assert.equal(iommuUnmap(d, 0x10_1000, 0x1000), 0);
  assert.equal(iommuTranslate(core, a, 0x10_1000, IOMMU_READ), 0x8000_1000);
  assert.equal(iommuUnmap(d, 0x10_0000, 0x2000), 0x2000);
  assert.equal(iommuTranslate(core, a, 0x10_1000, IOMMU_READ), -1);
  assert.equal(device.mappings(id).length, 2);
  // Back to the default domain: the device forgets this domain; a re-attach replays the driver's copy.
  assert.ok(iommuDetachDevice(core, d, a) !== undefined);
  assert.equal(device.hasDomain(id), false);
  iommuAttachDevice(core, d, a);
  assert.equal(device.mappings(id).length, 2);
  assert.equal(iommuTranslate(core, a, 0x20_0004, IOMMU_READ), 0x9000_0004);
});

test('virtio-iommu driver: identity (bypass) and blocked domains', () => {
  const { core, topo, dev } = machine();
  const device = new VirtioIommuDevice({ endpoints: [0x08, 0x10] });
  const vio = createVirtioIommu(core, device, { endpoints: new Set(['0000:00:01.0']) });
  const a = dev('0000:00:01.0');
  const g = core.groups.get(a)!;
  core.setGroupDomain(g, vio.ops.identityDomain!);
  assert.equal(device.translate(0x08, 0x1234_5000, VIRTIO_IOMMU_MAP_F.READ), 0x1234_5000);
  assert.equal(iommuTranslate(core, a, 0x1234_5000, IOMMU_READ), 0x1234_5000);
  core.setGroupDomain(g, vio.ops.blockedDomain!);
  assert.equal(device.endpointDomain(0x08), null);
  assert.equal(iommuTranslate(core, a, 0x1234_5000, IOMMU_READ), -1);
  core.groups.put(g);
  // A device without bypass config has no identity domain.
  const { core: c2 } = machine();
  assert.equal(createVirtioIommu(c2, new VirtioIommuDevice({ endpoints: [], config: { bypassConfig: false } }), { endpoints: new Set() }).ops.identityDomain, undefined);
});
