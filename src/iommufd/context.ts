/**
 * iommufd: the user API of /dev/iommu. One {@link IommufdContext} per open
 * file: an object table (devices, IOASes, paging HWPTs) by id, the devices'
 * DMA ownership, IOAS mapping of user memory, HWPTs (iommu_domains) filled
 * from their IOAS, and device attachment.
 *
 * Object ids are u32, never 0: the smallest free id ≥ 1 (xa_alloc with
 * XA_FLAGS_ALLOC1), reused after destruction.
 *
 * References (what makes IOMMU_DESTROY fail with EBUSY):
 * - a device is held by the driver that bound it until {@link IommufdContext.unbindDevice};
 * - an IOAS is held by each of its HWPTs;
 * - a HWPT is held by each device attached to it. A HWPT created automatically
 *   by attaching to an IOAS is destroyed when its last device detaches.
 *
 * The caller of {@link IommufdContext.bindDevice} plays the part of the VFIO
 * cdev driver (VFIO_DEVICE_BIND_IOMMUFD / VFIO_DEVICE_ATTACH_IOMMUFD_PT).
 *
 * All calls are all or nothing. Sizes and IOVAs are bytes.
 *
 * Linux: drivers/iommu/iommufd/main.c (iommufd_fops_open/release,
 * iommufd_destroy, iommufd_object_remove), device.c (iommufd_device_bind/unbind,
 * iommufd_device_attach/replace/detach, iommufd_hw_pagetable_attach/detach,
 * iommufd_device_auto_get_domain), hw_pagetable.c (iommufd_hwpt_paging_alloc,
 * iommufd_hwpt_alloc), ioas.c (iommufd_ioas_* ioctls), include/uapi/linux/iommufd.h;
 * read at torvalds/linux v6.16-era (tree Kingxukai/linux 9b44fff6).
 */
import { IommuError, isIommuError } from '../base/errno.js';
import { Ida } from '../base/ida.js';
import type { Device } from '../device/device.js';
import { iommuAttachGroup, iommuDetachGroup, iommuDomainFree, iommuPagingDomainAlloc } from '../iommu/attach.js';
import { devIommu, type IommuCore } from '../iommu/core.js';
import { groupSetDomainInternal } from '../iommu/default-domain.js';
import { iommuDeviceClaimDmaOwner, iommuDeviceReleaseDmaOwner } from '../iommu/dma-owner.js';
import type { IommuDomain } from '../iommu/domain.js';
import type { IommuGroup } from '../iommu/group.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../io-pgtable/io-pgtable.js';
import { IoPagetable, IoptPages, IOVA_LAST, type IovaRange } from './io-pagetable.js';
import { UserMemory } from './user-memory.js';

/** IOMMU_IOAS_MAP flag: map at the given IOVA. Linux: IOMMU_IOAS_MAP_FIXED_IOVA (1 << 0). */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
/** IOMMU_IOAS_MAP flag: the device may write. Linux: IOMMU_IOAS_MAP_WRITEABLE (1 << 1). */
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
/** IOMMU_IOAS_MAP flag: the device may read. Linux: IOMMU_IOAS_MAP_READABLE (1 << 2). */
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;
/**
 * IOMMU_IOAS_UNMAP length that, with IOVA 0, unmaps everything. Linux:
 * U64_MAX (2^64 − 1, which a JavaScript number rounds to 2^64; both spell it).
 */
export const IOMMU_IOAS_UNMAP_ALL_LENGTH = 2 ** 64 - 1;

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** The kinds of iommufd object the model has. Linux: enum iommufd_object_type (IOMMUFD_OBJ_DEVICE, _IOAS, _HWPT_PAGING). */
export type IommufdObjectType = 'device' | 'ioas' | 'hwpt_paging';

/** Options of an {@link IommufdContext}. */
export interface IommufdContextOptions {
  /** The opening process's address space (current->mm); a new, empty one over `core.mem` by default. */
  readonly mm?: UserMemory;
  /** The platform isolates MSIs (interrupt remapping; default true). Linux: iommu_group_has_isolated_msi(). */
  readonly isolatedMsi?: boolean;
  /** The iommufd module parameter allow_unsafe_interrupts (default false). */
  readonly allowUnsafeInterrupts?: boolean;
}

