/**
 * What a parsed DMAR table says about one PCI function, decided on the
 * function itself (so a hot-added function is matched as at boot): which
 * DRHD (VT-d hardware unit) translates it, and which RMRRs (firmware ranges
 * it must keep identity-mapped) apply to it.
 *
 * A device scope names a function by its path from its root bus: the scope's
 * start bus must be that root bus's number and its (device, function) path
 * the chain of bridges down to the function — with Linux's workaround for a
 * one-element path naming the function directly by its own bus. A unit (or
 * RMRR) applies to a function when one of its scopes names the function or a
 * bridge above it. Explicit units are searched in reverse table order, the
 * INCLUDE_PCI_ALL unit of the function's segment last; a virtual function is
 * matched through its physical function.
 *
 * Linux: dmar_alloc_pci_notify_info(), dmar_match_pci_path(),
 * dmar_insert_dev_scope(), dmar_register_drhd_unit(), dmar_parse_one_rmrr(),
 * drivers/iommu/intel/dmar.c; device_lookup_iommu() (device_to_iommu() before
 * v6.8), is_downstream_to_pci_bridge(), intel_iommu_get_resv_regions(),
 * device_rmrr_is_relaxable(), drivers/iommu/intel/iommu.c.
 */
import { IOMMU_READ, IOMMU_WRITE } from '../../io-pgtable/io-pgtable.js';
import type { Dmar, DmarDeviceScope, DmarDrhd, DmarRmrr } from '../../firmware/dmar.js';
import { allocResvRegion, IommuResvType, type IommuResvRegion } from '../../iommu/resv-region.js';
import type { PciDev } from '../../pci/pci-dev.js';

/**
 * True if the PCI device scope `scope` (type endpoint or bridge) names
 * `pdev`: the start bus is the number of `pdev`'s root bus and the path is
 * the (device, function) of each bridge from that root bus down to `pdev`,
 * then `pdev`'s own; or (the firmware-bug fallback) a one-element path on
 * `pdev`'s own bus. Other scope types (IOAPIC, HPET, ACPI namespace) and
 * empty paths name no PCI function.
 * Linux: dmar_match_pci_path() with the path dmar_alloc_pci_notify_info() builds, drivers/iommu/intel/dmar.c.
 */
export function dmarScopeNamesDevice(scope: Pick<DmarDeviceScope, 'kind' | 'startBus' | 'path'>, pdev: PciDev): boolean {
  if (scope.kind !== 'pci-endpoint' && scope.kind !== 'pci-bridge') return false;
  const path = scope.path;
  if (path.length === 0) return false;
  const chain: PciDev[] = [];
  for (let x: PciDev | null = pdev; x !== null; x = x.bus.self) chain.push(x);
  chain.reverse();
  const rootBus = chain[0]!.bus.number;
  if (scope.startBus === rootBus && path.length === chain.length) {
    let same = true;
    for (let i = 0; i < path.length && same; i++) {
      const d = chain[i]!;
      same = path[i]!.device === d.devfn >> 3 && path[i]!.function === (d.devfn & 7);
    }
    if (same) return true;
  }
  // "RMRR entry for device %02x:%02x.%x is broken - applying workaround"
  return path.length === 1 && scope.startBus === pdev.bus.number && path[0]!.device === pdev.devfn >> 3 && path[0]!.function === (pdev.devfn & 7);
}

/** True if one of `scopes` names `pdev` or a bridge above it. Linux: the `tmp == dev || is_downstream_to_pci_bridge(dev, tmp)` test. */
function scopesCover(scopes: readonly DmarDeviceScope[], pdev: PciDev): boolean {
  for (let x: PciDev | null = pdev; x !== null; x = x.bus.self) {
    for (const sc of scopes) if (dmarScopeNamesDevice(sc, x)) return true;
  }
  return false;
}

/**
 * The DRHD indices (into `dmar.drhds`) in the order Linux keeps its unit
 * list: explicit units in reverse table order (each added at the head), then
 * the INCLUDE_PCI_ALL units in table order (added at the tail). Matching walks
 * this order, and the VT-d driver registers its units in it.
 * Linux: dmar_register_drhd_unit(), for_each_drhd_unit / for_each_active_iommu, drivers/iommu/intel/dmar.c.
 */
