/**
 * Choose and read the machine a command works on: the live `/sys`, a sysfs
 * mirror or snapshot (`--sysfs`), or `lspci -vvnn` text (`--lspci`, `-` for stdin).
 */
import { readFileSync } from 'node:fs';
import { IommuError } from '../base/errno.js';
import { parseLspci } from '../pci/lspci.js';
import { machineFromLspci, machineFromSysfs, type Machine } from '../machine/machine.js';
import { openSysfs } from '../sysfs/source.js';
import { readPciSysfs } from '../sysfs/pci-reader.js';

/** Source options shared by the commands. */
export interface SourceOptions {
  /** A sysfs root directory or a `.tar.gz` of one. */
  readonly sysfs?: string;
  /** An `lspci -vvnn` file, or `-` for standard input. */
  readonly lspci?: string;
}

/** The live sysfs root (overridable for tests with IOMMUKIT_SYSFS). */
export function liveSysfsRoot(): string {
  return process.env['IOMMUKIT_SYSFS'] ?? '/sys';
}

/**
 * Read the machine named by the options (live `/sys` by default).
 * @throws IommuError EINVAL when both sources are given or the input is unusable; ENOENT for a missing path.
 */
export async function loadMachine(opts: SourceOptions): Promise<Machine> {
  if (opts.sysfs !== undefined && opts.lspci !== undefined) {
    throw new IommuError('EINVAL', 'give either --sysfs or --lspci, not both');
  }
  if (opts.lspci !== undefined) {
    const name = opts.lspci === '-' ? '<stdin>' : opts.lspci;
    let text: string;
    try {
      text = opts.lspci === '-' ? readFileSync(0, 'utf8') : readFileSync(opts.lspci, 'utf8');
    } catch (e) {
      throw new IommuError('ENOENT', `cannot read lspci text: ${(e as Error).message}`, { input: name, cause: e });
    }
    return machineFromLspci(parseLspci(text, name), name);
  }
  const root = opts.sysfs ?? liveSysfsRoot();
  const src = await openSysfs(root);
  return machineFromSysfs(readPciSysfs(src));
}
