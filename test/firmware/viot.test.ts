// ACPI VIOT: hand-built tables (include/acpi/actbl3.h layouts), errors naming the offsets, fuzzing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acpiChecksum } from '../../src/firmware/acpi.js';
import { parseViot, viotIommuAt, viotMmioEndpoint, viotPciEndpoint } from '../../src/firmware/viot.js';
import { IommuError, isIommuError } from '../../src/base/errno.js';
import { header, patched, table } from './build.js';

// Nodes: virtio-pci IOMMU at 0x30 (16), PCI range at 0x40 (24), MMIO endpoint at 0x58 (24),
// virtio-mmio IOMMU at 0x70 (16), a type-9 node at 0x80 (8). Table length 0x88.
function handViot(o: { epStart?: number; rangeOut?: number; mmioOut?: number } = {}): Uint8Array {
  const b = header('VIOT').u16(5).u16(0x30).raw([0, 0, 0, 0, 0, 0, 0, 0]);
  b.u8(3).u8(0).u16(16).u16(0).u16(0x18).raw([0, 0, 0, 0, 0, 0, 0, 0]);
  b.u8(1).u8(0).u16(24).u32(o.epStart ?? 0x20).u16(0).u16(1).u16(0x08).u16(0x10).u16(o.rangeOut ?? 0x30).raw([0, 0, 0, 0, 0, 0]);
  b.u8(2).u8(0).u16(24).u32(0x77).u64(0xfeb00000n).u16(o.mmioOut ?? 0x70).raw([0, 0, 0, 0, 0, 0]);
  b.u8(4).u8(0).u16(16).u32(0).u64(0xfec00000n);
  b.u8(9).u8(0).u16(8).u32(0);
  return table(b);
}

const isE = (re: RegExp) => (e: unknown): boolean => isIommuError(e, 'EINVAL') && /VIOT/.test(e.message) && re.test(e.message);

test('hand-built VIOT: nodes, fields, unknown node skipped with a note', () => {
  const t = parseViot(handViot(), 'hand');
  assert.equal(t.header.length, 0x88);
  assert.deepEqual([t.nodeCount, t.nodeOffset], [5, 0x30]);
  assert.deepEqual(t.nodes.map((n) => [n.offset, n.kind, n.type, n.length]), [
    [0x30, 'virtio-iommu-pci', 3, 16], [0x40, 'pci-range', 1, 24], [0x58, 'mmio', 2, 24], [0x70, 'virtio-iommu-mmio', 4, 16],
  ]);
  assert.deepEqual(t.pciRanges[0], { offset: 0x40, type: 1, length: 24, kind: 'pci-range', endpointStart: 0x20, segmentStart: 0, segmentEnd: 1, bdfStart: 0x08, bdfEnd: 0x10, outputNode: 0x30 });
  assert.deepEqual(t.mmioEndpoints[0], { offset: 0x58, type: 2, length: 24, kind: 'mmio', endpointId: 0x77, baseAddress: 0xfeb00000n, outputNode: 0x70 });
  assert.deepEqual(t.iommus.map((n) => n.offset), [0x30, 0x70]);
  assert.deepEqual(viotIommuAt(t, 0x30), { offset: 0x30, type: 3, length: 16, kind: 'virtio-iommu-pci', segment: 0, bdf: 0x18 });
  assert.equal(viotIommuAt(t, 0x40), null);
  assert.deepEqual(t.notes, ['node 4 at offset 0x80 has unsupported type 9, skipped']);
});

test('VIOT endpoint IDs: ((segment - segment_start) << 16) + RID - bdf_start + endpoint_start, u32', () => {
  const t = parseViot(handViot(), 'hand');
  assert.equal(viotPciEndpoint(t, 0, 0x08)!.endpointId, 0x20);
  assert.equal(viotPciEndpoint(t, 0, 0x10)!.endpointId, 0x28);
  assert.equal(viotPciEndpoint(t, 1, 0x0c)!.endpointId, 0x10000 + 0x0c - 0x08 + 0x20);
  assert.equal(viotPciEndpoint(t, 0, 0x0c)!.iommu.offset, 0x30);
  assert.equal(viotPciEndpoint(t, 0, 0x07), null);
  assert.equal(viotPciEndpoint(t, 0, 0x11), null);
  assert.equal(viotPciEndpoint(t, 2, 0x08), null);
  const wrap = parseViot(handViot({ epStart: 0xffffffff }), 'hand');
  assert.equal(viotPciEndpoint(wrap, 0, 0x09)!.endpointId, 0);
  const m = viotMmioEndpoint(t, 0xfeb00000n)!;
  assert.deepEqual([m.endpointId, m.iommu.kind], [0x77, 'virtio-iommu-mmio']);
  assert.equal(viotMmioEndpoint(t, 0xfeb01000n), null);
});

