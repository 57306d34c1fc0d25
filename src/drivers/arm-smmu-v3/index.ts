/**
 * Arm SMMUv3: stage-1 translation through Arm LPAE page tables, with the
 * software-managed MSI window, one unit per SMMU, each matched by its
 * firmware node. A device is a master of the SMMU its firmware spec names
 * (IORT: {@link ./iort-config.js}; without IORT: an identity `iommu-map`);
 * its stream IDs are the spec's IDs.
 *
 * Linux: drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c — arm_smmu_ops,
 * arm_smmu_probe_device(), arm_smmu_insert_master(), arm_smmu_remove_master(),
 * arm_smmu_release_device(), arm_smmu_sid_in_range(), arm_smmu_of_xlate(),
 * arm_smmu_device_group() (pci_device_group() for PCI, generic_device_group()
 * otherwise), arm_smmu_domain_alloc_paging(), arm_smmu_get_resv_regions()
 * (MSI_IOVA_BASE 0x8000000, MSI_IOVA_LENGTH 0x100000), arm_smmu_capable().
 *
 * Divergences: the stream table
 * is a map (no linear/2-level STE allocation, so no ENOMEM).
 */
import { IommuError, type ErrnoName } from '../../base/errno.js';
import type { Device, FwNode } from '../../device/device.js';
import { allocIoPgtable } from '../../io-pgtable/index.js';
import { IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import type { IommuCore } from '../../iommu/core.js';
import type { IommuDomain } from '../../iommu/domain.js';
import { devIommuFwspec, iommuFwspecAddIds, iommuFwspecInit } from '../../iommu/fwspec.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { genericDeviceGroup, pciDeviceGroup } from '../../iommu/pci-device-group.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import { pciForEachDmaAlias } from '../../pci/dma-alias.js';
import { toPciDev } from '../../pci/pci-dev.js';
import { pgtableDomain, pgtableDomainOps, staticDomain } from '../common/pgtable-domain.js';

/** The software MSI window. Linux: MSI_IOVA_BASE. */
export const MSI_IOVA_BASE = 0x8000000;
/** Linux: MSI_IOVA_LENGTH. */
export const MSI_IOVA_LENGTH = 0x100000;

/**
 * The errno of a stream ID beyond the SMMU's SIDSIZE: ERANGE
 * (arm_smmu_init_sid_strtab() when !arm_smmu_sid_in_range()).
 */
export const SID_OUT_OF_RANGE_ERRNO: ErrnoName = 'ERANGE';

/** Default stream ID width (bits): SMMU_IDR1.SIDSIZE of QEMU's virt SMMUv3 (16, one ID per requester ID). */
export const ARM_SMMU_DEFAULT_SID_BITS = 16;

/** Options of the SMMUv3 driver model. */
export interface ArmSmmuV3Options {
  /** Unit name (default `smmu3.0x0000000009050000`, as Linux names it after its MMIO base). */
  readonly name?: string;
  /**
   * The SMMU's firmware node, which its masters' firmware specs name
   * (default: a new node named after the unit). Linux: iommu_device.fwnode
   * (the IORT node's fwnode, or the DT node).
   */
  readonly fwnode?: FwNode;
  /**
   * Stream ID width in bits, 0–32 (default {@link ARM_SMMU_DEFAULT_SID_BITS}):
   * stream IDs must be < 2^sidBits. Linux: smmu->sid_bits (SMMU_IDR1.SIDSIZE).
   * @throws IommuError EINVAL from {@link createArmSmmuV3} if not an integer in 0–32.
   */
  readonly sidBits?: number;
  /**
   * Install the equivalent of a device-tree `iommu-map = <0 &smmu 0 0x10000>`
   * on every PCI host bridge: a firmware configurer that gives each PCI device
   * without a spec one naming this SMMU, with one stream ID per DMA alias equal
   * to the alias's requester ID (segment ignored). Default: true when no
   * `fwnode` is given (a machine with no IORT or DT description: the legacy
   * `createArmSmmuV3(core)`), false otherwise (the caller's firmware gives specs).
   * Linux: of_iommu_configure() → of_pci_iommu_init() → of_map_id() → of_iommu_xlate() → arm_smmu_of_xlate().
   */
  readonly pciIdentityMap?: boolean;
  /** Register the unit on `core` now (default true). Linux: iommu_device_register() at the end of arm_smmu_device_probe(). */
  readonly register?: boolean;
}

/** The driver instance of one SMMU: its ops, unit, firmware node and stream table. */
export interface ArmSmmuV3 {
  /** Linux: arm_smmu_ops (one object per SMMU here). */
  readonly ops: IommuOps;
  /** Linux: arm_smmu_device.iommu. */
  readonly unit: IommuUnit;
  /** The node its masters' firmware specs name. Linux: iommu_device.fwnode. */
  readonly fwnode: FwNode;
  /** Stream ID width in bits. Linux: arm_smmu_device.sid_bits. */
  readonly sidBits: number;
  /** The master owning stream ID `sid`, or null. Linux: arm_smmu_find_master() (the smmu->streams rb-tree). */
  streamOwner(sid: number): Device | null;
  /** The distinct stream IDs of a probed master (in fwspec order), empty if `dev` is not its master. Linux: master->streams. */
  streamIds(dev: Device): readonly number[];
  /** Stream IDs in use, ascending. */
  streams(): number[];
}

/**
 * Whether `sid` fits an SMMU with `sidBits`-bit stream IDs.
 * Linux: arm_smmu_sid_in_range() (the linear/2-level stream table limit is sid < 1 << sid_bits).
 */
export function armSmmuSidInRange(sidBits: number, sid: number): boolean {
  return Number.isInteger(sid) && sid >= 0 && sid < 2 ** sidBits;
}

/**
 * Create an SMMUv3 driver instance and (by default) register it on `core`.
 * Registration probes the watched buses: devices whose spec names this
 * SMMU's node become its masters.
 * @throws IommuError EINVAL for a bad `sidBits`; EEXIST (a unit of that name
 *   is registered) or a master's probe error from the registration
 *   ({@link SID_OUT_OF_RANGE_ERRNO} for a stream ID beyond `sidBits`), the
 *   unit then being unregistered again (its masters released) and its
 *   identity map, if any, disabled.
 * Linux: arm_smmu_device_probe() → iommu_device_register(&smmu->iommu, &arm_smmu_ops, dev).
 */
export function createArmSmmuV3(core: IommuCore, opts: ArmSmmuV3Options = {}): ArmSmmuV3 {
  const sidBits = opts.sidBits ?? ARM_SMMU_DEFAULT_SID_BITS;
  if (!Number.isInteger(sidBits) || sidBits < 0 || sidBits > 32) throw new IommuError('EINVAL', `arm-smmu-v3: sidBits ${sidBits} is not an integer in 0..32`);
  const name = opts.name ?? 'smmu3.0x0000000009050000';
  const fwnode: FwNode = opts.fwnode ?? { name };
  /** Stream ID → master. Linux: arm_smmu_device.streams (rb-tree of arm_smmu_stream). */
  const streamTable = new Map<number, Device>();
  /** Master → the stream IDs it inserted. Linux: arm_smmu_master.streams. */
  const masters = new Map<Device, number[]>();
  const domainOps = pgtableDomainOps();
  const hex = (n: number): string => `0x${n.toString(16)}`;

  /** arm_smmu_insert_master(): all stream IDs or none. */
  const insertMaster = (dev: Device, ids: readonly number[]): number[] => {
    const inserted: number[] = [];
    const rollback = (): void => {
      for (const sid of inserted) streamTable.delete(sid);
    };
    for (const sid of ids) {
      if (!armSmmuSidInRange(sidBits, sid)) {
        rollback();
        throw new IommuError(SID_OUT_OF_RANGE_ERRNO, `${dev.name}: stream ID ${hex(sid)} is out of range of ${unit.name} (${sidBits}-bit stream IDs)`);
      }
      const owner = streamTable.get(sid);
      if (owner === dev) continue; // Bridged PCI devices may end up with duplicated IDs.
      if (owner) {
        rollback();
        const msg = `${dev.name}: Aliasing StreamID ${hex(sid)} (from ${owner.name}) unsupported, expect DMA to be broken`;
        core.log.push(`arm-smmu-v3 ${unit.name}: ${msg}`);
        throw new IommuError('ENODEV', msg);
      }
      streamTable.set(sid, dev);
      inserted.push(sid);
    }
    return inserted;
  };

  const ops: IommuOps = {
    name: 'arm-smmu-v3',
    probeDevice(dev: Device): IommuUnit {
      // arm_smmu_probe_device(): the device's fwspec must name this SMMU.
      const spec = devIommuFwspec(dev);
      if (!spec || spec.iommuFwnode !== fwnode) throw new IommuError('ENODEV', `${dev.name} has no firmware spec for ${unit.name}`);
      if (masters.has(dev)) throw new IommuError('EBUSY', `${dev.name} is already a master of ${unit.name}`);
      masters.set(dev, insertMaster(dev, spec.ids));
      return unit;
    },
    releaseDevice(dev: Device): void {
      // arm_smmu_release_device() → arm_smmu_remove_master().
      const sids = masters.get(dev);
      if (!sids) return;
      for (const sid of sids) if (streamTable.get(sid) === dev) streamTable.delete(sid);
      masters.delete(dev);
    },
    deviceGroup(c: IommuCore, dev: Device) {
      const pdev = toPciDev(dev);
      return pdev ? pciDeviceGroup(c.groups, pdev, { acpiIvrsPresent: false }) : genericDeviceGroup(c.groups);
    },
    domainAllocPaging(): IommuDomain {
      return pgtableDomain(ops, domainOps, allocIoPgtable('arm-lpae-s1', core.mem), 2 ** 48 - 1);
    },
    getResvRegions(): IommuResvRegion[] {
      return [allocResvRegion(MSI_IOVA_BASE, MSI_IOVA_LENGTH, IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO, IommuResvType.SW_MSI)];
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'NOEXEC' || cap === 'DEFERRED_FLUSH';
    },
  };
  Object.assign(ops, { identityDomain: staticDomain(ops, 'identity'), blockedDomain: staticDomain(ops, 'blocked') });
  const unit = new IommuUnit(name, ops, { fwnode });

  // The identity map goes dead if the registration fails (the core cannot drop a configurer).
  let live = true;
  if (opts.pciIdentityMap ?? opts.fwnode === undefined) {
    const config = pciIdentityMapConfig(fwnode);
    core.addFirmwareConfig((c, dev) => {
      if (live) config(c, dev);
    });
  }
  if (opts.register ?? true) {
    try {
      core.iommuDeviceRegister(unit);
    } catch (e) {
      live = false;
      throw e;
    }
  }
  return {
    ops,
    unit,
    fwnode,
    sidBits,
    streamOwner: (sid) => streamTable.get(sid) ?? null,
    streamIds: (dev) => [...(masters.get(dev) ?? [])],
    streams: () => [...streamTable.keys()].sort((a, b) => a - b),
  };
}

/**
 * A firmware configurer (for {@link IommuCore.addFirmwareConfig}) modelling
 * a device-tree identity `iommu-map = <0 &smmu 0 0x10000>`: a PCI device gets
 * a spec naming `fwnode` with one stream ID per DMA alias, equal to the
 * alias's requester ID (bus << 8 | devfn; the PCI segment is not part of it,
 * so two segments' devices collide). Non-PCI devices are left alone.
 * @throws IommuError EPROBE_DEFER (from iommuFwspecInit) while the SMMU is not registered: the device gets no spec.
 * Linux: of_iommu_configure() → pci_for_each_dma_alias(of_pci_iommu_init) → of_map_id() →
 * of_iommu_xlate() → iommu_fwspec_init() + arm_smmu_of_xlate() (iommu_fwspec_add_ids()), drivers/iommu/of_iommu.c.
 */
export function pciIdentityMapConfig(fwnode: FwNode): (core: IommuCore, dev: Device) => void {
  return (core, dev) => {
    const pdev = toPciDev(dev);
    if (!pdev) return;
    const ids: number[] = [];
    pciForEachDmaAlias(pdev, (_p, rid) => {
      ids.push(rid);
      return 0;
    });
    iommuFwspecInit(core, dev, fwnode);
    iommuFwspecAddIds(dev, ids);
  };
}
