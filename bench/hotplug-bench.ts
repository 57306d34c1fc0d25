/**
 * Hotplug workload: one SR-IOV PF below an ACS root port on a booted VT-d
 * model; enable 10,000 VFs (each goes through the bus notifier: probe, its own
 * IOMMU group, a DMA-FQ default domain with its page table, attach), then
 * disable them (release, group and domain freed). One warm-up cycle, then
 * timed cycles with performance.now(); reported as the mean per phase (ms) and
 * per VF (ns), with the spread.
 */
import { bootIommu } from '../src/machine/boot.js';
import { machineFromTopology } from '../src/machine/machine.js';
import { buildConfig } from '../src/pci/config-builder.js';
import { buildPciTopology } from '../src/pci/topology.js';
import { pciDisableSriov, pciEnableSriov } from '../src/pci/sriov.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../src/pci/regs.js';

/** Result of {@link hotplugVfBench}. */
export interface HotplugVfBenchResult {
  name: 'vf_add_remove_10k';
  /** VFs added and removed per cycle. */
  devices: number;
  /** Timed cycles. */
  cycles: number;
  /** Mean ms to enable all VFs (probe, group, default domain). */
  add_ms: number;
  /** Mean ms to disable all VFs (release, free). */
  remove_ms: number;
  /** Mean ms of a whole cycle. */
  ms: number;
  /** Mean ns per VF added and removed. */
  ns_per_op: number;
  /** Slowest over fastest whole cycle. */
  max_over_min: number;
  /** IOMMU groups while the VFs are enabled. */
  groups: number;
  /** Page-table pages allocated while the VFs are enabled (4 KiB each). */
  table_pages: number;
}

const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** Add and remove `n` VFs (default 10,000) `cycles` times (default 5) after one warm-up cycle. */
export function hotplugVfBench(n = 10_000, cycles = 5): HotplugVfBenchResult {
  const topo = buildPciTopology([
    { bdf: '0000:00:01.0', config: buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 0x40 }, acs: { cap: ACS, ctrl: ACS } }), origin: 'synthetic' },
    {
      bdf: '0000:01:00.0',
      config: buildConfig({ pcieType: PcieType.ENDPOINT, vendor: 0x8086, device: 0x1592, sriov: { totalVfs: n, firstVfOffset: 1, vfStride: 1, vfDevice: 0x1889 } }),
      origin: 'synthetic',
    },
  ]);
  const { core } = bootIommu(machineFromTopology(topo), { cmdline: 'intel_iommu=on', driver: 'intel' });
  const pf = topo.byBdf.get('0000:01:00.0')!;
  const baseGroups = core.groups.count;
  let groups = 0;
  let pages = 0;
  const cycle = (): [number, number] => {
    const t0 = performance.now();
    const vfs = pciEnableSriov(topo, pf, n);
    const t1 = performance.now();
    groups = core.groups.count;
    pages = core.mem.tablePagesInUse;
    if (vfs.length !== n || groups !== baseGroups + n) throw new Error(`hotplug bench: expected ${n} VF groups, got ${groups - baseGroups}`);
    pciDisableSriov(topo, pf);
    const t2 = performance.now();
    if (core.groups.count !== baseGroups) throw new Error('hotplug bench: groups leaked');
    return [t1 - t0, t2 - t1];
  };
  cycle(); // warm-up
  const adds: number[] = [];
  const removes: number[] = [];
  for (let i = 0; i < cycles; i++) {
    const [a, r] = cycle();
    adds.push(a);
    removes.push(r);
  }
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  const totals = adds.map((a, i) => a + removes[i]!);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    name: 'vf_add_remove_10k',
    devices: n,
    cycles,
    add_ms: r2(mean(adds)),
    remove_ms: r2(mean(removes)),
    ms: r2(mean(totals)),
    ns_per_op: Math.round((mean(totals) * 1e6) / n),
    max_over_min: r2(Math.max(...totals) / Math.min(...totals)),
    groups,
    table_pages: pages,
  };
}
