/**
 * Reading real machines' sysfs (live, a mirror directory, or a `.tar.gz`
 * snapshot) and writing snapshots.
 *
 * Linux: the sysfs layout of drivers/pci/pci-sysfs.c, drivers/iommu/iommu.c and
 * drivers/iommu/iommu-sysfs.c.
 */
export * from './source.js';
export * from './pci-reader.js';
export * from './snapshot.js';
