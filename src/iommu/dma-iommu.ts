/**
 * The DMA API on an IOMMU: `dma_map_page`/`dma_unmap_page` allocate an IOVA
 * below the device's DMA limit, map it in the group's default domain, and
 * unmap and free it — invalidating the IOTLB at once in strict mode (DMA), or
 * deferring the invalidation and the IOVA free through a flush queue in lazy
 * mode (DMA-FQ). Between the unmap and the queue's flush, a stale IOTLB entry
 * still translates: the model keeps that window, as hardware has it.
 *
 * Sizes and addresses are bytes; time is the core's simulated clock (ns).
 *
 * Linux: iommu_dma_map_page(), iommu_dma_unmap_page(), __iommu_dma_map(),
 * __iommu_dma_unmap(), iommu_dma_alloc_iova(), iommu_dma_free_iova(),
 * iommu_dma_init_domain(), iova_reserve_iommu_regions(), iommu_dma_init_fq(),
 * queue_iova(), fq_flush_iotlb(), fq_ring_free_locked(), fq_flush_timeout(),
 * drivers/iommu/dma-iommu.c.
 */
import type { Device } from '../device/device.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../io-pgtable/io-pgtable.js';
import { devIommu, type IommuCore } from './core.js';
import { iommuMap, iommuUnmapFast, iotlbGatherInit, type IommuDomain } from './domain.js';
import { IovaDomain } from './iova.js';
import { IommuResvType } from './resv-region.js';
import { toPciDev } from '../pci/pci-dev.js';

/** The error value of dma_map_*: Linux DMA_MAPPING_ERROR (~0). */
export const DMA_MAPPING_ERROR = -1;

/** DMA direction. Linux: enum dma_data_direction. */
export type DmaDirection = 'bidirectional' | 'to-device' | 'from-device';

/** Flush-queue size (entries) and timeout (ns). Linux: IOVA_DEFAULT_FQ_SIZE (256), IOVA_DEFAULT_FQ_TIMEOUT (10 ms). */
export const FQ_SIZE = 256;
/** Flush-queue timeout in ns. */
export const FQ_TIMEOUT_NS = 10_000_000;

interface FqEntry {
  pfn: number;
  pages: number;
  counter: number;
}

/** A DMA domain's IOVA space and flush queue. Linux: struct iommu_dma_cookie. */
export class IommuDmaCookie {
  /** The IOVA allocator. Linux: cookie->iovad. */
  readonly iovad: IovaDomain;
  /** IOVA granule (bytes). */
  readonly granule: number;
  /** Lazy mode. Linux: cookie->fq_domain != NULL. */
  readonly fq: boolean;
  /** Flush-queue ring. Linux: struct iova_fq. */
  private readonly ring: FqEntry[] = [];
  private head = 0;
  private tail = 0;
  /** Linux: fq_flush_start_cnt / fq_flush_finish_cnt. */
  flushStartCnt = 0;
  /** Completed flushes. */
  flushFinishCnt = 0;
  private timerOn = false;
  /** Whole-domain IOTLB flushes the queue has issued. */
  flushes = 0;

  constructor(readonly core: IommuCore, readonly domain: IommuDomain, dev: Device) {
    this.granule = domain.minPgsize;
    const basePfn = Math.max(1, Math.floor(domain.geometry.apertureStart / this.granule));
    this.iovad = new IovaDomain(this.granule, basePfn);
    // iova_reserve_iommu_regions(): everything but SW_MSI is kept out of the IOVA space.
    for (const r of devIommu(dev)?.resvRegions ?? []) {
      if (r.type === IommuResvType.SW_MSI) continue;
      this.iovad.reserveIova(Math.floor(r.start / this.granule), Math.floor((r.start + r.length - 1) / this.granule));
    }
    this.fq = domain.type === 'DMA-FQ';
    if (this.fq) for (let i = 0; i < FQ_SIZE; i++) this.ring.push({ pfn: 0, pages: 0, counter: 0 });
  }

  /** Entries waiting in the flush queue. */
  get queued(): number {
    return (this.tail - this.head + FQ_SIZE) % FQ_SIZE;
  }

  /** Linux: fq_flush_iotlb(). */
  flushIotlb(): void {
    this.flushStartCnt++;
    this.domain.ops.flushIotlbAll?.(this.domain);
    this.flushes++;
    this.flushFinishCnt++;
  }

  /** Free the IOVAs whose invalidation has completed. Linux: fq_ring_free_locked(). */
  ringFree(): void {
    const done = this.flushFinishCnt;
    while (this.head !== this.tail) {
      const e = this.ring[this.head]!;
      if (e.counter >= done) break;
      this.iovad.freeIovaFast(e.pfn, e.pages);
      this.head = (this.head + 1) % FQ_SIZE;
    }
  }

  /** Queue an unmapped IOVA range for freeing after the next flush. Linux: queue_iova(). */
  queueIova(pfn: number, pages: number): void {
    this.ringFree();
    if ((this.tail + 1) % FQ_SIZE === this.head) {
      this.flushIotlb();
      this.ringFree();
    }
    const e = this.ring[this.tail]!;
    e.pfn = pfn;
    e.pages = pages;
    e.counter = this.flushStartCnt;
    this.tail = (this.tail + 1) % FQ_SIZE;
    if (!this.timerOn) {
      this.timerOn = true;
      this.core.schedule(this.core.now + FQ_TIMEOUT_NS, () => this.timeout());
    }
  }

  /** Linux: fq_flush_timeout(). */
  private timeout(): void {
    this.timerOn = false;
    this.flushIotlb();
    this.ringFree();
  }
}

