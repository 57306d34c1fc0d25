/**
 * iommufd: the /dev/iommu user API model (contexts, IOASes, HWPTs, device
 * binding and attachment) and the user address space it maps from.
 *
 * Linux: drivers/iommu/iommufd/, include/uapi/linux/iommufd.h.
 */
export * from './context.js';
export * from './io-pagetable.js';
export * from './user-memory.js';
