import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigSpace } from '../../src/pci/config-space.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { PcieType, PCI_CAP_ID_EXP, PCI_EXT_CAP_ID_ACS, PCI_EXT_CAP_ID_ARI } from '../../src/pci/regs.js';

function withCaps(chain: [number, number, number][]): Uint8Array {
  // [offset, id, next]
  const b = new Uint8Array(256);
  b[0x06] = 0x10;
  b[0x34] = chain[0]?.[0] ?? 0;
  for (const [off, id, next] of chain) {
    b[off] = id;
    b[off + 1] = next;
  }
  return b;
}

test('finds a capability along the list', () => {
  const c = new ConfigSpace(withCaps([[0x40, 0x01, 0x50], [0x50, 0x05, 0x60], [0x60, PCI_CAP_ID_EXP, 0]]));
  assert.equal(c.findCapability(PCI_CAP_ID_EXP), 0x60);
  assert.equal(c.findCapability(0x11), 0);
  assert.deepEqual(c.problems, []);
});

test('a looping capability list ends after the hop limit and is reported', () => {
  const c = new ConfigSpace(withCaps([[0x40, 0x01, 0x50], [0x50, 0x05, 0x40]]));
  assert.equal(c.findCapability(PCI_CAP_ID_EXP), 0);
  assert.match(c.problems[0]!.message, /longer than 48 entries/);
});

test('no capability list bit, or a pointer into the header: nothing found, no crash', () => {
  const b = withCaps([[0x40, PCI_CAP_ID_EXP, 0]]);
  b[0x06] = 0;
  assert.equal(new ConfigSpace(b).findCapability(PCI_CAP_ID_EXP), 0);
  const h = withCaps([[0x40, 0x01, 0x20]]);
  assert.equal(new ConfigSpace(h).findCapability(PCI_CAP_ID_EXP), 0);
});

test('a 64-byte (non-root) config: pointers past the end are reported, reads past it are all-ones', () => {
  const full = buildConfig({ pcieType: PcieType.ROOT_PORT, acs: { cap: 0x1f, ctrl: 0x1d }, bridge: { primary: 0, secondary: 1, subordinate: 1 } });
  const c = new ConfigSpace(full.subarray(0, 64));
  assert.equal(c.size, 64);
  assert.equal(c.read8(0x40), 0xff);
  assert.equal(c.read16(0x3f), 0xffff);
  assert.equal(c.read32(0x100), 0xffffffff);
  assert.equal(c.findPcieCapability(), 0);
  assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_ACS), 0);
  assert.match(c.problems[0]!.message, /past the 64 readable bytes/);
});

test('extended capabilities: found by id, a loop ends at the hop limit, a header of 0 means none', () => {
  const b = new Uint8Array(4096);
  const put = (off: number, id: number, next: number): void => {
    const v = (id | (1 << 16) | (next << 20)) >>> 0;
    b[off] = v & 0xff;
    b[off + 1] = (v >>> 8) & 0xff;
    b[off + 2] = (v >>> 16) & 0xff;
    b[off + 3] = v >>> 24;
  };
  put(0x100, 0x01, 0x140);
  put(0x140, PCI_EXT_CAP_ID_ARI, 0x200);
  put(0x200, PCI_EXT_CAP_ID_ACS, 0);
  const c = new ConfigSpace(b);
  assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_ACS), 0x200);
  assert.equal(c.findExtCapability(PCI_EXT_CAP_ID_ARI), 0x140);
  assert.equal(c.findExtCapability(0x10), 0);
  put(0x200, PCI_EXT_CAP_ID_ACS, 0x140); // loop 0x140 -> 0x200 -> 0x140
  const l = new ConfigSpace(b);
  assert.equal(l.findExtCapability(0x10), 0);
  assert.match(l.problems[0]!.message, /longer than 480 entries/);
  assert.equal(new ConfigSpace(new Uint8Array(4096)).findExtCapability(PCI_EXT_CAP_ID_ACS), 0);
});

test('garbage config space never throws and never walks more than the hop limits', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 4096 }), (bytes) => {
      const c = new ConfigSpace(bytes);
      for (const id of [0x01, 0x05, PCI_CAP_ID_EXP, 0x11]) {
        const off = c.findCapability(id);
        assert.ok(off === 0 || (off >= 0x40 && off < c.size));
      }
      for (const id of [PCI_EXT_CAP_ID_ACS, PCI_EXT_CAP_ID_ARI, 0x10, 0x1b]) {
        const off = c.findExtCapability(id);
        assert.ok(off === 0 || (off >= 0x100 && off < c.size));
      }
    }),
    { numRuns: 300 },
  );
});
