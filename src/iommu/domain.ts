/**
 * I/O address-space domains and the core's map/unmap/iova_to_phys contract.
 *
 * A domain is allocated by an IOMMU driver through its ops
 * ({@link IommuOps.domainAllocPaging}, or its static identity/blocked
 * domains) and carries the driver's {@link IommuDomainOps}. Paging domains
 * usually wrap an {@link IoPgtable}. The core functions here check the
 * arguments, split a range into the largest page sizes that the domain's
 * `pgsizeBitmap` and the alignment allow, undo a partial map, and sync the
 * IOTLB — exactly as Linux's iommu_map()/iommu_unmap() do.
 *
 * Sizes and addresses are bytes (numbers; page-aligned values are exact up to
 * 2^64, byte values below 2^53).
 *
 * Linux: struct iommu_domain, struct iommu_domain_ops, iommu_map(),
 * iommu_map_nosync(), iommu_pgsize(), iommu_unmap(), __iommu_unmap(),
 * iommu_iova_to_phys(), iommu_set_fault_handler(), report_iommu_fault(),
 * include/linux/iommu.h, drivers/iommu/iommu.c.
 */
import { IommuError, type ErrnoName } from '../base/errno.js';
import type { Device } from '../device/device.js';
import type { IoPgtable } from '../io-pgtable/io-pgtable.js';
import type { IommuDomainType } from './domain-type.js';
import type { IommuUnit } from './iommu-unit.js';
import type { IommuOps } from './iommu-ops.js';

/** Domain type feature bits. Linux: __IOMMU_DOMAIN_PAGING … (include/linux/iommu.h). */
export const DomainBits = {
  /** Supports map/unmap. Linux: __IOMMU_DOMAIN_PAGING. */
  PAGING: 0x1,
  /** Used by the DMA API. Linux: __IOMMU_DOMAIN_DMA_API. */
  DMA_API: 0x2,
  /** Identity mapped. Linux: __IOMMU_DOMAIN_PT. */
  PT: 0x4,
  /** Flush queue. Linux: __IOMMU_DOMAIN_DMA_FQ. */
  DMA_FQ: 0x8,
} as const;

/** The type bits of each domain type. Linux: IOMMU_DOMAIN_BLOCKED (0), IDENTITY (PT), UNMANAGED (PAGING), DMA (PAGING|DMA_API), DMA_FQ (… |DMA_FQ), PLATFORM (0x20). */
export const DOMAIN_TYPE_BITS: Readonly<Record<IommuDomainType, number>> = {
  blocked: 0,
  identity: DomainBits.PT,
  unmanaged: DomainBits.PAGING,
  DMA: DomainBits.PAGING | DomainBits.DMA_API,
  'DMA-FQ': DomainBits.PAGING | DomainBits.DMA_API | DomainBits.DMA_FQ,
  platform: 0x20,
};

/** Fault access flags. Linux: IOMMU_FAULT_READ (0) / IOMMU_FAULT_WRITE (1). */
export const IOMMU_FAULT_READ = 0x0;
/** A write access faulted. Linux: IOMMU_FAULT_WRITE. */
export const IOMMU_FAULT_WRITE = 0x1;

/**
 * A fault handler: returns 0 if it handled the fault, anything else to let the
 * driver log it. Linux: iommu_fault_handler_t.
 */
export type IommuFaultHandler = (domain: IommuDomain, dev: Device, iova: number, flags: number, token: unknown) => number;

/** The aperture of a domain (bytes, inclusive end). Linux: struct iommu_domain_geometry. */
export interface IommuDomainGeometry {
  apertureStart: number;
  apertureEnd: number;
  /** DMA only within the aperture. */
  forceAperture: boolean;
}

/** A gather of unmapped ranges to invalidate in one go. Linux: struct iommu_iotlb_gather. */
export interface IotlbGather {
  /** Start of the gathered range (bytes), or +Infinity when empty. */
  start: number;
  /** End of the gathered range (exclusive), or 0 when empty. */
  end: number;
  /** Largest page size unmapped. */
  pgsize: number;
  /** Queued: the flush is left to a flush queue (lazy mode). Linux: iommu_iotlb_gather.queued. */
  queued: boolean;
}

