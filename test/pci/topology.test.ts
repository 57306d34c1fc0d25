import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { predictGroups } from '../../src/machine/predict.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';
import { IommuError } from '../../src/base/errno.js';

const ACS = { cap: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, ctrl: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF };
const rp = (sec: number, sub = sec) => buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: sec, subordinate: sub }, acs: ACS });

test('scan order: a bus\'s functions first, then each bridge\'s bus depth first', () => {
  const t = buildPciTopology([
    { bdf: '0000:02:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic' },
    { bdf: '0000:00:1f.0', config: buildConfig({}), origin: 'synthetic' },
    { bdf: '0000:00:02.0', config: rp(2), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic' },
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
  ]);
  assert.deepEqual(t.devices.map((d) => d.bdf), ['0000:00:01.0', '0000:00:02.0', '0000:00:1f.0', '0000:01:00.0', '0000:02:00.0']);
  const ep = t.byBdf.get('0000:01:00.0')!;
  assert.equal(ep.bus.self?.bdf, '0000:00:01.0');
  assert.equal(ep.dev.parent?.name, '0000:00:01.0');
  assert.equal(t.byBdf.get('0000:00:01.0')!.dev.parent?.name, 'pci0000:00');
});

test('SR-IOV VFs come last, with multifunction clear, each in its own group under an isolated port (vector 17)', () => {
  const pf = buildConfig({ pcieType: PcieType.ENDPOINT, multifunction: false });
  const vf = buildConfig({ pcieType: PcieType.ENDPOINT });
  const t = buildPciTopology([
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
    { bdf: '0000:01:00.0', config: pf, origin: 'synthetic', parentBdf: '0000:00:01.0' },
    { bdf: '0000:01:10.0', config: vf, origin: 'synthetic', parentBdf: '0000:00:01.0', isVirtfn: true, physfnBdf: '0000:01:00.0' },
    { bdf: '0000:01:10.1', config: vf, origin: 'synthetic', parentBdf: '0000:00:01.0', isVirtfn: true, physfnBdf: '0000:01:00.0' },
  ]);
  assert.deepEqual(t.devices.map((d) => d.bdf).slice(-2), ['0000:01:10.0', '0000:01:10.1']);
  const v1 = t.byBdf.get('0000:01:10.1')!;
  assert.equal(v1.isVirtfn, true);
  assert.equal(v1.multifunction, false);
  assert.equal(v1.physfn?.bdf, '0000:01:00.0');
  const groups = predictGroups(machineFromTopology(t)).groups.map((g) => g.devices.map((d) => d.bdf));
  assert.deepEqual(groups, [['0000:00:01.0'], ['0000:01:00.0'], ['0000:01:10.0'], ['0000:01:10.1']]);
});

test('bad input: malformed addresses, duplicates, short configs and orphan buses are reported, not fatal', () => {
  const t = buildPciTopology([
    { bdf: 'zz:00.0', config: buildConfig({}), origin: 'synthetic' },
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
    { bdf: '0000:00:01.0', config: rp(1), origin: 'synthetic' },
    { bdf: '0000:00:03.0', config: new Uint8Array(8), origin: 'synthetic' },
    { bdf: '0000:07:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic', parentBdf: '0000:06:00.0' },
  ]);
  assert.deepEqual(t.devices.map((d) => d.bdf).sort(), ['0000:00:01.0', '0000:07:00.0']);
  assert.ok(t.problems.some((p) => p.startsWith('zz:00.0: not a PCI address')));
  assert.ok(t.problems.some((p) => p.includes('listed twice')));
  assert.ok(t.problems.some((p) => p.includes('0000:00:03.0') && p.includes('only 8 bytes')));
  assert.ok(t.problems.some((p) => p.includes('0000:07:00.0') && p.includes('not in the input')));
  assert.throws(() => buildPciTopology([], 'empty'), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL' && e.input === 'empty');
});
