import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDmar, resolveDmarScope } from '../../src/firmware/dmar.js';
import { isIommuError } from '../../src/base/errno.js';
import { Bytes, fixture, header, table, patched } from './build.js';

const einval = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => isIommuError(e, 'EINVAL') && /DMAR/.test(e.message) && re.test(e.message));

test('real QEMU DMAR (t13): header, DRHD at 0xfed90000, scopes', () => {
  const d = parseDmar(fixture('t13-DMAR.bin'), 't13/DMAR');
  assert.equal(d.hostAddressWidth, 39);
  assert.equal(d.flags.intrRemap, true);
  assert.equal(d.drhds.length, 1);
  const u = d.drhds[0]!;
  assert.equal(u.registerBase, 0xfed90000n);
  assert.equal(u.segment, 0);
  // QEMU lists the devices explicitly instead of setting INCLUDE_PCI_ALL.
  assert.equal(u.includePciAll, false);
  assert.deepEqual(u.scopes[0], { type: 3, kind: 'ioapic', enumerationId: 0, startBus: 0xff, path: [{ device: 0, function: 0 }], offset: 0x40 });
  assert.equal(u.scopes.length, 15);
  assert.ok(u.scopes.some((s) => s.kind === 'pci-bridge' && s.path[0]!.device === 2 && s.path[0]!.function === 1));
  assert.deepEqual(d.notes, []);
  assert.equal(parseDmar(fixture('t01-DMAR.bin'), 't01/DMAR').drhds[0]!.registerBase, 0xfed90000n);
});

function handDmar(): Uint8Array {
  const b = header('DMAR').u8(38).u8(0x05).raw(new Array(10).fill(0));
  // DRHD: INCLUDE_PCI_ALL, segment 1, base 0xfed91000, one endpoint scope with a 2-element path.
  b.u16(0).u16(26).u8(1).u8(0).u16(1).u64(0xfed91000n);
  b.u8(1).u8(10).u16(0).u8(7).u8(0).u8(0x1c).u8(0).u8(0).u8(2);
  // RMRR: segment 0, base 0x7b800000, limit 0x7b9fffff, one endpoint scope 00:14.0.
  b.u16(1).u16(32).u16(0).u16(0).u64(0x7b800000n).u64(0x7b9fffffn);
  b.u8(1).u8(8).u16(0).u8(0).u8(0).u8(0x14).u8(0);
  // Unknown type 9.
  b.u16(9).u16(4);
  return table(b);
}

test('hand-built DMAR (VT-d §8.1/§8.3/§8.4): every field', () => {
  const d = parseDmar(handDmar(), 'hand');
  assert.equal(d.hostAddressWidth, 39);
  assert.deepEqual(d.flags, { raw: 5, intrRemap: true, x2apicOptOut: false, dmaCtrlPlatformOptIn: true });
  assert.deepEqual(d.drhds, [{
    index: 0, includePciAll: true, flags: 1, size: 0, segment: 1, registerBase: 0xfed91000n, offset: 48,
    scopes: [{ type: 1, kind: 'pci-endpoint', enumerationId: 7, startBus: 0, path: [{ device: 0x1c, function: 0 }, { device: 0, function: 2 }], offset: 64 }],
  }]);
  assert.deepEqual(d.rmrrs, [{
    segment: 0, base: 0x7b800000n, limit: 0x7b9fffffn, offset: 74,
    scopes: [{ type: 1, kind: 'pci-endpoint', enumerationId: 0, startBus: 0, path: [{ device: 0x14, function: 0 }], offset: 98 }],
  }]);
  assert.equal(d.notes.length, 1);
  assert.match(d.notes[0]!, /unknown remapping structure type 9 at offset 0x6a/);
  // Path walk: 00:1c.0 is a bridge with secondary bus 3 → device 03:00.2.
  const r = resolveDmarScope(d.drhds[0]!.scopes[0]!, (bus, dev, fn) => (bus === 0 && dev === 0x1c && fn === 0 ? 3 : undefined));
  assert.deepEqual(r, { bus: 3, device: 0, function: 2, devfn: 2, rid: 0x302 });
  assert.equal(resolveDmarScope(d.drhds[0]!.scopes[0]!, () => undefined), undefined);
  assert.deepEqual(resolveDmarScope(d.rmrrs[0]!.scopes[0]!, () => undefined)?.rid, 0xa0);
});

test('DMAR errors: overrun, zero length, bad scope, truncation', () => {
  const good = handDmar();
  for (let n = 0; n < good.length; n++) einval(() => parseDmar(good.subarray(0, n), 'x'), /truncated/);
  const mk = (patch: (b: Uint8Array) => void): Uint8Array => patched(good, patch);
  einval(() => parseDmar(mk((b) => { b[50] = 0xff; }), 'x'), /type 0 at offset 0x30 \(length 255\) runs past the end of the table/);
  einval(() => parseDmar(mk((b) => { b[50] = 0; }), 'x'), /offset 0x30 has invalid length 0/);
  einval(() => parseDmar(mk((b) => { b[50] = 8; }), 'x'), /DRHD at offset 0x30 has length 8/);
  einval(() => parseDmar(mk((b) => { b[65] = 0; }), 'x'), /device scope at offset 0x40 has length 0/);
  einval(() => parseDmar(mk((b) => { b[65] = 20; }), 'x'), /runs past the end of its structure/);
  einval(() => parseDmar(mk((b) => { b[65] = 9; }), 'x'), /device scope at offset 0x40 has length 9/);
  einval(() => parseDmar(table(header('DMAR').u8(38)), 'x'), /DMAR header/);
});
