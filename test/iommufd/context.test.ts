// iommufd (spec §9, vectors 41 and 47): objects, binding, IOAS ioctls, HWPTs, attach/replace — each errno path by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceBindDriver, deviceReleaseDriver } from '../../src/device/device.js';
import { driverByName } from '../../src/device/driver.js';
import { iommuAttachGroup, iommuPagingDomainAlloc } from '../../src/iommu/attach.js';
import { devIommu } from '../../src/iommu/core.js';
import { iommuIovaToPhys, iommuMap, type IommuDomain } from '../../src/iommu/domain.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import {
  IommufdContext,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP_ALL_LENGTH,
  IOVA_LAST,
} from '../../src/iommufd/index.js';
import { A, B, bootNic, errno, K4, M2, NIC } from './helpers.js';

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const MSI_START = 0xfee0_0000;
const MSI_LAST = 0xfeef_ffff;

function setup(opts: ConstructorParameters<typeof IommufdContext>[1] = {}) {
  const b = bootNic();
  const ctx = new IommufdContext(b.core, opts);
  ctx.mm.mmap(0x7f00_0000_0000, 64 * M2); // 128 MiB of user memory, 2 MiB-congruent
  return { ...b, ctx, va: 0x7f00_0000_0000 };
}

// ---- vector 41 ------------------------------------------------------------

test('vector 41: two contexts, two devices of one group: counted claims, EPERM for the other context, release on the last unbind', () => {
  const { core, dev, group } = bootNic();
  const g = group(A);
  const ictx1 = new IommufdContext(core);
  const ictx2 = new IommufdContext(core);
  const a = ictx1.bindDevice(dev(A));
  assert.equal(g.owner, ictx1);
  assert.equal(g.ownerCnt, 1);
  assert.equal(g.domain, g.blockingDomain);
  const b = ictx1.bindDevice(dev(B));
  assert.equal(g.ownerCnt, 2);
  assert.throws(() => ictx2.bindDevice(dev(B)), errno('EPERM'));
  assert.equal(g.ownerCnt, 2);
  assert.deepEqual(ictx2.objectIds, []);
  ictx1.unbindDevice(a);
  assert.equal(g.ownerCnt, 1);
  assert.equal(g.owner, ictx1);
  assert.equal(g.domain, g.blockingDomain);
  ictx1.unbindDevice(b);
  assert.equal(g.ownerCnt, 0);
  assert.equal(g.owner, null);
  assert.equal(g.domain, g.defaultDomain);
});

// ---- binding ----------------------------------------------------------------

test('bind EPERM: a kernel-DMA driver (e1000e) is bound in the group; nothing is left behind', () => {
  const { ctx, dev, group } = setup();
  deviceBindDriver(dev(NIC), driverByName('e1000e'));
  assert.throws(() => ctx.bindDevice(dev(NIC)), errno('EPERM'));
  assert.equal(group(NIC).ownerCnt, 1);
  assert.equal(group(NIC).owner, null);
  assert.deepEqual(ctx.objectIds, []);
  deviceReleaseDriver(dev(NIC));
  deviceBindDriver(dev(NIC), driverByName('vfio-pci'));
  assert.equal(ctx.bindDevice(dev(NIC)), 1);
});

test('bind EINVAL (vector 47): the IOMMU lacks IOMMU_CAP_CACHE_COHERENCY', () => {
  const { ctx, dev, group } = setup();
  const di = devIommu(dev(NIC))!;
  const capable = di.ops.capable;
  (di.ops as { capable?: unknown }).capable = () => false;
  try {
    assert.throws(() => ctx.bindDevice(dev(NIC)), errno('EINVAL'));
    assert.equal(group(NIC).ownerCnt, 0);
  } finally {
    (di.ops as { capable?: unknown }).capable = capable;
  }
});

test('bind EPERM (vector 47): MSIs not isolated and allow_unsafe_interrupts=0; allowed with allow_unsafe_interrupts=1', () => {
  const b = bootNic();
  const strict = new IommufdContext(b.core, { isolatedMsi: false });
  assert.throws(() => strict.bindDevice(b.dev(NIC)), errno('EPERM'));
  assert.equal(b.group(NIC).ownerCnt, 0);
  const lax = new IommufdContext(b.core, { isolatedMsi: false, allowUnsafeInterrupts: true });
  lax.bindDevice(b.dev(NIC));
  assert.equal(b.group(NIC).owner, lax);
});

