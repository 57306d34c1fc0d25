/**
 * DMA translation as the IOMMU hardware does it, for emulated devices: the
 * IOTLB first, then a walk of the domain's page table (filling the IOTLB), or
 * a fault reported to the domain's handler and logged on the unit — never
 * thrown into the device.
 *
 * Linux has no such function (the hardware translates); what happens on a
 * fault follows the drivers' fault paths: report_iommu_fault()
 * (drivers/iommu/iommu.c) from e.g. arm_smmu_context_fault() /
 * dmar_fault() / amd_iommu_report_page_fault(), which log an unhandled fault.
 */
import type { Device } from '../device/device.js';
import { IOMMU_READ, IOMMU_WRITE, WALK_PGSIZE, WALK_PHYS } from '../io-pgtable/io-pgtable.js';
import { IOMMU_FAULT_READ, IOMMU_FAULT_WRITE, modPow2, reportIommuFault, type IommuDomain } from './domain.js';
import { devIommu, type DevIommu, type IommuCore } from './core.js';
import { IOTLB_NO_PASID } from './iotlb.js';
import { IommuResvType } from './resv-region.js';
import type { FaultReason, FaultRecord, IommuUnit } from './iommu-unit.js';

/** Access type bits for {@link iommuTranslate}: IOMMU_READ (1) or IOMMU_WRITE (2). */
export type DmaAccess = number;

const scratch = new Float64Array(2);

/** Outcome of the last {@link iommuTranslate} that faulted (valid until the next fault). */
export let lastFault: FaultRecord | null = null;

/**
 * Translate one access of `dev` at `iova`.
 * @param access IOMMU_READ or IOMMU_WRITE.
 * @param pasid the PASID of the request, or null for a request without PASID.
 * @returns the physical address, or -1 if the access faulted (the fault was
 *   reported to the domain's handler, recorded on the unit, and is in {@link lastFault}).
 *   A device without an IOMMU (or on an identity domain) gets `iova` back; a
 *   device removed from its bus faults ('no-translation') at the unit that translated it.
 */
export function iommuTranslate(core: IommuCore, dev: Device, iova: number, access: DmaAccess, pasid: number | null = null): number {
  // Fast path: an IOTLB hit for a request without PASID on a paging domain.
  const di = dev.iommu as DevIommu | null;
  if (di !== null && pasid === null && di.pagingDomainId >= 0) {
    const out = scratch;
    const perms = di.iotlb.lookup(di.pagingDomainId, 0 /* IOTLB_NO_PASID */, iova, out);
    if (perms >= 0 && (perms & access) === access) return out[0]!; // WALK_PHYS
  }
  return translateSlow(core, dev, iova, access, pasid);
}

function translateSlow(core: IommuCore, dev: Device, iova: number, access: DmaAccess, pasid: number | null): number {
  const di = dev.iommu as DevIommu | null;
  if (di === null) {
    // A device removed from its bus: its context entry is gone, so whatever it still issues faults there.
    const unit = core.removedDeviceUnit(dev);
    return unit === null ? iova : removedFault(core, dev, unit, iova, access, pasid);
  }
  // A subdevice issues its DMA through its parent, tagged with its PASID (or as the parent's own requests).
  if (di.subdevOf !== null) return iommuTranslate(core, di.subdevOf.parent, iova, access, di.subdevOf.pasid ?? pasid);
  let domain = di.domain;
  if (pasid !== null && pasid !== IOTLB_NO_PASID) {
    const g = dev.iommuGroup as { pasidArray?: Map<number, unknown> } | null;
    domain = ((g?.pasidArray?.get(pasid) ?? null) as IommuDomain | null);
  }
  if (domain === null) return fault(core, dev, di, null, iova, access, pasid, 'no-translation');
  const tlbPasid = pasid === null ? IOTLB_NO_PASID : pasid;
  if (domain.pgtable !== null) {
    const iotlb = di.unit.iotlb;
    const perms = pasid === null ? iotlb.peek(domain.id, tlbPasid, iova, scratch) : iotlb.lookup(domain.id, tlbPasid, iova, scratch);
    if (perms >= 0) {
      if ((perms & access) === access) return scratch[WALK_PHYS]!;
      return fault(core, dev, di, domain, iova, access, pasid, 'permission');
    }
    if (di.resvRegions.length !== 0 && inBlockingRegion(di, iova)) return fault(core, dev, di, domain, iova, access, pasid, 'reserved');
    const p = domain.pgtable.walk(iova, scratch);
    if (p < 0) return fault(core, dev, di, domain, iova, access, pasid, 'not-present');
    const pg = scratch[WALK_PGSIZE]!;
    const phys = scratch[WALK_PHYS]!;
    const off = modPow2(iova, pg);
    iotlb.insert(domain.id, tlbPasid, iova - off, pg, phys - off, p);
    if ((p & access) !== access) return fault(core, dev, di, domain, iova, access, pasid, 'permission');
    return phys;
  }
  switch (domain.type) {
    case 'identity':
      return iova;
    case 'blocked':
      return fault(core, dev, di, domain, iova, access, pasid, 'blocked');
    default:
      // A paging domain without a page table of ours (a driver's own): ask its iova_to_phys.
      if (!domain.ops.iovaToPhys) return fault(core, dev, di, domain, iova, access, pasid, 'not-present');
      const phys = domain.ops.iovaToPhys(domain, iova);
      return phys === 0 ? fault(core, dev, di, domain, iova, access, pasid, 'not-present') : phys;
  }
}

