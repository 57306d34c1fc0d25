/**
 * ACPI IORT as the firmware that gives devices their SMMUv3 firmware specs,
 * and the SMMUv3 instances an IORT describes.
 *
 * A PCI device under the root complex node of its segment gets, for each of
 * its DMA aliases, the requester ID mapped through the IORT ID mappings to an
 * SMMU node and stream ID; a named component (a platform device whose ACPI
 * companion's path is the node's object name) gets the stream IDs of its
 * single ID mappings. Each SMMUv3 node becomes one unit, matched by its own
 * firmware node.
 *
 * Linux: drivers/acpi/arm64/iort.c — iort_iommu_configure_id(),
 * iort_scan_node()/iort_match_node_callback(), iort_pci_iommu_init(),
 * iort_node_map_id(), iort_nc_iommu_map(), iort_node_map_platform_id(),
 * iort_node_get_id(), iort_iommu_xlate(), arm_smmu_iort_xlate(),
 * iort_init_platform_devices() (one fwnode per SMMU node, iort_set_fwnode()).
 *
 * Divergences: a PCI device whose aliases do not all map to an IOMMU gets no
 * spec at all (Linux keeps the IDs of the aliases before the failing one);
 * iortMapId() does not apply Linux's id_count off-by-one workaround (-EAGAIN
 * in iort_id_map()) nor single mappings on root complexes.
 */
import { IommuError } from '../../base/errno.js';
import type { Device, FwNode } from '../../device/device.js';
import { iortMapId, type Iort, type IortNode } from '../../firmware/iort.js';
import type { IommuCore } from '../../iommu/core.js';
import { devIommuFwspec, IOMMU_FWSPEC_PCI_RC_ATS, iommuFwspecAddIds, iommuFwspecFree, iommuFwspecInit } from '../../iommu/fwspec.js';
import { pciForEachDmaAlias } from '../../pci/dma-alias.js';
import { toPciDev } from '../../pci/pci-dev.js';
import { createArmSmmuV3, type ArmSmmuV3, type ArmSmmuV3Options } from './index.js';

/** IORT node types an ID is mapped to for the IOMMU: SMMUv1/v2 and SMMUv3. Linux: IORT_IOMMU_TYPE. */
const IORT_IOMMU_KINDS = ['smmu', 'smmu-v3'] as const;
/** Root complex ATS attribute bit 0: the root complex supports ATS. Linux: ACPI_IORT_ATS_SUPPORTED. */
const ACPI_IORT_ATS_SUPPORTED = 1;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** An (IOMMU node, stream ID) pair an ID maps to. */
interface IortXlate {
  readonly node: IortNode;
  readonly streamId: number;
}

/**
 * The IORT node describing `dev`: for a PCI device the first root-complex node
 * whose PCI segment is the device's domain; otherwise the first named
 * component whose object name is the path of the device's ACPI companion
 * (the firmware node of the device or, failing that, of its nearest ancestor
 * that has one); or null.
 * Linux: iort_scan_node() with iort_match_node_callback(), drivers/acpi/arm64/iort.c.
 */
export function iortFindDevNode(iort: Iort, dev: Device): IortNode | null {
  const pdev = toPciDev(dev);
  if (pdev) return iort.nodes.find((n) => n.kind === 'root-complex' && n.segment === pdev.bus.domain) ?? null;
  let companion: Device | null = dev;
  while (companion && !companion.fwnode) companion = companion.parent;
  if (!companion?.fwnode) return null;
  const path = companion.fwnode.name;
  return iort.nodes.find((n) => n.kind === 'named-component' && n.deviceName === path) ?? null;
}

/**
 * The IOMMU node and stream ID of a named component's mapping `index`:
 * only a single mapping names the component's own ID (its output base); its
 * output node, if not an IOMMU, is mapped on (e.g. through another node).
 * @returns null when `index` is past the mappings, the mapping is not single,
 *   or its ID maps to no IOMMU.
 * Linux: iort_node_map_platform_id() → iort_node_get_id() + iort_node_map_id().
 */
function ncMapPlatformId(iort: Iort, node: IortNode, index: number): IortXlate | null {
  const m = node.mappings[index];
  if (!m || !m.singleMapping) return null;
  const parent = iort.nodes.find((n) => n.offset === m.outputReference);
  if (!parent) return null;
  if ((IORT_IOMMU_KINDS as readonly string[]).includes(parent.kind)) return { node: parent, streamId: m.outputBase };
  const r = iortMapId(iort, parent.offset, m.outputBase, IORT_IOMMU_KINDS);
  return r ? { node: r.node, streamId: r.id } : null;
}

