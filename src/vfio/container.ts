/**
 * The legacy VFIO container (/dev/vfio/vfio): groups join it with
 * VFIO_GROUP_SET_CONTAINER (claiming their DMA ownership), VFIO_SET_IOMMU
 * picks the type1 backend, which then takes the user's DMA mappings.
 *
 * Sizes and addresses are bytes.
 *
 * Linux: drivers/vfio/container.c — vfio_fops_open(), vfio_fops_unl_ioctl(),
 * vfio_container_ioctl_check_extension(), vfio_ioctl_set_iommu(),
 * vfio_container_attach_group(), vfio_group_detach_container(); the type1
 * ioctls vfio_iommu_type1_map_dma()/unmap_dma()/get_info() in
 * drivers/vfio/vfio_iommu_type1.c; include/uapi/linux/vfio.h. Read at
 * torvalds/linux v6.16-era (tree Kingxukai/linux 0291023e).
 */
import { IommuError } from '../base/errno.js';
import type { IommuCore } from '../iommu/core.js';
import { iommuGroupClaimDmaOwner, iommuGroupReleaseDmaOwner } from '../iommu/dma-owner.js';
import { UserMemory } from '../iommufd/user-memory.js';
import { VfioIommuType1, vfioProt, type VfioIovaRange, type VfioType1Options } from './type1.js';
import type { VfioGroup } from './group.js';

/** IOMMU type / extension: type1. Linux: VFIO_TYPE1_IOMMU (1). */
export const VFIO_TYPE1_IOMMU = 1;
/** IOMMU type / extension: type1 v2 (no splitting unmaps). Linux: VFIO_TYPE1v2_IOMMU (3). */
export const VFIO_TYPE1v2_IOMMU = 3;
/** Extension: the domains enforce cache coherency. Linux: VFIO_DMA_CC_IOMMU (4). */
export const VFIO_DMA_CC_IOMMU = 4;
/** Extension: VFIO_DMA_UNMAP_FLAG_ALL. Linux: VFIO_UNMAP_ALL (9). */
export const VFIO_UNMAP_ALL = 9;
/** Extension: VFIO_DMA_MAP_FLAG_VADDR. Linux: VFIO_UPDATE_VADDR (10). */
export const VFIO_UPDATE_VADDR = 10;

/** VFIO_IOMMU_MAP_DMA flag: readable by the device. Linux: VFIO_DMA_MAP_FLAG_READ (1 << 0). */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** VFIO_IOMMU_MAP_DMA flag: writable by the device. Linux: VFIO_DMA_MAP_FLAG_WRITE (1 << 1). */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** VFIO_IOMMU_UNMAP_DMA flag: unmap everything (iova and size 0). Linux: VFIO_DMA_UNMAP_FLAG_ALL (1 << 1). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;

/** VFIO_IOMMU_GET_INFO flag: iova_pgsizes is valid. Linux: VFIO_IOMMU_INFO_PGSIZES (1 << 0). */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** VFIO_IOMMU_GET_INFO flag: capabilities follow. Linux: VFIO_IOMMU_INFO_CAPS (1 << 1). */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

/** Result of {@link VfioContainer.getInfo}. Linux: struct vfio_iommu_type1_info and its capabilities. */
export interface VfioIommuType1Info {
  /** VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS. */
  readonly flags: number;
  /** Supported page sizes as a bitmap (bit n = 2^n bytes; a sum, for sizes past 2^31). Linux: iova_pgsizes. */
  readonly iovaPgsizes: number;
  /** The same page sizes, ascending (bytes). */
  readonly pgsizes: readonly number[];
  /** Valid IOVA ranges, [start, end] inclusive. Linux: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE. */
  readonly iovaRanges: readonly VfioIovaRange[];
  /** Mappings still allowed. Linux: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL. */
  readonly dmaAvail: number;
}

/** Options of a {@link VfioContainer}. */
export interface VfioContainerOptions extends VfioType1Options {
  /** The process's address space (vaddr of VFIO_IOMMU_MAP_DMA); a new, empty one over `core.mem` by default. */
  readonly mm?: UserMemory;
}

