/**
 * Issue-3 workloads through the domain API, for every page-table format:
 * map4k, walk, iotlb_hit, unmap4k, map2m, dma_map_unmap — reported as
 * ns_per_op. Plain performance.now() loops with a warm-up pass (a per-call
 * harness costs more than the operations measured).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createAmdIommu } from '../src/drivers/amd-vi/index.js';
import { createArmSmmuV3 } from '../src/drivers/arm-smmu-v3/index.js';
import { createIntelIommu } from '../src/drivers/intel-vt-d/index.js';
import { IOMMU_READ, IOMMU_WRITE } from '../src/io-pgtable/io-pgtable.js';
import { iommuAttachDevice, iommuPagingDomainAlloc } from '../src/iommu/attach.js';
import { IommuCore } from '../src/iommu/core.js';
import { dmaMapPage, dmaUnmapPage } from '../src/iommu/dma-iommu.js';
import { iommuIovaToPhys, iommuMap, iommuUnmap } from '../src/iommu/domain.js';
import type { IommuOps } from '../src/iommu/iommu-ops.js';
import { iommuTranslate } from '../src/iommu/translate.js';
import { buildConfig } from '../src/pci/config-builder.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../src/pci/regs.js';
import { mulberry32 } from '../src/pci/synthetic.js';
import { buildPciTopology } from '../src/pci/topology.js';

/** One result line. */
export interface DomainBenchResult {
  name: string;
  format: string;
  ns_per_op: number;
  ops: number;
  /** map4k: page-table memory (bytes) after mapping. */
  pgtable_bytes?: number;
}

const N4K = 262_144;
const N2M = 4096;
const RW = IOMMU_READ | IOMMU_WRITE;
const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

interface Setup {
  format: string;
  make: (core: IommuCore) => IommuOps;
  cmdline?: string;
}

const SETUPS: Setup[] = [
  { format: 'arm-lpae-s1', make: (c) => createArmSmmuV3(c).ops },
  { format: 'vtd-sl-4', make: (c) => createIntelIommu(c, { levels: 4 }).ops },
  { format: 'vtd-sl-5', make: (c) => createIntelIommu(c, { levels: 5 }).ops },
  { format: 'amd-v1', make: (c) => createAmdIommu(c).ops },
];

function time(ops: number, fn: () => void): number {
  const t0 = performance.now();
  fn();
  return ((performance.now() - t0) * 1e6) / ops;
}

function boot(setup: Setup, strict: boolean) {
  const core = new IommuCore({ strict });
  const topo = buildPciTopology([
    { bdf: '0000:00:01.0', config: buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 1 }, acs: { cap: ACS, ctrl: ACS } }), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic' },
  ]);
  // The core watches the bus; the driver's registration probes the devices (each by its own driver).
  core.watchBus(topo.pciBus);
  setup.make(core);
  return { core, dev: topo.byBdf.get('0000:01:00.0')!.dev };
}

