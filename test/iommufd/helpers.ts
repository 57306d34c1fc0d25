// Shared by the iommufd and VFIO tests: a booted VT-d machine with a NIC alone in its group and a two-function group.
import { IommuError } from '../../src/base/errno.js';
import type { Device } from '../../src/device/device.js';
import { bootIommu, type BootedIommu } from '../../src/machine/boot.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import type { IommuGroup } from '../../src/iommu/group.js';

const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** An assertion predicate: an IommuError with this errno. */
export const errno = (name: string) => (e: unknown) => {
  if (e instanceof IommuError && e.errno === name) return true;
  throw new Error(`expected ${name}, got ${e instanceof IommuError ? e.errno : String(e)}: ${(e as Error)?.message}`);
};

/** The NIC: Intel 82574L (e1000e), 8086:10d3. */
export const NIC = '0000:01:00.0';
/** Two functions sharing a group (with their root port 00:02.0, which has no ACS). */
export const A = '0000:02:00.0';
export const B = '0000:02:00.1';

/**
 * Root port 00:01.0 (ACS) → 01:00.0 e1000e NIC (alone in its group);
 * root port 00:02.0 (no ACS) → 02:00.0 + 02:00.1 (one group with the port);
 * ISA bridge 00:1f.0.
 */
export function bootNic(cmdline = 'intel_iommu=on iommu.strict=1', extra: [string, FunctionSpec][] = []): BootedIommu & { dev: (bdf: string) => Device; group: (bdf: string) => IommuGroup } {
  const fns: [string, FunctionSpec][] = [
    ['0000:00:01.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 1 }, acs: { cap: ACS, ctrl: ACS } }],
    [NIC, { pcieType: PcieType.ENDPOINT, vendor: 0x8086, device: 0x10d3, classCode: 0x020000 }],
    ['0000:00:02.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 2, subordinate: 2 } }],
    [A, { pcieType: PcieType.ENDPOINT, multifunction: true }],
    [B, { pcieType: PcieType.ENDPOINT, multifunction: true }],
    ['0000:00:1f.0', { classCode: 0x060100, vendor: 0x8086, device: 0x2918 }],
    ...extra,
  ];
  const m = machineFromTopology(buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const }))));
  const b = bootIommu(m, { cmdline, driver: 'intel' });
  const dev = (bdf: string): Device => m.topology.byBdf.get(bdf)!.dev;
  const group = (bdf: string): IommuGroup => {
    const g = b.core.groups.get(dev(bdf))!;
    b.core.groups.put(g);
    return g;
  };
  return { ...b, dev, group };
}

export const K4 = 0x1000;
export const M2 = 0x20_0000;
export const G1 = 0x4000_0000;