test('bind EBUSY: the group is attached to a non-default domain by another API user (vector 42 via iommufd)', () => {
  const { core, ctx, dev, group } = setup();
  const d = iommuPagingDomainAlloc(dev(NIC));
  iommuAttachGroup(core, d, group(NIC));
  assert.throws(() => ctx.bindDevice(dev(NIC)), errno('EBUSY'));
  assert.equal(group(NIC).ownerCnt, 0);
});

test('bind EINVAL: the same device twice in one context; EBADF after close', () => {
  const { ctx, dev } = setup();
  ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.bindDevice(dev(NIC)), errno('EINVAL'));
  ctx.close();
  assert.throws(() => ctx.ioasAlloc(), errno('EBADF'));
});

test('a kernel driver cannot bind while the device is bound to iommufd (EBUSY); vfio-pci can', () => {
  const { ctx, dev } = setup();
  ctx.bindDevice(dev(A));
  assert.throws(() => deviceBindDriver(dev(B), driverByName('e1000e')), errno('EBUSY'));
  deviceBindDriver(dev(B), driverByName('vfio-pci'));
});

// ---- object ids and destroy ---------------------------------------------------

test('object ids start at 1 and reuse the smallest free id; destroy ENOENT for unknown ids', () => {
  const { ctx } = setup();
  assert.equal(ctx.ioasAlloc(), 1);
  assert.equal(ctx.ioasAlloc(), 2);
  assert.equal(ctx.ioasAlloc(), 3);
  ctx.destroy(2);
  assert.equal(ctx.objectType(2), null);
  assert.equal(ctx.ioasAlloc(), 2);
  assert.throws(() => ctx.destroy(0), errno('ENOENT'));
  assert.throws(() => ctx.destroy(99), errno('ENOENT'));
  assert.deepEqual(ctx.objectIds, [1, 2, 3]);
});

test('destroy ordering: EBUSY for a device, an IOAS with a HWPT, a HWPT with a device attached; auto HWPTs go with their last device', () => {
  const { ctx, dev, group } = setup();
  const d = ctx.bindDevice(dev(NIC));
  const ioas = ctx.ioasAlloc();
  const hwpt = ctx.deviceAttach(d, ioas);
  assert.equal(ctx.objectType(hwpt), 'hwpt_paging');
  assert.throws(() => ctx.destroy(d), errno('EBUSY'));
  assert.throws(() => ctx.destroy(ioas), errno('EBUSY'));
  assert.throws(() => ctx.destroy(hwpt), errno('EBUSY'));
  ctx.deviceDetach(d);
  assert.equal(ctx.objectType(hwpt), null); // auto domain destroyed
  assert.equal(group(NIC).domain, group(NIC).blockingDomain);
  // A manual HWPT stays after detach, and holds the IOAS.
  const manual = ctx.hwptAlloc(d, ioas);
  ctx.deviceAttach(d, manual);
  assert.throws(() => ctx.destroy(manual), errno('EBUSY'));
  ctx.deviceDetach(d);
  assert.equal(ctx.objectType(manual), 'hwpt_paging');
  assert.throws(() => ctx.destroy(ioas), errno('EBUSY'));
  const dom = ctx.hwptDomain(manual);
  ctx.destroy(manual);
  assert.equal(dom.freed, true);
  ctx.destroy(ioas);
  ctx.unbindDevice(d);
  assert.deepEqual(ctx.objectIds, []);
  assert.equal(group(NIC).domain, group(NIC).defaultDomain);
});

test('close tears everything down in order: devices detached and unbound, HWPTs destroyed, IOASes unmapped', () => {
  const { ctx, dev, group, va } = setup();
  const d = ctx.bindDevice(dev(NIC));
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x10_0000, va, M2, RW);
  const hwpt = ctx.deviceAttach(d, ioas);
  const dom = ctx.hwptDomain(hwpt);
  ctx.close();
  assert.equal(ctx.closed, true);
  assert.equal(dom.freed, true);
  assert.equal(group(NIC).owner, null);
  assert.equal(group(NIC).domain, group(NIC).defaultDomain);
  assert.throws(() => ctx.destroy(ioas), errno('EBADF'));
  ctx.close(); // twice: nothing
});

// ---- IOAS map -------------------------------------------------------------------