function removedFault(core: IommuCore, dev: Device, unit: IommuUnit, iova: number, access: DmaAccess, pasid: number | null): number {
  const rec: FaultRecord = { dev, iova, access: access & IOMMU_WRITE ? 'write' : 'read', reason: 'no-translation', domainId: 0, pasid, handled: false, time: core.now };
  unit.recordFault(rec);
  core.log.push(`${unit.name}: unhandled ${rec.access} fault from removed device ${dev.name} at IOVA 0x${iova.toString(16)}: no-translation (context entry cleared)`);
  lastFault = rec;
  return -1;
}

/** Reserved and MSI windows are never translated to memory. */
function inBlockingRegion(di: DevIommu, iova: number): boolean {
  for (const r of di.resvRegions) {
    if (iova < r.start) return false;
    if (iova < r.start + r.length && (r.type === IommuResvType.RESERVED || r.type === IommuResvType.MSI)) return true;
  }
  return false;
}

function fault(core: IommuCore, dev: Device, di: DevIommu, domain: IommuDomain | null, iova: number, access: DmaAccess, pasid: number | null, reason: FaultReason): number {
  const flags = access & IOMMU_WRITE ? IOMMU_FAULT_WRITE : IOMMU_FAULT_READ;
  const handled = domain !== null && reportIommuFault(domain, dev, iova, flags) === 0;
  const rec: FaultRecord = {
    dev,
    iova,
    access: access & IOMMU_WRITE ? 'write' : 'read',
    reason,
    domainId: domain?.id ?? 0,
    pasid,
    handled,
    time: core.now,
  };
  di.unit.recordFault(rec);
  if (!handled) core.log.push(`${di.unit.name}: unhandled ${rec.access} fault from ${dev.name} at IOVA 0x${iova.toString(16)}${pasid !== null ? ` PASID ${pasid}` : ''}: ${reason}`);
  lastFault = rec;
  return -1;
}

/** A DMA transfer's outcome: the bytes moved, and the fault that stopped it (null if none). */
export interface DmaResult {
  /** Bytes transferred before any fault. */
  readonly bytes: number;
  /** The fault that stopped the transfer, or null. */
  readonly fault: FaultRecord | null;
  /** EFAULT when a fault stopped the transfer (what a VMM's DMA accessor returns, e.g. vfio_dma_rw()), else null. */
  readonly errno: 'EFAULT' | null;
}

/**
 * An emulated device reads `dst.length` bytes of memory at `iova` through its
 * IOMMU (page by page). Stops at the first fault, which is reported, not thrown.
 */
export function dmaRead(core: IommuCore, dev: Device, iova: number, dst: Uint8Array, pasid: number | null = null): DmaResult {
  return transfer(core, dev, iova, dst, IOMMU_READ, pasid);
}

/**
 * An emulated device writes `src` to memory at `iova` through its IOMMU.
 * Stops at the first fault, which is reported, not thrown.
 */
export function dmaWrite(core: IommuCore, dev: Device, iova: number, src: Uint8Array, pasid: number | null = null): DmaResult {
  return transfer(core, dev, iova, src, IOMMU_WRITE, pasid);
}

function transfer(core: IommuCore, dev: Device, iova: number, buf: Uint8Array, access: number, pasid: number | null): DmaResult {
  let done = 0;
  while (done < buf.length) {
    const a = iova + done;
    const phys = iommuTranslate(core, dev, a, access, pasid);
    if (phys < 0) return { bytes: done, fault: lastFault, errno: 'EFAULT' };
    const n = Math.min(buf.length - done, 4096 - (a % 4096));
    const part = buf.subarray(done, done + n);
    if (access === IOMMU_WRITE) core.mem.writeBytes(phys, part);
    else core.mem.readBytes(phys, part);
    done += n;
  }
  return { bytes: done, fault: null, errno: null };
}

/** The device's IOMMU state (re-exported for callers of the data path). */
export { devIommu };
