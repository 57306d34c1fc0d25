/**
 * Device-specific PCI quirks that affect IOMMU grouping: the ACS "enabled"
 * table, the ACS enable quirks, and the DMA-alias / bridge fixups.
 *
 * Linux: pci_dev_acs_enabled[], pci_dev_acs_ops[] and the DMA-alias
 * DECLARE_PCI_FIXUP_* entries, drivers/pci/quirks.c.
 */
export * from './acs.js';
export * from './acs-enable.js';
export * from './dma-alias.js';