test('IOAS_MAP errnos: EOPNOTSUPP flags, EINVAL no READ/WRITE, EINVAL length 0, ENOENT ioas, EOVERFLOW, EEXIST overlap', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  const devId = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.ioasMap(ioas, 0x10000, va, K4, RW | 0x100), errno('EOPNOTSUPP'));
  assert.throws(() => ctx.ioasMap(ioas, 0x10000, va, K4, 0), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, 0x10000, va, 0, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, 'auto', va, K4, RW | IOMMU_IOAS_MAP_FIXED_IOVA), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(99, 0x10000, va, K4, RW), errno('ENOENT'));
  assert.throws(() => ctx.ioasMap(devId, 0x10000, va, K4, RW), errno('ENOENT')); // wrong object type
  assert.throws(() => ctx.ioasMap(ioas, IOVA_LAST, va, K4, RW), errno('EOVERFLOW'));
  assert.throws(() => ctx.ioasMap(ioas, IOVA_LAST - K4 + 1, va, 2 * K4, RW), errno('EOVERFLOW'));
  assert.equal(ctx.ioasMap(ioas, 0x10000, va, 4 * K4, RW), 0x10000);
  assert.throws(() => ctx.ioasMap(ioas, 0x13000, va, K4, RW), errno('EEXIST'));
  assert.throws(() => ctx.ioasMap(ioas, 0xf000, va, 2 * K4, RW), errno('EEXIST'));
  assert.deepEqual(ctx.ioasAreas(ioas).map((a) => [a.iova, a.length]), [[0x10000, 0x4000]]);
});

test('IOAS_MAP alignment: byte-granular without a HWPT; EINVAL for unaligned IOVA, length or user offset once a 4 KiB domain is in', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  assert.equal(ctx.ioasIovaRanges(ioas).iovaAlignment, 1);
  ctx.ioasMap(ioas, 0x100_0800, va + 0x800, 0x800, RW); // no domain yet: alignment 1
  ctx.ioasUnmap(ioas, 0x100_0800, 0x800);
  const d = ctx.bindDevice(dev(NIC));
  ctx.deviceAttach(d, ioas);
  assert.equal(ctx.ioasIovaRanges(ioas).iovaAlignment, K4);
  assert.throws(() => ctx.ioasMap(ioas, 0x10800, va, K4, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, 0x10000, va, 0x800, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, 0x10000, va + 0x800, K4, RW), errno('EINVAL'));
  assert.deepEqual(ctx.ioasAreas(ioas), []);
});

test('attaching a 4 KiB domain to an IOAS holding a sub-page mapping fails EADDRINUSE; nothing changes', () => {
  const { ctx, va, dev, group } = setup();
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x10_0800, va + 0x800, 0x800, RW);
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceAttach(d, ioas), errno('EADDRINUSE'));
  assert.equal(group(NIC).domain, group(NIC).blockingDomain);
  assert.deepEqual(ctx.objectIds, [1, 2]);
  assert.equal(ctx.ioasIovaRanges(ioas).iovaAlignment, 1);
});

test('IOAS_MAP into a reserved range (the MSI window of an attached VT-d device) fails EINVAL', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  ctx.deviceAttach(ctx.bindDevice(dev(NIC)), ioas);
  assert.throws(() => ctx.ioasMap(ioas, MSI_START, va, K4, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, MSI_START - K4, va, 2 * K4, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasMap(ioas, 2 ** 48, va, K4, RW), errno('EINVAL')); // beyond the domain aperture
  ctx.ioasMap(ioas, MSI_START - K4, va, K4, RW);
});

