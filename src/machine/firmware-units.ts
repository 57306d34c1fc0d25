/**
 * Which IOMMU unit covers each PCI function, from the machine's ACPI
 * firmware tables, as the VT-d and AMD-Vi drivers decide it: DMAR hardware
 * units (`dmarN`) by device scope — a function matches a unit that lists it or
 * a bridge above it, the INCLUDE_PCI_ALL unit of its segment last — and AMD
 * IVHD blocks (`ivhdN`) by the device IDs their entries cover, the IOMMU's
 * own function excepted.
 *
 * Linux: dmar_parse_one_drhd(), dmar_register_drhd_unit() (include-all units
 * last), dmar_find_matched_drhd_unit(), dmar_pci_device_match(),
 * drivers/iommu/intel/dmar.c; init_iommu_all() / init_iommu_from_acpi(),
 * get_highest_supported_ivhd_type(), drivers/iommu/amd/init.c. The matching
 * itself lives with the drivers: src/drivers/intel-vt-d/dmar-units.ts,
 * src/drivers/amd-vi/ivrs-units.ts.
 */
import { parseDmar } from '../firmware/dmar.js';
import { parseIvrs } from '../firmware/ivrs.js';
import { dmarDeviceUnitIndex, dmarScopeDevice } from '../drivers/intel-vt-d/dmar-units.js';
import { ivrsDeviceUnitIndex, ivrsLayout } from '../drivers/amd-vi/ivrs-units.js';
import { intelResvRegions } from '../drivers/intel-vt-d/index.js';
import { amdResvRegions } from '../drivers/amd-vi/index.js';
import type { IommuResvRegion } from '../iommu/resv-region.js';
import type { Machine } from './machine.js';

/** The units found, per function (null: no unit covers it), and notes. */
export interface FirmwareUnits {
  /** Unit name per canonical BDF, null when no unit covers the function. */
  readonly units: ReadonlyMap<string, string | null>;
  /** The table the answer came from. */
  readonly table: 'DMAR' | 'IVRS';
  /** What could not be resolved. */
  readonly notes: readonly string[];
}

/**
 * The IOMMU unit of every function from the machine's DMAR or IVRS table, or
 * null when the source has neither (lspci text, a snapshot without root).
 * The matching is the drivers' own (dmarDeviceUnitIndex(), ivrsDeviceUnitIndex()):
 * what `bootIommu` probes equals what this predicts.
 * @throws IommuError EINVAL for a malformed table (the table is named); ENODEV for an IVRS without IVHD.
 */
export function firmwareIommuUnits(machine: Machine): FirmwareUnits | null {
  const dmar = machine.acpiTables['DMAR'];
  if (dmar) return dmarUnits(machine, dmar);
  const ivrs = machine.acpiTables['IVRS'];
  if (ivrs) return ivrsUnits(machine, ivrs);
  return null;
}

function dmarUnits(machine: Machine, bytes: Uint8Array): FirmwareUnits {
  const t = parseDmar(bytes, `${machine.source}: DMAR`);
  const notes: string[] = [];
  t.drhds.forEach((u, i) => {
    for (const sc of u.scopes) {
      if (sc.kind !== 'pci-endpoint' && sc.kind !== 'pci-bridge') continue;
      if (!dmarScopeDevice(sc, u.segment, machine.topology.devices)) {
        notes.push(`DMAR unit dmar${i}: a device scope (start bus ${sc.startBus}) names no function present`);
      }
    }
  });
  const out = new Map<string, string | null>();
  for (const d of machine.topology.devices) {
    const i = dmarDeviceUnitIndex(t, d);
    out.set(d.bdf, i === null ? null : `dmar${i}`);
  }
  return { units: out, table: 'DMAR', notes };
}

function ivrsUnits(machine: Machine, bytes: Uint8Array): FirmwareUnits {
  const layout = ivrsLayout(parseIvrs(bytes, `${machine.source}: IVRS`));
  const out = new Map<string, string | null>();
  for (const d of machine.topology.devices) {
    const i = ivrsDeviceUnitIndex(layout, d);
    out.set(d.bdf, i === null ? null : `ivhd${i}`);
  }
  return { units: out, table: 'IVRS', notes: [...layout.notes] };
}

/**
 * The reserved regions the platform IOMMU driver would report for each PCI
 * function, from the machine's DMAR or IVRS table (the drivers' own code:
 * intelResvRegions(), amdResvRegions()): per canonical BDF the function's
 * regions sorted by (start, type) as the core keeps them, or null when no
 * unit covers the function; null for the whole when the source has neither
 * table. Nothing is probed: the machine stays unprobed.
 * @throws IommuError EINVAL for a malformed table; ENODEV for an IVRS without IVHD.
 * Linux: intel_iommu_get_resv_regions(), amd_iommu_get_resv_regions(), as iommu_get_resv_regions() collects them.
 */
export function firmwareResvRegions(machine: Machine): ReadonlyMap<string, IommuResvRegion[] | null> | null {
  const dmarBytes = machine.acpiTables['DMAR'];
  const ivrsBytes = machine.acpiTables['IVRS'];
  const out = new Map<string, IommuResvRegion[] | null>();
  const sorted = (l: IommuResvRegion[]): IommuResvRegion[] => l.sort((a, b) => a.start - b.start || a.type - b.type);
  if (dmarBytes) {
    const t = parseDmar(dmarBytes, `${machine.source}: DMAR`);
    for (const d of machine.topology.devices) out.set(d.bdf, dmarDeviceUnitIndex(t, d) === null ? null : sorted(intelResvRegions(d, { dmar: t })));
    return out;
  }
  if (ivrsBytes) {
    const layout = ivrsLayout(parseIvrs(ivrsBytes, `${machine.source}: IVRS`));
    for (const d of machine.topology.devices) out.set(d.bdf, ivrsDeviceUnitIndex(layout, d) === null ? null : sorted(amdResvRegions(d, layout)));
    return out;
  }
  return null;
}