/**
 * An open /dev/vfio/vfio.
 * Linux: struct vfio_container, drivers/vfio/container.c.
 */
export class VfioContainer {
  /** The machine's IOMMU core. */
  readonly core: IommuCore;
  /** The address space DMA mappings' vaddrs are resolved in. */
  readonly mm: UserMemory;
  private readonly groupList: VfioGroup[] = [];
  private type1: VfioIommuType1 | null = null;
  private readonly opts: VfioType1Options;
  private isClosed = false;

  /** Open /dev/vfio/vfio. Linux: vfio_fops_open(). */
  constructor(core: IommuCore, opts: VfioContainerOptions = {}) {
    this.core = core;
    this.mm = opts.mm ?? new UserMemory(core.mem);
    this.opts = opts;
  }

  /** The groups set to this container (a snapshot). */
  get groups(): readonly VfioGroup[] {
    return [...this.groupList];
  }

  /** The type1 backend, once VFIO_SET_IOMMU succeeded (null before, and again after the last group left). */
  get iommu(): VfioIommuType1 | null {
    return this.type1;
  }

  private live(): void {
    if (this.isClosed) throw new IommuError('EBADF', 'the container is closed');
  }

  private driver(): VfioIommuType1 {
    this.live();
    if (!this.type1) throw new IommuError('EINVAL', 'no IOMMU driver is set on the container (VFIO_SET_IOMMU)');
    return this.type1;
  }

