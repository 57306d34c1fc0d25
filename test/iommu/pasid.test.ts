// Mainline PASID attach (spec §6.1–6.2, vectors 48–49), PASID-tagged DMA, and
// subdevices on a parent's IOMMU (§7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IommuError } from '../../src/base/errno.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { iommuAttachDevice, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { devIommu } from '../../src/iommu/core.js';
import { iommuDeviceClaimDmaOwner } from '../../src/iommu/dma-owner.js';
import { iommuIovaToPhys, iommuMap, iommuUnmap } from '../../src/iommu/domain.js';
import { iommuAllocGlobalPasid, iommuAttachDevicePasid, iommuDetachDevicePasid, iommuFreeGlobalPasid, iommuGetDomainForDevPasid, IOMMU_PASID_INVALID } from '../../src/iommu/pasid.js';
import { createSubdevice, removeSubdevice, subdevAttach, subdevDetach } from '../../src/iommu/subdev.js';
import { dmaRead, iommuTranslate } from '../../src/iommu/translate.js';
import { renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { PcieType } from '../../src/pci/regs.js';
import { bootSmall } from './helpers.js';

const errno = (name: string) => (e: unknown) => e instanceof IommuError && e.errno === name;
const RW = IOMMU_READ | IOMMU_WRITE;

/** 03:00.0 with a PASID capability of width 4 (16 PASIDs), alone under an ACS root port. */
function bootPasid(width = 4) {
  return bootSmall('iommu.strict=1', 'intel', [
    ['0000:00:03.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 3, subordinate: 3 }, acs: { cap: 0x1d, ctrl: 0x1d } }],
    ['0000:03:00.0', { pcieType: PcieType.ENDPOINT, pasidWidth: width }],
  ]);
}

test('max PASIDs come from the PCIe PASID capability; vector 48: global PASIDs 1..15, then INVALID; freed ids come back', () => {
  const b = bootPasid(4);
  const dev = b.dev('0000:03:00.0');
  assert.equal(devIommu(dev)!.maxPasids, 16);
  assert.equal(devIommu(b.dev('0000:01:00.0'))!.maxPasids, 0);
  assert.equal(iommuAllocGlobalPasid(b.core, b.dev('0000:01:00.0')), IOMMU_PASID_INVALID); // max_pasids 0
  const got = Array.from({ length: 15 }, () => iommuAllocGlobalPasid(b.core, dev));
  assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => i + 1));
  assert.equal(iommuAllocGlobalPasid(b.core, dev), IOMMU_PASID_INVALID);
  iommuFreeGlobalPasid(b.core, 3);
  assert.equal(iommuAllocGlobalPasid(b.core, dev), 3);
});

test('vector 49: PASID 0 EINVAL, PASID ≥ max EINVAL, same PASID twice EBUSY, no group ENODEV', () => {
  const b = bootPasid(4);
  const dev = b.dev('0000:03:00.0');
  const d = iommuPagingDomainAlloc(dev);
  assert.throws(() => iommuAttachDevicePasid(b.core, d, dev, 0), errno('EINVAL'));
  assert.throws(() => iommuAttachDevicePasid(b.core, d, dev, 16), errno('EINVAL'));
  iommuAttachDevicePasid(b.core, d, dev, 5);
  assert.throws(() => iommuAttachDevicePasid(b.core, d, dev, 5), errno('EBUSY'));
  assert.equal(iommuGetDomainForDevPasid(b.core, dev, 5), d);
  const loose = { ...dev, iommuGroup: null } as typeof dev;
  assert.throws(() => iommuAttachDevicePasid(b.core, d, loose, 6), errno('ENODEV'));
  // A PASID attachment blocks a DMA owner claim (EBUSY), as a non-empty pasid_array does in Linux.
  assert.throws(() => iommuDeviceClaimDmaOwner(b.core, dev, {}), errno('EBUSY'));
  iommuDetachDevicePasid(b.core, d, dev, 5);
  assert.equal(iommuGetDomainForDevPasid(b.core, dev, 5), null);
});

test('EOPNOTSUPP: a driver without set_dev_pasid cannot attach per PASID', () => {
  const b = bootPasid(4);
  const dev = b.dev('0000:03:00.0');
  const d = iommuPagingDomainAlloc(dev);
  const noPasid = { ...d.ops, setDevPasid: undefined };
  Object.defineProperty(d, 'ops', { value: noPasid });
  assert.throws(() => iommuAttachDevicePasid(b.core, d, dev, 1), errno('EOPNOTSUPP'));
});