test('automatic IOVAs: never 0, aligned to the length (up to 2 MiB) with the user offset, around areas and reserved ranges; ENOSPC when full', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  assert.equal(ctx.ioasMap(ioas, 'auto', va, K4, RW), K4); // the first page is skipped
  assert.equal(ctx.ioasMap(ioas, 'auto', va, 4 * K4, RW), 0x4000);
  assert.equal(ctx.ioasMap(ioas, 'auto', va, 4 * M2, RW), M2);
  assert.equal(ctx.ioasMap(ioas, 'auto', va + K4, K4, RW), 2 * K4); // user address alignment 4K
  // Allowed ranges confine automatic IOVAs: only the MSI neighbourhood is allowed.
  const io2 = ctx.ioasAlloc();
  ctx.ioasAllowIovas(io2, [{ start: MSI_START - 2 * K4, last: MSI_START - 1 }]);
  assert.equal(ctx.ioasMap(io2, 'auto', va, K4, RW), MSI_START - 2 * K4);
  assert.equal(ctx.ioasMap(io2, 'auto', va, K4, RW), MSI_START - K4);
  assert.throws(() => ctx.ioasMap(io2, 'auto', va, K4, RW), errno('ENOSPC'));
  // An auto IOVA skips the MSI window once a device reserves it.
  const io3 = ctx.ioasAlloc();
  ctx.deviceAttach(ctx.bindDevice(dev(NIC)), io3);
  ctx.ioasAllowIovas(io3, [{ start: MSI_START - K4, last: MSI_START - 1 }, { start: MSI_LAST + 1, last: MSI_LAST + M2 }]);
  assert.equal(ctx.ioasMap(io3, 'auto', va, K4, RW), MSI_START - K4);
  assert.equal(ctx.ioasMap(io3, 'auto', va, K4, RW), MSI_LAST + 1);
});

test('EFAULT: user memory is pinned when a HWPT needs it — at map time with a HWPT, at attach time without', () => {
  const { ctx, va, dev } = setup();
  const unmapped = 0x6000_0000_0000;
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x10_0000, unmapped, K4, RW); // lazily pinned: accepted
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceAttach(d, ioas), errno('EFAULT'));
  assert.deepEqual(ctx.objectIds, [1, 2]); // no HWPT left behind
  ctx.ioasUnmap(ioas, 0x10_0000, K4);
  ctx.deviceAttach(d, ioas);
  assert.throws(() => ctx.ioasMap(ioas, 0x10_0000, unmapped, K4, RW), errno('EFAULT'));
  // Read-only user memory can be mapped READABLE only.
  ctx.mm.mmap(0x6100_0000_0000, K4, { writable: false });
  assert.throws(() => ctx.ioasMap(ioas, 0x10_0000, 0x6100_0000_0000, K4, RW), errno('EFAULT'));
  ctx.ioasMap(ioas, 0x10_0000, 0x6100_0000_0000, K4, IOMMU_IOAS_MAP_READABLE);
  assert.equal(ctx.ioasAreas(ioas).length, 1);
  void va;
});

// ---- IOAS unmap -------------------------------------------------------------------

test('IOAS_UNMAP: whole areas only (ENOENT for a split, checked before anything goes), ENOENT for nothing, EINVAL length 0, unmap-all', () => {
  const { ctx, va } = setup();
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x10000, va, 2 * K4, RW);
  ctx.ioasMap(ioas, 0x12000, va, 2 * K4, RW);
  ctx.ioasMap(ioas, 0x20000, va, K4, RW);
  assert.throws(() => ctx.ioasUnmap(ioas, 0x11000, K4), errno('ENOENT'));
  assert.throws(() => ctx.ioasUnmap(ioas, 0x10000, 3 * K4), errno('ENOENT')); // splits the second area
  assert.equal(ctx.ioasAreas(ioas).length, 3); // nothing unmapped
  assert.throws(() => ctx.ioasUnmap(ioas, 0x30000, K4), errno('ENOENT'));
  assert.throws(() => ctx.ioasUnmap(ioas, 0x10000, 0), errno('EINVAL'));
  assert.throws(() => ctx.ioasUnmap(ioas, IOVA_LAST, K4), errno('EOVERFLOW'));
  assert.equal(ctx.ioasUnmap(ioas, 0x8000, 0x10000), 0x4000); // covers two whole areas and holes
  assert.equal(ctx.ioasUnmap(ioas, 0, IOMMU_IOAS_UNMAP_ALL_LENGTH), K4);
  assert.equal(ctx.ioasUnmap(ioas, 0, IOMMU_IOAS_UNMAP_ALL_LENGTH), 0); // empty: 0, no error
});

// ---- IOAS copy -------------------------------------------------------------------

