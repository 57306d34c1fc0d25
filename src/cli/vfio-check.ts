/**
 * `iommu vfio-check <BDF>`: can this device be passed through with VFIO, and
 * what must change first — its IOMMU group, the members in the way, firmware
 * direct-mapped regions, reset methods, and the sysfs writes that would hand
 * the group to vfio-pci, printed as a plan and NEVER executed.
 *
 * JSON contract (see the README): `{"bdf", "group", "viable", "blockers": [{"bdf", "driver", "why"}],
 * "resetMethods", "plan": [{"write", "value"}]}` plus the documented extensions
 * (`groupSource`, `members`, `directMappedRegions`, `directMappedChecked`, `iommuActive`, `input`, `notes`).
 */
import { pc } from './style.js';
import { IommuError } from '../base/errno.js';
import { machineFromSysfs, type Machine } from '../machine/machine.js';
import { vfioCheck, type VfioCheckOptions, type VfioCheckReport } from '../machine/vfio-viability.js';
import { parseBdf } from '../pci/pci-dev.js';
import { readPciSysfs } from '../sysfs/pci-reader.js';
import { openSysfs } from '../sysfs/source.js';
import { lspciLine } from './describe.js';
import { liveSysfsRoot, loadMachine, type SourceOptions } from './load.js';

/** Options of `iommu vfio-check`. */
export interface VfioCheckCliOptions extends SourceOptions {
  /** Print one JSON document. */
  readonly json?: boolean;
}

/** The heading of the plan in text mode: says plainly that nothing was written. */
export const PLAN_HEADING = 'Plan — NOT executed: iommu wrote nothing; run these as root, in this order';

/**
 * Read the machine for `vfio-check`: as {@link loadMachine} does, keeping, for a sysfs source, each kernel
 * group's `reserved_regions` text (the firmware's direct-mapped regions as the kernel parsed them).
 * @throws IommuError as loadMachine.
 */
export async function loadForVfioCheck(opts: SourceOptions): Promise<{ machine: Machine; options: VfioCheckOptions }> {
  if (opts.lspci !== undefined) return { machine: await loadMachine(opts), options: {} };
  const src = await openSysfs(opts.sysfs ?? liveSysfsRoot());
  const reading = readPciSysfs(src);
  const machine = machineFromSysfs(reading);
  const kernelReservedRegions = new Map<number, string | null>();
  for (const g of reading.kernelGroups ?? []) kernelReservedRegions.set(g.id, g.reservedRegions);
  return { machine, options: { kernelReservedRegions } };
}

/**
 * Run `iommu vfio-check`: validate the BDF (before reading anything), read the source, check, render.
 * @returns the text to print (one JSON document with `json`).
 * @throws IommuError EINVAL for a malformed BDF, ENODEV for one not on the machine, and the source's errors.
 */
export async function vfioCheckCommand(bdfText: string, opts: VfioCheckCliOptions): Promise<string> {
  if (!parseBdf(bdfText)) throw new IommuError('EINVAL', 'not a PCI address (expected [dddd:]bb:dd.f, e.g. 0000:01:00.0)', { input: bdfText });
  const { machine, options } = await loadForVfioCheck(opts);
  const report = vfioCheck(machine, bdfText, options);
  return opts.json ? JSON.stringify(report, null, 2) + '\n' : formatVfioCheckText(machine, report);
}

/** Text rendering of a {@link VfioCheckReport}. */
export function formatVfioCheckText(machine: Machine, r: VfioCheckReport): string {
  const out: string[] = [];
  const pdev = machine.topology.byBdf.get(r.bdf)!;
  out.push(pc.bold(lspciLine(machine, pdev)));
  if (r.group === null) out.push('  in no IOMMU group');
  else {
    const src = r.groupSource === 'kernel' ? "the kernel's group" : "the model's prediction: the source shows no active IOMMU";
    out.push(`  IOMMU group ${r.group} (${src}), ${r.members.length} member(s)`);
  }
  out.push(
    r.viable
      ? `  VFIO: ${pc.green('viable now')} — every member is unbound or on a driver that leaves DMA to VFIO`
      : `  VFIO: ${pc.red('NOT viable now')} — ${r.blockers.length} blocker(s)`,
  );

  out.push('', pc.bold('Members'));
  for (const m of r.members) {
    const p = machine.topology.byBdf.get(m.bdf)!;
    const drv = m.driver ? `driver: ${m.driver}` : 'no driver';
    const blocks = r.group !== null && r.iommuActive && r.blockers.some((b) => b.bdf === m.bdf && /^(bridge )?bound to /.test(b.why));
    const state = blocks ? pc.red('blocks') : m.driver === null ? 'ok (unbound)' : pc.green(`ok (${m.driver} leaves DMA to VFIO)`);
    out.push(`  ${m.role.padEnd(9)} ${lspciLine(machine, p)} ${pc.dim(`(${drv})`)} — ${state}`);
    if (m.relation) out.push(`            ${m.relation}`);
  }

  if (r.blockers.length) {
    out.push('', pc.bold(pc.red('Blockers')));
    for (const b of r.blockers) out.push(`  ${b.bdf ?? `group ${r.group}`}${b.driver ? ` (${b.driver})` : ''}: ${b.why}`);
  }

  out.push('', pc.bold('Reset methods'));
  out.push(r.resetMethods.length ? `  ${r.resetMethods.join(', ')}` : machine.sourceKind === 'lspci' ? '  unknown (lspci text)' : '  none');

  out.push('', pc.bold('Direct-mapped regions'));
  if (r.directMappedRegions.length === 0) out.push(r.directMappedChecked ? '  none' : '  not checked (see the notes)');
  for (const d of r.directMappedRegions) {
    out.push(
      `  ${d.start}–${d.end} ${d.type}${d.bdf ? ` of ${d.bdf}` : ''} (${d.source === 'kernel' ? "the kernel's reserved_regions" : 'model'}): ` +
        (d.blocks ? pc.red('blocks assignment') : 'does not block assignment'),
    );
  }
  if (r.directMappedRegions.length && !r.directMappedChecked) out.push('  firmware regions not checked (see the notes)');

  out.push('', pc.bold(PLAN_HEADING));
  if (r.plan.length === 0) out.push('  (nothing to write)');
  for (const s of r.plan) out.push(`  echo ${s.value} > ${s.write}`);

  if (r.notes.length) {
    out.push('', pc.bold('Notes'));
    for (const n of r.notes) out.push(`  - ${n}`);
  }
  return out.join('\n') + '\n';
}
