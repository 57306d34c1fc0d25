/**
 * A device driver, as far as the IOMMU core cares about one.
 *
 * Linux: struct device_driver, include/linux/device/driver.h.
 */

/** A device driver. */
export interface DeviceDriver {
  /** Driver name as in `/sys/bus/<bus>/drivers/<name>`. */
  readonly name: string;
  /**
   * The driver manages DMA itself (VFIO, pci-stub, pcieport…) and does not use
   * the kernel DMA API on the default domain. Linux: device_driver.driver_managed_dma.
   */
  readonly driverManagedDma: boolean;
}

/**
 * A driver known only by name (read from a real machine's `driver` link).
 * `driver_managed_dma` is taken from the few drivers Linux sets it on.
 * Linux: pcieport (drivers/pci/pcie/portdrv.c), pci-stub (drivers/pci/pci-stub.c),
 * vfio-pci (drivers/vfio/pci/vfio_pci.c) set driver_managed_dma = true.
 */
export function driverByName(name: string): DeviceDriver {
  return { name, driverManagedDma: DRIVER_MANAGED_DMA.has(name) };
}

const DRIVER_MANAGED_DMA = new Set(['pcieport', 'pci-stub', 'vfio-pci', 'pci_stub', 'vfio_pci']);