test('IOAS_COPY: contiguous source areas (partly taken) map the same pages; ENOENT for a hole, EPERM for write from read-only pages', () => {
  const { ctx, va, dev } = setup();
  const src = ctx.ioasAlloc();
  const dst = ctx.ioasAlloc();
  ctx.ioasMap(src, 0x10000, va, 2 * K4, RW);
  ctx.ioasMap(src, 0x12000, va + 0x10_0000, 2 * K4, RW);
  assert.throws(() => ctx.ioasCopy(dst, src, 0x10000, 5 * K4, 0x40000, RW), errno('ENOENT'));
  assert.throws(() => ctx.ioasCopy(dst, src, 0x8000, K4, 0x40000, RW), errno('ENOENT'));
  assert.throws(() => ctx.ioasCopy(dst, src, 0x10000, 0, 0x40000, RW), errno('EINVAL'));
  assert.throws(() => ctx.ioasCopy(dst, 99, 0x10000, K4, 0x40000, RW), errno('ENOENT'));
  assert.throws(() => ctx.ioasCopy(dst, src, 0x10000, K4, 0x40000, 0), errno('EINVAL'));
  assert.equal(ctx.ioasCopy(dst, src, 0x11000, 2 * K4, 0x40000, RW), 0x40000);
  assert.deepEqual(ctx.ioasAreas(dst).map((a) => [a.iova, a.length, a.userVa]), [
    [0x40000, K4, va + K4],
    [0x41000, K4, va + 0x10_0000],
  ]);
  assert.throws(() => ctx.ioasCopy(dst, src, 0x10000, K4, 0x40000, RW), errno('EEXIST'));
  // The copy resolves to the same physical pages once a HWPT is attached.
  const d = ctx.bindDevice(dev(NIC));
  const h = ctx.deviceAttach(d, dst);
  assert.equal(iommuIovaToPhys(ctx.hwptDomain(h), 0x41000), ctx.mm.translate(va + 0x10_0000));
  // Read-only source pages: a READABLE copy works, WRITEABLE is EPERM.
  const ro = ctx.ioasAlloc();
  ctx.ioasMap(ro, 0x10000, va, K4, IOMMU_IOAS_MAP_READABLE);
  assert.throws(() => ctx.ioasCopy(dst, ro, 0x10000, K4, 0x50000, RW), errno('EPERM'));
  assert.equal(ctx.ioasCopy(dst, ro, 0x10000, K4, 'auto', IOMMU_IOAS_MAP_READABLE) > 0, true);
});

// ---- allowed ranges and IOVA ranges ------------------------------------------------------

test('IOAS_IOVA_RANGES: the whole space for a fresh IOAS; minus the MSI window and beyond the 48-bit aperture once a VT-d device attaches', () => {
  const { ctx, dev } = setup();
  const ioas = ctx.ioasAlloc();
  assert.deepEqual(ctx.ioasIovaRanges(ioas).ranges, [{ start: 0, last: IOVA_LAST }]);
  const d = ctx.bindDevice(dev(NIC));
  ctx.deviceAttach(d, ioas);
  assert.deepEqual(ctx.ioasIovaRanges(ioas).ranges, [
    { start: 0, last: MSI_START - 1 },
    { start: MSI_LAST + 1, last: 2 ** 48 - 1 },
  ]);
  ctx.deviceDetach(d);
  assert.deepEqual(ctx.ioasIovaRanges(ioas).ranges, [{ start: 0, last: IOVA_LAST }]);
});

test('ISA bridge: its DIRECT_RELAXABLE floppy region [0, 16 MiB) is not reserved in the IOAS, its MSI window is', () => {
  const { ctx, dev } = setup();
  const ioas = ctx.ioasAlloc();
  const isa = ctx.bindDevice(dev('0000:00:1f.0'));
  ctx.deviceAttach(isa, ioas);
  assert.deepEqual(ctx.ioasIovaRanges(ioas).ranges[0], { start: 0, last: MSI_START - 1 });
});

test('IOAS_ALLOW_IOVAS: EINVAL start ≥ last or overlapping; EADDRINUSE over a reserved range; an attach reserving inside an allowed range fails EADDRINUSE', () => {
  const { ctx, dev, group } = setup();
  const ioas = ctx.ioasAlloc();
  assert.throws(() => ctx.ioasAllowIovas(ioas, [{ start: 0x2000, last: 0x2000 }]), errno('EINVAL'));
  assert.throws(() => ctx.ioasAllowIovas(ioas, [{ start: 0x1000, last: 0x2fff }, { start: 0x2000, last: 0x3fff }]), errno('EINVAL'));
  assert.throws(() => ctx.ioasAllowIovas(99, []), errno('ENOENT'));
  ctx.ioasAllowIovas(ioas, [{ start: MSI_START, last: MSI_START + 0xfff }]);
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceAttach(d, ioas), errno('EADDRINUSE'));
  assert.equal(group(NIC).domain, group(NIC).blockingDomain);
  assert.deepEqual(ctx.objectIds, [1, 2]); // the auto HWPT was destroyed again
  ctx.ioasAllowIovas(ioas, []);
  ctx.deviceAttach(d, ioas);
  assert.throws(() => ctx.ioasAllowIovas(ioas, [{ start: MSI_START, last: MSI_START + 0xfff }]), errno('EADDRINUSE'));
  ctx.ioasAllowIovas(ioas, [{ start: 0x1000, last: 0xffff }]);
});