/** One mapping of an IOAS, for inspection. */
export interface IoasArea {
  /** First IOVA (bytes). */
  readonly iova: number;
  /** Length (bytes). */
  readonly length: number;
  /** User VA of the first byte. */
  readonly userVa: number;
  /** IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE. */
  readonly prot: number;
}

/** Result of {@link IommufdContext.ioasIovaRanges}. Linux: struct iommu_ioas_iova_ranges. */
export interface IoasIovaRanges {
  /** Usable ranges, [start, last] inclusive, ascending. */
  readonly ranges: IovaRange[];
  /** Alignment every IOVA and length must have (bytes). Linux: out_iova_alignment. */
  readonly iovaAlignment: number;
}

interface DeviceObj {
  readonly type: 'device';
  readonly id: number;
  readonly dev: Device;
  readonly igroup: IGroup;
}

interface IoasObj {
  readonly type: 'ioas';
  readonly id: number;
  readonly iopt: IoPagetable;
  /** Its HWPTs, in creation order. Linux: iommufd_ioas.hwpt_list. */
  readonly hwpts: HwptObj[];
}

interface HwptObj {
  readonly type: 'hwpt_paging';
  readonly id: number;
  readonly ioas: IoasObj;
  readonly domain: IommuDomain;
  /** Created by attaching to an IOAS. Linux: iommufd_hwpt_paging.auto_domain. */
  autoDomain: boolean;
  /** Attached devices holding it. */
  users: number;
}

type Obj = DeviceObj | IoasObj | HwptObj;

/** Per-context state of one iommu_group. Linux: struct iommufd_group (+ its IOMMU_NO_PASID iommufd_attach). */
interface IGroup {
  readonly group: IommuGroup;
  /** Bound devices of the group in this context. */
  bound: number;
  /** The group's attachment: the HWPT and the devices attached to it. */
  attach: { hwpt: HwptObj; readonly devices: Set<DeviceObj> } | null;
}

/**
 * An open /dev/iommu.
 * Linux: struct iommufd_ctx, drivers/iommu/iommufd/main.c.
 */
export class IommufdContext {
  /** The machine's IOMMU core. */
  readonly core: IommuCore;
  /** The address space user VAs are resolved in. */
  readonly mm: UserMemory;
  private readonly objects = new Map<number, Obj>();
  private readonly ids = new Ida();
  private readonly igroups = new Map<IommuGroup, IGroup>();
  private readonly isolatedMsi: boolean;
  private readonly allowUnsafeInterrupts: boolean;
  private isClosed = false;

