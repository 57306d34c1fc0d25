// virtio-iommu with its topology from the ACPI VIOT (drivers/acpi/viot.c): endpoint IDs from PCI ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import type { FwNode } from '../../src/device/device.js';
import { IommuCore } from '../../src/iommu/core.js';
import { devIommuFwspec } from '../../src/iommu/fwspec.js';
import { iommuMap } from '../../src/iommu/domain.js';
import { iommuAttachDevice, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { PcieType } from '../../src/pci/regs.js';
import { parseViot, type Viot } from '../../src/firmware/viot.js';
import { createVirtioIommu, VirtioIommuDevice } from '../../src/drivers/virtio-iommu/index.js';
import { viotFirmwareConfig, viotIommuPciBdf } from '../../src/drivers/virtio-iommu/viot-config.js';
import { Bytes, header, table } from '../firmware/build.js';

const Z6 = [0, 0, 0, 0, 0, 0];
/** A PCI range node (24 bytes). Linux: struct acpi_viot_pci_range. */
const range = (b: Bytes, ep: number, segS: number, segE: number, bdfS: number, bdfE: number, out: number): Bytes =>
  b.u8(1).u8(0).u16(24).u32(ep).u16(segS).u16(segE).u16(bdfS).u16(bdfE).u16(out).raw(Z6);

/**
 * virtio-pci IOMMU at 0000:00:03.0 (node 0x30); range A: segment 0, 00:01.0–00:02.0 from endpoint 0x20;
 * range B: segments 1–2, 00:01.0–00:01.7 from endpoint 0x1000. Or, `wide`: segment 0, every BDF, from 0.
 */
function viot(wide = false): Viot {
  const b = header('VIOT').u16(wide ? 2 : 3).u16(0x30).raw([...Z6, 0, 0]);
  b.u8(3).u8(0).u16(16).u16(0).u16(0x18).raw([...Z6, 0, 0]);
  if (wide) range(b, 0, 0, 0, 0x0000, 0xffff, 0x30);
  else range(range(b, 0x20, 0, 0, 0x08, 0x10, 0x30), 0x1000, 1, 2, 0x08, 0x0f, 0x30);
  return parseViot(table(b), 'viot');
}

function machine() {
  const fns: [string, object][] = [
    ['0000:00:01.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0000:00:02.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0000:00:03.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1057 }], // the virtio-iommu
    ['0000:00:04.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0001:00:01.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0001:00:02.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
    ['0002:00:01.0', { pcieType: PcieType.RC_END, vendor: 0x1af4, device: 0x1041 }],
  ];
  const topo = buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  const core = new IommuCore({ strict: true });
  core.watchBus(topo.pciBus);
  const dev = (bdf: string) => topo.byBdf.get(bdf)!.dev;
  return { core, topo, dev };
}

/** The IOMMU's firmware node, named after its PCI function as VIOT gives it. */
function iommuFwnode(t: Viot): { fwnode: FwNode; iommus: Map<number, FwNode> } {
  const [pci] = viotIommuPciBdf(t);
  assert.deepEqual(pci, { offset: 0x30, segment: 0, bdf: 0x18, name: '0000:00:03.0' });
  const fwnode: FwNode = { name: pci!.name };
  return { fwnode, iommus: new Map([[pci!.offset, fwnode]]) };
}

test('virtio-iommu from VIOT: endpoint IDs per PCI range; devices outside the ranges and the IOMMU itself not probed; DMA', () => {
  const t = viot();
  const { core, topo, dev } = machine();
  const { fwnode, iommus } = iommuFwnode(t);
  core.addFirmwareConfig(viotFirmwareConfig(t, iommus));
  const device = new VirtioIommuDevice({ endpoints: [0x20, 0x28, 0x1000, 0x11000] });
  const vio = createVirtioIommu(core, device, { endpoints: new Set(), fwnode });
  const probed = topo.pciBus.devices.filter((d) => d.iommu !== null).map((d) => d.name);
  assert.deepEqual(probed, ['0000:00:01.0', '0000:00:02.0', '0001:00:01.0', '0002:00:01.0']);
  const ids = { '0000:00:01.0': 0x20, '0000:00:02.0': 0x28, '0001:00:01.0': 0x1000, '0002:00:01.0': (1 << 16) + 0x1000 };
  for (const [bdf, id] of Object.entries(ids)) {
    assert.equal(devIommuFwspec(dev(bdf))!.iommuFwnode, fwnode, bdf);
    assert.deepEqual(devIommuFwspec(dev(bdf))!.ids, [id], bdf);
    assert.equal(vio.endpointId(dev(bdf)), id, bdf);
  }
  for (const bdf of ['0000:00:03.0', '0000:00:04.0', '0001:00:02.0']) {
    assert.equal(devIommuFwspec(dev(bdf)), null, bdf);
    assert.equal(dev(bdf).iommuGroup, null, bdf);
  }
  assert.equal(core.probeErrors.size, 0);
  // DMA through a paging domain, on both segments.
  for (const [bdf, id] of [['0000:00:02.0', 0x28], ['0002:00:01.0', 0x11000]] as const) {
    const a = dev(bdf);
    const d = iommuPagingDomainAlloc(a);
    iommuAttachDevice(core, d, a);
    assert.equal(device.endpointDomain(id), vio.domainId(d));
    iommuMap(d, 0x10_0000, 0x8000_0000, 0x2000, IOMMU_READ | IOMMU_WRITE);
    assert.equal(iommuTranslate(core, a, 0x10_1234, IOMMU_WRITE), 0x8000_1234);
    assert.equal(iommuTranslate(core, a, 0x20_0000, IOMMU_READ), -1);
  }
});

test('virtio-iommu from VIOT: a range covering the IOMMU function skips it ("not translating ourself")', () => {
  const t = viot(true);
  const { core, topo, dev } = machine();
  const { fwnode, iommus } = iommuFwnode(t);
  core.addFirmwareConfig(viotFirmwareConfig(t, iommus));
  const device = new VirtioIommuDevice({ endpoints: [0x08, 0x10, 0x20] });
  createVirtioIommu(core, device, { endpoints: new Set(), fwnode });
  assert.deepEqual(topo.pciBus.devices.filter((d) => d.iommu !== null).map((d) => d.name), ['0000:00:01.0', '0000:00:02.0', '0000:00:04.0']);
  assert.equal(devIommuFwspec(dev('0000:00:03.0')), null);
  assert.equal(core.probeErrors.size, 0);
});

test('virtio-iommu from VIOT: EPROBE_DEFER before the IOMMU registers; ENODEV without its firmware node', () => {
  const t = viot();
  const { core, dev } = machine();
  const { iommus } = iommuFwnode(t);
  const configure = viotFirmwareConfig(t, iommus);
  assert.throws(() => configure(core, dev('0000:00:01.0')), (e) => isIommuError(e, 'EPROBE_DEFER'));
  configure(core, dev('0000:00:04.0')); // outside every range: left alone
  assert.equal(devIommuFwspec(dev('0000:00:04.0')), null);
  const none = viotFirmwareConfig(t, new Map());
  assert.throws(() => none(core, dev('0000:00:01.0')), (e) => isIommuError(e, 'ENODEV') && /VIOT virtio-iommu-pci node at 0x30 has no IOMMU firmware node/.test(e.message));
});
