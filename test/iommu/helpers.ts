// Shared by the domain-layer tests: a booted IOMMU over a small synthetic topology.
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { bootIommu, type BootedIommu } from '../../src/machine/boot.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';
import type { Device } from '../../src/device/device.js';

const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** Root port 00:01.0 (ACS) → 01:00.0; root port 00:02.0 (no ACS) → 02:00.0 + 02:00.1 (one group); ISA bridge 00:1f.0. */
export function bootSmall(cmdline = 'intel_iommu=on', driver: 'intel' | 'amd' | 'arm-smmu-v3' = 'intel', extra: [string, FunctionSpec][] = []): BootedIommu & { dev: (bdf: string) => Device } {
  const fns: [string, FunctionSpec][] = [
    ['0000:00:01.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 1 }, acs: { cap: ACS, ctrl: ACS } }],
    ['0000:01:00.0', { pcieType: PcieType.ENDPOINT }],
    ['0000:00:02.0', { pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 2, subordinate: 2 } }],
    ['0000:02:00.0', { pcieType: PcieType.ENDPOINT, multifunction: true }],
    ['0000:02:00.1', { pcieType: PcieType.ENDPOINT, multifunction: true }],
    ['0000:00:1f.0', { classCode: 0x060100, vendor: 0x8086, device: 0x2918 }],
    ...extra,
  ];
  const m = machineFromTopology(buildPciTopology(fns.map(([bdf, s]) => ({ bdf, config: buildConfig(s), origin: 'synthetic' as const }))));
  const b = bootIommu(m, { cmdline, driver });
  return { ...b, dev: (bdf: string) => m.topology.byBdf.get(bdf)!.dev };
}
