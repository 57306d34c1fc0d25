/**
 * io-pgtable micro-benchmarks: the cost of one map/unmap/lookup at the page
 * table level, for every format variant in IO_PGTABLE_VARIANTS.
 *
 * - `pgtable_map4k`: 262,144 distinct 4 KiB pages at consecutive IOVAs
 *   (1 GiB), random page-aligned physical addresses, one mapPages call each;
 * - `pgtable_walk`: iovaToPhys of those pages in random order;
 * - `pgtable_unmap4k`: unmapPages of those pages one by one, in order;
 * - `pgtable_map2m`: 4,096 2 MiB blocks (8 GiB) at consecutive IOVAs, random
 *   2 MiB-aligned physical addresses, one call each.
 *
 * Harness: plain performance.now() loops (tinybench's per-call overhead is
 * larger than a 20 ns operation). Each variant runs in its own worker thread,
 * so its call sites are compiled for that one class, as a domain's are (one
 * thread mixing formats would measure polymorphic dispatch). It runs WARMUP
 * untimed rounds, then ROUNDS timed ones on the same PhysMem (table pages are
 * recycled through its free list, as a long-running kernel's are), and
 * reports the median round. Inputs come from a fixed-seed xorshift generator and are
 * precomputed into typed arrays, so the timed loops only call the page table.
 *
 * Run alone: `node dist/bench/io-pgtable-bench.js` prints the results as JSON.
 * Linux: the operations behind iommu_map()/iommu_unmap()/iommu_iova_to_phys()
 * (io_pgtable_ops.map_pages/unmap_pages/iova_to_phys).
 */
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { IO_PGTABLE_VARIANTS, allocIoPgtable } from '../src/io-pgtable/index.js';
import { IOMMU_READ, IOMMU_WRITE, type IoPgtable } from '../src/io-pgtable/io-pgtable.js';
import { PhysMem } from '../src/mem/phys-mem.js';

/**
 * One benchmark result, in the shape bench/bench.ts reports (`name`, `ns_per_op`, `ops`) plus the variant.
 * Linux: no counterpart (a measurement of the io_pgtable_ops calls).
 */
export interface IoPgtableBenchResult {
  /** Benchmark name: pgtable_map4k, pgtable_walk, pgtable_unmap4k, pgtable_map2m. */
  name: string;
  /** The variant measured (IO_PGTABLE_VARIANTS[].name, e.g. "vtd-sl-5"). */
  format: string;
  /** Median nanoseconds per operation over the timed rounds. */
  ns_per_op: number;
  /** Operations per round. */
  ops: number;
}

const N4K = 262_144;
const N2M = 4_096;
const SZ_4K = 0x1000;
const SZ_2M = 0x200000;
const IOVA_BASE = 2 ** 32; // 1 GiB-aligned, inside every format's input range
const RW = IOMMU_READ | IOMMU_WRITE;
const WARMUP = 3;
const ROUNDS = 7;

