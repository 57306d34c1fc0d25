// The PCI grouping test vectors of spec §12.1, built from synthetic config spaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, type FunctionSpec } from '../../src/pci/config-builder.js';
import { buildPciTopology, type PciFunctionInput } from '../../src/pci/topology.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { predictGroups } from '../../src/machine/predict.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';

const OK = { cap: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF, ctrl: PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF };
const RP = (sec: number, acs = true, extra: Partial<FunctionSpec> = {}): FunctionSpec => ({
  pcieType: PcieType.ROOT_PORT,
  bridge: { primary: 0, secondary: sec, subordinate: sec },
  ...(acs ? { acs: OK } : {}),
  ...extra,
});
const EP = (extra: Partial<FunctionSpec> = {}): FunctionSpec => ({ pcieType: PcieType.ENDPOINT, ...extra });

function groups(fns: [string, FunctionSpec][], opts: { ivrs?: boolean } = {}): string[][] {
  const inputs: PciFunctionInput[] = fns.map(([bdf, spec]) => ({ bdf: `0000:${bdf}`, config: buildConfig(spec), origin: 'synthetic' }));
  const m = machineFromTopology(buildPciTopology(inputs), { acpiIvrsPresent: opts.ivrs ?? false });
  return predictGroups(m).groups.map((g) => g.devices.map((d) => d.bdf.slice(5)));
}

test('vector 1: isolated endpoint under an ACS root port gets its own group', () => {
  assert.deepEqual(groups([['00:01.0', RP(1)], ['01:00.0', EP()]]), [['00:01.0'], ['01:00.0']]);
});

test('vector 2: a root port without ACS pulls its endpoint into its group', () => {
  assert.deepEqual(groups([['00:01.0', RP(1, false)], ['01:00.0', EP()]]), [['00:01.0', '01:00.0']]);
});

test('vector 3: multifunction root ports without ACS share one group with everything below', () => {
  assert.deepEqual(
    groups([
      ['00:1c.0', RP(1, false, { multifunction: true })],
      ['00:1c.4', RP(2, false, { multifunction: true })],
      ['01:00.0', EP()],
      ['02:00.0', EP()],
    ]),
    [['00:1c.0', '00:1c.4', '01:00.0', '02:00.0']],
  );
});

test('vector 5: multifunction endpoint without ACS under an isolated root port', () => {
  assert.deepEqual(
    groups([['00:01.0', RP(1)], ['01:00.0', EP({ multifunction: true })], ['01:00.1', EP({ multifunction: true })]]),
    [['00:01.0'], ['01:00.0', '01:00.1']],
  );
});

test('vector 6: multifunction endpoint with ACS RR|CR enabled, disabled, and a zero Capability register', () => {
  const rrcr = PCI_ACS_RR | PCI_ACS_CR;
  assert.deepEqual(
    groups([['00:01.0', RP(1)], ['01:00.0', EP({ multifunction: true, acs: { cap: rrcr, ctrl: rrcr } })], ['01:00.1', EP({ multifunction: true, acs: { cap: rrcr, ctrl: rrcr } })]]),
    [['00:01.0'], ['01:00.0'], ['01:00.1']],
  );
  assert.deepEqual(
    groups([['00:01.0', RP(1)], ['01:00.0', EP({ multifunction: true, acs: { cap: rrcr, ctrl: 0 } })], ['01:00.1', EP({ multifunction: true, acs: { cap: rrcr, ctrl: 0 } })]]),
    [['00:01.0'], ['01:00.0', '01:00.1']],
  );
  assert.deepEqual(
    groups([['00:01.0', RP(1)], ['01:00.0', EP({ multifunction: true, acs: { cap: 0, ctrl: 0 } })], ['01:00.1', EP({ multifunction: true, acs: { cap: 0, ctrl: 0 } })]]),
    [['00:01.0'], ['01:00.0'], ['01:00.1']],
  );
});

test('vector 7: mixed functions: only the non-isolated ones share', () => {
  assert.deepEqual(
    groups([
      ['00:01.0', RP(1)],
      ['01:00.0', EP({ multifunction: true })],
      ['01:00.1', EP({ multifunction: true, acs: OK })],
      ['01:00.2', EP({ multifunction: true })],
    ]),
    [['00:01.0'], ['01:00.0', '01:00.2'], ['01:00.1']],
  );
});

test('vector 8: Intel 82576 multifunction NIC without ACS is isolated by quirk', () => {
  const nic = (): FunctionSpec => EP({ vendor: 0x8086, device: 0x10c9, multifunction: true });
  assert.deepEqual(groups([['00:01.0', RP(1)], ['01:00.0', nic()], ['01:00.1', nic()]]), [['00:01.0'], ['01:00.0'], ['01:00.1']]);
});

const SWITCH = (rpAcs: boolean, dsp1Acs: boolean): [string, FunctionSpec][] => [
  ['00:01.0', RP(2, rpAcs, { bridge: { primary: 0, secondary: 2, subordinate: 5 } })],
  ['02:00.0', { pcieType: PcieType.UPSTREAM, bridge: { primary: 2, secondary: 3, subordinate: 5 } }],
  ['03:00.0', { pcieType: PcieType.DOWNSTREAM, bridge: { primary: 3, secondary: 4, subordinate: 4 }, acs: OK }],
  ['03:01.0', { pcieType: PcieType.DOWNSTREAM, bridge: { primary: 3, secondary: 5, subordinate: 5 }, ...(dsp1Acs ? { acs: OK } : {}) }],
  ['04:00.0', EP()],
  ['05:00.0', EP()],
];

