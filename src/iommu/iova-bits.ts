/**
 * The bit helpers the IOVA allocator uses, on plain numbers (integers in
 * [0, 2^53)), with the results Linux's `unsigned long` versions give.
 *
 * Linux: fls_long() (include/linux/bitops.h), order_base_2() and
 * roundup_pow_of_two() (include/linux/log2.h).
 */

const TWO32 = 4294967296;

/**
 * Find last (most significant) set bit, 1-based; 0 for 0. E.g. flsLong(3) = 2,
 * flsLong(4) = 3. `x` must be an integer in [0, 2^53).
 * Linux: fls_long(), include/linux/bitops.h.
 */
export function flsLong(x: number): number {
  if (x < TWO32) return 32 - Math.clz32(x);
  return 64 - Math.clz32(Math.floor(x / TWO32));
}

/**
 * ceil(log2(n)): the order of the smallest power of two ≥ n; 0 for n ≤ 1.
 * E.g. orderBase2(1) = 0, orderBase2(3) = 2, orderBase2(32) = 5, orderBase2(33) = 6.
 * `n` must be an integer in [0, 2^53).
 * Linux: order_base_2(), include/linux/log2.h.
 */
export function orderBase2(n: number): number {
  return n <= 1 ? 0 : flsLong(n - 1);
}

/**
 * The smallest power of two ≥ n, for an integer n in [1, 2^52].
 * Linux: roundup_pow_of_two(), include/linux/log2.h.
 */
export function roundupPowOfTwo(n: number): number {
  return 2 ** orderBase2(n);
}

/**
 * `x & ~(align - 1)` for a power-of-two `align`, extended to negative `x`
 * (rounds toward −∞, so a negative `x` stays negative). The IOVA search uses
 * the negative case where Linux's unsigned subtraction wraps.
 * Linux: `(high_pfn - size) & align_mask` in __alloc_and_insert_iova_range(),
 * drivers/iommu/iova.c.
 */
export function alignDown(x: number, align: number): number {
  return align === 1 ? x : Math.floor(x / align) * align;
}
