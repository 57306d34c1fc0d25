/**
 * virtio-iommu: the device (a request handler following the virtio 1.2
 * specification, §5.13) and the Linux driver that drives it.
 *
 * The device keeps, per domain, the endpoints attached to it and its
 * mappings (each created by one MAP request, never split); the driver's
 * paging domains send MAP/UNMAP requests to it and keep a shadow copy of their
 * mappings to replay when the first endpoint attaches (the device forgets a
 * domain and its mappings when its last endpoint leaves).
 *
 * Linux: drivers/iommu/virtio-iommu.c — viommu_ops, viommu_probe_device(),
 * viommu_probe_endpoint(), viommu_get_resv_regions(), viommu_device_group(),
 * viommu_domain_alloc_paging(), viommu_attach_dev(), viommu_replay_mappings(),
 * viommu_map_pages(), viommu_unmap_pages(), viommu_del_mappings(),
 * viommu_iova_to_phys(), viommu_get_req_errno(); include/uapi/linux/virtio_iommu.h.
 *
 * Divergences: requests complete synchronously (no virtqueue); VIRTIO_IOMMU_S_RANGE
 * maps to EINVAL (Linux: ERANGE, which the model's errno set lacks); page and
 * range sizes are numbers of bytes (exact below 2^53).
 */