/** A fresh, empty gather. Linux: iommu_iotlb_gather_init(). */
export function iotlbGatherInit(): IotlbGather {
  return { start: Infinity, end: 0, pgsize: 0, queued: false };
}

/**
 * The driver's operations on a domain.
 * Linux: struct iommu_domain_ops, include/linux/iommu.h.
 */
export interface IommuDomainOps {
  /**
   * Attach `dev` to `domain` (the device's translation now uses it).
   * @throws IommuError EINVAL incompatible, ENOMEM, ENOSPC, EBUSY, ENODEV.
   */
  attachDev(domain: IommuDomain, dev: Device): void;
  /**
   * Map pages; returns the bytes mapped, and sets `domain.mapError` on failure.
   * Optional for non-paging domains.
   */
  mapPages?(domain: IommuDomain, iova: number, paddr: number, pgsize: number, count: number, prot: number): number;
  /** Unmap pages; returns the bytes unmapped (0 at a hole). Adds the range to `gather`. */
  unmapPages?(domain: IommuDomain, iova: number, pgsize: number, count: number, gather: IotlbGather): number;
  /** Physical address of `iova`, 0 if unmapped. */
  iovaToPhys?(domain: IommuDomain, iova: number): number;
  /** Make new mappings visible to the hardware. Linux: iotlb_sync_map. */
  iotlbSyncMap?(domain: IommuDomain, iova: number, size: number): void;
  /** Invalidate the gathered range in every IOTLB the domain is cached in. Linux: iotlb_sync. */
  iotlbSync?(domain: IommuDomain, gather: IotlbGather): void;
  /** Invalidate the whole domain in every IOTLB. Linux: flush_iotlb_all. */
  flushIotlbAll?(domain: IommuDomain): void;
  /** Release the domain's resources (page tables). Linux: free. */
  free?(domain: IommuDomain): void;
  /**
   * Make `domain` translate `dev`'s requests tagged with `pasid` (replacing `old`).
   * Missing: the driver cannot attach per PASID (EOPNOTSUPP). Linux: set_dev_pasid.
   */
  setDevPasid?(domain: IommuDomain, dev: Device, pasid: number, old: IommuDomain | null): void;
}

let nextDomainId = 1;

/**
 * An IOMMU domain.
 * Linux: struct iommu_domain.
 */
export class IommuDomain {
  /** The type as sysfs spells it. DMA can become DMA-FQ in place. */
  type: IommuDomainType;
  /** Type feature bits (DomainBits). */
  typeBits: number;
  /** A unique id (the hardware domain id / IOTLB tag). */
  readonly id: number;
  /** The driver ops that allocated it. Linux: iommu_domain.owner. */
  readonly owner: IommuOps;
  /** Domain operations. Linux: iommu_domain.ops. */
  readonly ops: IommuDomainOps;
  /** Supported page sizes: bit n = 2^n bytes, as a number (sizes ≥ 2^31 make it exceed 32 bits: read {@link pgsizes} instead of using bit operators). Linux: pgsize_bitmap. */
  readonly pgsizeBitmap: number;
  /** The supported page sizes in bytes, ascending. */
  readonly pgsizes: Float64Array;
  /** The aperture. Linux: iommu_domain.geometry. */
  readonly geometry: IommuDomainGeometry;
  /** The page table of a paging domain, if it has one. */
  readonly pgtable: IoPgtable | null;
  /** Fault handler and its token. Linux: iommu_domain.handler / handler_token. */
  handler: IommuFaultHandler | null = null;
  /** Token passed to the handler. */
  handlerToken: unknown = null;
  /** The errno of the last failed mapPages, set by the driver's op. */
  mapError: ErrnoName | null = null;
  /** IOMMU units the domain is attached through, with a device count each (for IOTLB invalidation). */
  readonly units = new Map<IommuUnit, number>();
  /** The keys of {@link units} as an array (iterated on every invalidation without allocating). */
  unitList: IommuUnit[] = [];
  /** Devices attached to this domain (requester ID). */
  readonly devices = new Set<Device>();
  /** Freed: no longer usable. */
  freed = false;
  /** Opaque driver data. */
  driverData: unknown = null;
  /**
   * The domain's map/unmap/iova_to_phys ops are exactly its io-pgtable's and
   * its IOTLB sync is a range invalidation on its units: the core may call the
   * table directly (a devirtualised fast path; same results). Set by drivers
   * through `pgtableDomain()`.
   */
  plainPgtable = false;
  /** The DMA API's IOVA space and flush queue of a DMA domain, created on first use. Linux: iommu_domain.iova_cookie. */
  dmaCookie: object | null = null;
  /** (unit, PASID) pairs the domain is attached at, for PASID-tagged IOTLB invalidation: key `${unit.name}/${pasid}`. */
  readonly pasidAttachments = new Map<string, { unit: IommuUnit; pasid: number; count: number }>();

