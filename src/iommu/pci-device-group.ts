/**
 * Which IOMMU group a PCI function belongs in: the group of a DMA alias, of a
 * non-isolated bridge above it, of a function aliasing it, or of a
 * non-isolated sibling function; or a new one.
 *
 * The search never merges existing groups: it finds at most one existing group
 * to join, so results depend on probe order (parents first, as the kernel).
 *
 * Linux: pci_device_group(), get_pci_alias_or_group(), get_pci_alias_group(),
 * get_pci_function_alias_group(), REQ_ACS_FLAGS, drivers/iommu/iommu.c.
 */
import { pciAcsEnabled, pciAcsPathEnabled, type QuirkContext } from '../pci/acs.js';
import { pciDevsAreDmaAliases, pciForEachDmaAlias } from '../pci/dma-alias.js';
import { formatBdf, type PciDev } from '../pci/pci-dev.js';
import { REQ_ACS_FLAGS } from '../pci/regs.js';
import type { IommuGroup, IommuGroups } from './group.js';

/**
 * A PCI grouping rule set: how a function's group is decided. `mainline` is
 * Linux's classic pci_device_group() (v3.16 … v6.17). The 2025 "PCIe ACS"
 * rework (Jason Gunthorpe's pci_reachable_set series: ACS as egress control,
 * switch peers grouped, no widening at root ports without ACS) is a proposal
 * not yet merged; it will be added here as a second rule set.
 */
export interface PciGroupingRuleSet {
  /** Name used on the command line (`--rules`). */
  readonly name: string;
  /** Which kernels follow it. */
  readonly kernels: string;
  /** The decision procedure. */
  readonly decide: (start: PciDev, lookup: GroupLookup, ctx: QuirkContext, trace?: GroupTraceStep[]) => GroupDecision;
}

/** Names of the rule sets the model knows. */
export type PciGroupingRules = 'mainline';

/**
 * One step of the reasoning, for `iommu explain`: which step of
 * pci_device_group() (1 alias walk, 2 ACS climb, 3 alias group, 4 function
 * siblings, 5 new group), the function looked at, and what was found.
 */
export interface GroupTraceStep {
  readonly step: 1 | 2 | 3 | 4 | 5;
  readonly bdf: string;
  readonly text: string;
  /** ACS reasoning lines behind this step, if any. */
  readonly acs?: readonly string[];
}

/** Where a function's group comes from: an existing group (through `via`), or a new one. */
export interface GroupDecision {
  /** The function whose existing group is joined, or null for a new group. */
  readonly via: PciDev | null;
  /** The step that decided. */
  readonly step: 1 | 2 | 3 | 4 | 5;
  /**
   * The function the search ended at: `pdev` itself, the top-most aliasing
   * bridge, or the non-isolated bridge the ACS climb widened to.
   */
  readonly top: PciDev;
}

/** Hooks into the IOMMU core: does a function already have a group? */
export interface GroupLookup {
  /** True if `pdev` is already in an IOMMU group. Linux: pdev->dev.iommu_group != NULL. */
  hasGroup(pdev: PciDev): boolean;
}

/**
 * Decide the group of `start` as pci_device_group() does, given which
 * functions already have groups. Allocation-free unless `trace` is given.
 * Linux: pci_device_group(), drivers/iommu/iommu.c.
 */
export function pciDeviceGroupDecision(
  start: PciDev,
  lookup: GroupLookup,
  ctx: QuirkContext,
  trace?: GroupTraceStep[],
): GroupDecision {
  // Step 1: walk the DMA aliases towards the root; join the first alias that has a group.
  let last: PciDev = start;
  let via: PciDev | null = null;
  let viaRid = 0;
  pciForEachDmaAlias(start, (pdev, rid) => {
    last = pdev;
    if (lookup.hasGroup(pdev)) {
      via = pdev;
      viaRid = rid;
      return 1;
    }
    if (trace && (pdev !== start || rid !== start.requesterId)) {
      trace.push({ step: 1, bdf: pdev.bdf, text: `DMA alias: requests appear as ${ridName(start, rid)} (${pdev === start ? 'quirk alias' : `rewritten by bridge ${pdev.bdf}`}); not yet in a group` });
    }
    return 0;
  });
  if (via !== null) {
    const v: PciDev = via;
    trace?.push({
      step: 1,
      bdf: v.bdf,
      text:
        v === start
          ? `${start.bdf} also issues DMA as ${ridName(start, viaRid)} (quirk alias), already in a group: join it`
          : `DMA from ${start.bdf} reaches the IOMMU as ${ridName(start, viaRid)}, rewritten by bridge ${v.bdf}, which is already in a group: join it`,
    });
    return { via: v, step: 1, top: v };
  }
  let pdev: PciDev = last;
  if (trace && pdev !== start) trace.push({ step: 1, bdf: pdev.bdf, text: `continuing from the top-most aliasing bridge ${pdev.bdf}` });

  // Step 2: climb while the path above is not ACS-isolated.
  for (let bus = pdev.bus; bus.parent !== null; bus = bus.parent) {
    const self = bus.self;
    if (!self) continue;
    const why: string[] | undefined = trace ? [] : undefined;
    if (pciAcsPathEnabled(self, null, REQ_ACS_FLAGS, ctx, why)) {
      trace?.push({ step: 2, bdf: self.bdf, text: `the path from ${self.bdf} to the root is ACS-isolated: stop climbing`, acs: why! });
      break;
    }
    trace?.push({ step: 2, bdf: self.bdf, text: `the path from ${self.bdf} to the root is not ACS-isolated: widen to bridge ${self.bdf}`, acs: why! });
    pdev = self;
    if (lookup.hasGroup(pdev)) {
      trace?.push({ step: 2, bdf: pdev.bdf, text: `bridge ${pdev.bdf} is already in a group: join it` });
      return { via: pdev, step: 2, top: pdev };
    }
  }

  // Steps 3 and 4 share one visited set (devfns on pdev's bus).
  const visited = new Uint32Array(8);
  const a = aliasGroup(pdev, lookup, ctx, visited, trace);
  if (a) return { via: a, step: 3, top: pdev };
  const f = functionAliasGroup(pdev, lookup, ctx, visited, trace);
  if (f) return { via: f, step: 4, top: pdev };

  trace?.push({ step: 5, bdf: pdev.bdf, text: `no alias, bridge or sibling function to share with: a new group` });
  return { via: null, step: 5, top: pdev };
}

