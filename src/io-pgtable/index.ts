/**
 * I/O page-table formats, and a factory over them.
 *
 * Linux: alloc_io_pgtable_ops(), drivers/iommu/io-pgtable.c.
 */
import { IommuError } from '../base/errno.js';
import type { PhysMem } from '../mem/phys-mem.js';
import { AmdV1Pgtable } from './amd-v1.js';
import { ArmLpaeS1Pgtable } from './arm-lpae.js';
import type { IoPgtable, IoPgtableFormat } from './io-pgtable.js';
import { VtdSlPgtable } from './vtd-sl.js';

export * from './io-pgtable.js';
export { AmdV1Pgtable } from './amd-v1.js';
export { ArmLpaeS1Pgtable } from './arm-lpae.js';
export { VtdSlPgtable } from './vtd-sl.js';

/** Every format the model implements, with the variants the conformance suite runs. */
export const IO_PGTABLE_VARIANTS: readonly { readonly name: string; readonly format: IoPgtableFormat; readonly levels?: number }[] = [
  { name: 'arm-lpae-s1', format: 'arm-lpae-s1' },
  { name: 'vtd-sl-4', format: 'vtd-sl', levels: 4 },
  { name: 'vtd-sl-5', format: 'vtd-sl', levels: 5 },
  { name: 'amd-v1', format: 'amd-v1' },
];

/**
 * Allocate a page table of `format` in `mem`.
 * @param levels VT-d: 4 (48-bit) or 5 (57-bit); AMD v1: the initial paging mode (1–6).
 * @throws IommuError EINVAL for an unknown format or bad levels; ENOMEM if the pool is full.
 * Linux: alloc_io_pgtable_ops(), drivers/iommu/io-pgtable.c.
 */
export function allocIoPgtable(format: IoPgtableFormat, mem: PhysMem, levels?: number): IoPgtable {
  switch (format) {
    case 'arm-lpae-s1':
      return new ArmLpaeS1Pgtable(mem);
    case 'vtd-sl':
      return new VtdSlPgtable(mem, { levels: levels ?? 4 });
    case 'amd-v1':
      return new AmdV1Pgtable(mem, levels !== undefined ? { levels } : {});
    default:
      throw new IommuError('EINVAL', `unknown I/O page-table format ${String(format)}`);
  }
}
