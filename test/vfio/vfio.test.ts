// Legacy VFIO (spec §10.1, vectors 39–46 with v5.19+ behaviour): group viability, SET_CONTAINER, GET_DEVICE_FD, and the
// type1 backend's map/unmap rules — each errno path by name; DMA through the container's mappings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceBindDriver, deviceReleaseDriver, type Device } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { createIntelIommu } from '../../src/drivers/intel-vt-d/index.js';
import { iommuAttachGroup, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { IommuCore, devIommu } from '../../src/iommu/core.js';
import { enableDmaOwnership } from '../../src/iommu/dma-owner.js';
import { iommuIovaToPhys, type IommuDomain } from '../../src/iommu/domain.js';
import type { IommuGroup } from '../../src/iommu/group.js';
import { dmaRead, dmaWrite } from '../../src/iommu/translate.js';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import {
  VfioContainer,
  VfioGroup,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
} from '../../src/vfio/index.js';
import { A, B, bootNic, errno, K4, M2, NIC } from '../iommufd/helpers.js';

const RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
const VA = 0x7f00_0000_0000;
const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
const e1000e = () => driverByName('e1000e');
const vfioPci = () => driverByName('vfio-pci');

/** A NIC bound to vfio-pci, its group open, a container with 64 MiB of user memory. */
function nicSetup(opts: ConstructorParameters<typeof VfioContainer>[1] = {}) {
  const b = bootNic();
  deviceBindDriver(b.dev(NIC), vfioPci());
  const g = b.group(NIC);
  const vg = VfioGroup.open(b.core, g);
  const container = new VfioContainer(b.core, opts);
  container.mm.mmap(VA, 32 * M2);
  return { ...b, g, vg, container, nic: b.dev(NIC) };
}

/** nicSetup + SET_CONTAINER + SET_IOMMU(type). */
function ready(type = VFIO_TYPE1v2_IOMMU, opts: ConstructorParameters<typeof VfioContainer>[1] = {}) {
  const s = nicSetup(opts);
  s.vg.setContainer(s.container);
  s.container.setIommu(type);
  return s;
}

/** A tiny machine from function specs, with VT-d (optionally RMRRs) and the DMA-ownership bus hooks. */
function machine(fns: [string, FunctionSpec][], rmrrs: { start: number; length: number; devices: string[] }[] = []) {
  const core = new IommuCore({ strict: true });
  const { ops } = createIntelIommu(core, { rmrrs });
  const topo = buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const })));
  core.probeDevices(topo.pciBus.devices, ops);
  enableDmaOwnership(core, topo.pciBus);
  const dev = (bdf: string): Device => topo.byBdf.get(bdf)!.dev;
  const group = (bdf: string): IommuGroup => {
    const g = core.groups.get(dev(bdf))!;
    core.groups.put(g);
    return g;
  };
  return { core, dev, group };
}

// ---- vectors 39 and 40 ---------------------------------------------------------------

test('vector 39: A bound to e1000e ⇒ the group is not viable and SET_CONTAINER fails EPERM', () => {
  const { core, dev, group } = bootNic();
  deviceBindDriver(dev(A), e1000e());
  deviceBindDriver(dev(B), vfioPci()); // so that /dev/vfio/N exists
  const g = group(A);
  assert.equal(g.ownerCnt, 1);
  const vg = VfioGroup.open(core, g);
  assert.deepEqual(vg.getStatus(), { flags: 0, viable: false, containerSet: false });
  const c = new VfioContainer(core);
  assert.throws(() => vg.setContainer(c), errno('EPERM'));
  assert.equal(g.owner, null);
  assert.equal(g.ownerCnt, 1);
  assert.equal(vg.container, null);
  assert.deepEqual(c.groups, []);
});

test('vector 40: A on vfio-pci, B unbound ⇒ viable; SET_CONTAINER claims (blocking), SET_IOMMU attaches an unmanaged domain; e1000e on B fails EBUSY, pci-stub/vfio-pci succeed', () => {
  const { core, dev, group } = bootNic();
  deviceBindDriver(dev(A), e1000e());
  deviceReleaseDriver(dev(A));
  deviceBindDriver(dev(A), vfioPci());
  const g = group(A);
  assert.equal(g.ownerCnt, 0);
  const vg = VfioGroup.open(core, g);
  assert.deepEqual(vg.getStatus(), { flags: VFIO_GROUP_FLAGS_VIABLE, viable: true, containerSet: false });
  const c = new VfioContainer(core);
  vg.setContainer(c);
  assert.equal(g.owner, vg);
  assert.equal(g.ownerCnt, 1);
  assert.equal(g.domain, g.blockingDomain);
  assert.deepEqual(vg.getStatus(), { flags: VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, viable: true, containerSet: true });
  c.setIommu(VFIO_TYPE1v2_IOMMU);
  const dom = g.domain as IommuDomain;
  assert.equal(dom.type, 'unmanaged');
  assert.equal(dom, c.iommu!.iommuDomains[0]);
  for (const { dev: d } of g.devices) assert.equal(devIommu(d)!.domain, dom);
  assert.throws(() => deviceBindDriver(dev(B), e1000e()), errno('EBUSY'));
  assert.equal(dev(B).driver, null);
  deviceBindDriver(dev(B), driverByName('pci-stub'));
  deviceReleaseDriver(dev(B));
  deviceBindDriver(dev(B), vfioPci());
  assert.equal(g.ownerCnt, 1);
});

