/**
 * `iommu groups`: the IOMMU groups of a machine — the kernel's where known,
 * checked against the model's prediction — as text, a PCI tree, or JSON.
 *
 * JSON contract (stable; later tools rely on it):
 * `{"source": "kernel" | "model", "groups": [{"id": number, "devices": [{"bdf", "vendor", "device", "class", "driver"}]}], "disagreements": [...]}`
 * plus the extensions documented in the README.
 */
import { pc } from './style.js';
import type { PciDev } from '../pci/pci-dev.js';
import { hex } from '../pci/pci-dev.js';
import type { Machine } from '../machine/machine.js';
import { compareGroups, type Disagreement } from '../machine/compare.js';
import { predictGroups, type Prediction } from '../machine/predict.js';
import { lspciLine } from './describe.js';
import { firmwareIommuUnits, firmwareResvRegions, type FirmwareUnits } from '../machine/firmware-units.js';
import { formatResvRegions, groupResvRegions, IOMMU_RESV_TYPE_STRING, IommuResvType, type IommuResvRegion } from '../iommu/resv-region.js';
import type { PciGroupingRules } from '../iommu/pci-device-group.js';

/** One device in the JSON output. */
export interface GroupDeviceJson {
  bdf: string;
  vendor: string;
  device: string;
  class: string;
  driver: string | null;
  /**
   * The IOMMU unit translating the device (`dmar0`, `ivhd0`), or null: the kernel's `iommu` link, or with
   * `--predict` (and for machines without an active IOMMU) the unit the firmware tables assign; null when unknown.
   */
  iommu: string | null;
  /**
   * The device's own reserved regions as the IOMMU driver reports them from the firmware tables (RMRRs,
   * IVMD unity maps, the ISA floppy window, the MSI window, the HyperTransport hole), sorted by start;
   * null when unknown (no DMAR/IVRS table, or no unit covers the device).
   */
  reservedRegions: ResvRegionJson[] | null;
}

/** One reserved region in the JSON output: inclusive bounds as `0x` + 16 hex digits, the sysfs type name. */
export interface ResvRegionJson {
  start: string;
  end: string;
  type: 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';
}

/** One group in the JSON output. */
export interface GroupJson {
  id: number;
  devices: GroupDeviceJson[];
  /**
   * The group's `reserved_regions` lines (`"0x00000000fee00000 0x00000000feefffff msi"`): the kernel's file
   * when the groups are the kernel's, else the model's merge of its devices' regions; null when unknown.
   */
  reservedRegions: string[] | null;
}

/** The JSON document of `iommu groups --json`. */
export interface GroupsJson {
  /** `kernel`: the groups are the running kernel's; `model`: the model's prediction. */
  source: 'kernel' | 'model';
  groups: GroupJson[];
  /** Where the kernel's and the model's groups differ (empty with --predict, or when the kernel's are unknown). */
  disagreements: Disagreement[];
  /** What was read. */
  input: string;
  /** True if the source shows an active IOMMU (kernel groups present). */
  iommuActive: boolean;
  /** PCI functions in no group (AMD IOMMU functions, …), with why. */
  ungrouped: { bdf: string; why: string }[];
  /** Notes and assumptions, in words. */
  notes: string[];
  /** Functions whose config space could not be read in full. */
  truncatedConfig: string[];
}

/** Options of `iommu groups`. */
export interface GroupsOptions {
  readonly predict?: boolean;
  /** The grouping rule set (default `mainline`). */
  readonly rules?: PciGroupingRules;
}

