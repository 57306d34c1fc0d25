// The DMA API path and the data path's error cases, each naming its errno.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/io-pgtable/io-pgtable.js';
import { dmaMapPage, dmaSetMask, dmaUnmapPage, DMA_MAPPING_ERROR, iommuDmaCookie } from '../../src/iommu/dma-iommu.js';
import { iommuGetDmaDomain } from '../../src/iommu/attach.js';
import { iommuIovaToPhys } from '../../src/iommu/domain.js';
import { dmaRead, dmaWrite, iommuTranslate } from '../../src/iommu/translate.js';
import { bootSmall } from './helpers.js';

test('dma_map allocates top-down below 4 GiB (PCI SAC trick), maps, and unmap frees for reuse (strict)', () => {
  const b = bootSmall('iommu.strict=1');
  const dev = b.dev('0000:01:00.0');
  const a = dmaMapPage(b.core, dev, 0x1234_5678, 0x100);
  assert.equal(a, 0xffff_f000 + 0x678); // offset within the page kept
  // 3 pages round up to 4 for the range cache, and alloc_iova() aligns them to 4 pages: 0xffff8–0xffffb.
  const c = dmaMapPage(b.core, dev, 0x2000_0000, 0x3000);
  assert.equal(c, 0xffff_8000);
  const dom = iommuGetDmaDomain(b.core, dev)!;
  assert.equal(iommuIovaToPhys(dom, 0xffff_f000), 0x1234_5000);
  assert.equal(dmaUnmapPage(b.core, dev, a, 0x100), 0x1000);
  assert.equal(iommuIovaToPhys(dom, 0xffff_f000), 0);
  // The freed 1-page IOVA comes straight back from the range cache.
  assert.equal(dmaMapPage(b.core, dev, 0x5000_0000, 0x1000), 0xffff_f000);
});

test('dma_map with a 64-bit mask still prefers 32-bit IOVAs for PCI devices; a tiny mask exhausts (DMA_MAPPING_ERROR)', () => {
  const b = bootSmall('iommu.strict=1');
  const dev = b.dev('0000:01:00.0');
  dmaSetMask(dev, 64);
  assert.ok(dmaMapPage(b.core, dev, 0x1000, 0x1000) < 2 ** 32);
  const small = b.dev('0000:02:00.0');
  dmaSetMask(small, 13); // 8 KiB of IOVA space: pfn 1 only (pfn 0 is never used)
  assert.equal(dmaMapPage(b.core, small, 0x1000, 0x1000), 0x1000);
  assert.equal(dmaMapPage(b.core, small, 0x2000, 0x1000), DMA_MAPPING_ERROR);
});

test('the IOVA space keeps reserved regions out: the MSI window is never handed out', () => {
  const b = bootSmall('iommu.strict=1');
  const dev = b.dev('0000:01:00.0');
  const dom = iommuGetDmaDomain(b.core, dev)!;
  const cookie = iommuDmaCookie(b.core, dom, dev);
  const hole = cookie.iovad.findIova(0xfee00);
  assert.ok(hole && hole.pfnLo <= 0xfee00 && hole.pfnHi >= 0xfeeff);
});

test('EFAULT: DMA into a reserved region (the MSI window) faults with reason reserved', () => {
  const b = bootSmall('iommu.strict=1');
  const r = dmaWrite(b.core, b.dev('0000:01:00.0'), 0xfee0_0000, new Uint8Array([1, 2, 3, 4]));
  assert.equal(r.errno, 'EFAULT');
  assert.equal(r.bytes, 0);
  assert.equal(r.fault?.reason, 'reserved');
});

test('EFAULT: DMA to an unmapped IOVA faults (not-present) and counts on the unit, no handler: logged', () => {
  const b = bootSmall('iommu.strict=1');
  const before = b.unit.faultCount;
  const r = dmaRead(b.core, b.dev('0000:01:00.0'), 0x4000_0000, new Uint8Array(16));
  assert.equal(r.errno, 'EFAULT');
  assert.equal(r.fault?.reason, 'not-present');
  assert.equal(b.unit.faultCount, before + 1);
  assert.ok(b.core.log.some((l) => l.includes('unhandled read fault') && l.includes('0x40000000')));
});

test('a DMA transfer across pages stops at the first faulting page, having moved the bytes before it', () => {
  const b = bootSmall('iommu.strict=1');
  const dev = b.dev('0000:01:00.0');
  const a = dmaMapPage(b.core, dev, 0x3000_0000, 0x1000, 'from-device');
  const r = dmaWrite(b.core, dev, a + 0xff0, new Uint8Array(32).fill(7)); // 16 bytes fit, the next page is unmapped
  assert.equal(r.bytes, 16);
  assert.equal(r.errno, 'EFAULT');
  const got = new Uint8Array(16);
  b.core.mem.readBytes(0x3000_0ff0, got);
  assert.deepEqual([...got], new Array(16).fill(7));
  // from-device is write-only for the device: a read is a permission fault.
  assert.equal(iommuTranslate(b.core, dev, a, IOMMU_READ), -1);
  assert.notEqual(iommuTranslate(b.core, dev, a, IOMMU_WRITE), -1);
});

test('identity default domain (iommu=pt): DMA addresses are physical; the DMA API does not map', () => {
  const b = bootSmall('iommu=pt');
  const dev = b.dev('0000:01:00.0');
  assert.equal(dmaMapPage(b.core, dev, 0x1234_5000, 0x1000), 0x1234_5000);
  assert.equal(iommuTranslate(b.core, dev, 0x1234_5000, IOMMU_WRITE), 0x1234_5000);
});