/**
 * The DMA cookie of a DMA domain, created on first use for `dev`.
 * Linux: iommu_get_dma_cookie() + iommu_dma_init_domain().
 */
export function iommuDmaCookie(core: IommuCore, domain: IommuDomain, dev: Device): IommuDmaCookie {
  let c = domain.dmaCookie as IommuDmaCookie | null;
  if (c === null) {
    c = new IommuDmaCookie(core, domain, dev);
    domain.dmaCookie = c;
  }
  return c;
}

/** The default domain of `dev`'s group, read without taking a group reference (the device holds one). */
function dmaDomainOf(dev: Device): IommuDomain | null {
  const g = dev.iommuGroup as { defaultDomain?: unknown } | null;
  return g === null ? null : ((g.defaultDomain ?? null) as IommuDomain | null);
}

/**
 * Set the device's DMA mask (addressable bits). Linux: dma_set_mask().
 */
export function dmaSetMask(dev: Device, bits: number): void {
  const di = devIommu(dev);
  if (di) di.dmaLimit = 2 ** bits;
}

/** IOMMU prot for a DMA direction. Linux: dma_info_to_prot(). */
export function dmaInfoToProt(dir: DmaDirection, coherent: boolean): number {
  const prot = coherent ? IOMMU_CACHE : 0;
  switch (dir) {
    case 'bidirectional':
      return prot | IOMMU_READ | IOMMU_WRITE;
    case 'to-device':
      return prot | IOMMU_READ;
    case 'from-device':
      return prot | IOMMU_WRITE;
  }
}

/**
 * Allocate an IOVA range of `size` bytes below the device's DMA limit: small
 * sizes rounded up to a power of two (for the range caches); PCI devices try
 * below 4 GiB first (the SAC trick). Returns the IOVA (bytes) or 0.
 * Linux: iommu_dma_alloc_iova(), drivers/iommu/dma-iommu.c.
 */
export function iommuDmaAllocIova(cookie: IommuDmaCookie, size: number, dmaLimit: number, dev: Device): number {
  let len = size / cookie.granule;
  // roundup_pow_of_two() for sizes the range caches hold.
  if (len < 1 << 5) len = len <= 1 ? 1 : 1 << (32 - Math.clz32(len - 1));
  let limit = Math.min(dmaLimit - 1, cookie.domain.geometry.forceAperture ? cookie.domain.geometry.apertureEnd : Infinity);
  limit = Math.floor(limit / cookie.granule);
  let pfn = 0;
  if (limit > 0xfffff && toPciDev(dev) !== null) pfn = cookie.iovad.allocIovaFast(len, 0xfffff, false);
  if (!pfn) pfn = cookie.iovad.allocIovaFast(len, limit, true);
  return pfn * cookie.granule;
}

/**
 * Map `size` bytes at physical `phys` for DMA by `dev`; returns the DMA
 * address, or DMA_MAPPING_ERROR (no IOVA space, or the map failed). Without
 * an IOMMU, or on an identity domain, the DMA address is the physical address.
 * Linux: iommu_dma_map_page() → __iommu_dma_map(), drivers/iommu/dma-iommu.c.
 */
export function dmaMapPage(core: IommuCore, dev: Device, phys: number, size: number, dir: DmaDirection = 'bidirectional'): number {
  const di = devIommu(dev);
  const domain = dmaDomainOf(dev);
  if (!di || !domain || !domain.isDma) return phys;
  const cookie = iommuDmaCookie(core, domain, dev);
  const off = phys % cookie.granule;
  const len = Math.ceil((size + off) / cookie.granule) * cookie.granule;
  const iova = iommuDmaAllocIova(cookie, len, di.dmaLimit, dev);
  if (!iova) return DMA_MAPPING_ERROR;
  try {
    iommuMap(domain, iova, phys - off, len, dmaInfoToProt(dir, true));
  } catch {
    cookie.iovad.freeIovaFast(iova / cookie.granule, len / cookie.granule);
    return DMA_MAPPING_ERROR;
  }
  return iova + off;
}

const gather = iotlbGatherInit();

/**
 * Unmap a DMA mapping: clear the page table, then invalidate the IOTLB and
 * free the IOVA now (strict), or queue both for the flush queue (lazy).
 * Returns the bytes unmapped.
 * Linux: iommu_dma_unmap_page() → __iommu_dma_unmap(), drivers/iommu/dma-iommu.c.
 */
export function dmaUnmapPage(core: IommuCore, dev: Device, dmaAddr: number, size: number): number {
  const di = devIommu(dev);
  const domain = dmaDomainOf(dev);
  if (!di || !domain || !domain.isDma) return 0;
  const cookie = iommuDmaCookie(core, domain, dev);
  const off = dmaAddr % cookie.granule;
  const iova = dmaAddr - off;
  const len = Math.ceil((size + off) / cookie.granule) * cookie.granule;
  gather.start = Infinity;
  gather.end = 0;
  gather.pgsize = 0;
  gather.queued = cookie.fq;
  const unmapped = iommuUnmapFast(domain, iova, len, gather);
  if (unmapped !== len) core.log.push(`WARN: dma unmap of 0x${iova.toString(16)}+0x${len.toString(16)} unmapped 0x${unmapped.toString(16)}`);
  if (!gather.queued) {
    if (gather.end > gather.start) domain.ops.iotlbSync?.(domain, gather);
    cookie.iovad.freeIovaFast(iova / cookie.granule, len / cookie.granule);
  } else {
    cookie.queueIova(iova / cookie.granule, len / cookie.granule);
  }
  return unmapped;
}