/** get_pci_alias_group(): functions on the same bus that alias `p` (or that it aliases), recursively. */
function aliasGroup(p: PciDev, lookup: GroupLookup, ctx: QuirkContext, visited: Uint32Array, trace?: GroupTraceStep[]): PciDev | null {
  if (testAndSet(visited, p.devfn)) return null;
  if (lookup.hasGroup(p)) {
    trace?.push({ step: 3, bdf: p.bdf, text: `${p.bdf} is already in a group: join it` });
    return p;
  }
  for (const t of p.bus.devices) {
    if (t === p || !pciDevsAreDmaAliases(p, t)) continue;
    trace?.push({ step: 3, bdf: t.bdf, text: `${t.bdf} and ${p.bdf} are DMA aliases of each other` });
    const g = aliasGroup(t, lookup, ctx, visited, trace) ?? functionAliasGroup(t, lookup, ctx, visited, trace);
    if (g) return g;
  }
  return null;
}

/** get_pci_function_alias_group(): non-isolated functions of the same slot, when `p` itself is not isolated. */
function functionAliasGroup(p: PciDev, lookup: GroupLookup, ctx: QuirkContext, visited: Uint32Array, trace?: GroupTraceStep[]): PciDev | null {
  if (!p.multifunction) return null;
  const why: string[] | undefined = trace ? [] : undefined;
  if (pciAcsEnabled(p, REQ_ACS_FLAGS, ctx, why)) {
    if (trace && hasSibling(p)) trace.push({ step: 4, bdf: p.bdf, text: `${p.bdf} is multifunction but ACS-isolated from its sibling functions`, acs: why! });
    return null;
  }
  let noted = false;
  for (const t of p.bus.devices) {
    if (t === p || t.slot !== p.slot) continue;
    const whyT: string[] | undefined = trace ? [] : undefined;
    if (pciAcsEnabled(t, REQ_ACS_FLAGS, ctx, whyT)) continue;
    if (trace) {
      if (!noted) trace.push({ step: 4, bdf: p.bdf, text: `${p.bdf} is a function of a multifunction slot without ACS isolation`, acs: why! });
      noted = true;
      trace.push({ step: 4, bdf: t.bdf, text: `sibling function ${t.bdf} is not ACS-isolated either`, acs: whyT! });
    }
    const g = aliasGroup(t, lookup, ctx, visited, trace);
    if (g) return g;
  }
  return null;
}

function hasSibling(p: PciDev): boolean {
  for (const t of p.bus.devices) if (t !== p && t.slot === p.slot) return true;
  return false;
}

function testAndSet(bits: Uint32Array, n: number): boolean {
  const w = n >> 5;
  const m = 1 << (n & 31);
  const was = (bits[w]! & m) !== 0;
  bits[w]! |= m;
  return was;
}

function ridName(pdev: PciDev, rid: number): string {
  return formatBdf(pdev.bus.domain, rid >> 8, rid & 0xff);
}

/** The rule sets, by name. */
export const PCI_GROUPING_RULES: Readonly<Record<PciGroupingRules, PciGroupingRuleSet>> = {
  mainline: { name: 'mainline', kernels: 'Linux v3.16 … v6.17 (classic pci_device_group())', decide: pciDeviceGroupDecision },
};

/**
 * The IOMMU group of a PCI function for the core's registry: an existing
 * group (with a new reference) or a new one, as decided by the rule set.
 * Drivers call this from their device_group op.
 * Linux: pci_device_group(), drivers/iommu/iommu.c.
 */
export function pciDeviceGroup(groups: IommuGroups, pdev: PciDev, ctx: QuirkContext, rules: PciGroupingRules = 'mainline'): IommuGroup {
  const d = PCI_GROUPING_RULES[rules].decide(pdev, { hasGroup: (p) => p.dev.iommuGroup !== null }, ctx);
  if (d.via) return groups.get(d.via.dev)!;
  return groups.alloc();
}


/**
 * One group per device. Linux: generic_device_group(), drivers/iommu/iommu.c.
 */
export function genericDeviceGroup(groups: IommuGroups): IommuGroup {
  return groups.alloc();
}