/**
 * The (IOMMU node, stream ID) pairs IORT gives `dev`, in fwspec order, or
 * null when no IORT node describes it.
 * @throws IommuError ENODEV if an ID of the device maps to no IOMMU (e.g. only
 *   to an ITS group), for a PCI device on any of its aliases, for a named
 *   component on its first mapping; EINVAL/ELOOP from iortMapId() for a broken table.
 * Linux: iort_iommu_configure_id() → pci_for_each_dma_alias(iort_pci_iommu_init) / iort_nc_iommu_map().
 */
function iortDevXlates(iort: Iort, dev: Device): { readonly node: IortNode; readonly xlates: IortXlate[] } | null {
  const node = iortFindDevNode(iort, dev);
  if (!node) return null;
  const xlates: IortXlate[] = [];
  const pdev = toPciDev(dev);
  if (pdev) {
    pciForEachDmaAlias(pdev, (_p, rid) => {
      const r = iortMapId(iort, node.offset, rid, IORT_IOMMU_KINDS);
      // iort_iommu_xlate(dev, NULL, …) → -ENODEV stops the alias walk.
      if (!r) throw new IommuError('ENODEV', `${dev.name}: IORT maps requester ID ${hex(rid)} of root complex ${hex(node.offset)} to no IOMMU`);
      xlates.push({ node: r.node, streamId: r.id });
      return 0;
    });
  } else {
    // iort_nc_iommu_map(): mapping after mapping until one yields no IOMMU.
    for (let i = 0; ; i++) {
      const x = ncMapPlatformId(iort, node, i);
      if (!x) break;
      xlates.push(x);
    }
    if (xlates.length === 0) throw new IommuError('ENODEV', `${dev.name}: IORT named component ${node.deviceName} maps to no IOMMU`);
  }
  return { node, xlates };
}

/**
 * A firmware configurer (for {@link IommuCore.addFirmwareConfig}) that gives
 * devices their firmware specs from `iort`: the spec names the firmware node
 * `smmus` holds for the IOMMU node (by its byte offset in the table) the
 * device's first ID maps to, with every mapped stream ID appended in order
 * (duplicates kept, as a PCIe-to-PCI bridge's alias of its secondary bus
 * 00.0 function); a root complex with ATS support sets IOMMU_FWSPEC_PCI_RC_ATS.
 * Devices no IORT node describes are left alone; a device with an ID that
 * maps to no IOMMU, or to an IOMMU node without a firmware node in `smmus`
 * (e.g. an SMMUv2), gets no spec (ENODEV, logged by the core).
 * All or nothing: a throw leaves the device without a spec.
 * @throws IommuError ENODEV as above; EPROBE_DEFER if the SMMU is not
 *   registered yet (the device is configured again at its registration);
 *   EINVAL/ELOOP for a broken table.
 * Linux: iort_iommu_configure_id(), iort_pci_iommu_init(), iort_iommu_xlate(),
 * arm_smmu_iort_xlate() (iommu_fwspec_init() + iommu_fwspec_add_ids()), drivers/acpi/arm64/iort.c.
 */
export function iortFirmwareConfig(iort: Iort, smmus: ReadonlyMap<number, FwNode>): (core: IommuCore, dev: Device) => void {
  return (core, dev) => {
    if (devIommuFwspec(dev)) return; // iort_fwspec_iommu_ops(): already translated
    const found = iortDevXlates(iort, dev);
    if (!found) return;
    const fwnodes = found.xlates.map((x) => {
      const fw = smmus.get(x.node.offset);
      // iort_iommu_xlate(): iort_get_fwnode() finds no fwnode → -ENODEV.
      if (!fw) throw new IommuError('ENODEV', `${dev.name}: IORT ${x.node.kind} node at ${hex(x.node.offset)} has no IOMMU firmware node`);
      return fw;
    });
    // arm_smmu_iort_xlate() per ID: iommu_fwspec_init() is a no-op once the spec names an SMMUv3
    // (the same arm_smmu_ops), so every ID lands in the spec of the first one's node.
    iommuFwspecInit(core, dev, fwnodes[0]!);
    iommuFwspecAddIds(dev, found.xlates.map((x) => x.streamId));
    if (found.node.kind === 'root-complex' && ((found.node.atsAttribute ?? 0) & ACPI_IORT_ATS_SUPPORTED)) {
      devIommuFwspec(dev)!.flags |= IOMMU_FWSPEC_PCI_RC_ATS;
    }
  };
}