  constructor(init: {
    type: IommuDomainType;
    owner: IommuOps;
    ops: IommuDomainOps;
    pgsizeBitmap?: number;
    pgsizes?: readonly number[];
    geometry?: IommuDomainGeometry;
    pgtable?: IoPgtable | null;
  }) {
    this.type = init.type;
    this.typeBits = DOMAIN_TYPE_BITS[init.type];
    this.id = nextDomainId++;
    this.owner = init.owner;
    this.ops = init.ops;
    this.pgtable = init.pgtable ?? null;
    const sizes = init.pgsizes ? [...init.pgsizes] : bitmapToSizes(init.pgsizeBitmap ?? 0);
    sizes.sort((a, b) => a - b);
    this.pgsizes = Float64Array.from(sizes);
    this.pgsizeBitmap = init.pgsizeBitmap ?? sizes.reduce((m, s) => m + s, 0);
    this.geometry = init.geometry ?? { apertureStart: 0, apertureEnd: 2 ** 48 - 1, forceAperture: true };
  }

  /** The smallest supported page size (bytes), 0 if none. */
  get minPgsize(): number {
    return this.pgsizes.length ? this.pgsizes[0]! : 0;
  }

  /** True for DMA and DMA-FQ. Linux: iommu_is_dma_domain(). */
  get isDma(): boolean {
    return (this.typeBits & DomainBits.DMA_API) !== 0;
  }

  /** True if map/unmap are allowed. */
  get isPaging(): boolean {
    return (this.typeBits & DomainBits.PAGING) !== 0;
  }
}

/**
 * True if `x` (a non-negative integer, bytes) is a multiple of the power of
 * two `s`. Uses 32-bit integer arithmetic for s ≤ 2^31 (a float `%` is a libm
 * call), exact for any page-aligned x below 2^64.
 */
export function isAligned(x: number, s: number): boolean {
  if (s <= 0x80000000) return ((x >>> 0) & (s - 1)) === 0;
  return Math.floor(x / s) * s === x;
}

/** `x mod s` for a power of two `s` (bytes), without a float `%` when s ≤ 2^31. */
export function modPow2(x: number, s: number): number {
  if (s <= 0x80000000) return (x >>> 0) & (s - 1);
  return x - Math.floor(x / s) * s;
}

/** Page sizes (bytes) of a pgsize bitmap held in a number (bits up to 2^52, read arithmetically, not with 32-bit operators). */
export function bitmapToSizes(bitmap: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < 53; b++) if (Math.floor(bitmap / 2 ** b) % 2 === 1) out.push(2 ** b);
  return out;
}

const pgsizeOut = new Float64Array(2);
const minOut = new Float64Array(2);

function minPage(min: number): Float64Array {
  minOut[0] = min;
  minOut[1] = 1;
  return minOut;
}

/**
 * Choose the page size and count for the next map/unmap chunk: the largest
 * supported size that fits `size` and the alignment of `iova | paddr`, and a
 * count that stops at the next larger page boundary when a larger page could
 * then be used. Writes pgsize to out[0], count to out[1].
 * Linux: iommu_pgsize(), drivers/iommu/iommu.c.
 */
export function iommuPgsize(domain: IommuDomain, iova: number, paddr: number, size: number, out: Float64Array = pgsizeOut): Float64Array {
  const sizes = domain.pgsizes;
  let i = sizes.length - 1;
  // Largest size ≤ size whose alignment iova and paddr both have.
  for (; i >= 0; i--) {
    const s = sizes[i]!;
    if (s <= size && isAligned(iova, s) && isAligned(paddr, s)) break;
  }
  if (i < 0) throw new IommuError('EINVAL', `no page size fits iova 0x${iova.toString(16)} paddr 0x${paddr.toString(16)} size 0x${size.toString(16)}`);
  const pgsize = sizes[i]!;
  if (i + 1 < sizes.length) {
    const next = sizes[i + 1]!;
    if (next <= size && isAligned(iova > paddr ? iova - paddr : paddr - iova, next)) {
      const off = next - modPow2(iova, next);
      if (off + next <= size) size = off;
    }
  }
  out[0] = pgsize;
  out[1] = Math.floor(size / pgsize);
  return out;
}

