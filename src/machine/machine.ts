/**
 * A machine as read from one source: its PCI topology, each function's driver
 * and the kernel's IOMMU groups (when the source has them), and what could not
 * be known.
 *
 * Sources: a sysfs tree (live `/sys`, a mirror directory, a `.tar.gz`
 * snapshot) or `lspci -vvnn` text.
 */
import { IommuError } from '../base/errno.js';
import type { LspciParseResult } from '../pci/lspci.js';
import type { PciDev } from '../pci/pci-dev.js';
import { pciStdEnableAcs } from '../pci/acs.js';
import { buildPciTopology, type PciFunctionInput, type PciTopology } from '../pci/topology.js';
import type { PciSysfsReading } from '../sysfs/pci-reader.js';

/** Which IOMMU the platform has, as far as the source tells. */
export type IommuKind = 'intel' | 'amd' | 'virtio' | 'unknown';

/** What the source says about one function beyond its config space. */
export interface FunctionFacts {
  /** Bound driver, or null. */
  readonly driver: string | null;
  /** The kernel's group id, or null (not grouped, or the source has no groups). */
  readonly kernelGroup: number | null;
  /** The IOMMU unit the kernel linked the function to (`dmar0`), when the source says. */
  readonly iommu: string | null;
  /** Names as the source printed them (lspci), if any. */
  readonly names: { readonly vendor: string; readonly device: string; readonly className: string } | null;
  /** `reset_method` values (sysfs), if any. */
  readonly resetMethods: readonly string[];
  /** Problems reading this function. */
  readonly problems: readonly string[];
}

/** A machine read from one source. */
export interface Machine {
  /** What was read (a path, `/sys`, `-` for stdin). */
  readonly source: string;
  /** The kind of source. */
  readonly sourceKind: 'sysfs' | 'lspci';
  /** The PCI topology in scan order. */
  readonly topology: PciTopology;
  /** Facts per function, by canonical BDF. */
  readonly facts: ReadonlyMap<string, FunctionFacts>;
  /** The kernel's groups (id → member BDFs in sysfs order), or null when the source shows no active IOMMU. */
  readonly kernelGroups: ReadonlyMap<number, readonly string[]> | null;
  /**
   * The kernel's `kernel/iommu_groups/<id>/reserved_regions` text per group id (null: the file was absent),
   * when the source is sysfs with groups; absent for lspci text. Linux: iommu_group_show_resv_regions().
   */
  readonly kernelResvRegions?: ReadonlyMap<number, string | null>;
  /** The IOMMU kind, inferred from the source (ACPI tables, IOMMU functions, sysfs class names). */
  readonly iommuKind: IommuKind;
  /** ACPI IVRS table present (or an AMD IOMMU function seen). Input to pci_quirk_amd_sb_acs. */
  readonly acpiIvrsPresent: boolean;
  /** ACPI tables the source had (DMAR, IVRS, IORT, …: raw bytes), empty when unreadable or for lspci text. */
  readonly acpiTables: Readonly<Record<string, Uint8Array>>;
  /** IOMMU unit attributes from sysfs (unit → file → text), e.g. `dmar0` → `cap`. Empty for lspci sources. */
  readonly iommuUnitAttrs: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Functions whose config space could not be read in full (< 256 bytes: not root). */
  readonly truncatedConfig: readonly string[];
  /** Source-wide notes and assumptions, in words for the user. */
  readonly notes: readonly string[];
}

/**
 * Build a machine from a sysfs reading.
 * When the source has no active IOMMU, ACS was never enabled by the kernel:
 * the standard enabling (pci_std_enable_acs) is applied so the prediction shows
 * the groups an IOMMU would give; this is said in `notes`.
 * @throws IommuError EINVAL if no PCI function could be read.
 */