test('PASID-tagged DMA translates through the domain at that PASID; RID DMA through the default domain; unmap invalidates the PASID-tagged IOTLB entry', () => {
  const b = bootPasid(4);
  const dev = b.dev('0000:03:00.0');
  const d = iommuPagingDomainAlloc(dev);
  iommuMap(d, 0x1000, 0x7000_0000, 0x1000, RW);
  iommuAttachDevicePasid(b.core, d, dev, 2);
  assert.equal(iommuTranslate(b.core, dev, 0x1010, IOMMU_READ, 2), 0x7000_0010);
  assert.equal(iommuTranslate(b.core, dev, 0x1010, IOMMU_READ, 2), 0x7000_0010); // now from the IOTLB
  assert.equal(iommuTranslate(b.core, dev, 0x1010, IOMMU_READ, 3), -1); // nothing at PASID 3
  assert.equal(iommuTranslate(b.core, dev, 0x1010, IOMMU_READ), -1); // the RID's default domain does not map it
  assert.equal(iommuUnmap(d, 0x1000, 0x1000), 0x1000);
  assert.equal(iommuTranslate(b.core, dev, 0x1010, IOMMU_READ, 2), -1); // strict: the PASID-tagged entry was invalidated
});

test('subdevices: each in its own group; a PASID-capable parent gets a PASID per subdevice, and subdevice DMA goes through it', () => {
  const b = bootPasid(4);
  const parent = b.dev('0000:03:00.0');
  const s1 = createSubdevice(b.core, parent, 'sub1');
  const s2 = createSubdevice(b.core, parent, 'sub2');
  const g1 = b.core.groups.get(s1)!;
  const g2 = b.core.groups.get(s2)!;
  assert.notEqual(g1.id, g2.id);
  assert.equal(g1.defaultDomain, null); // unmanaged domains only
  const view = renderIommuSysfs(b.core.groups);
  assert.ok(view.readDir(`kernel/iommu_groups/${g1.id}/devices`)!.includes('sub1'));
  assert.equal(view.readFile(`kernel/iommu_groups/${g1.id}/reserved_regions`), '0x00000000fee00000 0x00000000feefffff msi\n'); // the parent's
  b.core.groups.put(g1);
  b.core.groups.put(g2);
  const d1 = iommuPagingDomainAlloc(s1);
  const d2 = iommuPagingDomainAlloc(s2);
  iommuMap(d1, 0x10_0000, 0x5000_0000, 0x1000, RW);
  iommuMap(d2, 0x10_0000, 0x6000_0000, 0x1000, RW);
  const p1 = subdevAttach(b.core, d1, s1);
  const p2 = subdevAttach(b.core, d2, s2);
  assert.deepEqual([p1, p2], [1, 2]);
  assert.equal(iommuTranslate(b.core, s1, 0x10_0000, IOMMU_READ), 0x5000_0000);
  assert.equal(iommuTranslate(b.core, s2, 0x10_0000, IOMMU_READ), 0x6000_0000);
  assert.throws(() => subdevAttach(b.core, d2, s1), errno('EBUSY'));
  subdevDetach(b.core, d1, s1);
  assert.equal(dmaRead(b.core, s1, 0x10_0000, new Uint8Array(4)).errno, 'EFAULT');
  removeSubdevice(b.core, s2);
  assert.equal(iommuGetDomainForDevPasid(b.core, parent, 2), null);
});

test('subdevices of a parent without PASIDs: the domain becomes the parent\'s primary domain', () => {
  const b = bootPasid(4);
  const parent = b.dev('0000:01:00.0'); // no PASID capability, alone in its group
  const s = createSubdevice(b.core, parent, 'sub0');
  const d = iommuPagingDomainAlloc(s);
  iommuMap(d, 0x2000, 0x4400_0000, 0x1000, RW);
  assert.equal(subdevAttach(b.core, d, s), null);
  assert.equal(devIommu(parent)!.domain, d);
  assert.equal(iommuTranslate(b.core, s, 0x2000, IOMMU_READ), 0x4400_0000);
  assert.equal(iommuIovaToPhys(d, 0x2000), 0x4400_0000);
  subdevDetach(b.core, d, s);
  const g = b.core.groups.get(parent)!;
  assert.equal(devIommu(parent)!.domain, g.defaultDomain);
  b.core.groups.put(g);
  // A parent that is not alone in its group cannot lend its primary domain (EINVAL, as iommu_attach_device).
  const t = createSubdevice(b.core, b.dev('0000:02:00.0'), 'sub-shared');
  const e = iommuPagingDomainAlloc(t);
  assert.throws(() => subdevAttach(b.core, e, t), errno('EINVAL'));
  // And a domain attached to the parent already: EBUSY.
  const own = iommuPagingDomainAlloc(parent);
  iommuAttachDevice(b.core, own, parent);
  const s3 = createSubdevice(b.core, parent, 'sub3');
  assert.throws(() => subdevAttach(b.core, iommuPagingDomainAlloc(s3), s3), errno('EBUSY'));
});
