/**
 * The legacy VFIO group file (/dev/vfio/N): status (viability, v5.19+
 * rule), joining a container (which claims the group's DMA ownership), and
 * device file descriptors for devices bound to a VFIO driver.
 *
 * Viability (v5.19+): a group is viable iff no kernel-DMA driver holds it —
 * every device is unbound or bound to a `driver_managed_dma` driver
 * (vfio-pci, pci-stub, pcieport); bridges are not special. With a container
 * set, the group is reported viable (and its ownership is claimed).
 *
 * Linux: drivers/vfio/group.c — vfio_group_fops_open(),
 * vfio_group_ioctl_get_status(), vfio_group_ioctl_set_container(),
 * vfio_group_ioctl_unset_container(), vfio_group_ioctl_get_device_fd(),
 * vfio_device_get_from_name(), vfio_df_group_open(), vfio_group_fops_release();
 * vfio_group_use_container() (drivers/vfio/container.c). Read at
 * torvalds/linux v6.16-era (tree Kingxukai/linux 9b44fff6).
 */
import { IommuError } from '../base/errno.js';
import type { Device } from '../device/device.js';
import type { IommuCore } from '../iommu/core.js';
import { iommuGroupDmaOwnerClaimed } from '../iommu/dma-owner.js';
import type { IommuGroup } from '../iommu/group.js';
import type { VfioContainer } from './container.js';

/** VFIO_GROUP_GET_STATUS flag: the group is viable. Linux: VFIO_GROUP_FLAGS_VIABLE (1 << 0). */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
/** VFIO_GROUP_GET_STATUS flag: a container (or iommufd) is set. Linux: VFIO_GROUP_FLAGS_CONTAINER_SET (1 << 1). */
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

/** Result of {@link VfioGroup.getStatus}. Linux: struct vfio_group_status. */
export interface VfioGroupStatus {
  /** VFIO_GROUP_FLAGS_* bits. */
  readonly flags: number;
  /** flags & VIABLE. */
  readonly viable: boolean;
  /** flags & CONTAINER_SET. */
  readonly containerSet: boolean;
}

/** True if `dev` is bound to a VFIO bus driver (a registered vfio_device: vfio-pci and its variants, vfio-platform, …). */
export function isVfioDevice(dev: Device): boolean {
  const n = dev.driver?.name;
  return n !== undefined && n.startsWith('vfio') && dev.driver!.driverManagedDma;
}

const openGroups = new WeakSet<IommuGroup>();

/**
 * A device file descriptor from VFIO_GROUP_GET_DEVICE_FD. While open it keeps
 * the group's container in use (VFIO_GROUP_UNSET_CONTAINER fails EBUSY).
 * Linux: struct vfio_device_file (group path).
 */
export class VfioDeviceFd {
  /** The device. */
  readonly dev: Device;
  /** The group it was opened from. */
  readonly group: VfioGroup;
  private isOpen = true;

  /** @internal Use {@link VfioGroup.getDeviceFd}. */
  constructor(group: VfioGroup, dev: Device) {
    this.group = group;
    this.dev = dev;
  }

  /** True until {@link close}. */
  get open(): boolean {
    return this.isOpen;
  }

  /** Close the device file. Linux: vfio_device_fops_release() → vfio_df_group_close(), vfio_group_unuse_container(). */
  close(): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.group.releaseDeviceFd(this);
  }
}

/**
 * An open /dev/vfio/<group id>.
 * Linux: struct vfio_group (with its one opened file), drivers/vfio/group.c.
 */
export class VfioGroup {
  /** The machine's IOMMU core. */
  readonly core: IommuCore;
  /** The IOMMU group. */
  readonly iommuGroup: IommuGroup;
  private containerRef: VfioContainer | null = null;
  private readonly deviceFds = new Set<VfioDeviceFd>();
  private isClosed = false;

  private constructor(core: IommuCore, group: IommuGroup) {
    this.core = core;
    this.iommuGroup = group;
  }

  /**
   * Open the group's character device. It exists while a device of the group
   * is bound to a VFIO driver; only one open file at a time.
   * @throws IommuError ENODEV (no device of the group is bound to a VFIO
   *   driver, or the group was released), EBUSY (already open).
   * Linux: vfio_group_fops_open().
   */
  static open(core: IommuCore, group: IommuGroup): VfioGroup {
    if (group.released || !group.devices.some(({ dev }) => isVfioDevice(dev))) {
      throw new IommuError('ENODEV', `/dev/vfio/${group.id}: no device of the group is bound to a VFIO driver`);
    }
    if (openGroups.has(group)) throw new IommuError('EBUSY', `/dev/vfio/${group.id} is already open`);
    openGroups.add(group);
    return new VfioGroup(core, group);
  }

