// End to end: a NIC goes from its kernel driver to user space through iommufd and back; its DMA follows the user's mappings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceBindDriver, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { devIommu } from '../../src/iommu/core.js';
import { iommuIovaToPhys } from '../../src/iommu/domain.js';
import { dmaRead, dmaWrite } from '../../src/iommu/translate.js';
import { IommufdContext, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE } from '../../src/iommufd/index.js';
import { bootNic, errno, G1, K4, M2, NIC } from './helpers.js';

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

test('e2e: e1000e → EPERM for iommufd → vfio-pci → iommufd: 1 GiB mapped as 511 × 2 MiB + 512 × 4 KiB, DMA translated and faulting → back to e1000e', () => {
  const { core, unit, dev, group } = bootNic();
  const nic = dev(NIC);
  const g = group(NIC);
  assert.deepEqual(g.devices.map((d) => d.dev), [nic]); // alone in its group

  // The kernel driver owns the device through the DMA API.
  deviceBindDriver(nic, driverByName('e1000e'));
  assert.equal(g.ownerCnt, 1);
  const ctx = new IommufdContext(core);
  assert.throws(() => ctx.bindDevice(nic), errno('EPERM'));
  assert.equal(g.domain, g.defaultDomain);

  // Hand it to vfio-pci, then to user space.
  deviceReleaseDriver(nic);
  deviceBindDriver(nic, driverByName('vfio-pci'));
  assert.equal(g.ownerCnt, 0);
  const devId = ctx.bindDevice(nic);
  assert.equal(g.owner, ctx);
  assert.equal(g.domain, g.blockingDomain);
  const ioas = ctx.ioasAlloc();

  // 1 GiB of user memory, mapped as 511 × 2 MiB then the last 2 MiB as 512 × 4 KiB.
  const va = 0x7f80_0000_0000;
  const iovaBase = 0x1_0000_0000; // above the MSI window
  ctx.mm.mmap(va, G1);
  for (let i = 0; i < 511; i++) assert.equal(ctx.ioasMap(ioas, iovaBase + i * M2, va + i * M2, M2, RW), iovaBase + i * M2);
  for (let j = 0; j < 512; j++) {
    const off = 511 * M2 + j * K4;
    ctx.ioasMap(ioas, iovaBase + off, va + off, K4, RW);
  }
  assert.equal(ctx.ioasAreas(ioas).length, 1023);
  assert.equal(ctx.ioasAreas(ioas).reduce((n, a) => n + a.length, 0), G1);

  // Attach: the group moves from blocking to an automatic HWPT filled from the IOAS.
  const hwpt = ctx.deviceAttach(devId, ioas);
  const dom = ctx.hwptDomain(hwpt);
  assert.equal(g.domain, dom);
  assert.equal(devIommu(nic)!.domain, dom);
  const w = new Float64Array(2);
  dom.pgtable!.walk(iovaBase + 5 * M2, w);
  assert.equal(w[1], M2); // 2 MiB pieces use 2 MiB leaves
  dom.pgtable!.walk(iovaBase + 511 * M2 + 3 * K4, w);
  assert.equal(w[1], K4);
  assert.equal(iommuIovaToPhys(dom, iovaBase + G1 - 1), ctx.mm.translate(va + G1 - 1));

  // DMA from the device lands in the right physical pages.
  const probes = [0, 0x1234, 123 * M2 + 0xabc, 510 * M2 + M2 - 8, 511 * M2, 511 * M2 + 77 * K4 + 0x10, G1 - 16];
  probes.forEach((off, i) => {
    const data = Uint8Array.from({ length: 16 }, (_, k) => (i * 31 + k) & 0xff);
    const r = dmaWrite(core, nic, iovaBase + off, data);
    assert.equal(r.errno, null);
    assert.equal(r.bytes, 16);
    const got = new Uint8Array(16);
    for (let k = 0; k < 16; k++) got[k] = core.mem.read8(ctx.mm.translate(va + off + k)); // the bytes in physical memory
    assert.deepEqual(got, data, `offset 0x${off.toString(16)}`);
  });
  // A write crossing from a 2 MiB piece into the 4 KiB pieces, and the CPU's data read back by the device.
  ctx.mm.write(va + 511 * M2 - 4, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
  const back = new Uint8Array(8);
  assert.equal(dmaRead(core, nic, iovaBase + 511 * M2 - 4, back).errno, null);
  assert.deepEqual([...back], [1, 2, 3, 4, 5, 6, 7, 8]);

  // Outside the mappings: faults, reported on the unit; dmaRead says EFAULT.
  const faultsBefore = unit.faultCount;
  for (const bad of [iovaBase - K4, iovaBase + G1, 0xfee0_0000, 0x1000]) {
    const r = dmaRead(core, nic, bad, new Uint8Array(4));
    assert.equal(r.errno, 'EFAULT');
    assert.equal(r.bytes, 0);
    assert.equal(r.fault!.iova, bad);
    assert.equal(unit.faultLog.at(-1)!.iova, bad);
    assert.equal(unit.faultLog.at(-1)!.dev, nic);
  }
  assert.equal(unit.faultCount, faultsBefore + 4);
  // A transfer running off the end of the mappings stops at the boundary.
  const tail = dmaWrite(core, nic, iovaBase + G1 - 8, new Uint8Array(16));
  assert.equal(tail.bytes, 8);
  assert.equal(tail.errno, 'EFAULT');

  // Unmapping a piece makes it fault at once (the IOTLB is invalidated).
  assert.equal(ctx.ioasUnmap(ioas, iovaBase + 7 * M2, M2), M2);
  assert.equal(dmaRead(core, nic, iovaBase + 7 * M2, new Uint8Array(4)).errno, 'EFAULT');

  // Give it back: unbind from the context (group back to its default domain), unbind vfio-pci, rebind e1000e.
  ctx.unbindDevice(devId);
  assert.equal(g.owner, null);
  assert.equal(g.ownerCnt, 0);
  assert.equal(g.domain, g.defaultDomain);
  assert.equal(devIommu(nic)!.domain, g.defaultDomain);
  assert.equal(ctx.objectType(hwpt), null);
  assert.equal(dom.freed, true);
  deviceReleaseDriver(nic);
  deviceBindDriver(nic, driverByName('e1000e'));
  assert.equal(g.ownerCnt, 1);
  assert.equal(nic.driver!.name, 'e1000e');
  ctx.close();
});