test('vector 9: a switch downstream port without ACS shares with its endpoint', () => {
  assert.deepEqual(groups(SWITCH(true, false)), [['00:01.0'], ['02:00.0'], ['03:00.0'], ['03:01.0', '05:00.0'], ['04:00.0']]);
});

test('vector 10: a root port without ACS above a switch takes the whole switch', () => {
  assert.deepEqual(groups(SWITCH(false, true)), [['00:01.0', '02:00.0', '03:00.0', '03:01.0', '04:00.0', '05:00.0']]);
});

test('vector 11: conventional devices behind a PCIe-to-PCI bridge share its group', () => {
  assert.deepEqual(
    groups([
      ['00:01.0', RP(2, true, { bridge: { primary: 0, secondary: 2, subordinate: 3 } })],
      ['02:00.0', { pcieType: PcieType.PCI_BRIDGE, bridge: { primary: 2, secondary: 3, subordinate: 3 } }],
      ['03:04.0', {}],
      ['03:05.0', {}],
    ]),
    [['00:01.0'], ['02:00.0', '03:04.0', '03:05.0']],
  );
});

test('vector 12: ASMedia 1080 (no PCIe capability) below a PCIe port aliases like a PCIe-to-PCI bridge', () => {
  assert.deepEqual(
    groups([
      ['00:01.0', RP(2, true, { bridge: { primary: 0, secondary: 2, subordinate: 3 } })],
      ['02:00.0', { vendor: 0x1b21, device: 0x1080, bridge: { primary: 2, secondary: 3, subordinate: 3 } }],
      ['03:04.0', {}],
      ['03:05.0', {}],
    ]),
    [['00:01.0'], ['02:00.0', '03:04.0', '03:05.0']],
  );
});

test('vector 13: a conventional PCI-to-PCI bridge on the root bus shares with the devices behind it', () => {
  assert.deepEqual(
    groups([['00:05.0', { bridge: { primary: 0, secondary: 1, subordinate: 1 } }], ['01:01.0', {}], ['01:02.0', {}]]),
    [['00:05.0', '01:01.0', '01:02.0']],
  );
});

test('vector 14: Marvell phantom function alias joins a real function 1 into one group', () => {
  const m = (mf: boolean): FunctionSpec => EP({ vendor: 0x1b4b, device: 0x9123, multifunction: mf, classCode: 0x010601 });
  assert.deepEqual(groups([['00:01.0', RP(3)], ['03:00.0', m(false)]]), [['00:01.0'], ['03:00.0']]);
  assert.deepEqual(
    groups([['00:01.0', RP(3)], ['03:00.0', m(true)], ['03:00.1', EP({ multifunction: true, acs: OK })]]),
    [['00:01.0'], ['03:00.0', '03:00.1']],
  );
});

test('vector 15: RCiEPs — single function alone; multifunction without ACS together unless Intel', () => {
  assert.deepEqual(groups([['00:02.0', { pcieType: PcieType.RC_END }]]), [['00:02.0']]);
  const rc = (vendor: number): FunctionSpec => ({ pcieType: PcieType.RC_END, multifunction: true, vendor });
  assert.deepEqual(groups([['00:14.0', rc(0x1234)], ['00:14.2', rc(0x1234)]]), [['00:14.0', '00:14.2']]);
  assert.deepEqual(groups([['00:14.0', rc(0x8086)], ['00:14.2', rc(0x8086)]]), [['00:14.0'], ['00:14.2']]);
});

test('vector 16: legacy multifunction device without PCIe on the root bus is one group', () => {
  assert.deepEqual(
    groups([['00:1f.0', { multifunction: true }], ['00:1f.2', { multifunction: true }], ['00:1f.3', { multifunction: true }]]),
    [['00:1f.0', '00:1f.2', '00:1f.3']],
  );
});

test('vector 18: a Wangxun device not in the quirk list is not isolated, even with good ACS', () => {
  const w = (): FunctionSpec => EP({ vendor: 0x8088, device: 0x0001, multifunction: true, acs: OK });
  assert.deepEqual(groups([['00:01.0', RP(1)], ['01:00.0', w()], ['01:00.1', w()]]), [['00:01.0'], ['01:00.0', '01:00.1']]);
});

test('functions past 0 count as multifunction even when the header bit is clear (pci_scan_slot)', () => {
  assert.deepEqual(groups([['00:01.0', RP(1)], ['01:00.0', EP({ multifunction: true })], ['01:00.1', EP()]]), [['00:01.0'], ['01:00.0', '01:00.1']]);
});

test('group ids are allocated in probe order: parents before children, bus by bus', () => {
  const m = machineFromTopology(
    buildPciTopology([
      { bdf: '0000:01:00.0', config: buildConfig(EP()), origin: 'synthetic' },
      { bdf: '0000:00:02.0', config: buildConfig(RP(2)), origin: 'synthetic' },
      { bdf: '0000:00:01.0', config: buildConfig(RP(1)), origin: 'synthetic' },
      { bdf: '0000:02:00.0', config: buildConfig(EP()), origin: 'synthetic' },
    ]),
  );
  const p = predictGroups(m);
  assert.deepEqual(
    p.groups.map((g) => [g.id, g.devices.map((d) => d.bdf.slice(5))]),
    [[0, ['00:01.0']], [1, ['00:02.0']], [2, ['01:00.0']], [3, ['02:00.0']]],
  );
});