  /**
   * Whether an extension is supported: 1 for VFIO_TYPE1_IOMMU,
   * VFIO_TYPE1v2_IOMMU and VFIO_UNMAP_ALL; VFIO_UPDATE_VADDR: 1 once an IOMMU
   * is set (no emulated devices are modelled); VFIO_DMA_CC_IOMMU: 0 (the
   * model's domains have no enforce_cache_coherency op); else 0.
   * @throws IommuError EBADF (closed).
   * Linux: VFIO_CHECK_EXTENSION → vfio_container_ioctl_check_extension() → vfio_iommu_type1_check_extension().
   */
  checkExtension(ext: number): number {
    this.live();
    switch (ext) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_TYPE1v2_IOMMU:
      case VFIO_UNMAP_ALL:
        return 1;
      case VFIO_UPDATE_VADDR:
        return this.type1 ? 1 : 0;
      default:
        return 0;
    }
  }

  /**
   * Set the IOMMU backend: type1 (v1 or v2) attaches every group of the
   * container (each to an unmanaged paging domain of its IOMMU driver, groups
   * of one driver sharing a domain). All or nothing.
   * @throws IommuError EBADF; EINVAL (no group yet, or an IOMMU is already
   *   set); ENODEV (`type` is not a type1 extension); the attach errors of
   *   {@link VfioIommuType1.attachGroup} (EPERM without isolated MSIs, …).
   * Linux: vfio_ioctl_set_iommu() (VFIO_SET_IOMMU).
   */
  setIommu(type: number): void {
    this.live();
    if (this.groupList.length === 0 || this.type1) throw new IommuError('EINVAL', this.type1 ? 'an IOMMU driver is already set' : 'the container has no group');
    if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) throw new IommuError('ENODEV', `no IOMMU driver supports type ${type}`);
    const t = new VfioIommuType1(this.core, this.mm, type === VFIO_TYPE1v2_IOMMU, this.opts);
    const done: VfioGroup[] = [];
    try {
      for (const g of this.groupList) {
        t.attachGroup(g.iommuGroup);
        done.push(g);
      }
    } catch (e) {
      for (const g of done.reverse()) t.detachGroup(g.iommuGroup);
      throw e;
    }
    this.type1 = t;
  }

  /**
   * Map user memory [vaddr, vaddr + size) at `iova` for the devices of every
   * group (pinning the pages).
   * @param flags VFIO_DMA_MAP_FLAG_READ and/or _WRITE (at least one).
   * @throws IommuError EBADF; EINVAL (no IOMMU set; other flags, including
   *   VFIO_DMA_MAP_FLAG_VADDR, which the model does not support; no
   *   READ/WRITE; size 0, alignment, wrap, outside the valid IOVA ranges);
   *   EEXIST (overlaps a mapping); ENOSPC; EFAULT (user pages); a domain's
   *   map error.
   * Linux: vfio_iommu_type1_map_dma() (VFIO_IOMMU_MAP_DMA) → vfio_dma_do_map().
   */
  mapDma(vaddr: number, iova: number, size: number, flags: number): void {
    const t = this.driver();
    if (flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) throw new IommuError('EINVAL', `unsupported VFIO_IOMMU_MAP_DMA flags 0x${flags.toString(16)}`);
    const prot = vfioProt((flags & VFIO_DMA_MAP_FLAG_READ) !== 0, (flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0);
    if (!prot) throw new IommuError('EINVAL', 'VFIO_IOMMU_MAP_DMA needs READ or WRITE');
    t.map(vaddr, iova, size, prot);
  }

  /**
   * Unmap the mappings in [iova, iova + size), or all of them with
   * VFIO_DMA_UNMAP_FLAG_ALL (iova and size 0).
   * @returns bytes unmapped (0 when nothing was mapped there).
   * @throws IommuError EBADF; EINVAL (no IOMMU set; unknown flags; alignment;
   *   size 0; v2: the range would split a mapping).
   * Linux: vfio_iommu_type1_unmap_dma() (VFIO_IOMMU_UNMAP_DMA) → vfio_dma_do_unmap().
   */
  unmapDma(iova: number, size: number, flags = 0): number {
    const t = this.driver();
    if (flags & ~VFIO_DMA_UNMAP_FLAG_ALL) throw new IommuError('EINVAL', `unsupported VFIO_IOMMU_UNMAP_DMA flags 0x${flags.toString(16)}`);
    return t.unmap(iova, size, (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0);
  }

  /**
   * The type1 backend's page sizes, valid IOVA ranges and remaining mappings.
   * @throws IommuError EBADF; EINVAL (no IOMMU set).
   * Linux: vfio_iommu_type1_get_info() (VFIO_IOMMU_GET_INFO).
   */
  getInfo(): VfioIommuType1Info {
    const t = this.driver();
    const pgsizes = t.pgsizes;
    return {
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iovaPgsizes: pgsizes.reduce((m, s) => m + s, 0),
      pgsizes,
      iovaRanges: t.iovaRanges,
      dmaAvail: t.dmaAvail,
    };
  }

  /**
   * Add a group (VFIO_GROUP_SET_CONTAINER's container half): claim the
   * group's DMA ownership (the group goes to its blocking domain), and attach
   * it to the backend if one is set (releasing the claim on failure).
   * @throws IommuError EBADF; EPERM (a kernel-DMA driver is bound in the
   *   group: not viable; or it is already claimed), EBUSY (the group is on a
   *   non-default domain), EINVAL (a device requires a 1:1 mapping); the
   *   backend's attach errors.
   * Linux: vfio_container_attach_group().
   */
  attachGroup(group: VfioGroup): void {
    this.live();
    iommuGroupClaimDmaOwner(this.core, group.iommuGroup, group);
    if (this.type1) {
      try {
        this.type1.attachGroup(group.iommuGroup);
      } catch (e) {
        iommuGroupReleaseDmaOwner(this.core, group.iommuGroup);
        throw e;
      }
    }
    this.groupList.push(group);
  }

  /**
   * Remove a group: detach it from the backend (the last group releases the
   * backend and every mapping), release its DMA ownership (the group returns
   * to its default domain).
   * Linux: vfio_group_detach_container().
   */
  detachGroup(group: VfioGroup): void {
    const i = this.groupList.indexOf(group);
    if (i < 0) return;
    this.type1?.detachGroup(group.iommuGroup);
    iommuGroupReleaseDmaOwner(this.core, group.iommuGroup);
    this.groupList.splice(i, 1);
    if (this.type1 && this.groupList.length === 0) {
      this.type1.release();
      this.type1 = null;
    }
  }

  /**
   * Close the file. The groups set to it keep it alive (as their references
   * do in Linux) until they are unset; its ioctls fail EBADF from now on.
   * Linux: vfio_fops_release().
   */
  close(): void {
    this.isClosed = true;
  }
}
