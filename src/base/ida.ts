/**
 * An ID allocator handing out the smallest free non-negative integer.
 *
 * Storage is a bitmap, one bit per id (bit set = id allocated), in a
 * growable `Uint32Array`, plus summary levels: bit `j` of level `k + 1` is set
 * when 32-bit word `j` of level `k` is full. Finding the first free id at or
 * above `min` is a word-level find-first-zero that climbs the summary levels
 * to skip full words, so it costs O(levels) word operations rather than
 * O(ids). There are no per-id objects; memory is about 1 bit per id up to the
 * highest id ever allocated (the array grows by doubling and never shrinks,
 * e.g. 128 KiB for 2^20 ids).
 *
 * Linux: struct ida, ida_alloc_range(), ida_alloc(), ida_free(),
 * include/linux/idr.h, lib/idr.c. (Linux keeps 1024-bit chunks in an xarray;
 * the allocation results — always the smallest free id in range — are the same.)
 */
import { IommuError } from './errno.js';

/** Largest id an IDA hands out: INT_MAX (2^31 - 1). Linux: ida_alloc_range() clamps `max` to INT_MAX. */
export const IDA_MAX = 0x7fffffff;

const FULL = 0xffffffff;

/** Index of the lowest set bit of a non-zero 32-bit value. */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** An ID allocator: smallest free id first, ids reusable after {@link Ida.free}. */
export class Ida {
  /** levels[0]: one bit per id; levels[k + 1]: bit j set iff word j of levels[k] is full. The top level is one word. */
  private levels: Uint32Array[] = [new Uint32Array(1)];
  private allocated = 0;

  /**
   * Allocate the smallest free id in `[min, max]` (both inclusive).
   *
   * @param min lowest acceptable id (default 0).
   * @param max highest acceptable id (default and upper clamp {@link IDA_MAX}
   *   = 2^31 - 1; a negative `max`, i.e. a huge `unsigned int` in C, also
   *   means INT_MAX, as in Linux).
   * @returns the id, now allocated.
   * @throws IommuError ENOSPC if `min` is negative (Linux: `(int)min < 0`),
   *   `min > max`, or every id in the range is taken; EINVAL if `min` or `max`
   *   is not an integer. Nothing is allocated on failure.
   * Linux: ida_alloc_range(), lib/idr.c (ida_alloc() is `alloc()`).
   */
  alloc(min = 0, max = IDA_MAX): number {
    if (!Number.isInteger(min) || !Number.isInteger(max)) {
      throw new IommuError('EINVAL', `ida_alloc_range: min (${min}) and max (${max}) must be integers`);
    }
    if (min < 0) throw new IommuError('ENOSPC', `ida_alloc_range: negative min ${min}`);
    if (max < 0 || max > IDA_MAX) max = IDA_MAX;
    if (min > max) throw new IommuError('ENOSPC', `ida_alloc_range: empty range [${min}, ${max}]`);
    const id = this.nextZero(0, min);
    if (id > max) throw new IommuError('ENOSPC', `ida_alloc_range: no free id in [${min}, ${max}]`);
    this.setBit(id);
    return id;
  }

  /**
   * Free an allocated id; it becomes the smallest free id again if it is below the others.
   * @throws IommuError EINVAL if `id` is not currently allocated (Linux WARNs
   *   "ida_free called for id=%d which is not allocated." and ignores it; a
   *   negative id is a BUG_ON). Nothing changes on failure.
   * Linux: ida_free(), lib/idr.c.
   */
  free(id: number): void {
    if (!this.has(id)) throw new IommuError('EINVAL', `ida_free called for id=${id} which is not allocated`);
    let level = 0;
    let i = id;
    for (;;) {
      const arr = this.levels[level]!;
      const wi = Math.floor(i / 32);
      const wasFull = arr[wi] === FULL;
      arr[wi] = arr[wi]! & ~(1 << (i & 31));
      if (!wasFull || level + 1 >= this.levels.length) break;
      i = wi;
      level++;
    }
    this.allocated--;
  }

  /** True if `id` is currently allocated (false for anything that is not a non-negative integer). */
  has(id: number): boolean {
    if (!Number.isInteger(id) || id < 0) return false;
    const arr = this.levels[0]!;
    const wi = Math.floor(id / 32);
    if (wi >= arr.length) return false;
    return (arr[wi]! & (1 << (id & 31))) !== 0;
  }

  /** Number of ids currently allocated. */
  get count(): number {
    return this.allocated;
  }

  /** First index >= pos whose bit is clear at `level` (bits past the array are clear). */
  private nextZero(level: number, pos: number): number {
    const arr = this.levels[level]!;
    const wi = Math.floor(pos / 32);
    if (wi >= arr.length) return pos;
    const m = ~arr[wi]! & (FULL << (pos & 31));
    if (m !== 0) return wi * 32 + ctz(m);
    // Word wi is full from pos on: find the next word that is not full.
    let nw: number;
    if (level + 1 < this.levels.length) {
      nw = this.nextZero(level + 1, wi + 1);
    } else {
      nw = wi + 1;
      while (nw < arr.length && arr[nw] === FULL) nw++;
    }
    if (nw >= arr.length) return nw * 32;
    return nw * 32 + ctz(~arr[nw]!);
  }

  private setBit(id: number): void {
    this.ensureCapacity(id);
    let level = 0;
    let i = id;
    for (;;) {
      const arr = this.levels[level]!;
      const wi = Math.floor(i / 32);
      arr[wi] = arr[wi]! | (1 << (i & 31));
      if (arr[wi] !== FULL || level + 1 >= this.levels.length) break;
      i = wi;
      level++;
    }
    this.allocated++;
  }

  /** Grow level 0 (by doubling) to hold `id`, and rebuild the summary levels. */
  private ensureCapacity(id: number): void {
    const need = Math.floor(id / 32) + 1;
    const old = this.levels[0]!;
    if (need <= old.length) return;
    let len = old.length;
    while (len < need) len *= 2;
    const base = new Uint32Array(len);
    base.set(old);
    const levels = [base];
    let cur = base;
    while (cur.length > 1) {
      const up = new Uint32Array(Math.ceil(cur.length / 32));
      for (let j = 0; j < cur.length; j++) {
        if (cur[j] === FULL) up[j >>> 5] = up[j >>> 5]! | (1 << (j & 31));
      }
      levels.push(up);
      cur = up;
    }
    this.levels = levels;
  }
}
