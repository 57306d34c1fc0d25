/**
 * Runs the io-pgtable conformance suite (conformance.ts) over every format
 * variant the model implements.
 */
import { IO_PGTABLE_VARIANTS } from '../../src/io-pgtable/index.js';
import { runConformance } from './conformance.js';

for (const variant of IO_PGTABLE_VARIANTS) runConformance(variant);