// ---- vectors 42, 43, 45, 46 ---------------------------------------------------------------

test('vector 42: owner_cnt 0 but an API user attached an unmanaged domain ⇒ SET_CONTAINER fails EBUSY', () => {
  const { core, nic, g, vg, container } = nicSetup();
  const d = iommuPagingDomainAlloc(nic);
  iommuAttachGroup(core, d, g);
  assert.equal(g.ownerCnt, 0);
  assert.equal(vg.getStatus().viable, true); // nothing claimed: reported viable
  assert.throws(() => vg.setContainer(container), errno('EBUSY'));
  assert.equal(g.owner, null);
  assert.equal(g.domain, d);
});

test('vector 43: an RMRR (IOMMU_RESV_DIRECT) device cannot be claimed (EINVAL); a USB controller\'s relaxable RMRR can', () => {
  const rp = (bus: number): FunctionSpec => ({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: bus, subordinate: bus }, acs: { cap: ACS, ctrl: ACS } });
  const m = machine(
    [
      ['0000:00:01.0', rp(1)],
      ['0000:01:00.0', { pcieType: PcieType.ENDPOINT, classCode: 0x010802 }], // NVMe with an RMRR: DIRECT
      ['0000:00:02.0', rp(2)],
      ['0000:02:00.0', { pcieType: PcieType.ENDPOINT, classCode: 0x0c0330 }], // xHCI with an RMRR: DIRECT_RELAXABLE
    ],
    [
      { start: 0x7b80_0000, length: M2, devices: ['0000:01:00.0'] },
      { start: 0x7c00_0000, length: M2, devices: ['0000:02:00.0'] },
    ],
  );
  deviceBindDriver(m.dev('0000:01:00.0'), vfioPci());
  deviceBindDriver(m.dev('0000:02:00.0'), vfioPci());
  const direct = VfioGroup.open(m.core, m.group('0000:01:00.0'));
  const c = new VfioContainer(m.core);
  assert.throws(() => direct.setContainer(c), errno('EINVAL'));
  assert.equal(m.group('0000:01:00.0').ownerCnt, 0);
  assert.equal(m.group('0000:01:00.0').domain, m.group('0000:01:00.0').defaultDomain);
  const relaxable = VfioGroup.open(m.core, m.group('0000:02:00.0'));
  relaxable.setContainer(c);
  c.setIommu(VFIO_TYPE1v2_IOMMU);
  // The relaxable RMRR is not excluded from the valid IOVA ranges; the MSI window is.
  assert.deepEqual(c.getInfo().iovaRanges, [
    { start: 0, end: 0xfedf_ffff },
    { start: 0xfef0_0000, end: 2 ** 48 - 1 },
  ]);
  assert.equal(m.group('0000:02:00.0').domain, c.iommu!.iommuDomains[0]);
});

