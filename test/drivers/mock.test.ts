// The iommufd selftest mock IOMMU (drivers/iommu/iommufd/selftest.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIommuError } from '../../src/base/errno.js';
import { BusType } from '../../src/device/bus.js';
import { iommuFwspecInit } from '../../src/iommu/fwspec.js';
import { Device, deviceAdd } from '../../src/device/device.js';
import { IommuCore } from '../../src/iommu/core.js';
import { iommuIovaToPhys, iommuMap, iommuUnmap } from '../../src/iommu/domain.js';
import { iommuAttachDevice, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuAttachDevicePasid, iommuGetDomainForDevPasid } from '../../src/iommu/pasid.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { createMockIommu, MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_IO_PAGE_SIZE, mockDomainData } from '../../src/drivers/mock/index.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const A = MOCK_APERTURE_START;

function setup(opts: { seed?: number; faultRate?: number } = {}) {
  const core = new IommuCore({ strict: true });
  const mock = createMockIommu(core, opts);
  return { core, mock };
}

test('mock: never probes a device on another bus (a PCI-ish device gets ENODEV / no group)', () => {
  const { core, mock } = setup();
  const pci = new BusType('pci');
  const pdev = new Device('0000:00:01.0', pci);
  assert.throws(() => mock.ops.probeDevice(pdev), (e) => isIommuError(e, 'ENODEV'));
  assert.equal(core.probeDevice(pdev, mock.ops), null);
  assert.equal(pdev.iommuGroup, null);
  assert.equal(pdev.iommu, null);
  assert.equal(core.probeDevices([pdev], mock.ops).length, 0);
  assert.equal(mock.unit.devices.size, 0);
});

test('mock: each mock device gets its own group (generic_device_group), default names iommufd_mock<N>', () => {
  const { core, mock } = setup();
  const d0 = mock.createDevice();
  const d1 = mock.createDevice();
  assert.equal(d0.name, 'iommufd_mock0');
  assert.equal(d1.name, 'iommufd_mock1');
  assert.ok(d0.iommuGroup && d1.iommuGroup);
  assert.notEqual(d0.iommuGroup!.id, d1.iommuGroup!.id);
  assert.equal(core.groups.get(d0)!.devices.length, 1);
  assert.equal(d0.bus.name, 'iommufd_mock');
  assert.equal(d0.fwnode, mock.fwnode);
  assert.deepEqual([...mock.unit.devices], [d0, d1]);
});

test('mock: devices created after registration are probed by it, nothing else grabs them', () => {
  const core = new IommuCore();
  const mock = createMockIommu(core);
  const dev = mock.createDevice('late');
  assert.ok(dev.iommuGroup);
  assert.equal((dev.iommu as { ops: unknown }).ops, mock.ops);
  // Probing again with the same driver: the existing group (no second probe).
  const g = core.probeDevice(dev, mock.ops);
  assert.equal(g!.id, dev.iommuGroup!.id);
  core.groups.put(g!);
  // A second mock instance never claims the first one's devices.
  const other = createMockIommu(core, { name: 'mock2' });
  const stranger = new Device('x', mock.bus);
  assert.throws(() => other.ops.probeDevice(stranger), (e) => isIommuError(e, 'ENODEV'));
  mock.destroyDevice(dev);
  assert.equal(dev.iommuGroup, null);
  assert.equal(mock.unit.devices.size, 0);
});

test('mock: map/unmap/iova_to_phys through the core with 2 KiB pages and the aperture', () => {
  const { core, mock } = setup();
  const dev = mock.createDevice();
  const d = iommuPagingDomainAlloc(dev);
  assert.deepEqual([...d.pgsizes], [MOCK_IO_PAGE_SIZE]);
  assert.equal(d.geometry.apertureStart, 1 << 24);
  assert.equal(d.geometry.apertureEnd, 2 ** 31 - 1);
  iommuAttachDevice(core, d, dev);
  iommuMap(d, A + 0x800, 0x10_0800, 0x1000, RW);
  assert.equal(iommuIovaToPhys(d, A + 0x800), 0x10_0800);
  assert.equal(iommuIovaToPhys(d, A + 0x1234), 0x10_1234);
  assert.equal(mockDomainData(d).pfns.size, 2);
  assert.equal(iommuTranslate(core, dev, A + 0x1000, IOMMU_WRITE), 0x10_1000);
  // 2 KiB alignment is enough; 1 KiB is not.
  assert.throws(() => iommuMap(d, A + 0x400, 0, 0x800, RW), (e) => isIommuError(e, 'EINVAL'));
  // Outside the aperture: EINVAL from the core.
  assert.throws(() => iommuMap(d, A - 0x800, 0, 0x800, RW), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => iommuMap(d, MOCK_APERTURE_LAST - 0x7ff, 0, 0x1000, RW), (e) => isIommuError(e, 'EINVAL'));
  iommuMap(d, MOCK_APERTURE_LAST - 0x7ff, 0x2000, 0x800, RW);
  assert.equal(iommuUnmap(d, A + 0x800, 0x1000), 0x1000);
  assert.equal(iommuIovaToPhys(d, A + 0x800), 0);
  assert.equal(iommuTranslate(core, dev, A + 0x1000, IOMMU_READ), -1);
});

