// The domain layer: spec §12.2 vectors 28–30 and §12.3 vectors 31–38, and
// every errno path of map/unmap/attach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IommuError } from '../../src/base/errno.js';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { iommuAttachDevice, iommuAttachGroup, iommuDetachDevice, iommuDomainFree, iommuGetDomainForDev, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { iommuGroupStoreType } from '../../src/iommu/default-domain.js';
import { IommuDomain, iommuIovaToPhys, iommuMap, iommuPgsize, iommuUnmap, type IommuDomainOps } from '../../src/iommu/domain.js';
import type { IommuOps } from '../../src/iommu/iommu-ops.js';
import { bootSmall } from './helpers.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const errno = (name: string) => (e: unknown) => e instanceof IommuError && e.errno === name;

/** A domain whose driver records every map_pages / unmap_pages call. */
function recordingDomain(bitmapSizes: number[], opts: { failAfterPages?: number; reportAll?: boolean } = {}) {
  const calls: string[] = [];
  const mapped = new Map<number, number>();
  let pagesMapped = 0;
  const owner = { name: 'mock' } as IommuOps;
  const ops: IommuDomainOps = {
    attachDev: () => undefined,
    mapPages(d, iova, paddr, pgsize, count) {
      calls.push(`map 0x${pgsize.toString(16)}×${count}@0x${iova.toString(16)}`);
      for (let i = 0; i < count; i++) {
        if (opts.failAfterPages !== undefined && pagesMapped >= opts.failAfterPages) {
          d.mapError = 'ENOMEM';
          return i * pgsize;
        }
        mapped.set(iova + i * pgsize, paddr + i * pgsize);
        pagesMapped++;
      }
      return count * pgsize;
    },
    unmapPages(_d, iova, pgsize, count) {
      calls.push(`unmap 0x${pgsize.toString(16)}×${count}@0x${iova.toString(16)}`);
      if (opts.reportAll) {
        for (let i = 0; i < count; i++) mapped.delete(iova + i * pgsize);
        return count * pgsize;
      }
      let n = 0;
      for (let i = 0; i < count; i++) {
        if (!mapped.delete(iova + i * pgsize)) break;
        n += pgsize;
      }
      return n;
    },
    iovaToPhys: (_d, iova) => mapped.get(iova - (iova % 4096)) ?? 0,
  };
  const d = new IommuDomain({ type: 'unmanaged', owner, ops, pgsizes: bitmapSizes });
  return { d, calls, mapped };
}

const K4 = 0x1000, M2 = 0x200000, G1 = 0x40000000;

test('vector 33: map alignment to the smallest page; map on an identity domain is EINVAL', () => {
  const { d } = recordingDomain([K4, M2, G1]);
  iommuMap(d, 0x1000, 0x1000, 0x1000, RW);
  assert.throws(() => iommuMap(d, 0x1800, 0x1800, 0x1000, RW), errno('EINVAL'));
  const b = bootSmall();
  assert.throws(() => iommuMap(b.ops.identityDomain!, 0, 0, 0x1000, RW), errno('EINVAL'));
});

test('vector 34: a range is split into the largest pages alignment allows', () => {
  const { d, calls } = recordingDomain([K4, M2, G1]);
  iommuMap(d, 0x1ff000, 0x1ff000, 0x202000, RW);
  assert.deepEqual(calls, ['map 0x1000×1@0x1ff000', 'map 0x200000×1@0x200000', 'map 0x1000×1@0x400000']);
});

test('vector 35: IOVA and PA that differ modulo 2M use 4K pages only, in one call', () => {
  const { d, calls } = recordingDomain([K4, M2]);
  iommuMap(d, 0x200000, 0x201000, 0x400000, RW);
  assert.deepEqual(calls, ['map 0x1000×1024@0x200000']);
  const out = iommuPgsize(d, 0x200000, 0x201000, 0x400000);
  assert.deepEqual([out[0], out[1]], [0x1000, 1024]);
});

test('vector 36: unmap stops at a hole (io-pgtable style) or counts everything (mock style); misaligned → 0', () => {
  const a = recordingDomain([K4]);
  iommuMap(a.d, 0, 0, 0x2000, RW);
  iommuMap(a.d, 0x4000, 0x4000, 0x1000, RW);
  assert.equal(iommuUnmap(a.d, 0, 0x5000), 0x2000);
  const b = recordingDomain([K4], { reportAll: true });
  iommuMap(b.d, 0, 0, 0x2000, RW);
  iommuMap(b.d, 0x4000, 0x4000, 0x1000, RW);
  assert.equal(iommuUnmap(b.d, 0, 0x5000), 0x5000);
  assert.equal(iommuUnmap(b.d, 0x800, 0x1000), 0);
});

test('vector 37: a map that fails part-way is undone; iova_to_phys is 0 afterwards', () => {
  const { d, mapped } = recordingDomain([K4], { failAfterPages: 3 });
  assert.throws(() => iommuMap(d, 0x10000, 0x80000000, 5 * K4, RW), errno('ENOMEM'));
  assert.equal(mapped.size, 0);
  for (let i = 0; i < 5; i++) assert.equal(iommuIovaToPhys(d, 0x10000 + i * K4), 0);
});