  /** The container set, or null. */
  get container(): VfioContainer | null {
    return this.containerRef;
  }

  private live(): void {
    if (this.isClosed) throw new IommuError('EBADF', `/dev/vfio/${this.iommuGroup.id} is closed`);
  }

  /**
   * The group's status: CONTAINER_SET | VIABLE with a container, else VIABLE
   * iff no DMA owner count is held (v5.19+ rule).
   * @throws IommuError EBADF (closed), ENODEV (the IOMMU group is gone).
   * Linux: vfio_group_ioctl_get_status() (VFIO_GROUP_GET_STATUS).
   */
  getStatus(): VfioGroupStatus {
    this.live();
    if (this.iommuGroup.released) throw new IommuError('ENODEV', 'the IOMMU group is gone');
    let flags = 0;
    if (this.containerRef) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    else if (!iommuGroupDmaOwnerClaimed(this.iommuGroup)) flags = VFIO_GROUP_FLAGS_VIABLE;
    return { flags, viable: (flags & VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
  }

  /**
   * Join a container: claims the group's DMA ownership (blocking domain) and,
   * if the container has an IOMMU set, attaches the group to it.
   * @throws IommuError EBADF (group or container closed), EINVAL (a container
   *   is already set; a device requires a 1:1 mapping, vector 43), ENODEV (the
   *   IOMMU group is gone), EPERM (a kernel-DMA driver is bound in the group,
   *   vectors 39/45; or the group is claimed by another owner), EBUSY (the
   *   group is on a non-default domain, vector 42); the backend's attach errors.
   * Linux: vfio_group_ioctl_set_container() (VFIO_GROUP_SET_CONTAINER) → vfio_container_attach_group().
   */
  setContainer(container: VfioContainer): void {
    this.live();
    if (this.containerRef) throw new IommuError('EINVAL', `group ${this.iommuGroup.id} already has a container`);
    if (this.iommuGroup.released) throw new IommuError('ENODEV', 'the IOMMU group is gone');
    container.attachGroup(this);
    this.containerRef = container;
  }

  /**
   * Leave the container: detach from its IOMMU and release DMA ownership
   * (the group returns to its default domain).
   * @throws IommuError EBADF, EINVAL (no container), EBUSY (device files are open).
   * Linux: vfio_group_ioctl_unset_container() (VFIO_GROUP_UNSET_CONTAINER).
   */
  unsetContainer(): void {
    this.live();
    if (!this.containerRef) throw new IommuError('EINVAL', `group ${this.iommuGroup.id} has no container`);
    if (this.deviceFds.size > 0) throw new IommuError('EBUSY', `group ${this.iommuGroup.id} has ${this.deviceFds.size} open device file(s)`);
    this.containerRef.detachGroup(this);
    this.containerRef = null;
  }

  /**
   * Open a device of the group by name (`0000:01:00.0`).
   * @throws IommuError EBADF; ENODEV (no device of that name in the group is
   *   bound to a VFIO driver); EINVAL (no container set, or the container
   *   has no IOMMU set).
   * Linux: vfio_group_ioctl_get_device_fd() (VFIO_GROUP_GET_DEVICE_FD) →
   * vfio_device_get_from_name(), vfio_df_group_open(), vfio_group_use_container().
   */
  getDeviceFd(name: string): VfioDeviceFd {
    this.live();
    const dev = this.iommuGroup.devices.map((d) => d.dev).find((d) => d.name === name && isVfioDevice(d));
    if (!dev) throw new IommuError('ENODEV', `no VFIO device ${name} in group ${this.iommuGroup.id}`);
    if (!this.containerRef) throw new IommuError('EINVAL', `group ${this.iommuGroup.id} has no container`);
    if (!this.containerRef.iommu) throw new IommuError('EINVAL', 'the container has no IOMMU set (VFIO_SET_IOMMU)');
    const fd = new VfioDeviceFd(this, dev);
    this.deviceFds.add(fd);
    return fd;
  }

  /** @internal Called by {@link VfioDeviceFd.close}. */
  releaseDeviceFd(fd: VfioDeviceFd): void {
    this.deviceFds.delete(fd);
  }

  /**
   * Close the group file: its device files are closed, and it leaves its
   * container. Closing twice does nothing.
   * Linux: vfio_group_fops_release() (after the device files' releases).
   */
  close(): void {
    if (this.isClosed) return;
    for (const fd of [...this.deviceFds]) fd.close();
    if (this.containerRef) {
      this.containerRef.detachGroup(this);
      this.containerRef = null;
    }
    this.isClosed = true;
    openGroups.delete(this.iommuGroup);
  }
}