test('attach EADDRINUSE: an existing mapping overlaps the device\'s MSI window; the group stays blocked', () => {
  const { ctx, va, dev, group } = setup();
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, MSI_START, va, K4, RW);
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceAttach(d, ioas), errno('EADDRINUSE'));
  assert.equal(group(NIC).domain, group(NIC).blockingDomain);
  assert.equal(ctx.deviceHwpt(d), null);
  // A mapping beyond the VT-d domain's 48-bit aperture: the aperture reservation fails the same way.
  const io2 = ctx.ioasAlloc();
  ctx.ioasMap(io2, 2 ** 48, va, K4, RW);
  assert.throws(() => ctx.deviceAttach(d, io2), errno('EADDRINUSE'));
  assert.deepEqual(ctx.ioasIovaRanges(io2).ranges, [{ start: 0, last: IOVA_LAST }]);
  assert.equal(group(NIC).domain, group(NIC).blockingDomain);
});

// ---- HWPTs ----------------------------------------------------------------------------

test('HWPT_ALLOC fills the domain from the IOAS with the largest pages; later maps and unmaps reach every HWPT', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x4000_0000, va, 2 * M2, RW);
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.hwptAlloc(99, ioas), errno('ENOENT'));
  assert.throws(() => ctx.hwptAlloc(d, 99), errno('EINVAL'));
  assert.throws(() => ctx.hwptAlloc(d, d), errno('EINVAL'));
  const h1 = ctx.hwptAlloc(d, ioas);
  assert.throws(() => ctx.hwptAlloc(d, h1), errno('EOPNOTSUPP'));
  const h2 = ctx.hwptAlloc(d, ioas);
  const d1 = ctx.hwptDomain(h1);
  const d2 = ctx.hwptDomain(h2);
  const pa = ctx.mm.translate(va);
  for (const dom of [d1, d2]) {
    assert.equal(iommuIovaToPhys(dom, 0x4000_0000), pa);
    assert.equal(iommuIovaToPhys(dom, 0x4000_0000 + M2 + 0x123), pa + M2 + 0x123);
    const w = new Float64Array(2);
    assert.equal(dom.pgtable!.walk(0x4000_0000, w) >= 0, true);
    assert.equal(w[1], M2); // a 2 MiB leaf
  }
  ctx.ioasMap(ioas, 0x8000, va + 0x10_0000, K4, IOMMU_IOAS_MAP_READABLE);
  for (const dom of [d1, d2]) {
    assert.equal(iommuIovaToPhys(dom, 0x8000), pa + 0x10_0000);
    const w = new Float64Array(2);
    assert.equal(dom.pgtable!.walk(0x8000, w), IOMMU_READ);
  }
  ctx.ioasUnmap(ioas, 0x4000_0000, 2 * M2);
  for (const dom of [d1, d2]) assert.equal(iommuIovaToPhys(dom, 0x4000_0000), 0);
});

