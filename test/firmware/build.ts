// Helpers to build ACPI tables byte by byte for the firmware tests.
import { readFileSync } from 'node:fs';
import { finalizeAcpiTable } from '../../src/firmware/acpi.js';
import { FIXTURES } from '../fixtures.js';

/** Little-endian byte builder. */
export class Bytes {
  readonly b: number[] = [];
  u8(v: number): this { this.b.push(v & 0xff); return this; }
  u16(v: number): this { return this.u8(v).u8(v >>> 8); }
  u32(v: number): this { return this.u16(v & 0xffff).u16(v >>> 16); }
  u64(v: bigint): this { return this.u32(Number(v & 0xffffffffn)).u32(Number(v >> 32n)); }
  ascii(s: string, n: number): this { for (let i = 0; i < n; i++) this.u8(i < s.length ? s.charCodeAt(i) : 0x20); return this; }
  raw(a: number[]): this { this.b.push(...a); return this; }
  get length(): number { return this.b.length; }
}

/** A 36-byte ACPI header with the given signature (length/checksum fixed by {@link table}). */
export function header(sig: string): Bytes {
  return new Bytes().ascii(sig, 4).u32(0).u8(1).u8(0).ascii('TESTOE', 6).ascii('TESTTBL', 8).u32(1).ascii('TEST', 4).u32(1);
}

/** Finalizes length and checksum. */
export function table(b: Bytes): Uint8Array {
  return finalizeAcpiTable(Uint8Array.from(b.b));
}

/** A raw table copied from the oracle snapshots into test/fixtures/firmware/. */
export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(FIXTURES + 'firmware/' + name));
}

/** A copy of `good` with `patch` applied and the checksum byte (offset 9) recomputed — the length field is left as patched. */
export function patched(good: Uint8Array, patch: (b: Uint8Array) => void): Uint8Array {
  const b = Uint8Array.from(good);
  patch(b);
  b[9] = 0;
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  b[9] = (256 - s) & 0xff;
  return b;
}
