/**
 * ACPI VIOT as the firmware that gives devices their virtio-iommu firmware
 * specs: a PCI function inside a VIOT PCI range gets, for each of its DMA
 * aliases, the endpoint ID the range assigns, in a spec naming the firmware
 * node of the range's IOMMU; an MMIO endpoint (optional, by base address)
 * gets its node's endpoint ID.
 *
 * Linux: drivers/acpi/viot.c — viot_iommu_configure(), viot_pci_dev_iommu_init(),
 * viot_mmio_dev_iommu_init(), viot_dev_iommu_init() (acpi_iommu_fwspec_init()),
 * viot_get_pci_iommu_fwnode() (the IOMMU's fwnode is its PCI function's).
 *
 * Divergences: the IOMMU firmware nodes are given by the caller (by IOMMU node
 * offset) rather than found at parse time; a device outside every range is
 * left alone quietly (Linux: -ENODEV, which acpi_dma_configure_id() ignores).
 * As in Linux, a PCI device whose later alias falls outside every range keeps
 * the IDs of the aliases before it.
 */
import { IommuError } from '../../base/errno.js';
import type { Device, FwNode } from '../../device/device.js';
import { viotMmioEndpoint, viotPciEndpoint, type Viot, type ViotEndpointMatch } from '../../firmware/viot.js';
import type { IommuCore } from '../../iommu/core.js';
import { devIommuFwspec, iommuFwspecAddIds, iommuFwspecInit } from '../../iommu/fwspec.js';
import { pciForEachDmaAlias } from '../../pci/dma-alias.js';
import { formatBdf, toPciDev } from '../../pci/pci-dev.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Options of {@link viotFirmwareConfig}. */
export interface ViotFirmwareConfigOptions {
  /**
   * The base address of a non-PCI device's first MMIO resource, or null if it
   * has none; without this option MMIO endpoint nodes are not used.
   * Linux: platform_get_resource(pdev, IORESOURCE_MEM, 0)->start.
   */
  readonly mmioBase?: (dev: Device) => bigint | null;
}

/** A virtio-pci IOMMU of a VIOT: where its PCI function is. Linux: struct acpi_viot_virtio_iommu_pci. */
export interface ViotIommuPciBdf {
  /** Byte offset of the IOMMU node in the table (the key of {@link viotFirmwareConfig}'s `iommus`). */
  readonly offset: number;
  /** PCI segment (domain). */
  readonly segment: number;
  /** Requester ID: bus << 8 | devfn. */
  readonly bdf: number;
  /** The function's name, `ssss:bb:dd.f` (lowercase hex), as Linux names PCI devices. */
  readonly name: string;
}

/**
 * The virtio-pci IOMMU nodes of `viot`, in table order, with their PCI
 * function's segment, requester ID and name — so a caller can name the IOMMU's
 * firmware node after (or take it from) that PCI device.
 * Linux: viot_get_pci_iommu_fwnode() (pci_get_domain_bus_and_slot(segment, PCI_BUS_NUM(bdf), bdf & 0xff)).
 */
export function viotIommuPciBdf(viot: Viot): ViotIommuPciBdf[] {
  const out: ViotIommuPciBdf[] = [];
  for (const n of viot.iommus) {
    if (n.kind !== 'virtio-iommu-pci') continue;
    out.push({ offset: n.offset, segment: n.segment, bdf: n.bdf, name: formatBdf(n.segment, n.bdf >> 8, n.bdf & 0xff) });
  }
  return out;
}

/**
 * A firmware configurer (for {@link IommuCore.addFirmwareConfig}) that gives
 * devices their virtio-iommu firmware specs from `viot`.
 *
 * For a PCI function, each of its DMA aliases (requester ID `rid`, walked by
 * pciForEachDmaAlias()) is looked up in the PCI ranges with the function's
 * own segment: the first range with segmentStart ≤ segment ≤ segmentEnd and
 * bdfStart ≤ rid ≤ bdfEnd gives endpoint ID
 * `((segment − segmentStart) << 16) + rid − bdfStart + endpointStart`.
 * The walk stops at the first alias no range covers. The spec names the
 * firmware node `iommus` holds for the first matched range's IOMMU node (by
 * its byte offset); every endpoint ID is appended in alias order.
 * A non-PCI device is matched by `opts.mmioBase` against the MMIO endpoint nodes.
 *
 * Left alone (no spec, nothing thrown): devices that already have a spec,
 * devices no node covers, and the IOMMU's own function — a device whose
 * firmware node is the IOMMU's, or the PCI function a virtio-pci IOMMU node
 * names (Linux: "We're not translating ourself", -EINVAL).
 * @throws IommuError ENODEV if the matched IOMMU node has no firmware node in
 *   `iommus`; EPROBE_DEFER if that IOMMU is not registered yet (the core
 *   configures the device again at its registration); EINVAL from
 *   iommuFwspecInit() if the device has a spec of other ops.
 * Linux: viot_iommu_configure(), viot_pci_dev_iommu_init(), viot_mmio_dev_iommu_init(),
 * viot_dev_iommu_init(), drivers/acpi/viot.c.
 */
export function viotFirmwareConfig(
  viot: Viot,
  iommus: ReadonlyMap<number /* IOMMU node offset */, FwNode>,
  opts: ViotFirmwareConfigOptions = {},
): (core: IommuCore, dev: Device) => void {
  /** viot_dev_iommu_init() up to the fwspec: the IOMMU's node, or null for "ourself". */
  const fwnodeFor = (dev: Device, m: ViotEndpointMatch): FwNode | null => {
    const fw = iommus.get(m.iommu.offset);
    if (!fw) throw new IommuError('ENODEV', `${dev.name}: VIOT ${m.iommu.kind} node at ${hex(m.iommu.offset)} has no IOMMU firmware node`);
    if (dev.fwnode === fw) return null;
    const pdev = toPciDev(dev);
    if (pdev && m.iommu.kind === 'virtio-iommu-pci' && m.iommu.segment === pdev.bus.domain && m.iommu.bdf === pdev.requesterId) return null;
    return fw;
  };
  return (core, dev) => {
    if (devIommuFwspec(dev)) return;
    const found: { fw: FwNode; id: number }[] = [];
    const pdev = toPciDev(dev);
    if (pdev) {
      const segment = pdev.bus.domain; // pci_domain_nr(pdev->bus): the function's own segment for every alias
      let self = false;
      pciForEachDmaAlias(pdev, (_p, rid) => {
        const m = viotPciEndpoint(viot, segment, rid);
        if (!m) return 1; // -ENODEV stops the walk
        const fw = fwnodeFor(dev, m);
        if (!fw) {
          self = true;
          return 1;
        }
        found.push({ fw, id: m.endpointId });
        return 0;
      });
      if (self) return;
    } else if (opts.mmioBase) {
      const base = opts.mmioBase(dev);
      const m = base === null ? null : viotMmioEndpoint(viot, base);
      const fw = m ? fwnodeFor(dev, m) : null;
      if (m && fw) found.push({ fw, id: m.endpointId });
    }
    if (found.length === 0) return;
    // acpi_iommu_fwspec_init() per ID: iommu_fwspec_init() is a no-op for the same ops,
    // so every ID lands in the spec of the first one's node.
    iommuFwspecInit(core, dev, found[0]!.fw);
    iommuFwspecAddIds(dev, found.map((f) => f.id));
  };
}