/**
 * Map [iova, iova+size) to [paddr, …) with `prot` without syncing the IOTLB.
 * All-or-nothing: a failure unmaps what was mapped and throws.
 * @throws IommuError EINVAL (not a paging domain, unaligned, outside the
 *   aperture), ENODEV (no map op or no page sizes), or the driver's errno
 *   (EEXIST over an existing mapping, ENOMEM).
 * Linux: iommu_map_nosync(), drivers/iommu/iommu.c.
 */
export function iommuMapNosync(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): void {
  if (!(domain.typeBits & DomainBits.PAGING)) throw new IommuError('EINVAL', `iommu_map on a ${domain.type} domain`);
  const map = domain.ops.mapPages;
  const min = domain.minPgsize;
  if (map === undefined || min === 0) throw new IommuError('ENODEV', 'the domain has no map_pages op or no page sizes');
  if (!isAligned(iova, min) || !isAligned(paddr, min) || !isAligned(size, min)) {
    throw new IommuError('EINVAL', `unaligned: iova 0x${iova.toString(16)} pa 0x${paddr.toString(16)} size 0x${size.toString(16)} min_pagesz 0x${min.toString(16)}`);
  }
  if (domain.geometry.forceAperture && size > 0 && (iova < domain.geometry.apertureStart || iova + size - 1 > domain.geometry.apertureEnd)) {
    throw new IommuError('EINVAL', `iova 0x${iova.toString(16)}+0x${size.toString(16)} is outside the domain aperture`);
  }
  const origIova = iova;
  let mappedTotal = 0;
  while (size > 0) {
    // One smallest page: iommu_pgsize() could only answer (min, 1).
    const out = size === min ? minPage(min) : iommuPgsize(domain, iova, paddr, size);
    const pgsize = out[0]!;
    const count = out[1]!;
    domain.mapError = null;
    const mapped = map(domain, iova, paddr, pgsize, count, prot);
    size -= mapped;
    mappedTotal += mapped;
    if (domain.mapError !== null || mapped === 0) {
      const err: ErrnoName = domain.mapError ?? 'EINVAL';
      // Undo: all or nothing.
      if (mappedTotal > 0) iommuUnmap(domain, origIova, mappedTotal);
      throw new IommuError(err, `map of iova 0x${iova.toString(16)} (${count} × 0x${pgsize.toString(16)}) failed`);
    }
    iova += mapped;
    paddr += mapped;
  }
}

/**
 * Map and make the mapping visible to the hardware (iotlb_sync_map).
 * @throws IommuError as {@link iommuMapNosync}; a failing sync unmaps the range and rethrows.
 * Linux: iommu_map(), drivers/iommu/iommu.c.
 */
export function iommuMap(domain: IommuDomain, iova: number, paddr: number, size: number, prot: number): void {
  // Fast path: one smallest page on a plain io-pgtable domain (no iotlb_sync_map).
  if (domain.plainPgtable && size === domain.pgsizes[0] && domain.typeBits & DomainBits.PAGING) {
    const pt = domain.pgtable!;
    if (isAligned(iova, size) && isAligned(paddr, size) && iova >= domain.geometry.apertureStart && iova + size - 1 <= domain.geometry.apertureEnd) {
      if (pt.mapPages(iova, paddr, size, 1, prot) === size) return;
      domain.mapError = pt.error;
      throw new IommuError(pt.error ?? 'EINVAL', `map of iova 0x${iova.toString(16)} (1 × 0x${size.toString(16)}) failed`);
    }
  }
  iommuMapNosync(domain, iova, paddr, size, prot);
  const sync = domain.ops.iotlbSyncMap;
  if (sync !== undefined) {
    try {
      sync(domain, iova, size);
    } catch (e) {
      iommuUnmap(domain, iova, size);
      throw e;
    }
  }
}

