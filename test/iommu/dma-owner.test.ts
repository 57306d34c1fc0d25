// DMA ownership (spec §5): every errno path by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IommuError } from '../../src/base/errno.js';
import { deviceBindDriver, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { iommuAttachGroup, iommuDetachGroup, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import {
  iommuAttachDeviceShared,
  iommuDetachDeviceShared,
  iommuDeviceClaimDmaOwner,
  iommuDeviceReleaseDmaOwner,
  iommuDeviceUseDefaultDomain,
  iommuGroupClaimDmaOwner,
  iommuGroupDmaOwnerClaimed,
  iommuGroupReleaseDmaOwner,
} from '../../src/iommu/dma-owner.js';
import { iommuGroupStoreType } from '../../src/iommu/default-domain.js';
import type { IommuDomain } from '../../src/iommu/domain.js';
import { bootSmall } from './helpers.js';

const errno = (name: string) => (e: unknown) => e instanceof IommuError && e.errno === name;

function setup() {
  const b = bootSmall('intel_iommu=on');
  const A = b.dev('0000:02:00.0');
  const B = b.dev('0000:02:00.1');
  const g = b.core.groups.get(A)!;
  b.core.groups.put(g);
  return { ...b, A, B, g };
}

test('binding a kernel-DMA driver counts a default-domain user; pcieport/vfio-pci/pci-stub do not', () => {
  const { A, B, g, dev } = setup();
  deviceBindDriver(dev('0000:00:02.0'), driverByName('pcieport'));
  assert.equal(g.ownerCnt, 0);
  deviceBindDriver(A, driverByName('e1000e'));
  deviceBindDriver(B, driverByName('e1000e'));
  assert.equal(g.ownerCnt, 2);
  deviceReleaseDriver(A);
  assert.equal(g.ownerCnt, 1);
  assert.equal(iommuGroupDmaOwnerClaimed(g), true);
});

test('EPERM: a group claim while a kernel-DMA driver is bound (vector 39); EPERM: claiming twice, even by the same owner', () => {
  const { core, A, g } = setup();
  deviceBindDriver(A, driverByName('e1000e'));
  assert.throws(() => iommuGroupClaimDmaOwner(core, g, {}), errno('EPERM'));
  assert.equal(g.owner, null);
  deviceReleaseDriver(A);
  const owner = {};
  iommuGroupClaimDmaOwner(core, g, owner);
  assert.equal(g.domain, g.blockingDomain);
  assert.throws(() => iommuGroupClaimDmaOwner(core, g, owner), errno('EPERM'));
  iommuGroupReleaseDmaOwner(core, g);
  assert.equal(g.domain, g.defaultDomain);
  assert.equal(g.ownerCnt, 0);
});

test('EBUSY: binding a kernel-DMA driver while the group is owned (vector 40); pci-stub and vfio-pci bind fine', () => {
  const { core, A, B, g } = setup();
  iommuGroupClaimDmaOwner(core, g, {});
  assert.throws(() => deviceBindDriver(B, driverByName('e1000e')), errno('EBUSY'));
  assert.equal(B.driver, null);
  deviceBindDriver(B, driverByName('pci-stub'));
  deviceBindDriver(A, driverByName('vfio-pci'));
  assert.equal(g.ownerCnt, 1);
});

test('device claims (vector 41): same owner counts, another owner EPERM, last release returns to the default domain', () => {
  const { core, A, B, g } = setup();
  const ctx1 = {};
  const ctx2 = {};
  iommuDeviceClaimDmaOwner(core, A, ctx1);
  assert.equal(g.ownerCnt, 1);
  iommuDeviceClaimDmaOwner(core, B, ctx1);
  assert.equal(g.ownerCnt, 2);
  assert.throws(() => iommuDeviceClaimDmaOwner(core, B, ctx2), errno('EPERM'));
  iommuDeviceReleaseDmaOwner(core, A);
  assert.equal(g.ownerCnt, 1);
  assert.equal(g.owner, ctx1);
  iommuDeviceReleaseDmaOwner(core, B);
  assert.equal(g.owner, null);
  assert.equal(g.domain, g.defaultDomain);
});

test('EBUSY: a claim while an API user\'s domain is attached (vector 42); EINVAL: a null owner; ENODEV: no group', () => {
  const { core, A, g } = setup();
  const d = iommuPagingDomainAlloc(A);
  iommuAttachGroup(core, d, g);
  assert.throws(() => iommuGroupClaimDmaOwner(core, g, {}), errno('EBUSY'));
  assert.throws(() => iommuDeviceClaimDmaOwner(core, A, {}), errno('EBUSY'));
  assert.throws(() => iommuDeviceClaimDmaOwner(core, A, null), errno('EINVAL'));
  const loose = { ...A, iommuGroup: null } as typeof A;
  assert.throws(() => iommuDeviceClaimDmaOwner(core, loose, {}), errno('ENODEV'));
  assert.equal(g.domain, d);
});

test('EBUSY: a kernel-DMA driver cannot bind beside another bound one while the group is on a user domain', () => {
  const { core, A, B, g } = setup();
  deviceBindDriver(A, driverByName('e1000e'));
  const d = iommuPagingDomainAlloc(A);
  iommuAttachGroup(core, d, g); // Linux allows an API user's attach here
  assert.throws(() => iommuDeviceUseDefaultDomain(core, B), errno('EBUSY'));
});

test('while owned: attaching the owner\'s domain is allowed, detaching returns to blocking, not default; the type write is EPERM', () => {
  const { core, A, g } = setup();
  iommuGroupClaimDmaOwner(core, g, {});
  const d = iommuPagingDomainAlloc(A);
  iommuAttachGroup(core, d, g);
  assert.equal(g.domain, d);
  iommuDetachGroup(core, d, g);
  assert.equal(g.domain, g.blockingDomain);
  assert.throws(() => iommuGroupStoreType(core, g, 'identity'), errno('EPERM'));
});

test('a device added to an owned group is attached to the group\'s current domain (vector 57)', async () => {
  const { core, g, A } = setup();
  iommuGroupClaimDmaOwner(core, g, {});
  const { devIommu } = await import('../../src/iommu/core.js');
  assert.equal(devIommu(A)!.domain, g.blockingDomain as IommuDomain);
});

test('shared attachment: devices presenting the same domain join it (counted); another domain EBUSY; the last detach restores the default', () => {
  const { core, A, B, g } = setup();
  const d = iommuPagingDomainAlloc(A);
  const other = iommuPagingDomainAlloc(A);
  iommuAttachDeviceShared(core, d, A);
  iommuAttachDeviceShared(core, d, B);
  assert.throws(() => iommuAttachDeviceShared(core, other, B), errno('EBUSY'));
  iommuDetachDeviceShared(core, d, A);
  assert.equal(g.domain, d);
  iommuDetachDeviceShared(core, d, B);
  assert.equal(g.domain, g.defaultDomain);
  assert.throws(() => iommuDetachDeviceShared(core, d, B), errno('EINVAL'));
});

test('EINVAL: a device with a DIRECT (RMRR) region can never be claimed — the blocking domain is refused (vector 43)', async () => {
  const { IommuCore } = await import('../../src/iommu/core.js');
  const { createIntelIommu } = await import('../../src/drivers/intel-vt-d/index.js');
  const { buildConfig } = await import('../../src/pci/config-builder.js');
  const { buildPciTopology } = await import('../../src/pci/topology.js');
  const core = new IommuCore();
  const { ops } = createIntelIommu(core, {
    rmrrs: [
      { start: 0x7b80_0000, length: 0x20_0000, devices: ['0000:00:02.0'] },
      { start: 0x7c00_0000, length: 0x10_0000, devices: ['0000:00:14.0'] },
    ],
  });
  const topo = buildPciTopology([
    { bdf: '0000:00:02.0', config: buildConfig({ pcieType: 9, classCode: 0x010802 }), origin: 'synthetic' },
    { bdf: '0000:00:14.0', config: buildConfig({ pcieType: 9, classCode: 0x0c0330 }), origin: 'synthetic' }, // USB: relaxable
  ]);
  core.probeDevices(topo.pciBus.devices, ops);
  const strictDev = topo.byBdf.get('0000:00:02.0')!.dev;
  assert.throws(() => iommuDeviceClaimDmaOwner(core, strictDev, {}), errno('EINVAL'));
  const g = core.groups.get(strictDev)!;
  assert.equal(g.owner, null);
  assert.equal(g.domain, g.defaultDomain);
  core.groups.put(g);
  // DIRECT_RELAXABLE (a USB controller's RMRR) does not block the claim.
  iommuDeviceClaimDmaOwner(core, topo.byBdf.get('0000:00:14.0')!.dev, {});
});
