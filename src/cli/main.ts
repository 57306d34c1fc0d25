#!/usr/bin/env node
/**
 * The `iommu` command.
 *
 * Exit codes (stable): 0 success, 1 failure (bad input, unreadable source:
 * the message on stderr names the input and what is wrong), 2 usage error.
 */
import { Command, CommanderError, Option } from 'commander';
import { isIommuError } from '../base/errno.js';
import { PCI_GROUPING_RULES, type PciGroupingRules } from '../iommu/pci-device-group.js';
import { writeSnapshot } from '../sysfs/snapshot.js';
import { explain, formatExplainText } from './explain.js';
import { formatGroupsText, formatGroupsTree, groupsReport } from './groups.js';
import { liveSysfsRoot, loadMachine } from './load.js';
import { formatSimText, simulate } from './sim.js';
import { setColor, wantColor } from './style.js';
import { vfioCheckCommand } from './vfio-check.js';

/** Exit codes of the `iommu` command. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2 } as const;

function sourceOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--sysfs <path>', 'read a sysfs tree: a directory mirroring /sys, or a .tar.gz snapshot (default: the live /sys)'))
    .addOption(new Option('--lspci <file>', 'read `lspci -vvnn` text from a file, or - for standard input'));
}

/** Build the command-line program (exported for tests). */
export function buildProgram(
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
  colorEnv: { env: NodeJS.ProcessEnv; isTty: boolean } = { env: {}, isTty: false },
): Command {
  const program = new Command();
  program.configureOutput({ writeErr: err, writeOut: out, outputError: (s, write) => write(s) });
  program
    .name('iommu')
    .description('The Linux IOMMU core, modelled: IOMMU groups, why devices share them, snapshots of /sys')
    .option('--color', 'colour the text output (default: when standard output is a terminal and NO_COLOR is unset)')
    .option('--no-color', 'never colour the text output')
    .showHelpAfterError()
    .exitOverride()
    .hook('preAction', (cmd) => {
      setColor(wantColor(cmd.opts<{ color?: boolean }>().color, colorEnv.env, colorEnv.isTty));
    });

  sourceOptions(
    program
      .command('groups', { isDefault: true })
      .description('show the IOMMU groups of this machine (or of a snapshot or lspci dump), checked against the model')
      .option('--predict', "ignore the kernel's groups and show the model's prediction")
      .option('--tree', 'show the PCI tree with each function\'s group')
      .option('--json', 'print one JSON document')
      .addOption(new Option('--rules <name>', 'the grouping rule set').choices(Object.keys(PCI_GROUPING_RULES)).default('mainline')),
  ).action(async (o: { sysfs?: string; lspci?: string; predict?: boolean; tree?: boolean; json?: boolean; rules: PciGroupingRules }) => {
    const machine = await loadMachine(o);
    const { json } = groupsReport(machine, { predict: o.predict ?? false, rules: o.rules });
    if (o.json) out(JSON.stringify(json, null, 2) + '\n');
    else if (o.tree) out(formatGroupsTree(machine, json));
    else out(formatGroupsText(machine, json));
  });

  sourceOptions(
    program
      .command('explain')
      .description('say, step by step, why a PCI function is in its IOMMU group')
      .argument('<bdf>', 'the function, as [dddd:]bb:dd.f')
      .option('--json', 'print one JSON document'),
  ).action(async (bdf: string, o: { sysfs?: string; lspci?: string; json?: boolean }) => {
    const machine = await loadMachine(o);
    const e = explain(machine, bdf);
    out(o.json ? JSON.stringify(e, null, 2) + '\n' : formatExplainText(machine, e));
  });

  sourceOptions(
    program
      .command('vfio-check')
      .description('can this device be passed through with VFIO, and what must change first (prints a plan of sysfs writes; writes nothing)')
      .argument('<bdf>', 'the function, as [dddd:]bb:dd.f')
      .option('--json', 'print one JSON document'),
  ).action(async (bdf: string, o: { sysfs?: string; lspci?: string; json?: boolean }) => {
    out(await vfioCheckCommand(bdf, o));
  });

  program
    .command('sim')
    .description('run a DMA scenario (domains, maps, emulated DMA, invalidations) through the IOMMU model and print the trace')
    .argument('<scenario>', 'the scenario JSON file (- for standard input)')
    .addOption(new Option('--sysfs <path>', 'take the topology from a sysfs tree or snapshot'))
    .addOption(new Option('--lspci <file>', 'take the topology from `lspci -vvnn` text'))
    .option('--json', 'print the trace as one JSON document')
    .action(async (file: string, o: { sysfs?: string; lspci?: string; json?: boolean }) => {
      const machine = o.sysfs !== undefined || o.lspci !== undefined ? await loadMachine(o) : null;
      const trace = simulate(file, machine);
      out(o.json ? JSON.stringify(trace, null, 2) + '\n' : formatSimText(trace));
    });

  program
    .command('snapshot')
    .description('write the parts of the live /sys the IOMMU tools read into a .tar.gz, to attach to a bug report (read-only on the machine)')
    .requiredOption('-o, --output <file>', 'the archive to write (.tar.gz)')
    .option('--sysfs <dir>', 'the sysfs root to copy from (default: /sys)')
    .action(async (o: { output: string; sysfs?: string }) => {
      const r = await writeSnapshot(o.sysfs ?? liveSysfsRoot(), o.output);
      out(`wrote ${r.outFile}: ${r.files} files, ${r.links} links\n`);
      if (r.truncatedConfig.length) {
        out(`note: ${r.truncatedConfig.length} device(s) exposed only 64 bytes of config space (run as root for a complete snapshot): ${r.truncatedConfig.join(', ')}\n`);
      }
      for (const s of r.skipped.slice(0, 20)) out(`skipped ${s.path}: ${s.why}\n`);
      if (r.skipped.length > 20) out(`… and ${r.skipped.length - 20} more skipped\n`);
    });
  return program;
}

/**
 * Run the CLI with `argv` (without node and script); returns the exit code.
 * Text goes to `out` (default: standard output) and messages to `err`; text
 * written to a caller's `out` is coloured only with `--color` (the environment's
 * NO_COLOR/FORCE_COLOR apply to standard output only).
 */
export async function run(argv: string[], out?: (s: string) => void, err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  const colorEnv = out === undefined ? { env: process.env, isTty: process.stdout.isTTY === true } : { env: {}, isTty: false };
  const program = buildProgram(out, err, colorEnv);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    if (isIommuError(e)) {
      err(`iommu: ${e.message}\n`);
      return EXIT.FAILURE;
    }
    err(`iommu: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT.FAILURE;
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain || process.argv[1]?.endsWith('/iommu')) {
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
