import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acpiChecksum, checkAcpiHeader } from '../../src/firmware/acpi.js';
import { parseDmar } from '../../src/firmware/dmar.js';
import { ivhdCoverage, parseIvrs } from '../../src/firmware/ivrs.js';
import { iortMapId, parseIort } from '../../src/firmware/iort.js';
import { IommuError } from '../../src/base/errno.js';
import { fixture } from './build.js';

const parsers: Record<string, (b: Uint8Array) => unknown> = {
  DMAR: (b) => parseDmar(b, 'fuzz'),
  IVRS: (b) => { const t = parseIvrs(b, 'fuzz'); for (const h of t.ivhds) ivhdCoverage(h); return t; },
  IORT: (b) => { const t = parseIort(b, 'fuzz'); for (const n of t.nodes) iortMapId(t, n.offset, 0x1234); return t; },
};

/** Runs a parser; anything but success or an IommuError fails the property. */
function onlyIommuError(sig: string, b: Uint8Array): void {
  try {
    parsers[sig]!(b);
  } catch (e) {
    if (!(e instanceof IommuError)) throw e;
    assert.match(e.message, new RegExp(sig));
  }
}

/** Sets the signature, clamps the length field to the buffer and fixes the checksum, so fuzzing reaches the body. */
function valid(sig: string, b: Uint8Array, fixLength: boolean): Uint8Array {
  if (b.length < 36) return b;
  for (let i = 0; i < 4; i++) b[i] = sig.charCodeAt(i);
  if (fixLength) { b[4] = b.length & 0xff; b[5] = (b.length >> 8) & 0xff; b[6] = 0; b[7] = 0; }
  b[9] = 0;
  b[9] = (256 - acpiChecksum(b, Math.min(b.length, b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)))) & 0xff;
  return b;
}

test('fuzz: random bytes never throw anything but IommuError', () => {
  for (const sig of Object.keys(parsers)) {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (raw, fix) => {
      onlyIommuError(sig, raw);
      onlyIommuError(sig, valid(sig, Uint8Array.from(raw), fix));
      try { checkAcpiHeader(raw, sig, 'fuzz'); } catch (e) { if (!(e instanceof IommuError)) throw e; }
    }), { numRuns: 1500 });
  }
});

test('fuzz: mutations and truncations of the real tables never throw anything but IommuError', () => {
  const real: [string, Uint8Array][] = [
    ['DMAR', fixture('t13-DMAR.bin')], ['DMAR', fixture('t01-DMAR.bin')],
    ['IVRS', fixture('t12-IVRS.bin')], ['IVRS', fixture('t19-IVRS.bin')],
  ];
  for (const [sig, t] of real) {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(t.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(t.length), fc.boolean(),
      (muts, cut, fix) => {
        const b = Uint8Array.from(t);
        for (const [i, v] of muts) b[i] = v;
        onlyIommuError(sig, b.subarray(0, cut));
        onlyIommuError(sig, b);
        onlyIommuError(sig, valid(sig, Uint8Array.from(b.subarray(0, cut)), fix));
        onlyIommuError(sig, valid(sig, b, false));
      }), { numRuns: 2000 });
  }
});