test('VIOT errors: truncation, node lengths, count mismatch, bad output node, reversed ranges', () => {
  const good = handViot();
  for (let n = 0; n < good.length; n++) assert.throws(() => parseViot(good.subarray(0, n), 'x'), isE(/truncated/));
  assert.throws(() => parseViot(table(header('VIOT').u32(0)), 'x'), isE(/VIOT header .* at offset 0x24 .* runs past the end/));
  assert.throws(() => parseViot(table(header('VIOT')), 'x'), isE(/runs past the end/));
  const bad = (patch: (b: Uint8Array) => void, re: RegExp): void => {
    assert.throws(() => parseViot(patched(good, patch), 'x'), isE(re));
  };
  bad((b) => { b[0x42] = 2; }, /node 1 at offset 0x40 has invalid length 2/);
  bad((b) => { b[0x42] = 0; }, /node 1 at offset 0x40 has invalid length 0/);
  bad((b) => { b[0x42] = 0xff; }, /node 1 at offset 0x40 \(length 255\) runs past the end of the table \(length 0x88\)/);
  bad((b) => { b[0x42] = 16; }, /pci-range node 1 at offset 0x40 has length 16, shorter than its 24-byte structure/);
  bad((b) => { b[0x32] = 8; }, /virtio-iommu-pci node 0 at offset 0x30 has length 8/);
  bad((b) => { b[0x24] = 6; }, /node count 6 at offset 0x24, but node 5 header at offset 0x88 runs past/);
  bad((b) => { b[0x26] = 0x28; }, /node offset 0x28 at offset 0x26 points into the 48-byte VIOT header/);
  bad((b) => { b[0x50] = 0x40; }, /pci-range node at offset 0x40: output node 0x40 \(offset 0x50\) is not an IOMMU node/);
  bad((b) => { b[0x68] = 0x80; }, /mmio node at offset 0x58: output node 0x80 .* is not an IOMMU node/); // the unknown node
  bad((b) => { b[0x48] = 2; }, /segment start 0x2 \(offset 0x48\) is past segment end 0x1/);
  bad((b) => { b[0x4c] = 0x20; }, /BDF start 0x20 \(offset 0x4c\) is past BDF end 0x10/);
  // An output node pointing at an IOMMU node later in the table is fine; fewer nodes than present: a note.
  assert.equal(parseViot(handViot({ rangeOut: 0x70 }), 'x').pciRanges[0]!.outputNode, 0x70);
  const fewer = parseViot(patched(good, (b) => { b[0x24] = 2; }), 'x');
  assert.deepEqual(fewer.nodes.map((n) => n.offset), [0x30, 0x40]);
  assert.deepEqual(fewer.notes, ['48 byte(s) after the last node at 0x58']);
  // No nodes: any node offset is accepted.
  assert.equal(parseViot(patched(good, (b) => { b[0x24] = 0; b[0x26] = 0; }), 'x').nodes.length, 0);
});

/** Runs the parser and lookups; anything but success or an IommuError naming VIOT fails the property. */
function onlyIommuError(b: Uint8Array): void {
  try {
    const t = parseViot(b, 'fuzz');
    for (const r of t.pciRanges) viotPciEndpoint(t, r.segmentStart, r.bdfEnd);
    for (const m of t.mmioEndpoints) viotMmioEndpoint(t, m.baseAddress);
  } catch (e) {
    if (!(e instanceof IommuError)) throw e;
    assert.match(e.message, /VIOT/);
  }
}

/** Sets the signature, optionally clamps the length field to the buffer, and fixes the checksum, so fuzzing reaches the body. */
function valid(b: Uint8Array, fixLength: boolean): Uint8Array {
  if (b.length < 36) return b;
  for (let i = 0; i < 4; i++) b[i] = 'VIOT'.charCodeAt(i);
  if (fixLength) { b[4] = b.length & 0xff; b[5] = (b.length >> 8) & 0xff; b[6] = 0; b[7] = 0; }
  b[9] = 0;
  b[9] = (256 - acpiChecksum(b, Math.min(b.length, b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)))) & 0xff;
  return b;
}

test('VIOT fuzz: random bytes, mutations and truncations never throw anything but IommuError (and terminate)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (raw, fix) => {
    onlyIommuError(raw);
    onlyIommuError(valid(Uint8Array.from(raw), fix));
  }), { numRuns: 1500 });
  const good = handViot();
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    fc.nat(good.length), fc.boolean(),
    (muts, cut, fix) => {
      const b = Uint8Array.from(good);
      for (const [i, v] of muts) b[i] = v;
      onlyIommuError(b.subarray(0, cut));
      onlyIommuError(b);
      onlyIommuError(valid(Uint8Array.from(b.subarray(0, cut)), fix));
      onlyIommuError(valid(b, false));
    }), { numRuns: 2000 });
  // A worst case for the walk: 65535 four-byte nodes in a table that holds them all.
  const big = header('VIOT').u16(0xffff).u16(48).raw([0, 0, 0, 0, 0, 0, 0, 0]);
  for (let i = 0; i < 0xffff; i++) big.u8(9).u8(0).u16(4);
  assert.equal(parseViot(table(big), 'big').notes.length, 0xffff);
});
