import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tar from 'tar';
import { ivhdCoverage, parseIvrs } from '../../src/firmware/ivrs.js';
import { isIommuError } from '../../src/base/errno.js';
import { FIXTURES } from '../fixtures.js';
import { fixture, header, table, patched } from './build.js';

const einval = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => isIommuError(e, 'EINVAL') && /IVRS/.test(e.message) && re.test(e.message));

async function snapshot(c: string): Promise<{ ivrs: Uint8Array; devices: string[] }> {
  const chunks: Buffer[] = [];
  const devices: string[] = [];
  await tar.t({
    file: `${FIXTURES}oracle/${c}/sys.tar.gz`,
    onReadEntry: (e) => {
      const m = /^bus\/pci\/devices\/0000:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(e.path);
      if (m) devices.push(e.path);
      if (e.path === 'firmware/acpi/tables/IVRS') e.on('data', (d: Buffer) => chunks.push(d));
      else e.resume();
    },
  });
  return { ivrs: new Uint8Array(Buffer.concat(chunks)), devices };
}

const rid = (p: string): number => {
  const m = /0000:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(p)!;
  return (parseInt(m[1]!, 16) << 8) | (parseInt(m[2]!, 16) << 3) | parseInt(m[3]!, 16);
};

for (const c of ['t12-amd-iommu-mixed', 't19-amd-conventional-bridges', 't21-pxb-bridges-amd']) {
  test(`real QEMU IVRS (${c}, from sys.tar.gz): IVHD of 00:01.0 covers every PCI device`, async () => {
    const { ivrs, devices } = await snapshot(c);
    const t = parseIvrs(ivrs, `${c}/IVRS`);
    assert.equal(t.ivinfo.paSize, 40);
    assert.equal(t.ivhds.length, 1);
    const h = t.ivhds[0]!;
    assert.equal(h.type, 0x10);
    assert.equal(h.iommuDeviceId, 0x0008);
    assert.equal(h.capabilityOffset, 0x40);
    assert.equal(h.base, 0xfed80000n);
    const cov = ivhdCoverage(h);
    assert.ok(devices.length > 5);
    for (const d of devices) assert.ok(cov.has(rid(d)), `${d} not covered`);
    assert.ok(h.entries.some((e) => e.kind === 'special' && e.special?.variety === 'ioapic' && e.from === 0xa0));
    assert.deepEqual(t.notes, []);
  });
}

test('real t19 IVRS: devices behind the PCIe-to-PCI bridge use its alias', () => {
  const h = parseIvrs(fixture('t19-IVRS.bin'), 't19').ivhds[0]!;
  const cov = ivhdCoverage(h);
  const e = h.entries.find((x) => x.kind === 'alias-range')!;
  assert.ok(e);
  assert.equal(cov.get(e.from + 8)?.alias, e.alias);
});

function handIvrs(): Uint8Array {
  const b = header('IVRS').u32(0x2800).raw(new Array(8).fill(0));
  const entries = [
    0x02, 0x10, 0x00, 0x00, // SELECT 00:02.0
    0x03, 0x00, 0x01, 0x40, // START 01:00.0, flags 0x40
    0x04, 0xff, 0x01, 0x00, // END 01:1f.7
    0x42, 0x08, 0x03, 0x00, 0x00, 0x00, 0x03, 0x00, // ALIAS_SELECT 03:01.0 → 03:00.0
    0x48, 0x00, 0x00, 0xd7, 0x21, 0xa0, 0x00, 0x01, // SPECIAL IOAPIC handle 0x21 at 00:14.0
  ];
  b.u8(0x10).u8(0xb0).u16(24 + entries.length).u16(0x0002).u16(0x40).u64(0xfeb80000n).u16(0).u16(0x1300).u32(0x80048f6e).raw(entries);
  b.u8(0x21).u8(0x07).u16(32).u16(0x0010).u16(0).u16(0).raw(new Array(6).fill(0)).u64(0x1000n).u64(0x2000n);
  b.u8(0x99).u8(0).u16(4);
  return table(b);
}

test('hand-built IVRS (AMD IOMMU spec §5.2): SELECT, START/END, ALIAS_SELECT, SPECIAL, IVMD', () => {
  const t = parseIvrs(handIvrs(), 'hand');
  const h = t.ivhds[0]!;
  assert.deepEqual({ ...h, entries: undefined }, {
    type: 0x10, flags: 0xb0, iommuDeviceId: 2, capabilityOffset: 0x40, base: 0xfeb80000n, segment: 0, info: 0x1300,
    featureReporting: 0x80048f6e, entries: undefined, offset: 48,
  });
  assert.deepEqual(h.entries, [
    { kind: 'select', type: 2, from: 0x10, to: 0x10, flags: 0, offset: 72 },
    { kind: 'range', type: 3, from: 0x100, to: 0x1ff, flags: 0x40, offset: 76 },
    { kind: 'alias-select', type: 0x42, from: 0x308, to: 0x308, alias: 0x300, flags: 0, offset: 84 },
    { kind: 'special', type: 0x48, from: 0xa0, to: 0xa0, flags: 0xd7, special: { variety: 'ioapic', handle: 0x21 }, offset: 92 },
  ]);
  const cov = ivhdCoverage(h);
  assert.equal(cov.size, 1 + 256 + 2 + 1);
  assert.deepEqual(cov.get(0x308), { alias: 0x300, flags: 0 });
  assert.deepEqual(cov.get(0x300), { alias: 0x300, flags: 0 });
  assert.deepEqual(cov.get(0x1ff), { alias: 0x1ff, flags: 0x40 });
  assert.equal(cov.has(0x200), false);
  assert.deepEqual(t.ivmds, [{
    type: 0x21, kind: 'select', flags: { raw: 7, unity: true, read: true, write: true, exclusion: false },
    from: 0x10, to: 0x10, segment: 0, start: 0x1000n, length: 0x2000n, offset: 100,
  }]);
  assert.equal(t.notes.length, 1);
  assert.match(t.notes[0]!, /unknown block type 0x99 at offset 0x84/);
});

test('IVRS errors: overrun, zero length, truncation, unknown variable entry', () => {
  const good = handIvrs();
  for (let n = 0; n < good.length; n++) einval(() => parseIvrs(good.subarray(0, n), 'x'), /truncated/);
  const mk = (patch: (b: Uint8Array) => void): Uint8Array => patched(good, patch);
  einval(() => parseIvrs(mk((b) => { b[50] = 0xff; }), 'x'), /block type 0x10 at offset 0x30 \(length 255\) runs past/);
  einval(() => parseIvrs(mk((b) => { b[50] = 0; }), 'x'), /offset 0x30 has invalid length 0/);
  einval(() => parseIvrs(mk((b) => { b[50] = 20; }), 'x'), /shorter than its 24-byte header/);
  einval(() => parseIvrs(mk((b) => { b[72] = 0x81; }), 'x'), /variable-length type 0x81/);
  einval(() => parseIvrs(mk((b) => { b[50] = 26; }), 'x'), /entry type 0x2 at offset 0x48 \(length 4\) runs past the end of its block/);
});
