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
 * get_highest_supported_ivhd_type(), drivers/iommu/amd/init.c.
 */
import { parseDmar, resolveDmarScope } from '../firmware/dmar.js';
import { ivhdCoverage, parseIvrs } from '../firmware/ivrs.js';
import type { PciDev } from '../pci/pci-dev.js';
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
 * @throws IommuError EINVAL for a malformed table (the table is named).
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
  const byAddr = new Map<string, PciDev>();
  for (const d of machine.topology.devices) byAddr.set(`${d.bus.domain}:${d.bus.number}:${d.devfn}`, d);
  // Units are named in table order (dmar%d by sequence id); matching visits explicit units in reverse
  // registration order (list_add_rcu) and the INCLUDE_PCI_ALL units last (list_add_tail_rcu).
  const units = t.drhds.map((u, i) => {
    const devs = new Set<PciDev>();
    for (const sc of u.scopes) {
      if (sc.kind !== 'pci-endpoint' && sc.kind !== 'pci-bridge') continue;
      const r = resolveDmarScope(sc, (bus, dev, fn) => {
        const b = byAddr.get(`${u.segment}:${bus}:${(dev << 3) | fn}`);
        return b && b.isBridge ? b.secondaryBus : undefined;
      });
      const pdev = r ? byAddr.get(`${u.segment}:${r.bus}:${r.devfn}`) : undefined;
      if (pdev) devs.add(pdev);
      else notes.push(`DMAR unit dmar${i}: a device scope (start bus ${sc.startBus}) names no function present`);
    }
    return { name: `dmar${i}`, includeAll: u.includePciAll, segment: u.segment, devs };
  });
  const order = [...units.filter((u) => !u.includeAll).reverse(), ...units.filter((u) => u.includeAll)];
  const out = new Map<string, string | null>();
  for (const d of machine.topology.devices) {
    let name: string | null = null;
    for (const u of order) {
      if (u.includeAll && u.segment === d.bus.domain) {
        name = u.name;
        break;
      }
      let hit = false;
      for (let x: PciDev | null = d; x !== null; x = x.bus.self) {
        if (u.devs.has(x)) {
          hit = true;
          break;
        }
      }
      if (hit) {
        name = u.name;
        break;
      }
    }
    out.set(d.bdf, name);
  }
  return { units: out, table: 'DMAR', notes };
}

function ivrsUnits(machine: Machine, bytes: Uint8Array): FirmwareUnits {
  const t = parseIvrs(bytes, `${machine.source}: IVRS`);
  // Only the highest IVHD type the table offers is used (get_highest_supported_ivhd_type()).
  const type = Math.max(...t.ivhds.map((h) => h.type));
  const ivhds = t.ivhds.filter((h) => h.type === type);
  const cover = ivhds.map((h, i) => ({ name: `ivhd${i}`, segment: h.segment, self: h.iommuDeviceId, ids: ivhdCoverage(h) }));
  const out = new Map<string, string | null>();
  for (const d of machine.topology.devices) {
    const id = (d.bus.number << 8) | d.devfn;
    const u = cover.find((c) => c.segment === d.bus.domain && c.ids.has(id) && c.self !== id);
    out.set(d.bdf, u ? u.name : null);
  }
  return { units: out, table: 'IVRS', notes: [] };
}