/**
 * Unmap [iova, iova+size) into `gather` without syncing; returns the bytes
 * unmapped (0 for a non-paging domain or an unaligned request; it stops at
 * the first hole; it can exceed `size` when a larger page covered the IOVA).
 * Linux: __iommu_unmap() / iommu_unmap_fast(), drivers/iommu/iommu.c.
 */
export function iommuUnmapFast(domain: IommuDomain, iova: number, size: number, gather: IotlbGather): number {
  if (!(domain.typeBits & DomainBits.PAGING)) return 0;
  const unmap = domain.ops.unmapPages;
  const min = domain.minPgsize;
  if (unmap === undefined || min === 0) return 0;
  if (!isAligned(iova, min) || !isAligned(size, min)) return 0;
  // One smallest page: iommu_pgsize() could only answer (min, 1).
  if (size === min) return unmap(domain, iova, min, 1, gather);
  let unmapped = 0;
  while (unmapped < size) {
    const out = iommuPgsize(domain, iova, iova, size - unmapped);
    const n = unmap(domain, iova, out[0]!, out[1]!, gather);
    if (n === 0) break;
    iova += n;
    unmapped += n;
  }
  return unmapped;
}

const sharedGather = iotlbGatherInit();

/**
 * Unmap and sync the IOTLB once at the end; returns the bytes unmapped.
 * Linux: iommu_unmap(), drivers/iommu/iommu.c.
 */
export function iommuUnmap(domain: IommuDomain, iova: number, size: number): number {
  // Fast path: one smallest page on a plain io-pgtable domain: unmap, then invalidate that range on each unit.
  if (domain.plainPgtable && size === domain.pgsizes[0] && domain.typeBits & DomainBits.PAGING && isAligned(iova, size)) {
    const n = domain.pgtable!.unmapPages(iova, size, 1);
    if (n > 0) {
      const units = domain.unitList;
      for (let i = 0; i < units.length; i++) units[i]!.iotlb.invalidateRange(domain.id, 0, iova, n);
      if (domain.pasidAttachments.size !== 0) for (const a of domain.pasidAttachments.values()) a.unit.iotlb.invalidateRange(domain.id, a.pasid, iova, n);
    }
    return n;
  }
  const g = sharedGather;
  g.start = Infinity;
  g.end = 0;
  g.pgsize = 0;
  g.queued = false;
  const n = iommuUnmapFast(domain, iova, size, g);
  if (g.end > g.start) domain.ops.iotlbSync?.(domain, g);
  return n;
}

/**
 * Add [iova, iova+size) to a gather. Linux: iommu_iotlb_gather_add_page().
 */
export function iotlbGatherAdd(gather: IotlbGather, iova: number, size: number): void {
  if (iova < gather.start) gather.start = iova;
  if (iova + size > gather.end) gather.end = iova + size;
  if (size > gather.pgsize) gather.pgsize = size;
}

/**
 * The physical address `iova` maps to: `iova` for identity, 0 for blocked
 * (and anything unmapped), else the driver's answer.
 * Linux: iommu_iova_to_phys(), drivers/iommu/iommu.c.
 */
export function iommuIovaToPhys(domain: IommuDomain, iova: number): number {
  if (domain.plainPgtable) return domain.pgtable!.iovaToPhys(iova);
  if (domain.type === 'identity') return iova;
  if (domain.type === 'blocked') return 0;
  return domain.ops.iovaToPhys?.(domain, iova) ?? 0;
}

/**
 * Install a fault handler. Linux: iommu_set_fault_handler(), drivers/iommu/iommu.c.
 */
export function iommuSetFaultHandler(domain: IommuDomain, handler: IommuFaultHandler | null, token: unknown = null): void {
  domain.handler = handler;
  domain.handlerToken = token;
}

/**
 * Report a fault to the domain's handler: its return value, or -ENOSYS (-38)
 * without a handler (the driver then logs it).
 * Linux: report_iommu_fault(), drivers/iommu/iommu.c.
 */
export function reportIommuFault(domain: IommuDomain, dev: Device, iova: number, flags: number): number {
  if (domain.handler) return domain.handler(domain, dev, iova, flags, domain.handlerToken);
  return -38;
}