/** xorshift32: deterministic inputs. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

interface Inputs {
  phys4k: Float64Array;
  order: Float64Array;
  phys2m: Float64Array;
}

function makeInputs(): Inputs {
  const r = rng(0x1234567);
  const phys4k = new Float64Array(N4K);
  // Random 4K-aligned physical pages below 2^40 (2^28 page frames), never 0.
  for (let i = 0; i < N4K; i++) phys4k[i] = (((r() & 0x0fff_ffff) >>> 0) + 1) * SZ_4K;
  const order = new Float64Array(N4K);
  for (let i = 0; i < N4K; i++) order[i] = IOVA_BASE + i * SZ_4K;
  for (let i = N4K - 1; i > 0; i--) {
    const j = r() % (i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const phys2m = new Float64Array(N2M);
  for (let i = 0; i < N2M; i++) phys2m[i] = ((r() & 0x7ffff) + 1) * SZ_2M; // below 2^40
  return { phys4k, order, phys2m };
}

function map4k(pt: IoPgtable, phys: Float64Array): number {
  let bytes = 0;
  for (let i = 0; i < N4K; i++) bytes += pt.mapPages(IOVA_BASE + i * SZ_4K, phys[i]!, SZ_4K, 1, RW);
  return bytes;
}

function walkAll(pt: IoPgtable, order: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < N4K; i++) sum += pt.iovaToPhys(order[i]!);
  return sum;
}

function unmap4k(pt: IoPgtable): number {
  let bytes = 0;
  for (let i = 0; i < N4K; i++) bytes += pt.unmapPages(IOVA_BASE + i * SZ_4K, SZ_4K, 1);
  return bytes;
}

function map2m(pt: IoPgtable, phys: Float64Array): number {
  let bytes = 0;
  for (let i = 0; i < N2M; i++) bytes += pt.mapPages(IOVA_BASE + i * SZ_2M, phys[i]!, SZ_2M, 1, RW);
  return bytes;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function check(what: string, got: number, want: number): void {
  if (got !== want) throw new Error(`${what}: got ${got}, expected ${want}`);
}

/** Measure one variant (in the current thread). */
function benchVariant(v: (typeof IO_PGTABLE_VARIANTS)[number]): IoPgtableBenchResult[] {
  const inputs = makeInputs();
  let expectSum = 0;
  for (let i = 0; i < N4K; i++) expectSum += inputs.phys4k[i]!; // multiples of 4K below 2^58: exact
  const mem = new PhysMem();
  const t = { map: [] as number[], walk: [] as number[], unmap: [] as number[], map2m: [] as number[] };
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const timed = round >= WARMUP;
    const pt = allocIoPgtable(v.format, mem, v.levels);
    let t0 = performance.now();
    check(`${v.name} map4k`, map4k(pt, inputs.phys4k), N4K * SZ_4K);
    let t1 = performance.now();
    if (timed) t.map.push(t1 - t0);
    t0 = performance.now();
    // Every lookup is at offset 0 of its page, so the sum of the results is the sum of the physical addresses.
    check(`${v.name} walk`, walkAll(pt, inputs.order), expectSum);
    t1 = performance.now();
    if (timed) t.walk.push(t1 - t0);
    t0 = performance.now();
    check(`${v.name} unmap4k`, unmap4k(pt), N4K * SZ_4K);
    t1 = performance.now();
    if (timed) t.unmap.push(t1 - t0);
    t0 = performance.now();
    check(`${v.name} map2m`, map2m(pt, inputs.phys2m), N2M * SZ_2M);
    t1 = performance.now();
    if (timed) t.map2m.push(t1 - t0);
    pt.free();
    check(`${v.name} tables freed`, mem.tablePagesInUse, 0);
  }
  const ns = (ms: number[], ops: number): number => Math.round(((median(ms) * 1e6) / ops) * 10) / 10;
  return [
    { name: 'pgtable_map4k', format: v.name, ns_per_op: ns(t.map, N4K), ops: N4K },
    { name: 'pgtable_walk', format: v.name, ns_per_op: ns(t.walk, N4K), ops: N4K },
    { name: 'pgtable_unmap4k', format: v.name, ns_per_op: ns(t.unmap, N4K), ops: N4K },
    { name: 'pgtable_map2m', format: v.name, ns_per_op: ns(t.map2m, N2M), ops: N2M },
  ];
}

const WORKER_TAG = 'iommukit:io-pgtable-bench';

function benchInWorker(variant: string): Promise<IoPgtableBenchResult[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { tag: WORKER_TAG, variant } });
    let done = false;
    w.once('message', (r: IoPgtableBenchResult[]) => {
      done = true;
      resolve(r);
    });
    w.once('error', reject);
    w.once('exit', (code) => {
      if (!done) reject(new Error(`io-pgtable bench worker for ${variant} exited with code ${code}`));
    });
  });
}

/**
 * Run the io-pgtable benchmarks over every variant in IO_PGTABLE_VARIANTS,
 * one worker thread per variant, one after the other.
 * Linux: the page-table half of iommu_map()/iommu_unmap()/iommu_iova_to_phys().
 */
export async function ioPgtableBenchResults(): Promise<IoPgtableBenchResult[]> {
  const results: IoPgtableBenchResult[] = [];
  for (const v of IO_PGTABLE_VARIANTS) results.push(...(await benchInWorker(v.name)));
  return results;
}

const wd = workerData as { tag?: string; variant?: string } | null;
if (!isMainThread && wd?.tag === WORKER_TAG) {
  const v = IO_PGTABLE_VARIANTS.find((x) => x.name === wd.variant);
  if (v === undefined) throw new Error(`unknown io-pgtable variant ${String(wd.variant)}`);
  parentPort!.postMessage(benchVariant(v));
} else if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await ioPgtableBenchResults();
  process.stdout.write(`${JSON.stringify({ results }, null, 1)}\n`);
}