  /** Open /dev/iommu. Linux: iommufd_fops_open(). */
  constructor(core: IommuCore, opts: IommufdContextOptions = {}) {
    this.core = core;
    this.mm = opts.mm ?? new UserMemory(core.mem);
    this.isolatedMsi = opts.isolatedMsi ?? true;
    this.allowUnsafeInterrupts = opts.allowUnsafeInterrupts ?? false;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Live object ids, ascending. */
  get objectIds(): number[] {
    return [...this.objects.keys()].sort((a, b) => a - b);
  }

  /** The type of object `id`, or null if there is none. */
  objectType(id: number): IommufdObjectType | null {
    return this.objects.get(id)?.type ?? null;
  }

  private live(): void {
    if (this.isClosed) throw new IommuError('EBADF', 'the iommufd context is closed');
  }

  /** Linux: iommufd_get_object(): a missing id or another type → ENOENT. */
  private get<T extends Obj['type']>(id: number, type: T): Extract<Obj, { type: T }> {
    this.live();
    const o = this.objects.get(id);
    if (!o || o.type !== type) throw new IommuError('ENOENT', `no ${type} object with id ${id}`);
    return o as Extract<Obj, { type: T }>;
  }

  private allocId(): number {
    return this.ids.alloc(1);
  }

  private freeObj(o: Obj): void {
    this.objects.delete(o.id);
    this.ids.free(o.id);
  }

  // ---- devices ---------------------------------------------------------

  /**
   * Bind a device: claim DMA ownership of its group for this context (the
   * group goes to its blocking domain on the first claim; further devices of
   * the group bound here are counted).
   * @returns the device object id.
   * @throws IommuError EBADF (context closed), EINVAL (already bound here —
   *   VFIO_DEVICE_BIND_IOMMUFD's check; or its IOMMU lacks
   *   IOMMU_CAP_CACHE_COHERENCY, vector 47; or it requires a 1:1 mapping and
   *   cannot be blocked), ENODEV (no IOMMU group), EPERM (MSIs not isolated
   *   and allow_unsafe_interrupts off; a kernel-DMA driver is bound in the
   *   group; another owner holds the group), EBUSY (the group is attached to a
   *   non-default domain).
   * Linux: iommufd_device_bind(), drivers/iommu/iommufd/device.c.
   */
  bindDevice(dev: Device): number {
    this.live();
    for (const o of this.objects.values()) {
      if (o.type === 'device' && o.dev === dev) throw new IommuError('EINVAL', `${dev.name} is already bound to this iommufd`);
    }
    const di = devIommu(dev);
    if (!di || !(di.ops.capable?.(dev, 'CACHE_COHERENCY') ?? false)) {
      throw new IommuError('EINVAL', `${dev.name}: the IOMMU does not provide IOMMU_CAP_CACHE_COHERENCY`);
    }
    const group = dev.iommuGroup ? this.core.groups.get(dev) : null;
    if (!group) throw new IommuError('ENODEV', `${dev.name} has no IOMMU group`);
    let ig = this.igroups.get(group);
    const fresh = ig === undefined;
    if (!fresh) this.core.groups.put(group); // the igroup already holds a reference
    try {
      if (!this.isolatedMsi && !this.allowUnsafeInterrupts) {
        throw new IommuError('EPERM', `${dev.name}: MSI interrupts cannot be isolated by the platform (set allow_unsafe_interrupts to override)`);
      }
      iommuDeviceClaimDmaOwner(this.core, dev, this);
    } catch (e) {
      if (fresh) this.core.groups.put(group);
      throw e;
    }
    if (!ig) {
      ig = { group, bound: 0, attach: null };
      this.igroups.set(group, ig);
    }
    ig.bound++;
    const id = this.allocId();
    this.objects.set(id, { type: 'device', id, dev, igroup: ig });
    return id;
  }

  /**
   * Unbind a device (detaching it first, as VFIO does): its DMA ownership
   * claim is released; the last claim of the group returns it to its default
   * domain.
   * @throws IommuError EBADF, ENOENT (no such device).
   * Linux: vfio_iommufd_physical_unbind() → iommufd_device_detach() + iommufd_device_unbind() → iommufd_device_destroy().
   */
  unbindDevice(devId: number): void {
    const idev = this.get(devId, 'device');
    this.detach(idev);
    iommuDeviceReleaseDmaOwner(this.core, idev.dev);
    const ig = idev.igroup;
    if (--ig.bound === 0) {
      this.igroups.delete(ig.group);
      this.core.groups.put(ig.group);
    }
    this.freeObj(idev);
  }

  // ---- IOAS --------------------------------------------------------------

  /**
   * Allocate an empty IOAS.
   * @returns its id.
   * @throws IommuError EBADF.
   * Linux: iommufd_ioas_alloc_ioctl() (IOMMU_IOAS_ALLOC), drivers/iommu/iommufd/ioas.c.
   */
  ioasAlloc(): number {
    this.live();
    const id = this.allocId();
    this.objects.set(id, { type: 'ioas', id, iopt: new IoPagetable(), hwpts: [] });
    return id;
  }

  /**
   * Map user memory [userVa, userVa + length) into an IOAS at `iova` (a
   * number: FIXED_IOVA is implied) or at an allocated IOVA (`'auto'`), and
   * into every HWPT of the IOAS (pinning the pages).
   * @param flags IOMMU_IOAS_MAP_READABLE and/or _WRITEABLE (at least one), optionally _FIXED_IOVA.
   * @returns the IOVA (bytes).
   * @throws IommuError EBADF; EOPNOTSUPP (unknown flags); EOVERFLOW (iova or
   *   length ≥ 2^53, or the range wraps); EINVAL (neither READABLE nor
   *   WRITEABLE; FIXED_IOVA with 'auto'; length 0; IOVA, length or the user
   *   page offset not aligned to the IOAS alignment; a reserved range
   *   intersects); ENOENT (no such IOAS); EEXIST (the fixed range is already
   *   mapped); ENOSPC (no free IOVA); EFAULT (user pages not mapped or not
   *   writable, when a HWPT needs them pinned); a HWPT's map error.
   * Linux: iommufd_ioas_map() (IOMMU_IOAS_MAP) → iopt_map_user_pages().
   */
  ioasMap(ioasId: number, iova: number | 'auto', userVa: number, length: number, flags: number): number {
    this.live();
    if (flags & ~MAP_FLAGS) throw new IommuError('EOPNOTSUPP', `unknown IOMMU_IOAS_MAP flags 0x${(flags & ~MAP_FLAGS).toString(16)}`);
    if (iova !== 'auto') flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
    if ((iova !== 'auto' && iova >= IOVA_LAST) || length >= IOVA_LAST) throw new IommuError('EOVERFLOW', 'iova or length too large');
    if (!(flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) throw new IommuError('EINVAL', 'IOMMU_IOAS_MAP needs READABLE or WRITEABLE');
    if (iova === 'auto' && flags & IOMMU_IOAS_MAP_FIXED_IOVA) throw new IommuError('EINVAL', 'FIXED_IOVA needs an IOVA');
    const ioas = this.get(ioasId, 'ioas');
    const prot = convProt(flags);
    const { pages, startByte } = IoptPages.forUser(this.mm, userVa, length, (prot & IOMMU_WRITE) !== 0);
    return ioas.iopt.mapPages([{ pages, startByte, length }], length, iova === 'auto' ? null : iova, prot);
  }

  /**
   * Unmap whole mappings inside [iova, iova + length); iova 0 with length
   * {@link IOMMU_IOAS_UNMAP_ALL_LENGTH} unmaps everything (0 bytes if empty).
   * Every mapping touched must lie wholly inside the range; checked before
   * anything is unmapped (Linux unmaps the mappings before a split one).
   * @returns bytes unmapped.
   * @throws IommuError EBADF; ENOENT (no such IOAS; nothing mapped in the
   *   range; a mapping would be split); EOVERFLOW (iova or length ≥ 2^53);
   *   EINVAL (length 0).
   * Linux: iommufd_ioas_unmap() (IOMMU_IOAS_UNMAP) → iopt_unmap_iova() / iopt_unmap_all().
   */
  ioasUnmap(ioasId: number, iova: number, length: number): number {
    const ioas = this.get(ioasId, 'ioas');
    if (iova === 0 && length === IOMMU_IOAS_UNMAP_ALL_LENGTH) return ioas.iopt.unmapAll();
    if (iova >= IOVA_LAST || length >= IOVA_LAST) throw new IommuError('EOVERFLOW', 'iova or length too large');
    return ioas.iopt.unmapIova(iova, length);
  }

  /**
   * Map in `dstIoasId` the user pages mapped in `srcIoasId` at [srcIova,
   * srcIova + length) (which mappings must cover without a hole; a mapping may
   * be taken partly), at `dstIova` (FIXED_IOVA implied) or an allocated IOVA.
   * One destination mapping is made per source mapping covered.
   * @returns the destination IOVA.
   * @throws IommuError EBADF; EOPNOTSUPP (unknown flags); EOVERFLOW; EINVAL
   *   (neither READABLE nor WRITEABLE; length 0; alignment; reserved);
   *   ENOENT (no such IOAS; a hole in the source range); EPERM (WRITEABLE
   *   asked of pages mapped read-only); EEXIST; ENOSPC; EFAULT.
   * Linux: iommufd_ioas_copy() (IOMMU_IOAS_COPY) → iopt_get_pages() + iopt_map_pages().
   */
  ioasCopy(dstIoasId: number, srcIoasId: number, srcIova: number, length: number, dstIova: number | 'auto', flags: number): number {
    this.live();
    if (flags & ~MAP_FLAGS) throw new IommuError('EOPNOTSUPP', `unknown IOMMU_IOAS_COPY flags 0x${(flags & ~MAP_FLAGS).toString(16)}`);
    if (dstIova !== 'auto') flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
    if (length >= IOVA_LAST || srcIova >= IOVA_LAST || (dstIova !== 'auto' && dstIova >= IOVA_LAST)) throw new IommuError('EOVERFLOW', 'iova or length too large');
    if (!(flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) throw new IommuError('EINVAL', 'IOMMU_IOAS_COPY needs READABLE or WRITEABLE');
    if (dstIova === 'auto' && flags & IOMMU_IOAS_MAP_FIXED_IOVA) throw new IommuError('EINVAL', 'FIXED_IOVA needs an IOVA');
    const src = this.get(srcIoasId, 'ioas');
    const slices = src.iopt.getPages(srcIova, length);
    const dst = this.get(dstIoasId, 'ioas');
    return dst.iopt.mapPages(slices, length, dstIova === 'auto' ? null : dstIova, convProt(flags));
  }

  /**
   * Replace the IOAS's allowed ranges: automatic IOVAs come only from them,
   * and no reserved range (device regions, apertures) may intersect them —
   * now or at a later attach. An empty list removes the restriction.
   * Existing mappings outside the new ranges are not checked (as Linux).
   * @throws IommuError EBADF; ENOENT (no such IOAS); EINVAL (a range with
   *   start ≥ last, or two ranges overlapping); EADDRINUSE (a reserved range
   *   intersects one). The old ranges stay on failure.
   * Linux: iommufd_ioas_allow_iovas() (IOMMU_IOAS_ALLOW_IOVAS) → iommufd_ioas_load_iovas(), iopt_set_allow_iova().
   */
  ioasAllowIovas(ioasId: number, ranges: readonly IovaRange[]): void {
    const ioas = this.get(ioasId, 'ioas');
    const seen: IovaRange[] = [];
    for (const r of ranges) {
      if (!(r.start < r.last)) throw new IommuError('EINVAL', `allowed range [0x${r.start.toString(16)}, 0x${r.last.toString(16)}] is empty`);
      if (seen.some((s) => s.start <= r.last && s.last >= r.start)) throw new IommuError('EINVAL', 'allowed ranges overlap');
      seen.push({ start: r.start, last: r.last });
    }
    ioas.iopt.setAllowIova(seen);
  }

  /**
   * The usable IOVA ranges of an IOAS: [0, 2^53 − 1] minus every reserved
   * range (the reserved regions of attached devices other than
   * DIRECT_RELAXABLE, and what lies outside each HWPT's aperture). As in
   * Linux, the allowed ranges are not intersected.
   * @throws IommuError EBADF, ENOENT.
   * Linux: iommufd_ioas_iova_ranges() (IOMMU_IOAS_IOVA_RANGES).
   */
  ioasIovaRanges(ioasId: number): IoasIovaRanges {
    const ioas = this.get(ioasId, 'ioas');
    return { ranges: ioas.iopt.iovaRanges(), iovaAlignment: ioas.iopt.iovaAlignment };
  }

  /**
   * The mappings of an IOAS, ascending (inspection; Linux has no ioctl for it).
   * @throws IommuError EBADF, ENOENT.
   */
  ioasAreas(ioasId: number): IoasArea[] {
    const ioas = this.get(ioasId, 'ioas');
    return ioas.iopt.areas.map((a) => ({ iova: a.iova, length: a.length, userVa: a.pages.uptr + a.startByte, prot: a.prot }));
  }

  // ---- HWPT --------------------------------------------------------------

  /** Linux: iommufd_hwpt_paging_alloc(). */
  private hwptPagingAlloc(idev: DeviceObj, ioas: IoasObj, immediateAttach: boolean): HwptObj {
    const id = this.allocId();
    let domain: IommuDomain;
    try {
      domain = iommuPagingDomainAlloc(idev.dev);
    } catch (e) {
      this.ids.free(id);
      throw e;
    }
    const hwpt: HwptObj = { type: 'hwpt_paging', id, ioas, domain, autoDomain: false, users: 0 };
    this.objects.set(id, hwpt);
    try {
      if (immediateAttach) this.hwptAttach(hwpt, idev);
      try {
        ioas.iopt.addDomain(domain);
      } catch (e) {
        if (immediateAttach) {
          this.hwptDetach(idev);
          hwpt.users--;
        }
        throw e;
      }
    } catch (e) {
      this.freeObj(hwpt);
      iommuDomainFree(domain);
      throw e;
    }
    ioas.hwpts.push(hwpt);
    return hwpt;
  }

  /**
   * Allocate a paging HWPT for a device from its IOMMU driver (an unmanaged
   * paging domain) and fill it with every mapping of the IOAS (the largest
   * pages that fit). It is kept until destroyed, and automatic attaches do not
   * pick it.
   * @returns the HWPT id.
   * @throws IommuError EBADF; ENOENT (no such device); EINVAL (`ioasId` is not
   *   an object, or not an IOAS; the domain's smallest page is above 4 KiB);
   *   EOPNOTSUPP (`ioasId` is a HWPT: nesting is not modelled); EADDRINUSE (a
   *   mapping is outside the domain's aperture or misaligned for it); EFAULT
   *   (pinning); the driver's allocation or map errors.
   * Linux: iommufd_hwpt_alloc() (IOMMU_HWPT_ALLOC) → iommufd_hwpt_paging_alloc(), drivers/iommu/iommufd/hw_pagetable.c.
   */
  hwptAlloc(devId: number, ioasId: number): number {
    const idev = this.get(devId, 'device');
    const pt = this.objects.get(ioasId);
    if (!pt) throw new IommuError('EINVAL', `no object with id ${ioasId}`);
    if (pt.type === 'hwpt_paging') throw new IommuError('EOPNOTSUPP', 'nested HWPTs are not supported by this IOMMU driver');
    if (pt.type !== 'ioas') throw new IommuError('EINVAL', `object ${ioasId} is not an IOAS`);
    return this.hwptPagingAlloc(idev, pt, false).id;
  }

  /**
   * The iommu_domain of a HWPT (inspection: iommuIovaToPhys on it shows what the hardware sees).
   * @throws IommuError EBADF, ENOENT.
   */
  hwptDomain(hwptId: number): IommuDomain {
    return this.get(hwptId, 'hwpt_paging').domain;
  }

  /**
   * The HWPT (id) a device is attached to, or null (inspection).
   * @throws IommuError EBADF, ENOENT.
   */
  deviceHwpt(devId: number): number | null {
    const idev = this.get(devId, 'device');
    const a = idev.igroup.attach;
    return a && a.devices.has(idev) ? a.hwpt.id : null;
  }

  /** Destroy a HWPT with no users. Linux: iommufd_hwpt_paging_destroy(). */
  private destroyHwpt(hwpt: HwptObj): void {
    const l = hwpt.ioas.hwpts;
    l.splice(l.indexOf(hwpt), 1);
    hwpt.ioas.iopt.removeDomain(hwpt.domain);
    iommuDomainFree(hwpt.domain);
    this.freeObj(hwpt);
  }

  /** Drop a device reference: an automatic HWPT goes with its last user. Linux: iommufd_hw_pagetable_put(). */
  private hwptPut(hwpt: HwptObj): void {
    if (hwpt.autoDomain && hwpt.users === 0) this.destroyHwpt(hwpt);
  }

  // ---- attach ------------------------------------------------------------

  /**
   * Attach a device to a HWPT: reserve its regions in the HWPT's IOAS, and
   * attach its group if this is the group's first attached device.
   * Linux: iommufd_hw_pagetable_attach().
   */
  private hwptAttach(hwpt: HwptObj, idev: DeviceObj): void {
    const ig = idev.igroup;
    if (ig.attach?.devices.has(idev)) throw new IommuError('EBUSY', `${idev.dev.name} is already attached`);
    if (ig.attach && ig.attach.hwpt !== hwpt) throw new IommuError('EINVAL', `${idev.dev.name}'s group is attached to HWPT ${ig.attach.hwpt.id}`);
    const iopt = hwpt.ioas.iopt;
    iopt.enforceDevResvRegions(idev.dev, devIommu(idev.dev)?.resvRegions ?? []);
    if (!ig.attach) {
      try {
        iommuAttachGroup(this.core, hwpt.domain, ig.group);
      } catch (e) {
        iopt.removeReserved(idev.dev);
        throw e;
      }
      ig.attach = { hwpt, devices: new Set() };
    }
    ig.attach.devices.add(idev);
    hwpt.users++;
  }

  /**
   * Detach a device; the group leaves the HWPT's domain (for its core domain,
   * blocking while owned) when its last attached device goes. Returns the
   * HWPT it was attached to (still counting this device), or null.
   * Linux: iommufd_hw_pagetable_detach().
   */
  private hwptDetach(idev: DeviceObj): HwptObj | null {
    const ig = idev.igroup;
    const a = ig.attach;
    if (!a || !a.devices.has(idev)) return null;
    a.devices.delete(idev);
    if (a.devices.size === 0) {
      iommuDetachGroup(this.core, a.hwpt.domain, ig.group);
      ig.attach = null;
    }
    a.hwpt.ioas.iopt.removeReserved(idev.dev);
    return a.hwpt;
  }

  private detach(idev: DeviceObj): void {
    const hwpt = this.hwptDetach(idev);
    if (!hwpt) return;
    hwpt.users--;
    this.hwptPut(hwpt);
  }

  /**
   * Move an attached device's group to `hwpt`'s domain directly (no blocking
   * in between). Returns the old HWPT (its users already dropped), or null.
   * Linux: iommufd_device_do_replace() → iommu_replace_group_handle().
   */
  private doReplace(idev: DeviceObj, hwpt: HwptObj): HwptObj | null {
    const ig = idev.igroup;
    const a = ig.attach;
    if (!a || !a.devices.has(idev)) throw new IommuError('EINVAL', `${idev.dev.name} is not attached`);
    const old = a.hwpt;
    if (hwpt === old) return null;
    const ioasChanged = hwpt.ioas !== old.ioas;
    const removeNew = (): void => {
      for (const d of a.devices) hwpt.ioas.iopt.removeReserved(d.dev);
    };
    if (ioasChanged) {
      try {
        for (const d of a.devices) hwpt.ioas.iopt.enforceDevResvRegions(d.dev, devIommu(d.dev)?.resvRegions ?? []);
      } catch (e) {
        removeNew();
        throw e;
      }
    }
    try {
      const first = ig.group.devices[0]?.dev;
      const di = first ? devIommu(first) : null;
      if (!di || hwpt.domain.owner !== di.ops || hwpt.domain.freed) throw new IommuError('EINVAL', `HWPT ${hwpt.id}'s domain is incompatible with ${idev.dev.name}`);
      groupSetDomainInternal(this.core, ig.group, hwpt.domain);
    } catch (e) {
      if (ioasChanged) removeNew();
      throw e;
    }
    if (ioasChanged) for (const d of a.devices) old.ioas.iopt.removeReserved(d.dev);
    a.hwpt = hwpt;
    hwpt.users += a.devices.size;
    old.users -= a.devices.size;
    return old;
  }

  /**
   * Attach to an automatic HWPT of the IOAS (the first one compatible: one
   * whose attach fails EINVAL is skipped), or allocate one.
   * Linux: iommufd_device_auto_get_domain().
   */
  private autoGetDomain(idev: DeviceObj, ioas: IoasObj, replace: boolean): number {
    for (const hwpt of [...ioas.hwpts]) {
      if (!hwpt.autoDomain) continue;
      try {
        if (replace) {
          const old = this.doReplace(idev, hwpt);
          if (old) this.hwptPut(old);
        } else this.hwptAttach(hwpt, idev);
        return hwpt.id;
      } catch (e) {
        if (isIommuError(e, 'EINVAL')) continue;
        throw e;
      }
    }
    const hwpt = this.hwptPagingAlloc(idev, ioas, !replace);
    if (replace) {
      let old: HwptObj | null;
      try {
        old = this.doReplace(idev, hwpt);
      } catch (e) {
        this.destroyHwpt(hwpt);
        throw e;
      }
      hwpt.autoDomain = true;
      if (old) this.hwptPut(old);
    } else hwpt.autoDomain = true;
    return hwpt.id;
  }

  /**
   * Attach a device to a HWPT, or to an IOAS (through an automatic HWPT:
   * reused if a compatible one exists, else allocated and filled). The
   * device's reserved regions (except DIRECT_RELAXABLE) become reserved IOVA
   * ranges of the IOAS; the first attached device of a group attaches the
   * whole group (from its blocking domain); later devices of the group share
   * that attachment (and must name the same HWPT).
   * @returns the HWPT id.
   * @throws IommuError EBADF; ENOENT (no such device or `ptId`); EINVAL
   *   (`ptId` is a device; the group is attached to another HWPT; the domain
   *   is incompatible); EBUSY (already attached); EADDRINUSE (a reserved
   *   region is mapped in, or allowed by, the IOAS); errors of HWPT allocation.
   * Linux: iommufd_device_attach() (VFIO_DEVICE_ATTACH_IOMMUFD_PT) → iommufd_device_change_pt().
   */
  deviceAttach(devId: number, ptId: number): number {
    const idev = this.get(devId, 'device');
    const pt = this.objects.get(ptId);
    if (!pt) throw new IommuError('ENOENT', `no object with id ${ptId}`);
    if (pt.type === 'hwpt_paging') {
      this.hwptAttach(pt, idev);
      return pt.id;
    }
    if (pt.type === 'ioas') return this.autoGetDomain(idev, pt, false);
    throw new IommuError('EINVAL', `object ${ptId} is not an IOAS or a HWPT`);
  }

  /**
   * Move an attached device (with its whole group) to another HWPT or IOAS
   * without going through the blocking domain. Replacing with the current
   * HWPT does nothing. On failure the old attachment stays.
   * @returns the HWPT id.
   * @throws IommuError EBADF; ENOENT; EINVAL (not attached; `ptId` is a
   *   device; incompatible domain); EADDRINUSE (the new IOAS maps a reserved
   *   region); errors of HWPT allocation.
   * Linux: iommufd_device_replace() → iommufd_device_do_replace().
   */
  deviceReplace(devId: number, ptId: number): number {
    const idev = this.get(devId, 'device');
    const pt = this.objects.get(ptId);
    if (!pt) throw new IommuError('ENOENT', `no object with id ${ptId}`);
    if (pt.type === 'hwpt_paging') {
      const old = this.doReplace(idev, pt);
      if (old) this.hwptPut(old);
      return pt.id;
    }
    if (pt.type === 'ioas') return this.autoGetDomain(idev, pt, true);
    throw new IommuError('EINVAL', `object ${ptId} is not an IOAS or a HWPT`);
  }

  /**
   * Detach a device (nothing happens if it is not attached). The group goes
   * back to its blocking domain when its last attached device detaches; an
   * automatic HWPT left without devices is destroyed.
   * @throws IommuError EBADF, ENOENT.
   * Linux: iommufd_device_detach() (VFIO_DEVICE_DETACH_IOMMUFD_PT).
   */
  deviceDetach(devId: number): void {
    this.detach(this.get(devId, 'device'));
  }

  // ---- destroy / close -----------------------------------------------------

  /**
   * Destroy an object by id.
   * @throws IommuError EBADF; ENOENT (no such object); EBUSY (a device — its
   *   binding driver holds it, use {@link unbindDevice}; an IOAS with HWPTs; a
   *   HWPT with attached devices).
   * Linux: iommufd_destroy() (IOMMU_DESTROY) → iommufd_object_remove().
   */
  destroy(id: number): void {
    this.live();
    const o = this.objects.get(id);
    if (!o) throw new IommuError('ENOENT', `no object with id ${id}`);
    switch (o.type) {
      case 'device':
        throw new IommuError('EBUSY', `device object ${id} is held by its binding driver`);
      case 'hwpt_paging':
        if (o.users > 0) throw new IommuError('EBUSY', `HWPT ${id} has ${o.users} attached device(s)`);
        this.destroyHwpt(o);
        return;
      case 'ioas':
        if (o.hwpts.length > 0) throw new IommuError('EBUSY', `IOAS ${id} has ${o.hwpts.length} HWPT(s)`);
        o.iopt.unmapAll();
        this.freeObj(o);
        return;
    }
  }

  /**
   * Close the file: unbind every device (detaching it), then destroy the
   * HWPTs, then the IOASes (unpinning everything). Closing twice does nothing.
   * Linux: iommufd_fops_release() (destroys unreferenced objects until none is left).
   */
  close(): void {
    if (this.isClosed) return;
    for (const id of this.objectIds) {
      if (this.objects.get(id)?.type === 'device') this.unbindDevice(id);
    }
    for (const id of this.objectIds) {
      const o = this.objects.get(id);
      if (o?.type === 'hwpt_paging') this.destroyHwpt(o);
    }
    for (const id of this.objectIds) {
      const o = this.objects.get(id);
      if (o?.type === 'ioas') {
        o.iopt.unmapAll();
        this.freeObj(o);
      }
    }
    this.isClosed = true;
  }
}

/** IOMMU_IOAS_MAP flags → IOMMU prot (IOMMU_CACHE always). Linux: conv_iommu_prot(), drivers/iommu/iommufd/ioas.c. */
function convProt(flags: number): number {
  let prot = IOMMU_CACHE;
  if (flags & IOMMU_IOAS_MAP_WRITEABLE) prot |= IOMMU_WRITE;
  if (flags & IOMMU_IOAS_MAP_READABLE) prot |= IOMMU_READ;
  return prot;
}