/** Run every workload for one format (in this thread). */
export function domainBenchFormat(format: string): DomainBenchResult[] {
  const out: DomainBenchResult[] = [];
  for (const setup of SETUPS.filter((x) => x.format === format)) {
    const rnd = mulberry32(7);
    const pas = new Float64Array(N4K);
    for (let i = 0; i < N4K; i++) pas[i] = Math.floor(rnd() * 2 ** 24) * 4096; // random page-aligned PAs below 64 GiB
    const order = new Uint32Array(N4K);
    for (let i = 0; i < N4K; i++) order[i] = i;
    for (let i = N4K - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    const base = 0x1_0000_0000;
    let best: Record<string, number> = {};
    let pgBytes = 0;
    for (let round = 0; round < 3; round++) {
      const { core, dev } = boot(setup, true);
      const d = iommuPagingDomainAlloc(dev);
      iommuAttachDevice(core, d, dev);
      const r: Record<string, number> = {};
      const before = core.mem.tablePagesInUse;
      r['map4k'] = time(N4K, () => {
        for (let i = 0; i < N4K; i++) iommuMap(d, base + i * 4096, pas[i]!, 4096, RW);
      });
      pgBytes = (core.mem.tablePagesInUse - before) * 4096;
      let sink = 0;
      r['walk'] = time(N4K, () => {
        let acc = 0;
        for (let i = 0; i < N4K; i++) acc += iommuIovaToPhys(d, base + order[i]! * 4096);
        sink += acc;
      });
      // IOTLB hits: a hot set of 256 pages, already cached.
      const HOT = 256;
      const hot = new Float64Array(HOT);
      // 256 consecutive pages: all resident in a 512-entry, 4-way IOTLB (random pages would overflow some sets).
      for (let i = 0; i < HOT; i++) hot[i] = base + i * 4096 + 8;
      for (let i = 0; i < HOT; i++) iommuTranslate(core, dev, hot[i]!, IOMMU_READ);
      const iotlb = core.units[0]!.iotlb;
      const missesBefore = iotlb.stats().misses;
      const NHIT = 4_000_000;
      r['iotlb_hit'] = time(NHIT, () => {
        let acc = 0;
        for (let i = 0; i < NHIT; i++) acc += iommuTranslate(core, dev, hot[i & (HOT - 1)]!, IOMMU_READ);
        sink += acc;
      });
      if (iotlb.stats().misses !== missesBefore) throw new Error('iotlb_hit: the hot set missed in the IOTLB');
      r['unmap4k'] = time(N4K, () => {
        for (let i = 0; i < N4K; i++) iommuUnmap(d, base + i * 4096, 4096);
      });
      r['map2m'] = time(N2M, () => {
        for (let i = 0; i < N2M; i++) iommuMap(d, 0x100_0000_0000 + i * 0x200000, (i % 8192) * 0x200000, 0x200000, RW);
      });
      if (sink === 0.5) console.error(sink);
      // DMA API: map+unmap of a 4 KiB buffer on the device's default domain (strict: IOTLB invalidated each time).
      const dm = boot(setup, true);
      const ND = 100_000;
      for (let i = 0; i < 1000; i++) dmaUnmapPage(dm.core, dm.dev, dmaMapPage(dm.core, dm.dev, 0x4000_0000, 4096), 4096);
      r['dma_map_unmap'] = time(ND, () => {
        for (let i = 0; i < ND; i++) dmaUnmapPage(dm.core, dm.dev, dmaMapPage(dm.core, dm.dev, 0x4000_0000 + (i & 255) * 4096, 4096), 4096);
      });
      for (const k of Object.keys(r)) best[k] = Math.min(best[k] ?? Infinity, r[k]!);
    }
    const ops: Record<string, number> = { map4k: N4K, walk: N4K, iotlb_hit: 4_000_000, unmap4k: N4K, map2m: N2M, dma_map_unmap: 100_000 };
    for (const [name, ns] of Object.entries(best)) {
      const e: DomainBenchResult = { name, format: setup.format, ns_per_op: Math.round(ns * 10) / 10, ops: ops[name]! };
      if (name === 'map4k') e.pgtable_bytes = pgBytes;
      out.push(e);
    }
    best = {};
  }
  return out;
}

/** Formats benchmarked. */
export const DOMAIN_BENCH_FORMATS = SETUPS.map((x) => x.format);

/**
 * Run every format, each in its own worker thread, so that no call site sees
 * more than one page-table class (as in a VMM, which uses one format).
 */
export async function domainBenchResults(): Promise<DomainBenchResult[]> {
  const out: DomainBenchResult[] = [];
  for (const format of DOMAIN_BENCH_FORMATS) {
    const res = await new Promise<DomainBenchResult[]>((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { format } });
      w.once('message', (m: DomainBenchResult[]) => resolve(m));
      w.once('error', reject);
      w.once('exit', (code) => {
        if (code !== 0) reject(new Error(`benchmark worker for ${format} exited with ${code}`));
      });
    });
    out.push(...res);
  }
  return out;
}

if (!isMainThread && (workerData as { format?: string } | null)?.format) {
  parentPort!.postMessage(domainBenchFormat((workerData as { format: string }).format));
}