import { IommuError, type ErrnoName } from '../../base/errno.js';
import type { Device, FwNode } from '../../device/device.js';
import type { IommuCore } from '../../iommu/core.js';
import { iotlbGatherAdd, IommuDomain, type IommuDomainOps } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { devIommuFwspec, iommuFwspecAddIds, iommuFwspecInit } from '../../iommu/fwspec.js';
import { genericDeviceGroup, pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import { toPciDev } from '../../pci/pci-dev.js';

/** Request types. Linux: VIRTIO_IOMMU_T_ATTACH … VIRTIO_IOMMU_T_PROBE (include/uapi/linux/virtio_iommu.h). */
export const VIRTIO_IOMMU_T = { ATTACH: 1, DETACH: 2, MAP: 3, UNMAP: 4, PROBE: 5 } as const;

/** Request status codes. Linux: VIRTIO_IOMMU_S_OK … VIRTIO_IOMMU_S_NOMEM; virtio 1.2 §5.13.6. */
export const VIRTIO_IOMMU_S = {
  /** Success. */
  OK: 0,
  /** Virtio communication error. */
  IOERR: 1,
  /** Unsupported request. */
  UNSUPP: 2,
  /** Internal device error. */
  DEVERR: 3,
  /** Invalid parameters. */
  INVAL: 4,
  /** Out-of-range parameters (or a request that would split a mapping). */
  RANGE: 5,
  /** Unknown endpoint or domain. */
  NOENT: 6,
  /** Bad address. */
  FAULT: 7,
  /** Insufficient resources. */
  NOMEM: 8,
} as const;
/** One of the {@link VIRTIO_IOMMU_S} codes. */
export type VirtioIommuStatus = (typeof VIRTIO_IOMMU_S)[keyof typeof VIRTIO_IOMMU_S];

/** MAP flags. Linux: VIRTIO_IOMMU_MAP_F_READ / _WRITE / _MMIO. */
export const VIRTIO_IOMMU_MAP_F = { READ: 1, WRITE: 2, MMIO: 4 } as const;
/** ATTACH flag: the endpoint bypasses translation. Linux: VIRTIO_IOMMU_ATTACH_F_BYPASS. */
export const VIRTIO_IOMMU_ATTACH_F_BYPASS = 1;
/** PROBE property type of a reserved memory region. Linux: VIRTIO_IOMMU_PROBE_T_RESV_MEM. */
export const VIRTIO_IOMMU_PROBE_T_RESV_MEM = 1;
/** Reserved-memory subtypes. Linux: VIRTIO_IOMMU_RESV_MEM_T_RESERVED (0) / VIRTIO_IOMMU_RESV_MEM_T_MSI (1). */
export const VIRTIO_IOMMU_RESV_MEM_T = { RESERVED: 0, MSI: 1 } as const;

/** The driver's software MSI window when PROBE reports none. Linux: MSI_IOVA_BASE (virtio-iommu.c). */
export const MSI_IOVA_BASE = 0x8000000;
/** Linux: MSI_IOVA_LENGTH. */
export const MSI_IOVA_LENGTH = 0x100000;

/** An inclusive range. Linux: struct virtio_iommu_range_64 / _32. */
export interface VirtioIommuRange {
  readonly start: number;
  readonly end: number;
}

/** The device configuration space (bytes; ranges inclusive). Linux: struct virtio_iommu_config. */
export interface VirtioIommuConfig {
  /** Supported page sizes: bit n = 2^n bytes (read with arithmetic; may exceed 32 bits). */
  readonly pageSizeMask: number;
  /** The IOVA range translated. */
  readonly inputRange: VirtioIommuRange;
  /** Domain IDs the device accepts. */
  readonly domainRange: VirtioIommuRange;
  /** Size of a PROBE reply's property buffer; 0: no VIRTIO_IOMMU_F_PROBE (PROBE is unsupported). */
  readonly probeSize: number;
  /** VIRTIO_IOMMU_F_MMIO: MAP accepts VIRTIO_IOMMU_MAP_F_MMIO. */
  readonly mmio: boolean;
  /** VIRTIO_IOMMU_F_BYPASS_CONFIG: ATTACH accepts VIRTIO_IOMMU_ATTACH_F_BYPASS. */
  readonly bypassConfig: boolean;
}

/** A reserved-memory property of a PROBE reply. Linux: struct virtio_iommu_probe_resv_mem. */
export interface VirtioIommuResvMem {
  readonly type: typeof VIRTIO_IOMMU_PROBE_T_RESV_MEM;
  /** VIRTIO_IOMMU_RESV_MEM_T.RESERVED or .MSI. */
  readonly subtype: number;
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/** One request, as the driver puts it on the request queue. Linux: struct virtio_iommu_req_{attach,detach,map,unmap,probe}. */
export type VirtioIommuRequest =
  | { readonly type: typeof VIRTIO_IOMMU_T.ATTACH; readonly domain: number; readonly endpoint: number; readonly flags?: number }
  | { readonly type: typeof VIRTIO_IOMMU_T.DETACH; readonly domain: number; readonly endpoint: number }
  | { readonly type: typeof VIRTIO_IOMMU_T.MAP; readonly domain: number; readonly virtStart: number; readonly virtEnd: number; readonly physStart: number; readonly flags: number }
  | { readonly type: typeof VIRTIO_IOMMU_T.UNMAP; readonly domain: number; readonly virtStart: number; readonly virtEnd: number }
  | { readonly type: typeof VIRTIO_IOMMU_T.PROBE; readonly endpoint: number };

/** A reply: the status of the request's tail, and the properties of a PROBE. Linux: struct virtio_iommu_req_tail. */
export interface VirtioIommuReply {
  readonly status: VirtioIommuStatus;
  readonly properties?: readonly VirtioIommuResvMem[];
}

/** A mapping held by the device (one MAP request). */
export interface VirtioIommuMapping {
  readonly virtStart: number;
  /** Inclusive. */
  readonly virtEnd: number;
  readonly physStart: number;
  /** VIRTIO_IOMMU_MAP_F bits. */
  readonly flags: number;
}

/** A domain as the device holds it. */
interface DeviceDomain {
  readonly endpoints: Set<number>;
  /** Sorted by virtStart, non-overlapping. */
  readonly mappings: VirtioIommuMapping[];
  bypass: boolean;
}

/** Options of a {@link VirtioIommuDevice}. */
export interface VirtioIommuDeviceOptions {
  /** Endpoint IDs behind the device (its topology); others get S_NOENT. */
  readonly endpoints: Iterable<number>;
  /** Configuration (defaults: 4K|2M|1G pages, 48-bit input range, 32-bit domain IDs, probe_size 512, no MMIO, bypass config). */
  readonly config?: Partial<VirtioIommuConfig>;
  /** The reserved regions PROBE reports for an endpoint (default: the x86 MSI window 0xfee00000–0xfeefffff). */
  readonly resvMem?: (endpoint: number) => readonly VirtioIommuResvMem[];
}

function isPow2Aligned(x: number, s: number): boolean {
  return Math.floor(x / s) * s === x;
}

/** The smallest page size of a mask, 0 for none. */
function minPage(mask: number): number {
  for (let b = 0; b < 64; b++) if (Math.floor(mask / 2 ** b) % 2 === 1) return 2 ** b;
  return 0;
}

/**
 * The virtio-iommu device: handles requests on its request queue by the
 * rules of the specification and translates endpoints' DMA.
 * Linux: the device side of virtio 1.2 §5.13 (QEMU hw/virtio/virtio-iommu.c is one).
 */
export class VirtioIommuDevice {
  /** The configuration space. Linux: struct virtio_iommu_config. */
  readonly config: VirtioIommuConfig;
  /** Endpoints behind the device. */
  readonly endpoints: ReadonlySet<number>;
  private readonly domains = new Map<number, DeviceDomain>();
  private readonly epDomain = new Map<number, number>();
  private readonly resvMem: (endpoint: number) => readonly VirtioIommuResvMem[];

  constructor(opts: VirtioIommuDeviceOptions) {
    this.endpoints = new Set(opts.endpoints);
    const c = opts.config ?? {};
    this.config = {
      pageSizeMask: c.pageSizeMask ?? 0x1000 + 0x200000 + 0x40000000,
      inputRange: c.inputRange ?? { start: 0, end: 2 ** 48 - 1 },
      domainRange: c.domainRange ?? { start: 0, end: 2 ** 32 - 1 },
      probeSize: c.probeSize ?? 512,
      mmio: c.mmio ?? false,
      bypassConfig: c.bypassConfig ?? true,
    };
    if (minPage(this.config.pageSizeMask) === 0) throw new IommuError('EINVAL', 'virtio-iommu: page_size_mask is empty');
    this.resvMem = opts.resvMem ?? (() => [{ type: VIRTIO_IOMMU_PROBE_T_RESV_MEM, subtype: VIRTIO_IOMMU_RESV_MEM_T.MSI, start: 0xfee00000, end: 0xfeefffff }]);
  }

  /** Handle one request. Linux: the device's request virtqueue (virtio 1.2 §5.13.6). */
  request(req: VirtioIommuRequest): VirtioIommuReply {
    switch (req.type) {
      case VIRTIO_IOMMU_T.ATTACH:
        return { status: this.attach(req.domain, req.endpoint, req.flags ?? 0) };
      case VIRTIO_IOMMU_T.DETACH:
        return { status: this.detach(req.domain, req.endpoint) };
      case VIRTIO_IOMMU_T.MAP:
        return { status: this.map(req.domain, req.virtStart, req.virtEnd, req.physStart, req.flags) };
      case VIRTIO_IOMMU_T.UNMAP:
        return { status: this.unmap(req.domain, req.virtStart, req.virtEnd) };
      case VIRTIO_IOMMU_T.PROBE:
        return this.probe(req.endpoint);
      default:
        return { status: VIRTIO_IOMMU_S.UNSUPP };
    }
  }

  /**
   * ATTACH: attach `endpoint` to `domain` (created on first use), detaching it
   * from its previous domain. S_RANGE: domain ID outside domain_range;
   * S_NOENT: unknown endpoint; S_INVAL: unknown flags, or bypass disagreeing
   * with the domain's existing state. Virtio 1.2 §5.13.6.3.
   */
  attach(domain: number, endpoint: number, flags = 0): VirtioIommuStatus {
    const r = this.config.domainRange;
    if (!Number.isInteger(domain) || domain < r.start || domain > r.end) return VIRTIO_IOMMU_S.RANGE;
    if (!this.endpoints.has(endpoint)) return VIRTIO_IOMMU_S.NOENT;
    const known = this.config.bypassConfig ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0;
    if (flags & ~known) return VIRTIO_IOMMU_S.INVAL;
    const bypass = (flags & VIRTIO_IOMMU_ATTACH_F_BYPASS) !== 0;
    const d = this.domains.get(domain);
    if (d && d.bypass !== bypass) return VIRTIO_IOMMU_S.INVAL;
    const old = this.epDomain.get(endpoint);
    if (old === domain) return VIRTIO_IOMMU_S.OK;
    if (old !== undefined) this.detachInternal(old, endpoint);
    const dom = d ?? { endpoints: new Set<number>(), mappings: [], bypass };
    this.domains.set(domain, dom);
    dom.endpoints.add(endpoint);
    this.epDomain.set(endpoint, domain);
    return VIRTIO_IOMMU_S.OK;
  }

  /**
   * DETACH: S_NOENT for an unknown endpoint; S_INVAL if the domain does not
   * exist or the endpoint is not attached to it. A domain left without
   * endpoints ceases to exist, with its mappings. Virtio 1.2 §5.13.6.4.
   */
  detach(domain: number, endpoint: number): VirtioIommuStatus {
    if (!this.endpoints.has(endpoint)) return VIRTIO_IOMMU_S.NOENT;
    const d = this.domains.get(domain);
    if (!d || !d.endpoints.has(endpoint)) return VIRTIO_IOMMU_S.INVAL;
    this.detachInternal(domain, endpoint);
    return VIRTIO_IOMMU_S.OK;
  }

  private detachInternal(domain: number, endpoint: number): void {
    const d = this.domains.get(domain)!;
    d.endpoints.delete(endpoint);
    this.epDomain.delete(endpoint);
    if (d.endpoints.size === 0) this.domains.delete(domain);
  }

  /**
   * MAP [virtStart, virtEnd] → physStart. S_NOENT: no such domain; S_RANGE:
   * unaligned to the smallest page, reversed, or outside input_range; S_INVAL:
   * unknown flags (MMIO without VIRTIO_IOMMU_F_MMIO), a bypass domain, or an
   * overlap with an existing mapping. Virtio 1.2 §5.13.6.5.
   */
  map(domain: number, virtStart: number, virtEnd: number, physStart: number, flags: number): VirtioIommuStatus {
    const d = this.domains.get(domain);
    if (!d) return VIRTIO_IOMMU_S.NOENT;
    const known = VIRTIO_IOMMU_MAP_F.READ | VIRTIO_IOMMU_MAP_F.WRITE | (this.config.mmio ? VIRTIO_IOMMU_MAP_F.MMIO : 0);
    if (flags & ~known || d.bypass) return VIRTIO_IOMMU_S.INVAL;
    const pg = minPage(this.config.pageSizeMask);
    const ir = this.config.inputRange;
    if (virtEnd < virtStart || virtStart < ir.start || virtEnd > ir.end) return VIRTIO_IOMMU_S.RANGE;
    if (!isPow2Aligned(virtStart, pg) || !isPow2Aligned(virtEnd + 1, pg) || !isPow2Aligned(physStart, pg)) return VIRTIO_IOMMU_S.RANGE;
    const i = lowerBound(d.mappings, virtStart);
    const prev = d.mappings[i - 1];
    const next = d.mappings[i];
    if ((prev && prev.virtEnd >= virtStart) || (next && next.virtStart <= virtEnd)) return VIRTIO_IOMMU_S.INVAL;
    d.mappings.splice(i, 0, { virtStart, virtEnd, physStart, flags });
    return VIRTIO_IOMMU_S.OK;
  }

  /**
   * UNMAP [virtStart, virtEnd]: remove every mapping the range contains.
   * S_NOENT: no such domain; S_INVAL: a reversed range; S_RANGE (nothing
   * removed): the range covers only part of a mapping (it would split it).
   * A range without mappings succeeds. Virtio 1.2 §5.13.6.6.
   */
  unmap(domain: number, virtStart: number, virtEnd: number): VirtioIommuStatus {
    const d = this.domains.get(domain);
    if (!d) return VIRTIO_IOMMU_S.NOENT;
    if (virtEnd < virtStart) return VIRTIO_IOMMU_S.INVAL;
    const i = lowerBound(d.mappings, virtStart);
    const prev = d.mappings[i - 1];
    if (prev && prev.virtEnd >= virtStart) return VIRTIO_IOMMU_S.RANGE;
    let j = i;
    while (j < d.mappings.length && d.mappings[j]!.virtStart <= virtEnd) {
      if (d.mappings[j]!.virtEnd > virtEnd) return VIRTIO_IOMMU_S.RANGE;
      j++;
    }
    d.mappings.splice(i, j - i);
    return VIRTIO_IOMMU_S.OK;
  }

  /**
   * PROBE: the endpoint's properties (reserved memory regions). S_UNSUPP
   * without VIRTIO_IOMMU_F_PROBE (probe_size 0); S_NOENT: unknown endpoint.
   * Virtio 1.2 §5.13.6.7.
   */
  probe(endpoint: number): VirtioIommuReply {
    if (this.config.probeSize === 0) return { status: VIRTIO_IOMMU_S.UNSUPP };
    if (!this.endpoints.has(endpoint)) return { status: VIRTIO_IOMMU_S.NOENT };
    return { status: VIRTIO_IOMMU_S.OK, properties: [...this.resvMem(endpoint)] };
  }

  /** The domain `endpoint` is attached to, or null. */
  endpointDomain(endpoint: number): number | null {
    return this.epDomain.get(endpoint) ?? null;
  }

  /** Whether `domain` exists (has endpoints). */
  hasDomain(domain: number): boolean {
    return this.domains.has(domain);
  }

  /** The mappings of `domain`, sorted (empty if it does not exist). */
  mappings(domain: number): readonly VirtioIommuMapping[] {
    return [...(this.domains.get(domain)?.mappings ?? [])];
  }

  /** The mapping of `domain` containing `iova`, or null. */
  lookup(domain: number, iova: number): VirtioIommuMapping | null {
    const d = this.domains.get(domain);
    if (!d) return null;
    const m = d.mappings[lowerBound(d.mappings, iova + 1) - 1];
    return m && m.virtEnd >= iova ? m : null;
  }

  /**
   * Translate a DMA access of `endpoint`: the physical address, `iova` itself
   * for a bypass domain, or -1 (fault: not attached, unmapped, or no permission).
   * @param access VIRTIO_IOMMU_MAP_F.READ and/or WRITE.
   */
  translate(endpoint: number, iova: number, access: number): number {
    const dom = this.epDomain.get(endpoint);
    if (dom === undefined) return -1;
    if (this.domains.get(dom)!.bypass) return iova;
    const m = this.lookup(dom, iova);
    if (!m || (m.flags & access) !== access) return -1;
    return m.physStart + (iova - m.virtStart);
  }
}

/** Index of the first mapping whose virtStart ≥ `iova`. */
function lowerBound(list: readonly VirtioIommuMapping[], iova: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.virtStart < iova) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The errno a request status becomes. Linux: viommu_get_req_errno() (S_RANGE → ERANGE there; EINVAL here). */
export function virtioIommuErrno(status: VirtioIommuStatus): ErrnoName | null {
  switch (status) {
    case VIRTIO_IOMMU_S.OK:
      return null;
    case VIRTIO_IOMMU_S.UNSUPP:
      return 'ENOSYS';
    case VIRTIO_IOMMU_S.INVAL:
    case VIRTIO_IOMMU_S.RANGE:
      return 'EINVAL';
    case VIRTIO_IOMMU_S.NOENT:
      return 'ENOENT';
    case VIRTIO_IOMMU_S.FAULT:
      return 'EFAULT';
    case VIRTIO_IOMMU_S.NOMEM:
      return 'ENOMEM';
    default:
      return 'EIO';
  }
}

/** Options of {@link createVirtioIommu}. */
export interface VirtioIommuOptions {
  /** The devices the topology (VIOT / device tree) puts behind this IOMMU: PCI BDFs (`0000:01:00.0`) or device names. */
  readonly endpoints: ReadonlySet<string>;
  /** Endpoint IDs of devices by name (default for PCI: the requester ID bus << 8 | devfn). */
  readonly endpointIds?: ReadonlyMap<string, number>;
  /** Unit name (default `virtio-iommu`). */
  readonly name?: string;
  /** The virtio device's firmware node, which the endpoints' firmware specs name (default: a new node). */
  readonly fwnode?: FwNode;
}

/** The driver: its ops, unit and the device it drives. */
export interface VirtioIommu {
  /** Linux: viommu_ops. */
  readonly ops: IommuOps;
  /** Linux: viommu_dev.iommu. */
  readonly unit: IommuUnit;
  /** The device the requests go to. */
  readonly device: VirtioIommuDevice;
  /** The virtio domain ID of a domain of this driver. Linux: viommu_domain.id. */
  domainId(domain: IommuDomain): number;
  /** The endpoint ID of a probed device. Linux: the fwspec ids of viommu_endpoint. */
  endpointId(dev: Device): number;
}

/** Driver state of a paging domain. Linux: struct viommu_domain. */
interface ViommuDomain {
  readonly id: number;
  /** The driver's copy of the mappings (replayed on first attach). Linux: viommu_domain.mappings (interval tree). */
  readonly mappings: VirtioIommuMapping[];
  nrEndpoints: number;
  readonly bypass: boolean;
}

/**
 * Create the virtio-iommu driver for `device` and register its unit on `core`.
 * Linux: viommu_probe() → iommu_device_register(&viommu->iommu, &viommu_ops, parent).
 */
export function createVirtioIommu(core: IommuCore, device: VirtioIommuDevice, opts: VirtioIommuOptions): VirtioIommu {
  const cfg = device.config;
  const fwnode: FwNode = opts.fwnode ?? { name: `${opts.name ?? 'virtio-iommu'} (virtio device)` };
  const usedIds = new Set<number>();
  // Per probed device: its endpoint ID, its reserved regions, and its current domain.
  const eps = new Map<Device, { id: number; resv: IommuResvRegion[]; vdomain: ViommuDomain | null }>();
  const mapFlags = VIRTIO_IOMMU_MAP_F.READ | VIRTIO_IOMMU_MAP_F.WRITE | (cfg.mmio ? VIRTIO_IOMMU_MAP_F.MMIO : 0);

  /** Send a request; throw its errno on failure. Linux: viommu_send_req_sync(). */
  const send = (req: VirtioIommuRequest): VirtioIommuReply => {
    const reply = device.request(req);
    const err = virtioIommuErrno(reply.status);
    if (err) throw new IommuError(err, `virtio-iommu: request ${req.type} failed with status ${reply.status}`);
    return reply;
  };

  const allocId = (): number => {
    // Linux: ida_alloc_range(&viommu->domain_ids, viommu->first_domain, viommu->last_domain).
    for (let id = cfg.domainRange.start; id <= cfg.domainRange.end; id++) {
      if (!usedIds.has(id)) {
        usedIds.add(id);
        return id;
      }
    }
    throw new IommuError('ENOSPC', 'virtio-iommu: no domain ID left');
  };

  const vd = (domain: IommuDomain): ViommuDomain => domain.driverData as ViommuDomain;
  const endpoint = (dev: Device) => {
    const e = eps.get(dev);
    if (!e) throw new IommuError('ENODEV', `${dev.name} is not an endpoint of ${unit.name}`);
    return e;
  };

  /** viommu_attach_dev(): ATTACH, replay the mappings on the first endpoint, move the endpoint's count. */
  function attach(domain: IommuDomain, dev: Device): void {
    const e = endpoint(dev);
    const v = vd(domain);
    if (e.vdomain === v) return;
    send({ type: VIRTIO_IOMMU_T.ATTACH, domain: v.id, endpoint: e.id, flags: v.bypass ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0 });
    if (e.vdomain) e.vdomain.nrEndpoints--;
    if (v.nrEndpoints === 0) {
      // viommu_replay_mappings(): the device forgot them when the domain lost its last endpoint.
      for (const m of v.mappings) send({ type: VIRTIO_IOMMU_T.MAP, domain: v.id, virtStart: m.virtStart, virtEnd: m.virtEnd, physStart: m.physStart, flags: m.flags });
    }
    v.nrEndpoints++;
    e.vdomain = v;
  }

  const pagingOps: IommuDomainOps = {
    attachDev: attach,
    mapPages(domain, iova, paddr, pgsize, count, prot): number {
      const v = vd(domain);
      const size = pgsize * count;
      let flags = 0;
      if (prot & IOMMU_READ) flags |= VIRTIO_IOMMU_MAP_F.READ;
      if (prot & IOMMU_WRITE) flags |= VIRTIO_IOMMU_MAP_F.WRITE;
      if (prot & IOMMU_MMIO) flags |= VIRTIO_IOMMU_MAP_F.MMIO;
      domain.mapError = null;
      if (flags & ~mapFlags) {
        domain.mapError = 'EINVAL';
        return 0;
      }
      const m: VirtioIommuMapping = { virtStart: iova, virtEnd: iova + size - 1, physStart: paddr, flags };
      const i = lowerBound(v.mappings, iova);
      const prev = v.mappings[i - 1];
      const next = v.mappings[i];
      if ((prev && prev.virtEnd >= iova) || (next && next.virtStart <= m.virtEnd)) {
        // The device would answer S_INVAL (and on replay it would); refuse now.
        domain.mapError = 'EINVAL';
        return 0;
      }
      if (v.nrEndpoints > 0) {
        const st = device.request({ type: VIRTIO_IOMMU_T.MAP, domain: v.id, virtStart: m.virtStart, virtEnd: m.virtEnd, physStart: paddr, flags }).status;
        const err = virtioIommuErrno(st);
        if (err) {
          domain.mapError = err;
          return 0;
        }
      }
      v.mappings.splice(i, 0, m);
      return size;
    },
    unmapPages(domain, iova, pgsize, count, gather): number {
      // viommu_unmap_pages() / viommu_del_mappings(): whole mappings only; one starting before iova stops the walk.
      const v = vd(domain);
      const size = pgsize * count;
      const end = iova + size - 1;
      const prev = v.mappings[lowerBound(v.mappings, iova) - 1];
      if (prev && prev.virtEnd >= iova) return 0; // would split a mapping
      const i = lowerBound(v.mappings, iova);
      let j = i;
      let unmapped = 0;
      let last = end;
      while (j < v.mappings.length && v.mappings[j]!.virtStart <= end) {
        const m = v.mappings[j]!;
        unmapped += m.virtEnd - m.virtStart + 1;
        last = Math.max(last, m.virtEnd);
        j++;
      }
      if (j === i) return 0;
      if (v.nrEndpoints > 0) {
        const st = device.request({ type: VIRTIO_IOMMU_T.UNMAP, domain: v.id, virtStart: iova, virtEnd: last }).status;
        if (st !== VIRTIO_IOMMU_S.OK) return 0;
      }
      v.mappings.splice(i, j - i);
      iotlbGatherAdd(gather, iova, last - iova + 1);
      // Linux returns 0 when the removed mappings do not add up to the request (a hole).
      return unmapped < size ? 0 : unmapped;
    },
    iovaToPhys(domain, iova): number {
      const v = vd(domain);
      // The device's table while the domain lives there; the driver's copy otherwise.
      const m = v.nrEndpoints > 0 ? device.lookup(v.id, iova) : (() => {
        const c = v.mappings[lowerBound(v.mappings, iova + 1) - 1];
        return c && c.virtEnd >= iova ? c : null;
      })();
      return m ? m.physStart + (iova - m.virtStart) : 0;
    },
    iotlbSync(): void {
      // Linux: viommu_iotlb_sync() waits for the request queue; requests here complete synchronously.
    },
    flushIotlbAll(): void {
      // As iotlbSync.
    },
    free(domain): void {
      const v = vd(domain);
      v.mappings.length = 0;
      usedIds.delete(v.id);
    },
  };

  const detachAll = (dev: Device): void => {
    const e = endpoint(dev);
    if (e.vdomain) {
      send({ type: VIRTIO_IOMMU_T.DETACH, domain: e.vdomain.id, endpoint: e.id });
      e.vdomain.nrEndpoints--;
      e.vdomain = null;
    }
  };

  const ops: IommuOps = {
    name: 'virtio-iommu',
    probeDevice(dev: Device): IommuUnit {
      // viommu_probe_device(): the endpoint ID comes from the device's firmware spec (VIOT or DT `iommus`).
      const spec = devIommuFwspec(dev);
      if (!spec || spec.iommuFwnode !== fwnode) throw new IommuError('ENODEV', `${dev.name} has no firmware spec for ${unit.name}`);
      const id = spec.ids[0];
      if (id === undefined) throw new IommuError('ENODEV', `${dev.name}: its firmware spec for ${unit.name} has no endpoint ID`);
      // viommu_probe_endpoint(): PROBE for the reserved regions.
      const resv: IommuResvRegion[] = [];
      let msi = false;
      if (cfg.probeSize > 0) {
        for (const p of send({ type: VIRTIO_IOMMU_T.PROBE, endpoint: id }).properties ?? []) {
          if (p.type !== VIRTIO_IOMMU_PROBE_T_RESV_MEM) continue;
          const type = p.subtype === VIRTIO_IOMMU_RESV_MEM_T.MSI ? IommuResvType.MSI : IommuResvType.RESERVED;
          if (type === IommuResvType.MSI) msi = true;
          resv.push(allocResvRegion(p.start, p.end - p.start + 1, IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, type));
        }
      }
      // viommu_get_resv_regions(): a software MSI window when the device reported none.
      if (!msi) resv.push(allocResvRegion(MSI_IOVA_BASE, MSI_IOVA_LENGTH, IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, IommuResvType.SW_MSI));
      eps.set(dev, { id, resv, vdomain: null });
      return unit;
    },
    releaseDevice(dev: Device): void {
      const e = eps.get(dev);
      if (e?.vdomain) {
        device.detach(e.vdomain.id, e.id);
        e.vdomain.nrEndpoints--;
      }
      eps.delete(dev);
    },
    deviceGroup(c: IommuCore, dev: Device) {
      const pdev = toPciDev(dev);
      return pdev ? pciDeviceGroup(c.groups, pdev, { acpiIvrsPresent: false }) : genericDeviceGroup(c.groups);
    },
    domainAllocPaging(): IommuDomain {
      const d = new IommuDomain({
        type: 'unmanaged',
        owner: ops,
        ops: pagingOps,
        pgsizeBitmap: cfg.pageSizeMask,
        geometry: { apertureStart: cfg.inputRange.start, apertureEnd: cfg.inputRange.end, forceAperture: true },
      });
      const v: ViommuDomain = { id: allocId(), mappings: [], nrEndpoints: 0, bypass: false };
      d.driverData = v;
      return d;
    },
    getResvRegions(dev: Device): IommuResvRegion[] {
      return [...(eps.get(dev)?.resv ?? [])];
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'DEFERRED_FLUSH';
    },
  };

  const blocked = new IommuDomain({ type: 'blocked', owner: ops, ops: { attachDev: (_d, dev) => detachAll(dev) } });
  const extra: { blockedDomain: IommuDomain; identityDomain?: IommuDomain } = { blockedDomain: blocked };
  if (cfg.bypassConfig) {
    // Linux: viommu_identity_domain, attached with VIRTIO_IOMMU_ATTACH_F_BYPASS on a reserved domain ID.
    const identity = new IommuDomain({ type: 'identity', owner: ops, ops: { attachDev: attach } });
    identity.driverData = { id: allocId(), mappings: [], nrEndpoints: 0, bypass: true } satisfies ViommuDomain;
    extra.identityDomain = identity;
  }
  Object.assign(ops, extra);

  const unit = new IommuUnit(opts.name ?? 'virtio-iommu', ops, { maxPasids: 0, fwnode });
  // The topology (VIOT nodes, or DT `iommus` / `iommu-map`): a device it lists gets a firmware spec naming
  // this IOMMU with its endpoint ID (for PCI by default its requester ID) when the core probes it.
  core.addFirmwareConfig((c, dev) => {
    if (!opts.endpoints.has(dev.name)) return;
    const pdev = toPciDev(dev);
    const id = opts.endpointIds?.get(dev.name) ?? (pdev ? (pdev.bus.number << 8) | pdev.devfn : undefined);
    if (id === undefined) return;
    iommuFwspecInit(c, dev, fwnode);
    iommuFwspecAddIds(dev, [id]);
  });
  core.iommuDeviceRegister(unit);
  return {
    ops,
    unit,
    device,
    domainId: (domain) => vd(domain).id,
    endpointId: (dev) => endpoint(dev).id,
  };
}