test('vector 45 (v5.19+): a bridge bound to shpchp makes the group non-viable (SET_CONTAINER EPERM); on pcieport it is viable', () => {
  const m = machine([
    ['0000:00:01.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 2 }, acs: { cap: ACS, ctrl: ACS } }],
    ['0000:01:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: { primary: 1, secondary: 2, subordinate: 2 } }],
    ['0000:02:04.0', {}],
  ]);
  const bridge = m.dev('0000:01:00.0');
  const ep = m.dev('0000:02:04.0');
  const g = m.group('0000:02:04.0');
  assert.deepEqual(g.devices.map((d) => d.dev.name), ['0000:01:00.0', '0000:02:04.0']);
  deviceBindDriver(bridge, driverByName('shpchp'));
  deviceBindDriver(ep, vfioPci());
  const vg = VfioGroup.open(m.core, g);
  assert.equal(vg.getStatus().viable, false); // old VFIO exempted bridges; v5.19+ does not
  const c = new VfioContainer(m.core);
  assert.throws(() => vg.setContainer(c), errno('EPERM'));
  deviceReleaseDriver(bridge);
  deviceBindDriver(bridge, driverByName('pcieport'));
  assert.equal(vg.getStatus().viable, true);
  vg.setContainer(c);
  assert.equal(g.owner, vg);
});

test('vector 46 (v5.19+): with EP2 on e1000e the group is not viable — SET_CONTAINER EPERM, GET_DEVICE_FD EINVAL (no container); once claimed, e1000e cannot bind (EBUSY)', () => {
  const { core, dev, group } = bootNic();
  deviceBindDriver(dev(A), vfioPci());
  deviceBindDriver(dev(B), e1000e());
  const vg = VfioGroup.open(core, group(A));
  const c = new VfioContainer(core);
  assert.throws(() => vg.setContainer(c), errno('EPERM'));
  assert.throws(() => vg.getDeviceFd(A), errno('EINVAL'));
  deviceReleaseDriver(dev(B));
  vg.setContainer(c);
  c.setIommu(VFIO_TYPE1v2_IOMMU);
  assert.equal(vg.getDeviceFd(A).dev, dev(A));
  assert.throws(() => deviceBindDriver(dev(B), e1000e()), errno('EBUSY'));
});

// ---- group file ------------------------------------------------------------------------------

test('group open: ENODEV without a VFIO-bound device, EBUSY when already open; close releases the container and ownership', () => {
  const { core, dev, group } = bootNic();
  assert.throws(() => VfioGroup.open(core, group(NIC)), errno('ENODEV'));
  deviceBindDriver(dev(NIC), vfioPci());
  const vg = VfioGroup.open(core, group(NIC));
  assert.throws(() => VfioGroup.open(core, group(NIC)), errno('EBUSY'));
  const c = new VfioContainer(core);
  vg.setContainer(c);
  c.setIommu(VFIO_TYPE1v2_IOMMU);
  vg.getDeviceFd(NIC);
  vg.close();
  assert.equal(group(NIC).owner, null);
  assert.equal(group(NIC).domain, group(NIC).defaultDomain);
  assert.equal(c.iommu, null);
  assert.throws(() => vg.getStatus(), errno('EBADF'));
  VfioGroup.open(core, group(NIC)).close();
});

test('SET_CONTAINER EINVAL twice; UNSET_CONTAINER EINVAL without, EBUSY with an open device fd; unset returns the group to its default domain', () => {
  const { vg, container, g } = nicSetup();
  assert.throws(() => vg.unsetContainer(), errno('EINVAL'));
  vg.setContainer(container);
  assert.throws(() => vg.setContainer(container), errno('EINVAL'));
  container.setIommu(VFIO_TYPE1v2_IOMMU);
  const fd = vg.getDeviceFd(NIC);
  assert.throws(() => vg.unsetContainer(), errno('EBUSY'));
  fd.close();
  vg.unsetContainer();
  assert.equal(g.owner, null);
  assert.equal(g.domain, g.defaultDomain);
  assert.equal(container.iommu, null); // the last group deprivileges the container
  assert.deepEqual(vg.getStatus(), { flags: VFIO_GROUP_FLAGS_VIABLE, viable: true, containerSet: false });
});

test('GET_DEVICE_FD: ENODEV for an unknown device or one not bound to vfio-pci; EINVAL without a container or without SET_IOMMU', () => {
  const { core, dev, group } = bootNic();
  deviceBindDriver(dev(A), vfioPci());
  const vg = VfioGroup.open(core, group(A));
  assert.throws(() => vg.getDeviceFd(NIC), errno('ENODEV')); // not in this group
  assert.throws(() => vg.getDeviceFd(B), errno('ENODEV')); // in the group, no VFIO driver
  assert.throws(() => vg.getDeviceFd(A), errno('EINVAL')); // no container
  const c = new VfioContainer(core);
  vg.setContainer(c);
  assert.throws(() => vg.getDeviceFd(A), errno('EINVAL')); // no IOMMU set
  c.setIommu(VFIO_TYPE1v2_IOMMU);
  const fd = vg.getDeviceFd(A);
  assert.equal(fd.open, true);
  fd.close();
  assert.equal(fd.open, false);
});

// ---- container and type1 ------------------------------------------------------------------------

test('container: CHECK_EXTENSION; SET_IOMMU EINVAL without a group or twice, ENODEV for an unknown type; ioctls EINVAL before SET_IOMMU', () => {
  const { vg, container } = nicSetup();
  assert.equal(container.checkExtension(VFIO_TYPE1_IOMMU), 1);
  assert.equal(container.checkExtension(VFIO_TYPE1v2_IOMMU), 1);
  assert.equal(container.checkExtension(VFIO_UNMAP_ALL), 1);
  assert.equal(container.checkExtension(VFIO_DMA_CC_IOMMU), 0);
  assert.equal(container.checkExtension(2), 0); // SPAPR TCE
  assert.throws(() => container.setIommu(VFIO_TYPE1v2_IOMMU), errno('EINVAL'));
  vg.setContainer(container);
  assert.throws(() => container.mapDma(VA, 0x10_0000, K4, RW), errno('EINVAL'));
  assert.throws(() => container.unmapDma(0x10_0000, K4), errno('EINVAL'));
  assert.throws(() => container.getInfo(), errno('EINVAL'));
  assert.throws(() => container.setIommu(2), errno('ENODEV'));
  container.setIommu(VFIO_TYPE1v2_IOMMU);
  assert.throws(() => container.setIommu(VFIO_TYPE1v2_IOMMU), errno('EINVAL'));
  container.close();
  assert.throws(() => container.getInfo(), errno('EBADF'));
});

test('SET_IOMMU EPERM without interrupt remapping unless allow_unsafe_interrupts; the group stays claimed on its blocking domain', () => {
  const s = nicSetup({ isolatedMsi: false });
  s.vg.setContainer(s.container);
  assert.throws(() => s.container.setIommu(VFIO_TYPE1v2_IOMMU), errno('EPERM'));
  assert.equal(s.g.domain, s.g.blockingDomain);
  assert.equal(s.container.iommu, null);
  const t = nicSetup({ isolatedMsi: false, allowUnsafeInterrupts: true });
  t.vg.setContainer(t.container);
  t.container.setIommu(VFIO_TYPE1v2_IOMMU);
});

test('GET_INFO: page sizes 4K|2M|1G and the valid IOVA ranges (aperture minus the MSI window)', () => {
  const { container } = ready();
  const info = container.getInfo();
  assert.deepEqual(info.pgsizes, [K4, M2, 0x4000_0000]);
  assert.equal(info.iovaPgsizes, 0x4020_1000);
  assert.deepEqual(info.iovaRanges, [
    { start: 0, end: 0xfedf_ffff },
    { start: 0xfef0_0000, end: 2 ** 48 - 1 },
  ]);
  assert.equal(info.dmaAvail, 65535);
});

test('MAP_DMA errnos: EINVAL for flags, alignment, size 0, the MSI window, beyond the aperture; EEXIST overlap; EFAULT user memory; ENOSPC entry limit', () => {
  const { container } = ready(VFIO_TYPE1v2_IOMMU, { dmaEntryLimit: 3 });
  assert.throws(() => container.mapDma(VA, 0x10_0000, K4, 0), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA, 0x10_0000, K4, RW | 4), errno('EINVAL')); // VADDR: not modelled
  assert.throws(() => container.mapDma(VA, 0x10_0800, K4, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA + 0x800, 0x10_0000, K4, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA, 0x10_0000, 0x800, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA, 0x10_0000, 0, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA, 0xfee0_0000, K4, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(VA, 2 ** 48, K4, RW), errno('EINVAL'));
  assert.throws(() => container.mapDma(0x1000_0000, 0x10_0000, K4, RW), errno('EFAULT'));
  container.mm.mmap(0x2000_0000, K4, { writable: false });
  assert.throws(() => container.mapDma(0x2000_0000, 0x10_0000, K4, RW), errno('EFAULT'));
  container.mapDma(0x2000_0000, 0x10_0000, K4, VFIO_DMA_MAP_FLAG_READ);
  container.mapDma(VA, 0x20_0000, 4 * K4, RW);
  assert.throws(() => container.mapDma(VA, 0x20_3000, K4, RW), errno('EEXIST'));
  assert.throws(() => container.mapDma(VA, 0x1f_f000, 2 * K4, RW), errno('EEXIST'));
  container.mapDma(VA, 0x30_0000, K4, RW);
  assert.throws(() => container.mapDma(VA, 0x40_0000, K4, RW), errno('ENOSPC'));
  assert.equal(container.getInfo().dmaAvail, 0);
  assert.equal(container.iommu!.mappings.length, 3);
});

test('UNMAP_DMA (v2): whole mappings, returns the size; EINVAL for a split (nothing unmapped), alignment, size 0; 0 for nothing; UNMAP_ALL', () => {
  const { container } = ready();
  container.mapDma(VA, 0x10_0000, 2 * K4, RW);
  container.mapDma(VA, 0x10_2000, 2 * K4, RW);
  container.mapDma(VA, 0x20_0000, M2, RW);
  assert.throws(() => container.unmapDma(0x10_1000, K4), errno('EINVAL'));
  assert.throws(() => container.unmapDma(0x10_0000, 3 * K4), errno('EINVAL'));
  assert.equal(container.iommu!.mappings.length, 3);
  assert.throws(() => container.unmapDma(0x10_0800, K4), errno('EINVAL'));
  assert.throws(() => container.unmapDma(0x10_0000, 0), errno('EINVAL'));
  assert.throws(() => container.unmapDma(0x10_0000, K4, VFIO_DMA_UNMAP_FLAG_ALL), errno('EINVAL'));
  assert.throws(() => container.unmapDma(0x10_0000, K4, 1), errno('EINVAL')); // GET_DIRTY_BITMAP: not modelled
  assert.equal(container.unmapDma(0x50_0000, K4), 0);
  assert.equal(container.unmapDma(0x10_0000, 4 * K4), 4 * K4);
  assert.equal(container.unmapDma(0, 0, VFIO_DMA_UNMAP_FLAG_ALL), M2);
  assert.equal(container.iommu!.mappings.length, 0);
  assert.equal(container.getInfo().dmaAvail, 65535);
});

test('UNMAP_DMA (v1): an unmap starting inside a mapping unmaps nothing (0), one covering its first byte unmaps it whole', () => {
  const { container } = ready(VFIO_TYPE1_IOMMU);
  container.mapDma(VA, 0x10_0000, 4 * K4, RW);
  assert.equal(container.unmapDma(0x10_1000, K4), 0);
  assert.equal(container.unmapDma(0x10_0000, K4), 4 * K4);
});

test('DMA through the container: mapped IOVAs reach the pinned pages with the largest leaves; outside them and after unmap it faults (EFAULT)', () => {
  const { core, unit, container, nic, g } = ready();
  container.mapDma(VA, 0x4000_0000, 2 * M2, RW);
  container.mapDma(VA + 4 * M2, 0x10_0000, K4, VFIO_DMA_MAP_FLAG_READ);
  const dom = g.domain as IommuDomain;
  const w = new Float64Array(2);
  dom.pgtable!.walk(0x4000_0000, w);
  assert.equal(w[1], M2);
  assert.equal(iommuIovaToPhys(dom, 0x4000_0000 + M2 + 0x10), container.mm.translate(VA + M2 + 0x10));
  const data = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);
  assert.equal(dmaWrite(core, nic, 0x4000_0000 + M2 + 0x10, data).errno, null);
  const got = new Uint8Array(4);
  core.mem.readBytes(container.mm.translate(VA + M2 + 0x10), got);
  assert.deepEqual(got, data);
  container.mm.write(VA + 4 * M2, Uint8Array.of(9, 8, 7));
  const rd = new Uint8Array(3);
  assert.equal(dmaRead(core, nic, 0x10_0000, rd).errno, null);
  assert.deepEqual([...rd], [9, 8, 7]);
  // Read-only mapping: a device write faults.
  assert.equal(dmaWrite(core, nic, 0x10_0000, rd).errno, 'EFAULT');
  assert.equal(unit.faultLog.at(-1)!.reason, 'permission');
  // Outside the mappings.
  const r = dmaRead(core, nic, 0x20_0000, new Uint8Array(4));
  assert.equal(r.errno, 'EFAULT');
  assert.equal(r.fault!.iova, 0x20_0000);
  container.unmapDma(0x4000_0000, 2 * M2);
  assert.equal(dmaRead(core, nic, 0x4000_0000 + M2 + 0x10, new Uint8Array(4)).errno, 'EFAULT');
});

test('two groups in one container share one domain; mappings reach both; the last group out drops every mapping', () => {
  const s = ready();
  const { core, dev, group } = s;
  deviceBindDriver(dev(A), vfioPci());
  const ga = VfioGroup.open(core, group(A));
  s.container.mapDma(VA, 0x10_0000, K4, RW);
  ga.setContainer(s.container);
  assert.equal(group(A).domain, s.g.domain); // the existing domain of the same driver is reused
  assert.equal(s.container.iommu!.iommuDomains.length, 1);
  assert.equal(dmaRead(core, dev(A), 0x10_0000, new Uint8Array(4)).errno, null);
  s.vg.unsetContainer();
  assert.equal(s.g.domain, s.g.defaultDomain);
  assert.equal(dmaRead(core, dev(A), 0x10_0000, new Uint8Array(4)).errno, null); // still mapped for A
  ga.unsetContainer();
  assert.equal(s.container.iommu, null);
  assert.equal(group(A).domain, group(A).defaultDomain);
});