test('vector 38: iova_to_phys on identity is the IOVA, on blocked 0', () => {
  const b = bootSmall();
  assert.equal(iommuIovaToPhys(b.ops.identityDomain!, 0x1234), 0x1234);
  assert.equal(iommuIovaToPhys(b.ops.blockedDomain!, 0x1234), 0);
});

test('vector 31: attach errors — multi-device group EINVAL, no group ENODEV, busy EBUSY, default domain again 0', () => {
  const b = bootSmall();
  const ep = b.dev('0000:01:00.0');
  const d1 = iommuPagingDomainAlloc(ep);
  const d2 = iommuPagingDomainAlloc(ep);
  assert.throws(() => iommuAttachDevice(b.core, d1, b.dev('0000:02:00.0')), errno('EINVAL'));
  const loose = { ...ep, iommuGroup: null, name: 'loose' } as typeof ep;
  assert.throws(() => iommuAttachDevice(b.core, d1, loose), errno('ENODEV'));
  iommuAttachDevice(b.core, d1, ep);
  assert.equal(iommuGetDomainForDev(ep), d1);
  assert.throws(() => iommuAttachDevice(b.core, d2, ep), errno('EBUSY'));
  assert.throws(() => iommuAttachDevice(b.core, d1, ep), errno('EBUSY'));
  // Vector 32: detach returns it to the default domain.
  assert.equal(iommuDetachDevice(b.core, d1, ep), true);
  const g = b.core.groups.get(ep)!;
  assert.equal(iommuGetDomainForDev(ep), g.defaultDomain);
  // Attaching the default domain while on it: a no-op.
  iommuAttachGroup(b.core, g.defaultDomain as IommuDomain, g);
  b.core.groups.put(g);
});

test('attach of a domain from another driver is EINVAL; freeing an attached domain is EBUSY', () => {
  const intel = bootSmall();
  const arm = bootSmall('', 'arm-smmu-v3');
  const foreign = iommuPagingDomainAlloc(arm.dev('0000:01:00.0'));
  assert.throws(() => iommuAttachDevice(intel.core, foreign, intel.dev('0000:01:00.0')), errno('EINVAL'));
  const d = iommuPagingDomainAlloc(intel.dev('0000:01:00.0'));
  iommuAttachDevice(intel.core, d, intel.dev('0000:01:00.0'));
  assert.throws(() => iommuDomainFree(d), errno('EBUSY'));
  iommuDetachDevice(intel.core, d, intel.dev('0000:01:00.0'));
  iommuDomainFree(d);
});

test('a map over an existing mapping is EEXIST from the page table; the first mapping survives', () => {
  const b = bootSmall();
  const d = iommuPagingDomainAlloc(b.dev('0000:01:00.0'));
  iommuMap(d, 0x100000, 0x80000000, 0x1000, RW);
  assert.throws(() => iommuMap(d, 0x100000, 0x90000000, 0x1000, RW), errno('EEXIST'));
  assert.equal(iommuIovaToPhys(d, 0x100000), 0x80000000);
  assert.equal(iommuUnmap(d, 0x200000, 0x1000), 0); // unmap of nothing
});

test('default domains follow the command line: lazy DMA-FQ by default, iommu=pt identity, iommu.strict=1 DMA', () => {
  const types = (cmd: string) => [...bootSmall(cmd).core.groups].map((g) => (g.defaultDomain as IommuDomain).type);
  assert.ok(types('intel_iommu=on').every((t) => t === 'DMA-FQ'));
  assert.ok(types('intel_iommu=on iommu=pt').every((t) => t === 'identity'));
  assert.ok(types('intel_iommu=on iommu.strict=1').every((t) => t === 'DMA'));
  assert.ok(types('iommu.passthrough=1').every((t) => t === 'identity'));
});

test('vector 28 (recent kernels): type writes — DMA→DMA-FQ in place, EPERM while in use, then identity; blocked EINVAL; unprivileged EACCES', () => {
  const b = bootSmall('intel_iommu=on iommu.strict=1');
  const g = b.core.groups.get(b.dev('0000:01:00.0'))!;
  assert.equal((g.defaultDomain as IommuDomain).type, 'DMA');
  assert.equal(iommuGroupStoreType(b.core, g, 'DMA-FQ\n', { ownerCount: 1 }), 7);
  assert.equal((g.defaultDomain as IommuDomain).type, 'DMA-FQ');
  assert.throws(() => iommuGroupStoreType(b.core, g, 'identity', { ownerCount: 1 }), errno('EPERM'));
  iommuGroupStoreType(b.core, g, 'identity', { ownerCount: 0 });
  assert.equal((g.defaultDomain as IommuDomain).type, 'identity');
  assert.throws(() => iommuGroupStoreType(b.core, g, 'blocked'), errno('EINVAL'));
  assert.throws(() => iommuGroupStoreType(b.core, g, 'dma'), errno('EINVAL'));
  assert.throws(() => iommuGroupStoreType(b.core, g, 'DMA', { capable: false }), errno('EACCES'));
  iommuGroupStoreType(b.core, g, 'auto');
  assert.equal((g.defaultDomain as IommuDomain).type, 'DMA');
  b.core.groups.put(g);
});

