/**
 * The model's IOMMU groups for a machine: probe every PCI function the IOMMU
 * covers, in scan order, through pci_device_group().
 */
import { IommuError } from '../base/errno.js';
import type { PciDev } from '../pci/pci-dev.js';
import { PCI_GROUPING_RULES, type GroupDecision, type GroupTraceStep, type PciGroupingRules } from '../iommu/pci-device-group.js';
import { IommuGroups, type IommuGroup } from '../iommu/group.js';
import { isAmdIommuFunction, type Machine } from './machine.js';

/** A predicted group: its id (allocation order, as the kernel numbers them) and members in probe order. */
export interface PredictedGroup {
  readonly id: number;
  readonly devices: readonly PciDev[];
}

/** A function the IOMMU does not cover, and why. */
export interface Unprobed {
  readonly pdev: PciDev;
  readonly why: string;
}

/** The prediction. */
export interface Prediction {
  /** Groups in id order. */
  readonly groups: readonly PredictedGroup[];
  /** The group registry the prediction built (for the sysfs view). */
  readonly registry: IommuGroups;
  /** Each probed function's decision. */
  readonly decisions: ReadonlyMap<PciDev, GroupDecision>;
  /** Group id per probed function. */
  readonly groupOf: ReadonlyMap<PciDev, number>;
  /** Functions left out, with why. */
  readonly unprobed: readonly Unprobed[];
  /** The reasoning for `traceFor`, when asked. */
  readonly trace: readonly GroupTraceStep[] | null;
  /** Assumptions the prediction made. */
  readonly assumptions: readonly string[];
}

/** Options for {@link predictGroups}. */
export interface PredictOptions {
  /** Record the step-by-step reasoning for this function (`iommu explain`). */
  readonly traceFor?: PciDev;
  /** The grouping rule set (default `mainline`). */
  readonly rules?: PciGroupingRules;
}

/**
 * Probe the machine's PCI functions in scan order and form groups as
 * pci_device_group() does. Functions the IOMMU does not translate are left
 * out: an AMD IOMMU's own function, a virtio-iommu's own function and, on AMD platforms read without their
 * IVRS table, the root complex at xx:00.0 next to it (outside every IVHD's
 * device scope on the AMD machines we have seen).
 * A machine's devices join the groups formed: predict (or boot) a machine once,
 * and read the source again for another run.
 * @throws IommuError EBUSY if the machine's devices are already in groups.
 * Linux: bus_iommu_probe() / __iommu_probe_device() / iommu_group_get_for_dev(),
 * drivers/iommu/iommu.c; amd_iommu_probe_device(), drivers/iommu/amd/iommu.c.
 */
export function predictGroups(machine: Machine, options: PredictOptions = {}): Prediction {
  assertUnprobed(machine);
  const decide = PCI_GROUPING_RULES[options.rules ?? 'mainline'].decide;
  const registry = new IommuGroups();
  const groupOf = new Map<PciDev, number>();
  const byId = new Map<number, IommuGroup>();
  const decisions = new Map<PciDev, GroupDecision>();
  const unprobed: Unprobed[] = [];
  const assumptions: string[] = [];
  const ctx = { acpiIvrsPresent: machine.acpiIvrsPresent };
  const lookup = { hasGroup: (p: PciDev) => p.dev.iommuGroup !== null };
  let trace: GroupTraceStep[] | null = null;
  const amdRootComplexes = new Set<string>();
  if (machine.iommuKind === 'amd') {
    for (const d of machine.topology.devices) {
      if (!isAmdIommuFunction(d) || !d.bus.isRoot) continue;
      const rc = d.bus.devices.find((x) => x.devfn === 0 && (x.classCode >> 8) === 0x0600 && (x.vendor === 0x1022 || x.vendor === 0x1002));
      if (rc) amdRootComplexes.add(rc.bdf);
    }
    if (amdRootComplexes.size > 0) {
      assumptions.push(
        `AMD-Vi: the root complex function(s) ${[...amdRootComplexes].join(', ')} are assumed outside the IOMMU's device table ` +
          '(the IVRS table is not read yet; on every AMD machine we have seen the kernel leaves them ungrouped)',
      );
    }
  }
  for (const pdev of machine.topology.devices) {
    if (machine.iommuKind === 'amd' && isAmdIommuFunction(pdev)) {
      unprobed.push({ pdev, why: 'the AMD IOMMU itself: not translated by it, no group' });
      continue;
    }
    if (pdev.vendor === 0x1af4 && pdev.device === 0x1057) {
      unprobed.push({ pdev, why: 'the virtio-iommu device itself: not behind the IOMMU it provides, no group' });
      continue;
    }
    if (amdRootComplexes.has(pdev.bdf)) {
      unprobed.push({ pdev, why: 'AMD root complex: outside the IVRS device scope (assumed), no group' });
      continue;
    }
    const t = options.traceFor === pdev ? (trace = []) : undefined;
    const d = decide(pdev, lookup, ctx, t);
    decisions.set(pdev, d);
    let group: IommuGroup;
    if (d.via) {
      group = byId.get(groupOf.get(d.via)!)!;
      registry.addDevice(group, pdev.dev);
    } else {
      group = registry.alloc();
      byId.set(group.id, group);
      registry.addDevice(group, pdev.dev);
      registry.put(group); // the member holds the reference now
    }
    groupOf.set(pdev, group.id);
  }
  // What quirks had to assume about individual functions (registers outside config space, MMIO tables).
  for (const pdev of machine.topology.devices) for (const a of pdev.assumptions) assumptions.push(`${pdev.bdf}: ${a}`);
  const members = new Map<number, PciDev[]>();
  for (const [pdev, id] of groupOf) {
    let m = members.get(id);
    if (!m) members.set(id, (m = []));
    m.push(pdev);
  }
  const groups = [...members.entries()].sort((a, b) => a[0] - b[0]).map(([id, devices]) => ({ id, devices }));
  return { groups, registry, decisions, groupOf, unprobed, trace, assumptions };
}

/**
 * Refuse a second probe of the same machine: its devices already belong to
 * the groups of the first one.
 * @throws IommuError EBUSY naming the machine.
 */
export function assertUnprobed(machine: Machine): void {
  const d = machine.topology.devices.find((x) => x.dev.iommuGroup !== null || x.dev.iommu !== null);
  if (d) {
    throw new IommuError('EBUSY', `the devices of ${machine.source} are already probed (${d.bdf} is in a group): a machine is predicted or booted once; read the source again for another run`);
  }
}
