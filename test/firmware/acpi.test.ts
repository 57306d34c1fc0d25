import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acpiChecksum, checkAcpiHeader, finalizeAcpiTable } from '../../src/firmware/acpi.js';
import { isIommuError } from '../../src/base/errno.js';
import { fixture, header, table } from './build.js';

function einval(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isIommuError(e, 'EINVAL') && re.test(e.message) && e.input === 'in');
}

test('checkAcpiHeader decodes a real QEMU DMAR header', () => {
  const t = fixture('t13-DMAR.bin');
  assert.equal(acpiChecksum(t), 0);
  const h = checkAcpiHeader(t, 'DMAR', 'in');
  assert.equal(h.signature, 'DMAR');
  assert.equal(h.length, 184);
  assert.equal(h.revision, 1);
  assert.equal(h.oemId, 'BOCHS');
  assert.equal(h.oemTableId, 'BXPC');
  assert.equal(h.creatorId, 'BXPC');
});

test('checkAcpiHeader: truncated at every length, wrong signature, bad checksum', () => {
  const t = fixture('t13-DMAR.bin');
  for (let n = 0; n < t.length; n++) einval(() => checkAcpiHeader(t.subarray(0, n), 'DMAR', 'in'), /^in: DMAR: truncated table/);
  einval(() => checkAcpiHeader(t, 'IVRS', 'in'), /IVRS: wrong signature "DMAR" at offset 0x0/);
  const bad = Uint8Array.from(t);
  bad[100] = (bad[100]! + 1) & 0xff;
  einval(() => checkAcpiHeader(bad, 'DMAR', 'in'), /DMAR: bad checksum.*offset 0x9/);
  const short = Uint8Array.from(t);
  short[4] = 10; short[5] = 0;
  einval(() => checkAcpiHeader(short, 'DMAR', 'in'), /length field 0xa at offset 0x4/);
});

test('finalizeAcpiTable sets length and checksum; trailing bytes after length are ignored', () => {
  const t = table(header('TEST').raw([1, 2, 3]));
  assert.equal(t.length, 39);
  assert.equal(checkAcpiHeader(t, 'TEST', 'in').length, 39);
  const longer = new Uint8Array(50);
  longer.set(t);
  longer[45] = 7;
  assert.equal(checkAcpiHeader(longer, 'TEST', 'in').length, 39);
  assert.equal(acpiChecksum(finalizeAcpiTable(new Uint8Array(36))), 0);
});
