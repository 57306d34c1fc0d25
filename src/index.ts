/**
 * iommukit: the Linux IOMMU core as a library.
 *
 * - Driver model: {@link BusType}, {@link Device}, driver binding, bus notifiers.
 * - IOMMU groups: {@link IommuGroups} / {@link IommuGroup}, reserved regions, the sysfs view.
 * - PCI: config space, {@link PciDev} / {@link PciBus}, topology in scan order, ACS,
 *   DMA aliases, quirk tables, `lspci -vvnn` text, pci.ids names.
 * - Grouping: {@link pciDeviceGroupDecision} (Linux pci_device_group()).
 * - Domains and the data path: {@link IommuCore}, drivers ({@link createIntelIommu}, {@link createAmdIommu},
 *   {@link createArmSmmuV3}), {@link iommuMap}/{@link iommuUnmap}, {@link iommuTranslate}, {@link dmaMapPage},
 *   page-table formats in {@link PhysMem}, the {@link Iotlb} and the {@link IovaDomain}.
 * - Drivers side by side: registration and probe by firmware node ({@link IommuCore.iommuDeviceRegister},
 *   {@link iommuFwspecInit}), the iommufd selftest mock ({@link createMockIommu}), virtio-iommu
 *   ({@link createVirtioIommu}), SMMUv3 from IORT ({@link createArmSmmuV3FromIort}); ACPI DMAR/IVRS/IORT/VIOT parsers.
 * - Hotplug: {@link pciHotAdd}/{@link pciHotRemove}, SR-IOV {@link pciEnableSriov}/{@link pciDisableSriov}
 *   through the bus notifier.
 * - Real machines: {@link openSysfs}, {@link readPciSysfs}, {@link writeSnapshot};
 *   {@link machineFromSysfs} / {@link machineFromLspci}, {@link predictGroups}, {@link compareGroups}.
 */
export * from './base/errno.js';
export * from './base/notifier.js';
export { Ida, IDA_MAX } from './base/ida.js';
export * from './device/bus.js';
export * from './device/device.js';
export * from './device/driver.js';
export * from './iommu/group.js';
export * from './iommu/group-notify.js';
export * from './iommu/domain-type.js';
export * from './iommu/resv-region.js';
export * from './iommu/sysfs-view.js';
export * from './iommu/pci-device-group.js';
export * from './iommu/domain.js';
export * from './iommu/iommu-ops.js';
export * from './iommu/iommu-unit.js';
export * from './iommu/core.js';
export * from './iommu/default-domain.js';
export * from './iommu/attach.js';
export * from './iommu/translate.js';
export * from './iommu/dma-iommu.js';
export * from './iommu/iotlb.js';
export * from './iommu/iova.js';
export * from './mem/phys-mem.js';
export * from './io-pgtable/index.js';
export { createIntelIommu, type IntelIommu, type IntelIommuOptions, type Rmrr } from './drivers/intel-vt-d/index.js';
export { createAmdIommu, type AmdIommu, type AmdIommuOptions } from './drivers/amd-vi/index.js';
export { createArmSmmuV3, type ArmSmmuV3, type ArmSmmuV3Options } from './drivers/arm-smmu-v3/index.js';
export { createArmSmmuV3FromIort, iortFirmwareConfig, type ArmSmmuV3Iort, type ArmSmmuV3IortOptions } from './drivers/arm-smmu-v3/iort-config.js';
export * from './drivers/mock/index.js';
export {
  createVirtioIommu,
  VirtioIommuDevice,
  virtioIommuErrno,
  VIRTIO_IOMMU_T,
  VIRTIO_IOMMU_S,
  type VirtioIommu,
  type VirtioIommuOptions,
  type VirtioIommuDeviceOptions,
  type VirtioIommuRequest,
  type VirtioIommuReply,
} from './drivers/virtio-iommu/index.js';
export * from './iommu/fwspec.js';
export * from './firmware/acpi.js';
export * from './firmware/dmar.js';
export * from './firmware/ivrs.js';
export * from './firmware/iort.js';
export * from './firmware/viot.js';
export { viotFirmwareConfig, viotIommuPciBdf, type ViotFirmwareConfigOptions, type ViotIommuPciBdf } from './drivers/virtio-iommu/viot-config.js';
export { pciHotAdd, pciHotRemove } from './pci/hotplug.js';
export { pciEnableSriov, pciDisableSriov, pciNumVf, pciSriovGetTotalVfs } from './pci/sriov.js';
export * from './machine/boot.js';
export * from './iommu/dma-owner.js';
export * from './iommufd/index.js';
export * from './vfio/index.js';
export * from './machine/vfio-viability.js';
export { runScenario, scenarioTopology, type SimTrace, type TraceEvent, type FaultJson } from './sim/run.js';
export { Scenario } from './sim/scenario-schema.js';
export * from './pci/regs.js';
export * from './pci/config-space.js';
export * from './pci/config-builder.js';
export * from './pci/pci-dev.js';
export * from './pci/topology.js';
export * from './pci/synthetic.js';
export * from './pci/acs.js';
export * from './pci/dma-alias.js';
export { parseLspci, type LspciFunction, type LspciParseResult } from './pci/lspci.js';
export * from './pci/pci-ids.js';
export * from './sysfs/index.js';
export * from './machine/machine.js';
export * from './machine/predict.js';
export * from './machine/compare.js';