/** Build the report of `iommu groups` for `machine`. */
export function groupsReport(machine: Machine, opts: GroupsOptions): { json: GroupsJson; prediction: Prediction } {
  const prediction = predictGroups(machine, { rules: opts.rules ?? 'mainline' });
  const useKernel = machine.kernelGroups !== null && !opts.predict;
  const fw = useKernel ? null : firmwareUnitsOrNote(machine);
  const unitOf = (pdev: PciDev): string | null => (useKernel ? machine.facts.get(pdev.bdf)?.iommu ?? null : fw?.units.get(pdev.bdf) ?? null);
  const resv = firmwareResvOrNote(machine);
  const devRegions = (bdf: string): IommuResvRegion[] | null => resv?.get(bdf) ?? null;
  const groupRegions = (id: number, bdfs: readonly string[]): string[] | null => {
    if (useKernel) {
      const text = machine.kernelResvRegions?.get(id);
      return text === undefined || text === null ? null : text.split('\n').filter((l) => l.trim() !== '');
    }
    if (!resv) return null;
    const known = bdfs.map(devRegions).filter((r): r is IommuResvRegion[] => r !== null);
    if (known.length === 0) return null;
    return formatResvRegions(groupResvRegions(known)).split('\n').filter((l) => l !== '');
  };
  const deviceJson = (pdev: PciDev): GroupDeviceJson => ({
    bdf: pdev.bdf,
    vendor: hex(pdev.vendor, 4),
    device: hex(pdev.device, 4),
    class: hex(pdev.classCode, 6),
    driver: machine.facts.get(pdev.bdf)?.driver ?? null,
    iommu: unitOf(pdev),
    reservedRegions: devRegions(pdev.bdf)?.map(regionJson) ?? null,
  });
  const groups: GroupJson[] = [];
  const ungrouped: { bdf: string; why: string }[] = [];
  if (useKernel) {
    for (const [id, bdfs] of [...machine.kernelGroups!].sort((a, b) => a[0] - b[0])) {
      groups.push({ id, devices: bdfs.map((b) => deviceJson(machine.topology.byBdf.get(b)!)), reservedRegions: groupRegions(id, bdfs) });
    }
    const grouped = new Set(groups.flatMap((g) => g.devices.map((d) => d.bdf)));
    for (const d of machine.topology.devices) if (!grouped.has(d.bdf)) ungrouped.push({ bdf: d.bdf, why: 'the kernel put it in no IOMMU group' });
  } else {
    for (const g of prediction.groups) {
      groups.push({ id: g.id, devices: g.devices.map((d) => deviceJson(d)), reservedRegions: groupRegions(g.id, g.devices.map((d) => d.bdf)) });
    }
    for (const u of prediction.unprobed) ungrouped.push({ bdf: u.pdev.bdf, why: u.why });
  }
  const disagreements = useKernel ? compareGroups(machine, prediction).disagreements.slice() : [];
  return {
    prediction,
    json: {
      source: useKernel ? 'kernel' : 'model',
      groups,
      disagreements,
      input: machine.source,
      iommuActive: machine.kernelGroups !== null,
      ungrouped,
      notes: [...machine.notes, ...prediction.assumptions],
      truncatedConfig: [...machine.truncatedConfig],
    },
  };
}

/** The firmware's units, or null (no tables, or a table that does not parse: said in the machine's notes). */
function firmwareUnitsOrNote(machine: Machine): FirmwareUnits | null {
  try {
    return firmwareIommuUnits(machine);
  } catch (e) {
    (machine.notes as string[]).push(`the ACPI IOMMU table could not be used to name IOMMU units: ${(e as Error).message}`);
    return null;
  }
}

/** The drivers' regions per function from the firmware tables, or null (no tables, or one that does not parse: said in the notes). */
function firmwareResvOrNote(machine: Machine): ReadonlyMap<string, IommuResvRegion[] | null> | null {
  try {
    return firmwareResvRegions(machine);
  } catch (e) {
    (machine.notes as string[]).push(`the ACPI IOMMU table could not be used for reserved regions: ${(e as Error).message}`);
    return null;
  }
}

function regionJson(r: IommuResvRegion): ResvRegionJson {
  const h = (n: number): string => '0x' + n.toString(16).padStart(16, '0');
  const type = r.type === IommuResvType.SW_MSI ? 'sw-msi' : (IOMMU_RESV_TYPE_STRING[r.type] as ResvRegionJson['type']);
  return { start: h(r.start), end: h(r.start + r.length - 1), type };
}

/** A reserved_regions line as text (dim), a direct region flagged: it pins a 1:1 mapping and blocks assignment. */
function regionLine(l: string, indent: string): string {
  const type = l.split(/\s+/)[2];
  if (type === 'direct') return `${indent}${pc.yellow(`reserved ${l}`)} ${pc.yellow('(firmware 1:1 mapping, RMRR/unity map: the group cannot be blocked or assigned to VFIO)')}`;
  if (type === 'direct-relaxable') return pc.dim(`${indent}reserved ${l} (firmware 1:1 mapping, relaxable: dropped on assignment)`);
  return pc.dim(`${indent}reserved ${l}`);
}

