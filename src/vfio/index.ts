/**
 * The legacy VFIO group/container flow: /dev/vfio/N groups, the
 * /dev/vfio/vfio container and its type1 IOMMU backend.
 *
 * Linux: drivers/vfio/group.c, drivers/vfio/container.c,
 * drivers/vfio/vfio_iommu_type1.c, include/uapi/linux/vfio.h.
 */
export * from './container.js';
export * from './group.js';
export * from './type1.js';