test('vector 29: an untrusted device forces DMA: identity is refused (EINVAL)', () => {
  const b = bootSmall();
  const pdev = (b.dev('0000:01:00.0').container as { untrusted: boolean });
  pdev.untrusted = true;
  const g = b.core.groups.get(b.dev('0000:01:00.0'))!;
  assert.throws(() => iommuGroupStoreType(b.core, g, 'identity'), errno('EINVAL'));
  assert.throws(() => iommuGroupStoreType(b.core, g, 'identity', { ownerCount: 1 }), errno('EPERM'));
  b.core.groups.put(g);
});

test('vector 30: a two-device group without drivers can change type (recent kernels)', () => {
  const b = bootSmall();
  const g = b.core.groups.get(b.dev('0000:02:00.0'))!;
  assert.equal(g.devices.length, 3); // the root port without ACS and both functions
  iommuGroupStoreType(b.core, g, 'DMA');
  assert.equal((g.defaultDomain as IommuDomain).type, 'DMA');
  for (const { dev } of g.devices) assert.equal(iommuGetDomainForDev(dev), g.defaultDomain);
  b.core.groups.put(g);
});

test('reserved regions: MSI window for every device, the ISA bridge\'s low 16 MiB direct-relaxable and identity-mapped in its DMA domain', () => {
  const b = bootSmall('intel_iommu=on iommu.strict=1');
  const g = b.core.groups.get(b.dev('0000:00:1f.0'))!;
  const text = b.core.groups.getGroupResvRegions(g);
  assert.equal(
    text.map((r) => `${r.start.toString(16)}+${r.length.toString(16)}:${r.type}`).join(' '),
    '0+1000000:1 fee00000+100000:3',
  );
  const dom = g.defaultDomain as IommuDomain;
  assert.equal(iommuIovaToPhys(dom, 0x123000), 0x123000);
  assert.equal(iommuIovaToPhys(dom, 0xfff000), 0xfff000);
  assert.equal(iommuIovaToPhys(dom, 0x1000000), 0);
  b.core.groups.put(g);
});

test('partial unmap of a 2M page is driver-defined: Arm refuses (0, block kept), VT-d and AMD unmap the whole page', () => {
  const expect: Record<string, { n: number; after: number }> = {
    'arm-smmu-v3': { n: 0, after: 0x4000_0000 + 0x1000 },
    intel: { n: 0x200000, after: 0 },
    amd: { n: 0x200000, after: 0 },
  };
  for (const driver of ['arm-smmu-v3', 'intel', 'amd'] as const) {
    const b = bootSmall('iommu.strict=1', driver);
    const d = iommuPagingDomainAlloc(b.dev('0000:01:00.0'));
    iommuMap(d, 0x20_0000, 0x4000_0000, 0x200000, RW);
    assert.equal(iommuUnmap(d, 0x20_0000, 0x1000), expect[driver]!.n, driver);
    assert.equal(iommuIovaToPhys(d, 0x20_1000), expect[driver]!.after, driver);
  }
});

test('an RMRR is a DIRECT region: identity-mapped in the DMA domain, and the device can never be blocked (EINVAL)', async () => {
  const { IommuCore } = await import('../../src/iommu/core.js');
  const { createIntelIommu } = await import('../../src/drivers/intel-vt-d/index.js');
  const { groupSetDomainInternal } = await import('../../src/iommu/default-domain.js');
  const { buildConfig } = await import('../../src/pci/config-builder.js');
  const { buildPciTopology } = await import('../../src/pci/topology.js');
  const core = new IommuCore({ strict: true });
  const { ops } = createIntelIommu(core, { rmrrs: [{ start: 0x7b80_0000, length: 0x20_0000, devices: ['0000:00:02.0'] }] });
  const topo = buildPciTopology([{ bdf: '0000:00:02.0', config: buildConfig({ pcieType: 9, classCode: 0x010802 }), origin: 'synthetic' }]);
  core.probeDevices(topo.pciBus.devices, ops);
  const dev = topo.byBdf.get('0000:00:02.0')!.dev;
  const g = core.groups.get(dev)!;
  const dom = g.defaultDomain as IommuDomain;
  assert.equal(iommuIovaToPhys(dom, 0x7b90_0000), 0x7b90_0000);
  assert.match(core.groups.getGroupResvRegions(g).map((r) => r.type).join(','), /^0/); // DIRECT (0) first
  assert.throws(() => groupSetDomainInternal(core, g, ops.blockedDomain!), errno('EINVAL'));
  assert.equal(g.domain, dom); // unchanged
  core.groups.put(g);
});
