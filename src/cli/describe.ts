/**
 * How a PCI function is named in the output: lspci's `-nn` style, with names
 * from the source (lspci text) or the system's pci.ids when installed.
 */
import { formatClassName, formatVendorDevice, PciIds } from '../pci/pci-ids.js';
import type { PciDev } from '../pci/pci-dev.js';
import { hex } from '../pci/pci-dev.js';
import type { Machine } from '../machine/machine.js';

/** The system's pci.ids (null when none is installed or it is unreadable). */
export function systemPciIds(): PciIds | null {
  try {
    return PciIds.system();
  } catch {
    return null;
  }
}

/**
 * One line in `lspci -nn` style: `0000:00:1f.2 SATA controller [0106]: Intel Corporation … [8086:2922]`.
 * Names come from the lspci text the machine was read from, else from pci.ids,
 * else lspci's numeric fallbacks (`Class 0106`, `Device 8086:2922`).
 */
export function lspciLine(machine: Machine, pdev: PciDev): string {
  const f = machine.facts.get(pdev.bdf);
  const cls = hex(pdev.classCode >> 8, 4);
  const ids = `${hex(pdev.vendor, 4)}:${hex(pdev.device, 4)}`;
  if (f?.names) return `${pdev.bdf} ${f.names.className} [${cls}]: ${f.names.vendor} ${f.names.device} [${ids}]`;
  const db = systemPciIds();
  return `${pdev.bdf} ${formatClassName(db, pdev.classCode, 'mixed')}: ${formatVendorDevice(db, pdev.vendor, pdev.device, 'mixed')}`;
}