/** Options of {@link createArmSmmuV3FromIort}. */
export interface ArmSmmuV3IortOptions {
  /** Stream ID width of each SMMUv3 node (bits; default {@link ArmSmmuV3Options.sidBits}'s default). */
  readonly sidBits?: number | ((node: IortNode) => number);
}

/** The SMMUv3 instances of an IORT. */
export interface ArmSmmuV3Iort {
  /** The table. */
  readonly iort: Iort;
  /** One instance per SMMUv3 node, by the node's byte offset in the table, in table order. */
  readonly smmus: ReadonlyMap<number, ArmSmmuV3>;
  /** The firmware configurer installed on the core ({@link iortFirmwareConfig} of the units' nodes). */
  readonly firmwareConfig: (core: IommuCore, dev: Device) => void;
}

/** The unit (and firmware node) name of an SMMUv3 node: `smmu3.0x<base, 16 hex digits>`, as Linux names the platform device's iommu. */
export function iortSmmuV3Name(node: IortNode): string {
  return `smmu3.0x${(node.base ?? 0n).toString(16).padStart(16, '0')}`;
}

/**
 * Create one SMMUv3 per SMMUv3 node of `iort`, each with its own firmware
 * node (named {@link iortSmmuV3Name}), install {@link iortFirmwareConfig}
 * on `core`, then register the units in table order (each registration probes
 * the watched buses: a device whose SMMU registers later is deferred to it).
 * On a failure the units registered so far are unregistered (their masters
 * released) and the specs naming their nodes on devices no IOMMU probed are
 * dropped, and the installed configurer is disabled.
 * @throws IommuError EINVAL for a bad `sidBits`; EEXIST if two SMMUv3 nodes
 *   have the same base (or a unit of that name is registered); a master's
 *   probe error (SID_OUT_OF_RANGE_ERRNO of ./index.js, for a stream ID beyond `sidBits`).
 * Linux: iort_init_platform_devices() (iort_set_fwnode(), iort_add_platform_device()) →
 * arm_smmu_device_probe() → iommu_device_register(), per SMMUv3 node.
 */
export function createArmSmmuV3FromIort(core: IommuCore, iort: Iort, opts: ArmSmmuV3IortOptions = {}): ArmSmmuV3Iort {
  const nodes = iort.nodes.filter((n) => n.kind === 'smmu-v3');
  const fwnodes = new Map<number, FwNode>();
  const smmus = new Map<number, ArmSmmuV3>();
  const sidBitsOf = (n: IortNode): number | undefined => (typeof opts.sidBits === 'function' ? opts.sidBits(n) : opts.sidBits);
  for (const n of nodes) {
    const name = iortSmmuV3Name(n);
    const fwnode: FwNode = { name };
    fwnodes.set(n.offset, fwnode);
    const o: ArmSmmuV3Options = { name, fwnode, pciIdentityMap: false, register: false };
    const bits = sidBitsOf(n);
    smmus.set(n.offset, createArmSmmuV3(core, bits === undefined ? o : { ...o, sidBits: bits }));
  }
  const firmwareConfig = iortFirmwareConfig(iort, fwnodes);
  let live = true; // the core cannot drop a configurer: a failed creation disables it
  core.addFirmwareConfig((c, dev) => {
    if (live) firmwareConfig(c, dev);
  });
  const registered: ArmSmmuV3[] = [];
  try {
    for (const s of smmus.values()) {
      core.iommuDeviceRegister(s.unit);
      registered.push(s);
    }
  } catch (e) {
    live = false;
    for (const s of registered.reverse()) core.iommuDeviceUnregister(s.unit);
    const ours = new Set(fwnodes.values());
    for (const bus of core.buses) {
      for (const dev of bus.devices) {
        const spec = devIommuFwspec(dev);
        if (spec && ours.has(spec.iommuFwnode) && !dev.iommu) iommuFwspecFree(dev);
      }
    }
    throw e;
  }
  return { iort, smmus, firmwareConfig };
}
