/**
 * PASID allocator workload (spec §6.3): allocate every id of one set whose
 * quota is the whole capacity (lowest free each time), free them all in a
 * random order, then allocate them all again. Plain performance.now() loops
 * after a warm-up pass; reported in ns per operation. Run for capacities
 * 2^16 - 1, 2^18 - 1 and 2^20 - 1 to show linear (constant ns/op) growth.
 */
import { IoasidAllocator } from '../src/iommu/ioasid.js';
import { mulberry32 } from '../src/pci/synthetic.js';

/** ns/op of one size in {@link pasidAllocFreeBench}'s `linearity`. */
export interface IoasidLinearityPoint {
  /** Capacity (ids 1 … n). */
  n: number;
  /** Operations timed (3 n). */
  ops: number;
  ns_per_op: number;
}

/** Result of {@link pasidAllocFreeBench}. */
export interface PasidAllocFreeBenchResult {
  name: 'pasid_alloc_free';
  /** ns per operation at 2^20 - 1 ids (best of the timed runs). */
  ns_per_op: number;
  /** 3 × (2^20 - 1). */
  ops: number;
  /** ns/op at 2^16 - 1, 2^18 - 1 and 2^20 - 1 ids, and max/min ratio (≈ 1 when linear). */
  linearity: { points: IoasidLinearityPoint[]; max_over_min: number };
}

/** One alloc-all / free-random / alloc-all run on a fresh allocator; returns elapsed ms. */
function runOnce(n: number, order: Uint32Array): number {
  const a = new IoasidAllocator({ capacity: n });
  const set = a.allocSet(null, n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) a.alloc(set, 1, n);
  for (let i = 0; i < n; i++) a.free(set, order[i]!);
  for (let i = 0; i < n; i++) a.alloc(set, 1, n);
  const t1 = performance.now();
  if (set.count !== n) throw new Error(`ioasid bench: expected ${n} ids, got ${set.count}`);
  return t1 - t0;
}

function shuffled(n: number, seed: number): Uint32Array {
  const rnd = mulberry32(seed);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i + 1;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

function measure(n: number, runs: number): IoasidLinearityPoint {
  const order = shuffled(n, 0x10a51d + n);
  runOnce(n, order); // warm-up
  let best = Infinity;
  for (let r = 0; r < runs; r++) best = Math.min(best, runOnce(n, order));
  const ops = 3 * n;
  return { n, ops, ns_per_op: (best * 1e6) / ops };
}

/**
 * The pasid_alloc_free benchmark: 3 × (2^20 - 1) operations on one set,
 * plus the same workload at 2^16 - 1 and 2^18 - 1 ids for linearity.
 * Linux: ioasid_alloc() / ioasid_free(), drivers/iommu/ioasid.c (workload only).
 */
export function pasidAllocFreeBench(): PasidAllocFreeBenchResult {
  const points = [16, 18, 20].map((b) => measure(2 ** b - 1, b === 20 ? 3 : 5));
  const nsList = points.map((p) => p.ns_per_op);
  const big = points[points.length - 1]!;
  return {
    name: 'pasid_alloc_free',
    ns_per_op: big.ns_per_op,
    ops: big.ops,
    linearity: { points, max_over_min: Math.max(...nsList) / Math.min(...nsList) },
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) console.log(JSON.stringify(pasidAllocFreeBench(), null, 2));
