/**
 * `npm run bench`: speed of the project's hot paths, printed as one JSON
 * document on stdout: `{"results": [{"name": "group10k", "ms": 180, "devices": 10000}, …]}`.
 * Progress goes to stderr. Harness: tinybench.
 */
import { existsSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Bench } from 'tinybench';
import { machineFromSysfs, machineFromTopology } from '../src/machine/machine.js';
import { predictGroups } from '../src/machine/predict.js';
import { parseLspci } from '../src/pci/lspci.js';
import { syntheticTopology, type SyntheticFunction } from '../src/pci/synthetic.js';
import { buildPciTopology } from '../src/pci/topology.js';
import { DirSource, MemorySource } from '../src/sysfs/source.js';
import { readPciSysfs } from '../src/sysfs/pci-reader.js';
import { readFileSync } from 'node:fs';
import { Ida } from '../src/base/ida.js';
import { domainBenchResults } from './domain-bench.js';
import { ioPgtableBenchResults } from './io-pgtable-bench.js';
import { pasidAllocFreeBench } from './ioasid-bench.js';
import { hotplugVfBench } from './hotplug-bench.js';

interface Result {
  name: string;
  format?: string;
  ms?: number;
  ns_per_op?: number;
  ops?: number;
  devices?: number;
  /** tinybench samples (harnessed benchmarks only). */
  samples?: number;
  /** tinybench relative margin of error, percent (harnessed benchmarks only). */
  rme_percent?: number;
  /** Page-table memory of the map4k workload (bytes). */
  pgtable_bytes?: number;
  /** pasid_alloc_free: ns/op at several sizes, to show linear growth. */
  linearity?: unknown;
}

const DEVICES = 10_000;

/** Write the functions as a sysfs mirror (devices/…, bus/pci/devices links). */
function writeSysfsMirror(root: string, fns: readonly SyntheticFunction[]): void {
  mkdirSync(join(root, 'bus/pci/devices'), { recursive: true });
  for (const f of fns) {
    const dir = join(root, f.path);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config'), f.config);
    const c = f.config;
    writeFileSync(join(dir, 'vendor'), `0x${(c[0]! | (c[1]! << 8)).toString(16).padStart(4, '0')}\n`);
    writeFileSync(join(dir, 'device'), `0x${(c[2]! | (c[3]! << 8)).toString(16).padStart(4, '0')}\n`);
    writeFileSync(join(dir, 'class'), `0x${(c[9]! | (c[10]! << 8) | (c[11]! << 16)).toString(16).padStart(6, '0')}\n`);
    const link = join(root, 'bus/pci/devices', f.bdf);
    symlinkSync(relative(dirname(link), dir), link);
  }
}

function memoryMirror(fns: readonly SyntheticFunction[]): MemorySource {
  const src = new MemorySource('synthetic tree');
  for (const f of fns) {
    src.addFile(`${f.path}/config`, f.config);
    const c = f.config;
    src.addFile(`${f.path}/vendor`, `0x${(c[0]! | (c[1]! << 8)).toString(16).padStart(4, '0')}\n`);
    src.addFile(`${f.path}/device`, `0x${(c[2]! | (c[3]! << 8)).toString(16).padStart(4, '0')}\n`);
    src.addFile(`${f.path}/class`, `0x${(c[9]! | (c[10]! << 8) | (c[11]! << 16)).toString(16).padStart(6, '0')}\n`);
    src.addLink(`bus/pci/devices/${f.bdf}`, `../../../${f.path}`);
  }
  return src;
}

async function main(): Promise<void> {
  const fns = syntheticTopology(DEVICES, 42);
  // A sysfs tree lives in memory (kernfs): keep the mirror on tmpfs when there is one.
  const tmp = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'iommukit-bench-'));
  const results: Result[] = [];
  try {
    process.stderr.write(`writing a ${fns.length}-device sysfs mirror to ${tmp}…\n`);
    writeSysfsMirror(tmp, fns);
    const mem = memoryMirror(fns);
    const lspciText = readFileSync(new URL('../../test/fixtures/real-lspci/intel-xeon-skylake-sp-dell-r640-debian12-6.1/lspci-vvnn.txt', import.meta.url), 'utf8');
    let groups = 0;
    const bench = new Bench({ time: 3000, iterations: 5, warmup: true, warmupIterations: 1 });
    bench
      .add('group10k', () => {
        // Read a 10,000-device sysfs tree from disk, build the PCI tree, form the groups.
        const p = predictGroups(machineFromSysfs(readPciSysfs(new DirSource(tmp))));
        groups = p.groups.length;
      })
      .add('group10k_memory', () => {
        predictGroups(machineFromSysfs(readPciSysfs(mem)));
      })
      .add('group10k_model', () => {
        // Topology and grouping only (config spaces already in memory).
        predictGroups(machineFromTopology(buildPciTopology(fns)));
      })
      .add('lspci_parse_r640', () => {
        parseLspci(lspciText, 'r640');
      })
      .add('ida_1m', () => {
        // 2^20 ids allocated, every third freed and reallocated (the group and PASID id allocator).
        const ida = new Ida();
        for (let i = 0; i < 1 << 20; i++) ida.alloc();
        for (let i = 0; i < 1 << 20; i += 3) ida.free(i);
        for (let i = 0; i < 1 << 20; i += 3) ida.alloc();
      });
    await bench.run();
    for (const t of bench.tasks) {
      const r = t.result as unknown as { latency: { mean: number; rme: number; samplesCount?: number; samples?: number[] } } | undefined;
      if (!r || !('latency' in r)) throw new Error(`benchmark ${t.name} failed`);
      const samples = r.latency.samplesCount ?? r.latency.samples?.length ?? 0;
      const ms = Math.round(r.latency.mean * 100) / 100;
      const entry: Result = t.name.startsWith('group') ? { name: t.name, ms, devices: fns.length, samples, rme_percent: round2(r.latency.rme) } : { name: t.name, ms, samples, rme_percent: round2(r.latency.rme) };
      results.push(entry);
    }
    process.stderr.write(`${fns.length} devices → ${groups} groups\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.stderr.write('domain API workloads (one worker per page-table format)…\n');
  for (const r of await domainBenchResults()) results.push({ ...r });
  process.stderr.write('io-pgtable workloads…\n');
  for (const r of await ioPgtableBenchResults()) results.push({ ...r });
  process.stderr.write('PASID allocator…\n');
  const p = pasidAllocFreeBench();
  results.push({ name: p.name, ns_per_op: p.ns_per_op, ops: p.ops, linearity: p.linearity } as Result);
  process.stderr.write('hotplug: 10,000 SR-IOV VFs added and removed…\n');
  results.push({ ...hotplugVfBench() } as Result);
  process.stdout.write(JSON.stringify({ results }, null, 2) + '\n');
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