/** The reserved_regions lines every group with known regions has (the MSI window, …): printed once, not per group. */
function commonRegions(report: GroupsJson): Set<string> {
  const known = report.groups.filter((g) => g.reservedRegions !== null);
  if (known.length < 2) return new Set();
  return new Set(known[0]!.reservedRegions!.filter((l) => known.every((g) => g.reservedRegions!.includes(l))));
}

/** Text rendering of the report: one block per group. */
export function formatGroupsText(machine: Machine, report: GroupsJson): string {
  const out: string[] = [];
  out.push(headline(machine, report));
  const common = commonRegions(report);
  if (common.size > 0) {
    out.push(pc.dim('Reserved regions of every group (reserved_regions):'));
    for (const l of common) out.push(regionLine(l, '  '));
  }
  for (const g of report.groups) {
    out.push('');
    out.push(pc.bold(`IOMMU group ${g.id}`));
    for (const d of g.devices) {
      const pdev = machine.topology.byBdf.get(d.bdf)!;
      out.push(`  ${lspciLine(machine, pdev)}${d.driver ? pc.dim(` (driver: ${d.driver})`) : pc.dim(' (no driver)')}`);
    }
    for (const l of g.reservedRegions ?? []) if (!common.has(l)) out.push(regionLine(l, '    '));
  }
  out.push(...footer(report));
  return out.join('\n') + '\n';
}

/** Tree rendering: the PCI hierarchy with each function's group. */
export function formatGroupsTree(machine: Machine, report: GroupsJson): string {
  const groupOf = new Map<string, number>();
  for (const g of report.groups) for (const d of g.devices) groupOf.set(d.bdf, g.id);
  const out: string[] = [headline(machine, report), ''];
  for (const bus of machine.topology.rootBuses) {
    out.push(pc.bold(`${bus.hostBridge} (bus ${bus.name})`));
    walk(bus.devices, '');
  }
  function walk(devs: readonly PciDev[], prefix: string): void {
    devs.forEach((d, i) => {
      const lastOne = i === devs.length - 1;
      const g = groupOf.get(d.bdf);
      const tag = g === undefined ? pc.dim('[ - ]') : pc.cyan(`[G${g}]`);
      const drv = machine.facts.get(d.bdf)?.driver;
      out.push(`${prefix}${lastOne ? '└─' : '├─'} ${tag} ${lspciLine(machine, d)}${drv ? pc.dim(` (${drv})`) : ''}`);
      const kids: PciDev[] = [];
      if (d.subordinate) kids.push(...d.subordinate.devices);
      if (kids.length) walk(kids, prefix + (lastOne ? '   ' : '│  '));
    });
  }
  out.push(...footer(report));
  return out.join('\n') + '\n';
}

function headline(machine: Machine, r: GroupsJson): string {
  const n = r.groups.length;
  if (r.source === 'kernel') {
    const verdict = r.disagreements.length === 0 ? pc.green('the model predicts the same groups') : pc.red(`the model disagrees in ${r.disagreements.length} place(s)`);
    return `${n} IOMMU groups on ${machine.source} (the kernel's groups; ${verdict})`;
  }
  if (!r.iommuActive) return `${pc.yellow('No active IOMMU')} on ${machine.source}: ${n} IOMMU groups predicted by the model`;
  return `${n} IOMMU groups on ${machine.source} (predicted by the model; the kernel's groups ignored)`;
}

function footer(r: GroupsJson): string[] {
  const out: string[] = [];
  if (r.ungrouped.length) {
    out.push('', pc.bold('Not in any group'));
    for (const u of r.ungrouped) out.push(`  ${u.bdf}: ${u.why}`);
  }
  if (r.disagreements.length) {
    out.push('', pc.bold(pc.red('Disagreements between the kernel and the model')));
    for (const d of r.disagreements) out.push(`  ${d.message}`);
  }
  if (r.notes.length) {
    out.push('', pc.bold('Notes'));
    for (const n of r.notes) out.push(`  - ${n}`);
  }
  return out;
}