test('mock: map over an existing entry WARNs and overwrites (as the selftest xarray)', () => {
  const { mock } = setup();
  const dev = mock.createDevice();
  const d = iommuPagingDomainAlloc(dev);
  iommuMap(d, A, 0x1000, 0x800, RW);
  assert.equal(mock.warnings.length, 0);
  iommuMap(d, A, 0x8000, 0x800, RW);
  assert.equal(mock.warnings.length, 1);
  assert.equal(iommuIovaToPhys(d, A), 0x8000);
});

test('mock: vector 36 — unmap over a hole reports the full requested count', () => {
  const { mock } = setup();
  const dev = mock.createDevice();
  const d = iommuPagingDomainAlloc(dev);
  iommuMap(d, A, 0x10_0000, 0x2000, RW);
  iommuMap(d, A + 0x4000, 0x20_0000, 0x1000, RW);
  assert.equal(iommuUnmap(d, A, 0x5000), 0x5000);
  assert.equal(mockDomainData(d).pfns.size, 0);
  assert.equal(iommuUnmap(d, A + 0x400, 0x800), 0); // misaligned for 2 KiB
});

test('mock: identity and blocked domains; per-PASID attach and the PASID 1024 fake error (vector 50)', () => {
  const { core, mock } = setup();
  assert.equal(mock.ops.identityDomain!.type, 'identity');
  assert.equal(mock.ops.blockedDomain!.type, 'blocked');
  assert.equal(iommuIovaToPhys(mock.ops.identityDomain!, 0x1234), 0x1234);
  assert.equal(iommuIovaToPhys(mock.ops.blockedDomain!, 0x1234), 0);
  const dev = mock.createDevice(undefined, { pasid: true });
  const d1 = iommuPagingDomainAlloc(dev);
  const d2 = iommuPagingDomainAlloc(dev);
  iommuAttachDevicePasid(core, d1, dev, 1024);
  assert.equal(iommuGetDomainForDevPasid(core, dev, 1024), d1);
  // Replace (driver op called with the new domain): fails with ENOMEM once, PASID stays on d1.
  assert.throws(() => d2.ops.setDevPasid!(d2, dev, 1024, d1), (e) => isIommuError(e, 'ENOMEM'));
  assert.equal(iommuGetDomainForDevPasid(core, dev, 1024), d1);
  // The third call succeeds.
  d2.ops.setDevPasid!(d2, dev, 1024, d1);
});

test('mock: fault injection is reproducible per seed', () => {
  function run(seed: number): string[] {
    const { mock } = setup({ seed });
    const dev = mock.createDevice();
    const d = iommuPagingDomainAlloc(dev);
    mock.faultRate = 0.3;
    const out: string[] = [];
    for (let i = 0; i < 40; i++) {
      try {
        iommuMap(d, A + i * 0x800, i * 0x800, 0x800, RW);
        out.push('ok');
      } catch (e) {
        assert.ok(isIommuError(e, 'ENOMEM'));
        assert.equal(iommuIovaToPhys(d, A + i * 0x800), 0);
        out.push('ENOMEM');
      }
    }
    return out;
  }
  const a = run(7);
  assert.deepEqual(run(7), a);
  assert.ok(a.includes('ENOMEM') && a.includes('ok'));
  assert.notDeepEqual(run(8), a);
  // faultRate 0: never fails.
  const { mock } = setup({ seed: 7, faultRate: 0 });
  const d = iommuPagingDomainAlloc(mock.createDevice());
  for (let i = 0; i < 50; i++) iommuMap(d, A + i * 0x800, 0, 0x800, RW);
});

test('mock: injected attach failure leaves the device on its old domain; a failing probe removes the device', () => {
  const { core, mock } = setup({ seed: 3 });
  const dev = mock.createDevice();
  const def = core.groups.get(dev)!.domain;
  core.groups.put(core.groups.get(dev)!);
  const d = iommuPagingDomainAlloc(dev);
  mock.faultRate = 1;
  assert.throws(() => iommuAttachDevice(core, d, dev), (e) => isIommuError(e, 'ENOMEM'));
  const g = core.groups.get(dev)!;
  assert.equal(g.domain, def);
  core.groups.put(g);
  assert.throws(() => mock.createDevice('doomed'), (e) => isIommuError(e, 'ENOMEM'));
  assert.equal(mock.bus.devices.some((x) => x.name === 'doomed'), false);
  mock.faultRate = 0;
  assert.ok(mock.createDevice('doomed').iommuGroup);
  // A device added to the mock bus directly is probed by the bus notifier only if it names the mock's fwnode.
  const raw = new Device('raw', mock.bus, null, mock.fwnode);
  deviceAdd(raw);
  assert.equal(raw.iommuGroup, null, 'no firmware spec, and no unit registered without a node: nobody probes it');
  const named = new Device('named', mock.bus, null, mock.fwnode);
  iommuFwspecInit(core, named, mock.fwnode);
  deviceAdd(named);
  assert.ok(named.iommuGroup);
});