export function dmarUnitOrder(dmar: Pick<Dmar, 'drhds'>): number[] {
  const idx = dmar.drhds.map((_, i) => i);
  return [...idx.filter((i) => !dmar.drhds[i]!.includePciAll).reverse(), ...idx.filter((i) => dmar.drhds[i]!.includePciAll)];
}

/**
 * The index (into `dmar.drhds`, so the unit is `dmar<index>`) of the DRHD
 * that translates `pdev`, or null when no DRHD covers it (the VT-d driver
 * then does not take the function: no group). A VF is looked up by its PF.
 * Linux: device_lookup_iommu(), drivers/iommu/intel/iommu.c.
 */
export function dmarDeviceUnitIndex(dmar: Pick<Dmar, 'drhds'>, pdev: PciDev): number | null {
  const dev = pdev.isVirtfn && pdev.physfn ? pdev.physfn : pdev;
  const segment = dev.bus.domain;
  for (const i of dmarUnitOrder(dmar)) {
    const u: DmarDrhd = dmar.drhds[i]!;
    if (u.segment !== segment) continue;
    if (scopesCover(u.scopes, dev) || u.includePciAll) return i;
  }
  return null;
}

/**
 * True if an RMRR of the device is relaxable (may be dropped when the device
 * is assigned): USB controllers (class 0c03) and display devices (base class 03).
 * Linux: device_rmrr_is_relaxable(), drivers/iommu/intel/iommu.c.
 */
export function deviceRmrrIsRelaxable(pdev: PciDev): boolean {
  return pdev.classCode >> 8 === 0x0c03 || pdev.classCode >> 16 === 0x03;
}

/**
 * The RMRR reserved regions of `pdev`: one per RMRR device scope (of the
 * function's segment) that names the function or a bridge above it, in
 * Linux's list order (RMRRs in reverse table order), `[base, limit]` with
 * read/write protection, IOMMU_RESV_DIRECT — or DIRECT_RELAXABLE for USB and
 * graphics functions. An RMRR whose limit is below its base, or beyond
 * 2^53 - 1, is skipped (said in `notes` when given).
 * Linux: intel_iommu_get_resv_regions() (for_each_rmrr_units), dmar_parse_one_rmrr(), drivers/iommu/intel/.
 */
export function dmarRmrrRegions(dmar: Pick<Dmar, 'rmrrs'>, pdev: PciDev, notes?: string[]): IommuResvRegion[] {
  const out: IommuResvRegion[] = [];
  const type = deviceRmrrIsRelaxable(pdev) ? IommuResvType.DIRECT_RELAXABLE : IommuResvType.DIRECT;
  const rmrrs: readonly DmarRmrr[] = [...dmar.rmrrs].reverse(); // list_add(): newest first
  for (const r of rmrrs) {
    if (r.segment !== pdev.bus.domain) continue;
    if (r.limit < r.base || r.limit > BigInt(Number.MAX_SAFE_INTEGER)) {
      notes?.push(`RMRR at offset 0x${r.offset.toString(16)} [0x${r.base.toString(16)}, 0x${r.limit.toString(16)}] cannot be used; skipped`);
      continue;
    }
    for (const sc of r.scopes) {
      let hit = false;
      for (let x: PciDev | null = pdev; x !== null && !hit; x = x.bus.self) hit = dmarScopeNamesDevice(sc, x);
      if (hit) out.push(allocResvRegion(Number(r.base), Number(r.limit - r.base) + 1, IOMMU_READ | IOMMU_WRITE, type));
    }
  }
  return out;
}

/**
 * The first function of `devices` (of `segment`) a device scope names, or
 * undefined when it names none present (or is not a PCI scope).
 */
export function dmarScopeDevice(scope: DmarDeviceScope, segment: number, devices: Iterable<PciDev>): PciDev | undefined {
  for (const d of devices) if (d.bus.domain === segment && dmarScopeNamesDevice(scope, d)) return d;
  return undefined;
}