export function machineFromSysfs(r: PciSysfsReading): Machine {
  const inputs: PciFunctionInput[] = r.functions.map((f) => ({
    bdf: f.bdf,
    config: f.config,
    origin: 'sysfs' as const,
    parentBdf: f.parentBdf,
    hostBridge: f.hostBridge,
    isVirtfn: f.physfn != null,
    physfnBdf: f.physfn ?? null,
  }));
  const topology = buildPciTopology(inputs, r.source);
  const facts = new Map<string, FunctionFacts>();
  for (const f of r.functions) {
    facts.set(f.bdf, {
      driver: f.driver,
      kernelGroup: f.kernelGroup,
      iommu: f.iommu,
      names: null,
      resetMethods: f.resetMethods,
      problems: f.problems,
    });
  }
  const notes: string[] = [...r.problems, ...topology.problems];
  let kernelGroups: Map<number, string[]> | null = null;
  if (r.kernelGroups && r.kernelGroups.length > 0) {
    kernelGroups = new Map();
    for (const g of r.kernelGroups) kernelGroups.set(g.id, g.devices.filter((d) => topology.byBdf.has(d)));
  }
  const hasAmdIommuFn = topology.devices.some(isAmdIommuFunction);
  const ivrs = 'IVRS' in r.acpiTables || hasAmdIommuFn;
  let iommuKind: IommuKind = 'unknown';
  if ('DMAR' in r.acpiTables || r.iommuUnits.some((u) => u.startsWith('dmar'))) iommuKind = 'intel';
  else if (ivrs || r.iommuUnits.some((u) => u.startsWith('ivhd'))) iommuKind = 'amd';
  else if (topology.devices.some((d) => d.vendor === 0x1af4 && d.device === 0x1057)) iommuKind = 'virtio';
  if (!kernelGroups) {
    for (const d of topology.devices) pciStdEnableAcs(d);
    notes.push(
      'no active IOMMU: /sys/kernel/iommu_groups is empty or absent, so the kernel formed no groups and never enabled ACS; ' +
        'the groups shown are the model\'s prediction with ACS enabled as the kernel would enable it (pci_std_enable_acs) if the IOMMU were on',
    );
  }
  if (r.truncatedConfig.length > 0) {
    notes.push(
      `${r.truncatedConfig.length} function(s) exposed only the first 64 bytes of config space (run as root to read it all): ` +
        'their PCIe and ACS capabilities are invisible, so the prediction treats them as conventional PCI without ACS and may put them in larger groups than the kernel does: ' +
        r.truncatedConfig.join(', '),
    );
  }
  return {
    source: r.source,
    sourceKind: 'sysfs',
    topology,
    facts,
    kernelGroups,
    ...(kernelGroups ? { kernelResvRegions: new Map((r.kernelGroups ?? []).map((g) => [g.id, g.reservedRegions] as const)) } : {}),
    iommuKind,
    acpiIvrsPresent: ivrs,
    iommuUnitAttrs: r.iommuUnitAttrs,
    acpiTables: r.acpiTables,
    truncatedConfig: r.truncatedConfig,
    notes,
  };
}

/**
 * Build a machine from parsed `lspci -vvnn` text. Bridges' bus numbers give
 * the tree; `IOMMU group:` lines give the kernel's groups.
 * @throws IommuError EINVAL if no PCI function was found.
 */
export function machineFromLspci(r: LspciParseResult, source: string): Machine {
  if (r.functions.length === 0) throw new IommuError('EINVAL', 'no PCI function found in lspci text', { input: source });
  const inputs: PciFunctionInput[] = r.functions.map((f) => ({ bdf: f.bdf, config: f.config.subarray(0, f.configSize), origin: 'lspci' as const }));
  const topology = buildPciTopology(inputs, source);
  const facts = new Map<string, FunctionFacts>();
  const notes: string[] = [...topology.problems];
  let kernelGroups: Map<number, string[]> | null = null;
  const truncated: string[] = [];
  for (const f of r.functions) {
    facts.set(f.bdf, {
      driver: f.driver,
      kernelGroup: f.kernelGroup,
      iommu: null,
      names: { vendor: f.names.vendor, device: f.names.device, className: f.names.className },
      resetMethods: [],
      problems: f.assumptions,
    });
    if (f.kernelGroup !== null) {
      kernelGroups ??= new Map();
      let g = kernelGroups.get(f.kernelGroup);
      if (!g) kernelGroups.set(f.kernelGroup, (g = []));
      g.push(f.bdf);
    }
    if (f.configSize < 256) truncated.push(f.bdf);
  }
  for (const w of r.warnings) notes.push(`${source}:${w.line}: ${w.message}`);
  const hasAmdIommuFn = topology.devices.some(isAmdIommuFunction);
  const iommuKind: IommuKind = hasAmdIommuFn ? 'amd' : topology.devices.some((d) => d.vendor === 0x8086) ? 'intel' : 'unknown';
  if (!kernelGroups) {
    for (const d of topology.devices) pciStdEnableAcs(d);
    notes.push('the lspci text has no "IOMMU group:" lines (no active IOMMU, or lspci too old): the groups shown are the model\'s prediction, with ACS enabled as the kernel would enable it if the IOMMU were on');
  }
  notes.push(...lspciAssumptionNotes(r, topology));
  notes.push('from lspci text: firmware tables (DMAR/IVRS) are not visible');
  if (truncated.length > 0) {
    notes.push(`lspci could not read the capabilities of ${truncated.length} function(s) (<access denied>: run lspci as root): ${truncated.join(', ')}`);
  }
  return {
    source,
    sourceKind: 'lspci',
    topology,
    facts,
    kernelGroups,
    iommuKind,
    acpiIvrsPresent: hasAmdIommuFn,
    iommuUnitAttrs: {},
    acpiTables: {},
    truncatedConfig: truncated,
    notes,
  };
}

