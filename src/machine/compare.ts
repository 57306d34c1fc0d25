/**
 * Compare the model's groups with the kernel's: as partitions of the devices
 * (group ids are allocation order, not meaning), and ids where they agree.
 */
import type { Machine } from './machine.js';
import type { Prediction } from './predict.js';

/** One disagreement between the kernel and the model. */
export interface Disagreement {
  /** `split`: the kernel has these together, the model apart; `merged`: the model together, the kernel apart; `membership`: grouped by one side only. */
  readonly kind: 'split' | 'merged' | 'membership';
  /** The devices concerned. */
  readonly devices: readonly string[];
  /** The kernel's group ids of those devices (null: not grouped). */
  readonly kernelGroups: readonly (number | null)[];
  /** The model's group ids of those devices (null: not grouped). */
  readonly modelGroups: readonly (number | null)[];
  /** In words. */
  readonly message: string;
}

/** Result of {@link compareGroups}. */
export interface Comparison {
  /** True if the partitions are equal. */
  readonly partitionsAgree: boolean;
  /** True if, in addition, every device has the same group id on both sides. */
  readonly idsAgree: boolean;
  readonly disagreements: readonly Disagreement[];
}

/** Compare the kernel's groups of `machine` with `prediction`. Devices not in the topology are ignored. */
export function compareGroups(machine: Machine, prediction: Prediction): Comparison {
  const kernel = new Map<string, number>();
  for (const [id, devs] of machine.kernelGroups ?? []) for (const d of devs) kernel.set(d, id);
  const model = new Map<string, number>();
  for (const [pdev, id] of prediction.groupOf) model.set(pdev.bdf, id);
  const out: Disagreement[] = [];
  const all = machine.topology.devices.map((d) => d.bdf);
  // membership
  for (const bdf of all) {
    const k = kernel.get(bdf) ?? null;
    const m = model.get(bdf) ?? null;
    if ((k === null) !== (m === null)) {
      out.push({
        kind: 'membership',
        devices: [bdf],
        kernelGroups: [k],
        modelGroups: [m],
        message: k === null ? `${bdf}: the model puts it in group ${m}, the kernel in none` : `${bdf}: the kernel puts it in group ${k}, the model in none`,
      });
    }
  }
  // kernel groups the model splits
  const byKernel = invert(kernel);
  for (const [kid, devs] of byKernel) {
    const ids = new Set(devs.map((d) => model.get(d)));
    ids.delete(undefined);
    if (ids.size > 1) {
      out.push({
        kind: 'split',
        devices: devs,
        kernelGroups: devs.map(() => kid),
        modelGroups: devs.map((d) => model.get(d) ?? null),
        message: `kernel group ${kid} {${devs.join(', ')}} is split by the model into groups ${[...ids].join(', ')}`,
      });
    }
  }
  const byModel = invert(model);
  for (const [mid, devs] of byModel) {
    const ids = new Set(devs.map((d) => kernel.get(d)));
    ids.delete(undefined);
    if (ids.size > 1) {
      out.push({
        kind: 'merged',
        devices: devs,
        kernelGroups: devs.map((d) => kernel.get(d) ?? null),
        modelGroups: devs.map(() => mid),
        message: `model group ${mid} {${devs.join(', ')}} spans kernel groups ${[...ids].join(', ')}`,
      });
    }
  }
  let idsAgree = out.length === 0;
  if (idsAgree) for (const [bdf, k] of kernel) if (model.get(bdf) !== k) idsAgree = false;
  return { partitionsAgree: out.length === 0, idsAgree, disagreements: out };
}

function invert(m: Map<string, number>): Map<number, string[]> {
  const r = new Map<number, string[]>();
  for (const [k, v] of m) {
    let l = r.get(v);
    if (!l) r.set(v, (l = []));
    l.push(k);
  }
  return r;
}
