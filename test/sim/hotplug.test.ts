// `iommu sim` hot-plug and SR-IOV steps: functions hot-added and hot-removed, VFs enabled and disabled on a PF,
// all through the bus notifier the booted IOMMU core watches — groups appear and go, later steps find the new
// functions by BDF, DMA by a removed function faults, refusals carry Linux's errno, the final groups are those
// after the steps; and scenario errors for the new steps name the step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.js';
import { Scenario } from '../../src/sim/scenario-schema.js';
import { scenarioFunctionConfig, scenarioTopology, type SimTrace } from '../../src/sim/run.js';
import { ConfigSpace } from '../../src/pci/config-space.js';
import { PCI_SRIOV_TOTAL_VF, PCI_SRIOV_VF_DID, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE } from '../../src/pci/regs.js';

/** examples/ in the source tree (tests run from dist/test/sim/). */
const EXAMPLE = fileURLToPath(new URL('../../../examples/hotplug-sriov.json', import.meta.url));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

/** Run a scenario object through the CLI (`sim <file> --json`). */
async function simJson(scenario: unknown): Promise<SimTrace> {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-hotplug-'));
  try {
    const f = join(dir, 's.json');
    writeFileSync(f, JSON.stringify(scenario));
    const r = await cli(['sim', f, '--json']);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as SimTrace;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TOPOLOGY = [
  { bdf: '0000:00:01.0', type: 'root-port', secondary: 1, acs: true },
  { bdf: '0000:01:00.0', type: 'endpoint', device: '0x1572', sriov: { totalVfs: 8 } },
  { bdf: '0000:00:02.0', type: 'root-port', secondary: 2 },
];

test('examples/hotplug-sriov.json end to end (--json): hot-add joins a group, DMA, hot-remove, no-translation, 4 VFs in 4 new groups, disable, EEXIST, ENOSYS', async () => {
  const r = await cli(['sim', EXAMPLE, '--json']);
  assert.equal(r.code, 0, r.err);
  const t = JSON.parse(r.out) as SimTrace;
  const ev = t.events;
  assert.equal(ev.length, 15);
  assert.deepEqual(
    ev.map((e) => e.ok),
    [true, true, true, true, true, true, true, false, true, true, true, true, true, false, false],
  );
  // Below the root port without ACS, the hot-added endpoint shares the port's group.
  assert.equal(ev[2]!.op, 'hot-add');
  assert.match(ev[2]!.text, /^hot-added 0000:02:00\.0 \(endpoint\): joined IOMMU group 1 \(with 0000:00:02\.0\)$/);
  assert.equal(ev[3]!.dma, '0xfffff000');
  assert.equal(ev[4]!.data, 'c0ffee00');
  assert.equal(ev[5]!.phys, '0x40000000');
  assert.match(ev[6]!.text, /^hot-removed 0000:02:00\.0, left IOMMU group 1$/);
  // The removed function's requests reach the IOMMU and find no translation.
  assert.equal(ev[7]!.via, 'fault');
  assert.equal(ev[7]!.fault?.reason, 'no-translation');
  assert.equal(ev[7]!.fault?.device, '0000:02:00.0');
  assert.match(ev[7]!.text, /was hot-removed/);
  assert.equal(ev[7]!.errno, undefined);
  assert.equal(ev[8]!.text, 'enabled 4 VFs 0000:01:00.1–0000:01:00.4 on 0000:01:00.0 (VF device 0x154c), 4 new IOMMU groups (3, 4, 5, 6)');
  // DMA through one VF's own default domain.
  assert.equal(ev[9]!.dma, '0xfffff000');
  assert.equal(ev[10]!.via, 'walk');
  assert.equal(ev[10]!.phys, '0x48000000');
  assert.equal(ev[11]!.data, '5afe5afe');
  assert.equal(ev[12]!.text, 'SR-IOV disabled on 0000:01:00.0: 4 VFs removed, 4 IOMMU groups freed');
  assert.equal(ev[13]!.errno, 'EEXIST');
  assert.equal(ev[14]!.errno, 'ENOSYS');
  assert.equal(t.faults.length, 1);
  // The groups after the steps: the VFs' groups are gone, the hot-removed endpoint left group 1.
  assert.deepEqual(
    t.groups.map((g) => [g.id, g.type, g.devices]),
    [
      [0, 'DMA', ['0000:00:01.0']],
      [1, 'DMA', ['0000:00:02.0']],
      [2, 'DMA', ['0000:01:00.0']],
    ],
  );
});

test('examples/hotplug-sriov.json as text: refusals marked, fault shown, groups listed after the steps', async () => {
  const r = await cli(['sim', EXAMPLE]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /hot-added 0000:02:00\.0/);
  assert.match(r.out, /FAULT \(no-translation\)/);
  assert.match(r.out, /hot-add: EEXIST/);
  assert.match(r.out, /sriov-enable: ENOSYS: 0000:00:02\.0: cannot enable SR-IOV/);
  const after = r.out.indexOf('IOMMU groups after the steps:');
  assert.ok(after > r.out.indexOf('SR-IOV disabled'), 'the groups come after the events');
  assert.match(r.out.slice(after), /group 2 \[DMA\]: 0000:01:00\.0/);
});

test('groups after the steps include hot-added functions and enabled VFs; later steps find them by BDF', async () => {
  const t = await simJson({
    iommu: { driver: 'intel', cmdline: 'intel_iommu=on iommu.strict=1' },
    topology: TOPOLOGY,
    steps: [
      { op: 'sriov-enable', device: '01:00.0', vfs: 2 },
      { op: 'hot-add', function: { bdf: '02:00.0', type: 'endpoint' } },
      { op: 'domain-alloc', name: 'vf', device: '0000:01:00.2' },
      { op: 'attach', domain: 'vf', device: '01:00.2' },
      { op: 'map', domain: 'vf', iova: '0x1000', phys: '0x7000', size: '0x1000' },
      { op: 'translate', device: '01:00.2', iova: '0x1008' },
      { op: 'translate', device: '01:00.1', iova: '0x1008' },
    ],
  });
  assert.ok(t.events.every((e, i) => e.ok === (i !== 6)), JSON.stringify(t.events.map((e) => e.text)));
  assert.match(t.events[0]!.text, /enabled 2 VFs 0000:01:00\.1–0000:01:00\.2 on 0000:01:00\.0 \(VF device 0x1573\)/); // device + 1
  assert.equal(t.events[5]!.phys, '0x7008');
  assert.equal(t.events[6]!.fault?.reason, 'not-present'); // VF 0 is on its own default domain
  assert.deepEqual(
    t.groups.map((g) => g.devices),
    [['0000:00:01.0'], ['0000:00:02.0', '0000:02:00.0'], ['0000:01:00.0'], ['0000:01:00.1'], ['0000:01:00.2']],
  );
  // A VF's group keeps its default domain (DMA) as its type while a user domain is attached.
  assert.equal(t.groups.find((g) => g.devices.includes('0000:01:00.2'))!.type, 'DMA');
});

test('hot-add behind an ACS port gets a new group; hot-remove of a PF takes its VFs first and frees every group; then the BDFs are free again', async () => {
  const t = await simJson({
    iommu: { driver: 'intel', cmdline: 'intel_iommu=on' },
    topology: [
      { bdf: '0000:00:01.0', type: 'root-port', secondary: 1, subordinate: 2, acs: true },
      { bdf: '0000:00:03.0', type: 'root-port', secondary: 3, acs: true },
    ],
    steps: [
      { op: 'hot-add', function: { bdf: '0000:01:00.0', type: 'endpoint', sriov: { totalVfs: 4, firstVfOffset: 2, vfStride: 2, vfDevice: '0x10ed' } } },
      { op: 'sriov-enable', device: '0000:01:00.0', vfs: 3 },
      { op: 'sriov-enable', device: '0000:01:00.0', vfs: 1 },
      { op: 'hot-remove', device: '0000:01:00.0' },
      { op: 'hot-remove', device: '0000:01:00.0' },
      { op: 'translate', device: '0000:01:00.4', iova: 0 },
      { op: 'sriov-disable', device: '0000:01:00.0' },
      { op: 'hot-add', function: { bdf: '0000:01:00.0', type: 'endpoint' } },
      { op: 'hot-add', function: { bdf: '0000:03:00.0', type: 'endpoint', sriov: { totalVfs: 2 } } },
      { op: 'sriov-enable', device: '0000:03:00.0', vfs: 3 },
      { op: 'sriov-enable', device: '0000:03:00.0', vfs: 0 },
      { op: 'hot-add', function: { bdf: '0000:05:00.0', type: 'endpoint' } },
      { op: 'hot-add', function: { bdf: '0000:00:04.0', type: 'root-port', secondary: 4, acs: true } },
      { op: 'hot-add', function: { bdf: '0000:04:00.0', type: 'endpoint' } },
    ],
  });
  const ev = t.events;
  assert.match(ev[0]!.text, /^hot-added 0000:01:00\.0 \(endpoint\): new IOMMU group 2$/);
  assert.match(ev[1]!.text, /0000:01:00\.2–0000:01:00\.6 .*3 new IOMMU groups \(3, 4, 5\)/);
  assert.equal(ev[2]!.errno, 'EINVAL'); // already enabled
  assert.equal(ev[3]!.text, 'hot-removed 0000:01:00.0 and 3 functions below it, IOMMU groups 2, 3, 4, 5 freed');
  assert.equal(ev[4]!.errno, 'ENODEV');
  assert.equal(ev[5]!.fault?.reason, 'no-translation'); // a VF removed with its PF
  assert.equal(ev[6]!.errno, 'ENODEV');
  assert.equal(ev[7]!.ok, true); // the address is free again
  assert.equal(ev[8]!.ok, true);
  assert.equal(ev[9]!.errno, 'EINVAL'); // more than TotalVFs
  assert.equal(ev[10]!.text, '0000:03:00.0: 0 VFs requested, nothing enabled');
  assert.equal(ev[11]!.errno, 'ENODEV'); // no bus 05
  assert.equal(ev[12]!.ok, true); // a hot-added bridge gets its secondary bus…
  assert.match(ev[13]!.text, /^hot-added 0000:04:00\.0 \(endpoint\): new IOMMU group/); // …and functions go below it
  assert.deepEqual(
    t.groups.flatMap((g) => g.devices),
    ['0000:00:01.0', '0000:00:03.0', '0000:01:00.0', '0000:03:00.0', '0000:00:04.0', '0000:04:00.0'],
  );
});

test('the sriov topology field: defaults (offset 1, stride 1, VF device = device + 1) in the built SR-IOV capability', () => {
  const f = Scenario.parse({ topology: [{ bdf: '01:00.0', type: 'endpoint', device: '0x10fb', sriov: { totalVfs: '0x40' } }], steps: [] }).topology![0]!;
  assert.deepEqual(f.sriov, { totalVfs: 64, firstVfOffset: 1, vfStride: 1 });
  const cfg = new ConfigSpace(scenarioFunctionConfig(f));
  // The only extended capability: at 0x100 (BUILT_SRIOV_CAP only when ACS or PASID come first).
  assert.equal(cfg.read16(0x100 + PCI_SRIOV_TOTAL_VF), 64);
  assert.equal(cfg.read16(0x100 + PCI_SRIOV_VF_OFFSET), 1);
  assert.equal(cfg.read16(0x100 + PCI_SRIOV_VF_STRIDE), 1);
  assert.equal(cfg.read16(0x100 + PCI_SRIOV_VF_DID), 0x10fc);
  const m = scenarioTopology([f]);
  assert.equal(m.topology.byBdf.get('0000:01:00.0')!.sriovCap, 0x100);
});

test('bad hot-plug steps exit 1 with a message naming the step and the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-hotplug-'));
  try {
    const cases: [unknown, RegExp][] = [
      [{ topology: TOPOLOGY, steps: [{ op: 'advance', ns: 1 }, { op: 'sriov-enable', device: '01:00.0' }] }, /at steps\.1\.vfs \(step 1, "sriov-enable"\): missing \(required\)/],
      [{ topology: TOPOLOGY, steps: [{ op: 'hot-add', function: { bdf: '02:00.0', sriov: { totalVfs: 0 } } }] }, /at steps\.0\.function\.sriov\.totalVfs \(step 0, "hot-add"\): expected 1\.\.65535/],
      [{ topology: TOPOLOGY, steps: [{ op: 'hot-add', function: { bdf: '02:00.0', type: 'pci', sriov: { totalVfs: 1 } } }] }, /at steps\.0\.function\.sriov \(step 0, "hot-add"\): an SR-IOV capability needs a PCIe function/],
      [{ topology: TOPOLOGY, steps: [{ op: 'hot-add' }] }, /at steps\.0\.function \(step 0, "hot-add"\)/],
      [{ topology: TOPOLOGY, steps: [{ op: 'hot-remove', device: 3 }] }, /at steps\.0\.device \(step 0, "hot-remove"\)/],
      [{ topology: TOPOLOGY, steps: [{ op: 'hotplug', device: '01:00.0' }] }, /at steps\.0\.op \(step 0, "hotplug"\): .*'hot-add'/],
      [{ topology: [{ bdf: '01:00.0', sriov: { totalVfs: '0x10000' } }], steps: [] }, /at topology\.0\.sriov\.totalVfs: expected 1\.\.65535/],
    ];
    for (const [i, [scenario, re]] of cases.entries()) {
      const f = join(dir, `bad${i}.json`);
      writeFileSync(f, JSON.stringify(scenario));
      const r = await cli(['sim', f]);
      assert.equal(r.code, 1, `case ${i}`);
      assert.match(r.err, new RegExp(`bad${i}\\.json: not a valid scenario`));
      assert.match(r.err, re, `case ${i}: ${r.err}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