/** An AMD IOMMU's own PCI function (class 0806, AMD vendor): the IOMMU does not translate itself. */
export function isAmdIommuFunction(d: PciDev): boolean {
  return (d.classCode >> 8) === 0x0806 && (d.vendor === 0x1022 || d.vendor === 0x1002);
}

/**
 * A machine from a generated topology (tests, benchmarks, scenarios): no
 * kernel groups, no drivers.
 */
export function machineFromTopology(topology: PciTopology, opts: { iommuKind?: IommuKind; acpiIvrsPresent?: boolean; source?: string } = {}): Machine {
  const facts = new Map<string, FunctionFacts>();
  for (const d of topology.devices) facts.set(d.bdf, { driver: null, kernelGroup: null, iommu: null, names: null, resetMethods: [], problems: [] });
  return {
    source: opts.source ?? 'synthetic',
    sourceKind: 'sysfs',
    topology,
    facts,
    kernelGroups: null,
    iommuKind: opts.iommuKind ?? 'intel',
    acpiIvrsPresent: opts.acpiIvrsPresent ?? false,
    iommuUnitAttrs: {},
    acpiTables: {},
    truncatedConfig: [],
    notes: [...topology.problems],
  };
}

/**
 * What the model had to assume about functions read from lspci text, in words,
 * with the consequence for the groups: a PCIe function whose extended
 * capabilities lspci could not read (a port in D3) is treated as having no
 * ACS, which matters only if devices sit below it or it has sibling functions.
 */
function lspciAssumptionNotes(r: LspciParseResult, topology: PciTopology): string[] {
  const out: string[] = [];
  const mfInferred: string[] = [];
  for (const f of r.functions) {
    const pdev = topology.byBdf.get(f.bdf);
    for (const a of f.assumptions) {
      if (a.startsWith('multi-function bit')) mfInferred.push(f.bdf);
      else if (a.startsWith('vendor name guessed') || a.startsWith('could not tell the vendor name')) continue;
      else if (a.includes('extended config space') && pdev) {
        const below = pdev.subordinate ? countBelow(pdev) : 0;
        const siblings = pdev.bus.devices.filter((d) => d !== pdev && d.slot === pdev.slot).length;
        const matters = below > 0 || (pdev.multifunction && siblings > 0);
        out.push(
          `${f.bdf}: ${a}; the model treats it as having no ACS capability` +
            (matters
              ? ` — this can widen its group (${below} function(s) below it, ${siblings} sibling function(s)) beyond the kernel's, which read the capability at boot`
              : ' — this does not change any group (nothing below it, no sibling functions)'),
        );
      } else out.push(`${f.bdf}: ${a}`);
    }
  }
  if (mfInferred.length) {
    out.push(`the multifunction bit of ${mfInferred.length} function 0(s) was inferred from their listed sibling functions (lspci does not print it): ${mfInferred.join(', ')}`);
  }
  return out;
}

function countBelow(pdev: PciDev): number {
  let n = 0;
  const walk = (bus: PciDev['subordinate']): void => {
    if (!bus) return;
    for (const d of bus.devices) {
      n++;
      walk(d.subordinate);
    }
  };
  walk(pdev.subordinate);
  return n;
}
