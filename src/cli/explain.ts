/**
 * `iommu explain <BDF>`: why a function is in its IOMMU group, step by step
 * through pci_device_group(), with the ACS bits and quirks behind each step,
 * and how every other member of the group got there.
 */
import { pc } from './style.js';
import { IommuError } from '../base/errno.js';
import { parseBdf, formatBdf, type PciDev } from '../pci/pci-dev.js';
import { PCIE_TYPE_NAMES } from '../pci/regs.js';
import type { Machine } from '../machine/machine.js';
import { predictGroups } from '../machine/predict.js';
import type { GroupTraceStep } from '../iommu/pci-device-group.js';
import { lspciLine } from './describe.js';

/** The JSON document of `iommu explain --json`. */
export interface ExplainJson {
  bdf: string;
  /** The model's group id (allocation order), or null if the IOMMU does not cover the function. */
  group: number | null;
  /** The kernel's group id, when the source has one. */
  kernelGroup: number | null;
  /** Members of the model's group. */
  members: string[];
  /** The function's own reasoning, step by step. */
  steps: GroupTraceStep[];
  /** How each other member joined: `{bdf, via, step}`. */
  others: { bdf: string; via: string | null; step: number }[];
  /** What quirks did to the function. */
  quirks: string[];
  /** Whether the kernel's grouping of this function agrees with the model's (null if unknown). */
  agreesWithKernel: boolean | null;
  notes: string[];
}

/**
 * Explain `bdfText` on `machine`.
 * @throws IommuError EINVAL for a malformed BDF, ENODEV for a function not on the machine.
 */
export function explain(machine: Machine, bdfText: string): ExplainJson {
  const b = parseBdf(bdfText);
  if (!b) throw new IommuError('EINVAL', 'not a PCI address (expected [dddd:]bb:dd.f, e.g. 0000:00:1f.2)', { input: bdfText });
  const bdf = formatBdf(b.domain, b.bus, b.devfn);
  const pdev = machine.topology.byBdf.get(bdf);
  if (!pdev) throw new IommuError('ENODEV', `no PCI function ${bdf} on ${machine.source}`, { input: bdfText });
  const p = predictGroups(machine, { traceFor: pdev });
  const id = p.groupOf.get(pdev) ?? null;
  const members = id === null ? [] : p.groups.find((g) => g.id === id)!.devices;
  const kernelGroup = machine.facts.get(bdf)?.kernelGroup ?? null;
  let agrees: boolean | null = null;
  if (machine.kernelGroups) {
    const kernelMembers = kernelGroup === null ? [] : [...(machine.kernelGroups.get(kernelGroup) ?? [])].sort();
    agrees = JSON.stringify(kernelMembers) === JSON.stringify(members.map((m) => m.bdf).sort());
  }
  const unprobed = p.unprobed.find((u) => u.pdev === pdev);
  return {
    bdf,
    group: id,
    kernelGroup,
    members: members.map((m) => m.bdf),
    steps: unprobed ? [{ step: 5, bdf, text: unprobed.why }] : [...(p.trace ?? [])],
    others: members
      .filter((m) => m !== pdev)
      .map((m) => {
        const d = p.decisions.get(m)!;
        return { bdf: m.bdf, via: d.via?.bdf ?? null, step: d.step };
      }),
    quirks: [...pdev.quirkNotes],
    agreesWithKernel: agrees,
    notes: [...pdev.assumptions, ...machine.notes, ...p.assumptions],
  };
}

const STEP_NAMES: Record<number, string> = {
  1: 'DMA aliases',
  2: 'ACS up to the root',
  3: 'functions that alias it',
  4: 'sibling functions',
  5: 'new group',
};

const JOIN_WHY: Record<number, string> = {
  1: 'through a DMA alias',
  2: 'through a non-isolated bridge above it',
  3: 'as a DMA alias',
  4: 'as a non-isolated sibling function',
  5: 'created the group',
};

/** Text rendering of an explanation. */
export function formatExplainText(machine: Machine, e: ExplainJson): string {
  const pdev = machine.topology.byBdf.get(e.bdf)!;
  const out: string[] = [];
  out.push(pc.bold(lspciLine(machine, pdev)));
  out.push(`  ${describeKind(pdev)}`);
  out.push(e.group === null ? '  in no IOMMU group' : `  model: IOMMU group ${e.group} with ${e.members.length} member(s): ${e.members.join(', ')}`);
  if (e.kernelGroup !== null || machine.kernelGroups) {
    out.push(`  kernel: ${e.kernelGroup === null ? 'no group' : `group ${e.kernelGroup}`}${e.agreesWithKernel === false ? pc.red(' — the kernel groups it differently') : e.agreesWithKernel ? pc.green(' — same members') : ''}`);
  }
  if (e.quirks.length) {
    out.push('', pc.bold('Quirks applied'));
    for (const q of e.quirks) out.push(`  - ${q}`);
  }
  out.push('', pc.bold('Why (pci_device_group, drivers/iommu/iommu.c)'));
  let n = 1;
  for (const s of e.steps) {
    out.push(`  ${n++}. [step ${s.step}: ${STEP_NAMES[s.step]}] ${s.text}`);
    for (const a of s.acs ?? []) out.push(pc.dim(`       ${a}`));
  }
  if (e.others.length) {
    out.push('', pc.bold('The other members'));
    for (const o of e.others) out.push(`  ${o.bdf}: ${o.step === 5 ? 'created the group' : `joined ${JOIN_WHY[o.step]}`}${o.via && o.via !== o.bdf ? ` (${o.via})` : ''}`);
  }
  if (e.notes.length) {
    out.push('', pc.bold('Notes'));
    for (const x of e.notes) out.push(`  - ${x}`);
  }
  return out.join('\n') + '\n';
}

function describeKind(p: PciDev): string {
  const parts: string[] = [];
  parts.push(p.isPcie ? `PCIe ${PCIE_TYPE_NAMES[p.pcieType] ?? `type ${p.pcieType}`}` : 'conventional PCI');
  if (p.isBridge) parts.push(`bridge to bus ${p.secondaryBus.toString(16).padStart(2, '0')}`);
  parts.push(p.multifunction ? 'multifunction' : 'single function');
  if (p.isVirtfn) parts.push(`SR-IOV VF of ${p.physfn?.bdf}`);
  parts.push(p.acsCap ? `ACS capability at 0x${p.acsCap.toString(16)}` : 'no ACS capability');
  parts.push(`on ${p.bus.isRoot ? 'root ' : ''}bus ${p.bus.name}${p.bus.self ? ` below ${p.bus.self.bdf}` : ''}`);
  return parts.join(', ');
}