test('HWPT propagation is all or nothing: a map that fails in the second HWPT is undone in the first', () => {
  const { ctx, va, dev } = setup();
  const ioas = ctx.ioasAlloc();
  const d = ctx.bindDevice(dev(NIC));
  const h1 = ctx.hwptAlloc(d, ioas);
  const h2 = ctx.hwptAlloc(d, ioas);
  // Someone else's mapping sits in the second domain at 0x20000 (not an IOAS area).
  iommuMap(ctx.hwptDomain(h2), 0x20000, 0x9000_0000, K4, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
  assert.throws(() => ctx.ioasMap(ioas, 0x1f000, va, 2 * K4, RW), errno('EEXIST'));
  assert.equal(iommuIovaToPhys(ctx.hwptDomain(h1), 0x1f000), 0);
  assert.deepEqual(ctx.ioasAreas(ioas), []);
});

// ---- attach, groups, replace ---------------------------------------------------------------

test('several devices of one group share one attachment: attached once, counted; EINVAL for another HWPT, EBUSY twice', () => {
  const { ctx, va, dev, group } = setup();
  const g = group(A);
  const ioas = ctx.ioasAlloc();
  const other = ctx.ioasAlloc();
  ctx.ioasMap(ioas, 0x10_0000, va, K4, RW);
  const a = ctx.bindDevice(dev(A));
  const b = ctx.bindDevice(dev(B));
  const h = ctx.deviceAttach(a, ioas);
  const dom = ctx.hwptDomain(h);
  assert.equal(g.domain, dom);
  assert.equal(devIommu(dev(B))!.domain, dom); // the whole group follows
  assert.throws(() => ctx.deviceAttach(a, ioas), errno('EBUSY'));
  const h2 = ctx.hwptAlloc(b, other);
  assert.throws(() => ctx.deviceAttach(b, h2), errno('EINVAL'));
  assert.equal(ctx.deviceAttach(b, ioas), h); // the IOAS's auto HWPT is reused
  ctx.deviceDetach(a);
  assert.equal(g.domain, dom); // B still attached
  assert.equal(ctx.objectType(h), 'hwpt_paging');
  ctx.deviceDetach(b);
  assert.equal(g.domain, g.blockingDomain);
  assert.equal(ctx.objectType(h), null);
  ctx.deviceDetach(b); // not attached: nothing
});

test('replace swaps domains directly, moves reserved ranges between IOASes, destroys the old auto HWPT; EINVAL when not attached', () => {
  const { core, ctx, va, dev, group } = setup();
  const g = group(NIC);
  const io1 = ctx.ioasAlloc();
  const io2 = ctx.ioasAlloc();
  ctx.ioasMap(io1, 0x10_0000, va, K4, RW);
  ctx.ioasMap(io2, 0x10_0000, va + M2, K4, RW);
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceReplace(d, io2), errno('EINVAL'));
  const h1 = ctx.deviceAttach(d, io1);
  // Watch the group's domain changes: replace must never pass through the blocking domain.
  const seen: unknown[] = [];
  let cur = g.domain;
  Object.defineProperty(g, 'domain', { configurable: true, get: () => cur, set: (v) => { seen.push(v); cur = v; } });
  const h2 = ctx.deviceReplace(d, io2);
  delete (g as { domain?: unknown }).domain;
  g.domain = cur;
  assert.deepEqual(seen, [ctx.hwptDomain(h2)]);
  assert.equal(ctx.objectType(h1), null); // old auto HWPT destroyed
  assert.equal(iommuIovaToPhys(g.domain as IommuDomain, 0x10_0000), ctx.mm.translate(va + M2));
  assert.deepEqual(ctx.ioasIovaRanges(io1).ranges, [{ start: 0, last: IOVA_LAST }]); // reservations moved
  assert.equal(ctx.ioasIovaRanges(io2).ranges.length, 2);
  assert.equal(ctx.deviceReplace(d, h2), h2); // same HWPT: nothing
  // A replace whose new IOAS maps the MSI window fails EADDRINUSE and keeps the attachment.
  const io3 = ctx.ioasAlloc();
  ctx.ioasMap(io3, MSI_START, va, K4, RW);
  assert.throws(() => ctx.deviceReplace(d, io3), errno('EADDRINUSE'));
  assert.equal(g.domain, ctx.hwptDomain(h2));
  assert.deepEqual(ctx.ioasIovaRanges(io3).ranges, [{ start: 0, last: IOVA_LAST }]);
  assert.throws(() => ctx.deviceReplace(d, 99), errno('ENOENT'));
  assert.throws(() => ctx.deviceReplace(d, d), errno('EINVAL'));
  void core;
});

test('deviceAttach ENOENT for an unknown pt id, EINVAL for a device id', () => {
  const { ctx, dev } = setup();
  const d = ctx.bindDevice(dev(NIC));
  assert.throws(() => ctx.deviceAttach(d, 42), errno('ENOENT'));
  assert.throws(() => ctx.deviceAttach(d, d), errno('EINVAL'));
  assert.throws(() => ctx.deviceAttach(42, d), errno('ENOENT'));
});
