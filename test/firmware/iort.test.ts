import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iortMapId, parseIort } from '../../src/firmware/iort.js';
import { isIommuError } from '../../src/base/errno.js';
import { header, table } from './build.js';

// Nodes: ITS group at 48 (24 bytes), SMMUv3 at 72 (68 + 20 mapping = 88), RC at 160 (36 + 20 = 56).
function handIort(rcRef = 72, rcOut = 0x10000): Uint8Array {
  const b = header('IORT').u32(3).u32(48).u32(0);
  b.u8(0).u16(24).u8(1).u32(0).u32(0).u32(0).u32(1).u32(0x0);
  b.u8(4).u16(88).u8(4).u32(1).u32(1).u32(68).u64(0x2b400000n).u32(1).u32(0).u64(0n).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0);
  b.u32(0).u32(0xfffff).u32(0).u32(48).u32(0);
  b.u8(2).u16(56).u8(1).u32(2).u32(1).u32(36).u64(1n).u32(1).u32(0).u8(48).raw([0, 0, 0]);
  b.u32(0).u32(0xffff).u32(rcOut).u32(rcRef).u32(0);
  return table(b);
}

test('hand-built IORT (IORT spec §3): nodes and RC → SMMUv3 mapping', () => {
  const t = parseIort(handIort(), 'hand');
  assert.deepEqual(t.nodes.map((n) => [n.offset, n.kind]), [[48, 'its-group'], [72, 'smmu-v3'], [160, 'root-complex']]);
  const rc = t.nodes[2]!;
  assert.equal(rc.segment, 0);
  assert.equal(rc.atsAttribute, 1);
  assert.deepEqual(rc.mappings, [{ inputBase: 0, idCount: 0xffff, outputBase: 0x10000, outputReference: 72, flags: 0, singleMapping: false }]);
  assert.equal(t.nodes[1]!.base, 0x2b400000n);
  assert.deepEqual(t.nodes[0]!.itsIds, [0]);
  for (const rid of [0, 0x8, 0x1234, 0xffff]) {
    const r = iortMapId(t, 160, rid)!;
    assert.equal(r.node.kind, 'smmu-v3');
    assert.equal(r.id, 0x10000 + rid);
  }
  assert.equal(iortMapId(t, 160, 0x10000), undefined);
  const its = iortMapId(t, 160, 0x5, ['its-group'])!;
  assert.deepEqual([its.node.offset, its.id], [48, 0x10005]);
});

test('IORT errors: bad reference, cycles, overruns, zero-length node, truncation', () => {
  const isE = (errno: 'EINVAL' | 'ELOOP', re: RegExp) => (e: unknown) => isIommuError(e, errno) && /IORT/.test(e.message) && re.test(e.message);
  assert.throws(() => iortMapId(parseIort(handIort(99), 'x'), 160, 1), isE('EINVAL', /references 0x63, which is not a node/));
  assert.throws(() => iortMapId(parseIort(handIort(160, 0), 'x'), 160, 1, ['its-group']), isE('ELOOP', /exceeds depth/));
  assert.throws(() => iortMapId(parseIort(handIort(), 'x'), 7, 1), isE('EINVAL', /no node at offset 0x7/));
  const good = handIort();
  for (let n = 0; n < good.length; n++) assert.throws(() => parseIort(good.subarray(0, n), 'x'), isE('EINVAL', /truncated/));
  const mk = (patch: (b: Uint8Array) => void): Uint8Array => {
    const b = Uint8Array.from(good);
    patch(b);
    b[9] = 0;
    let s = 0;
    for (const x of b) s = (s + x) & 0xff;
    b[9] = (256 - s) & 0xff;
    return b;
  };
  assert.throws(() => parseIort(mk((b) => { b[161] = 0; }), 'x'), isE('EINVAL', /node 2 at offset 0xa0 has invalid length 0/));
  assert.throws(() => parseIort(mk((b) => { b[161] = 0xff; }), 'x'), isE('EINVAL', /node 2 at offset 0xa0 \(length 255\) runs past/));
  assert.throws(() => parseIort(mk((b) => { b[168] = 5; }), 'x'), isE('EINVAL', /5 ID mappings/));
});
