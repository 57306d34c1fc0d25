// VFIO group viability (Linux 5.19+) against every fixture whose verdict can be derived from what the kernel
// showed: the oracle snapshots (groups and drivers in sysfs; the truth taken from summary.json) and the real
// lspci dumps (groups and "Kernel driver in use" lines, parsed here from the text). For every device the
// expected verdict is computed independently from the kernel's groups and drivers: viable iff every member is
// unbound, bound to vfio-pci/pci-stub, or a bridge bound to pcieport (and no `direct` reserved region).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isIommuError } from '../../src/base/errno.js';
import { machineFromLspci, machineFromSysfs, type Machine } from '../../src/machine/machine.js';
import { vfioCheck, type VfioCheckOptions, type VfioCheckReport } from '../../src/machine/vfio-viability.js';
import { parseLspci } from '../../src/pci/lspci.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';

/** What the kernel showed about one device, independently of iommukit's readers. */
interface Truth {
  bdf: string;
  /** 4 hex digits: class and subclass. */
  cls: string;
  driver: string | null;
  group: number | null;
}

/** Independent verdict: the v5.19 rule on the kernel's group. */
function expected(all: Truth[], d: Truth, directGroups: ReadonlySet<number> = new Set()): { viable: boolean; blockers: string[] } {
  if (d.group === null) return { viable: false, blockers: [d.bdf] };
  const members = all.filter((x) => x.group === d.group);
  const ok = (m: Truth): boolean =>
    m.driver === null || m.driver === 'vfio-pci' || m.driver === 'pci-stub' || (m.cls === '0604' && m.driver === 'pcieport');
  const blockers = members.filter((m) => !ok(m)).map((m) => m.bdf).sort();
  const viable = blockers.length === 0 && !directGroups.has(d.group);
  return { viable, blockers };
}

function checkPlanShape(r: VfioCheckReport, all: Truth[]): void {
  // Never touches a bridge on pcieport, nor a member already on vfio-pci/pci-stub (other than the target moving to vfio-pci).
  const touched = new Set<string>();
  for (let i = 0; i < r.plan.length; ) {
    const s = r.plan[i]!;
    const m = /^\/sys\/bus\/pci\/devices\/([0-9a-f:.]+)\/driver_override$/.exec(s.write);
    assert.ok(m, `plan step ${i} starts with driver_override: ${s.write}`);
    const bdf = m[1]!;
    assert.ok(s.value === 'vfio-pci' || s.value === 'pci-stub');
    touched.add(bdf);
    const t = all.find((x) => x.bdf === bdf)!;
    i++;
    if (t.driver !== null) {
      assert.deepEqual(r.plan[i], { write: `/sys/bus/pci/devices/${bdf}/driver/unbind`, value: bdf });
      i++;
    }
    assert.deepEqual(r.plan[i], { write: '/sys/bus/pci/drivers_probe', value: bdf });
    i++;
  }
  // Carried out, the plan clears every blocker that is a driver (not those of a missing IOMMU or group, nor RMRRs).
  for (const b of r.blockers) {
    if (b.bdf !== null && /^(bridge )?bound to /.test(b.why)) assert.ok(touched.has(b.bdf), `${r.bdf}: the plan moves blocker ${b.bdf} off ${b.driver}`);
  }
  for (const bdf of touched) {
    const t = all.find((x) => x.bdf === bdf)!;
    assert.ok(r.members.some((m) => m.bdf === bdf), `${bdf} planned but not a member`);
    assert.ok(!(t.cls === '0604' && t.driver === 'pcieport'), `${bdf}: a pcieport bridge is left alone`);
    if (bdf !== r.bdf) assert.ok(t.driver !== 'vfio-pci' && t.driver !== 'pci-stub');
  }
}

// ---- the oracle snapshots ----

interface Summary {
  devices: Record<string, { class: string; driver: string | null; iommu_group: string | null }>;
}

function loadSysfs(file: string): { machine: Machine; options: VfioCheckOptions; directGroups: Set<number> } {
  const reading = readPciSysfs(openSysfs(file));
  const kernelReservedRegions = new Map<number, string | null>();
  const directGroups = new Set<number>();
  for (const g of reading.kernelGroups ?? []) {
    kernelReservedRegions.set(g.id, g.reservedRegions);
    if (/ direct$/m.test(g.reservedRegions ?? '')) directGroups.add(g.id);
  }
  return { machine: machineFromSysfs(reading), options: { kernelReservedRegions }, directGroups };
}

for (const c of fixtureCases('oracle')) {
  const dir = `${FIXTURES}oracle/${c}`;
  const summary = JSON.parse(readFileSync(`${dir}/summary.json`, 'utf8')) as Summary;
  const truth: Truth[] = Object.entries(summary.devices).map(([bdf, d]) => ({
    bdf,
    cls: d.class.slice(2, 6),
    driver: d.driver,
    group: d.iommu_group === null ? null : Number(d.iommu_group),
  }));
  const hasGroups = truth.some((t) => t.group !== null);
  test(`vfio-check oracle ${c}: every device's verdict follows the kernel's groups and drivers`, () => {
    const { machine, options, directGroups } = loadSysfs(`${dir}/sys.tar.gz`);
    for (const t of truth) {
      const r = vfioCheck(machine, t.bdf, options);
      if (!hasGroups) {
        // No active IOMMU in that boot: the kernel formed no groups, so no VFIO; the model's group is shown.
        assert.equal(r.groupSource, 'model');
        assert.equal(r.iommuActive, false);
        assert.equal(r.viable, false, t.bdf);
        assert.ok(r.blockers.some((b) => b.bdf === t.bdf && /no active IOMMU/.test(b.why)));
        continue;
      }
      const e = expected(truth, t, directGroups);
      assert.equal(r.groupSource, 'kernel');
      assert.equal(r.group, t.group, `${t.bdf}: group`);
      assert.equal(r.viable, e.viable, `${t.bdf}: viable`);
      assert.equal(r.viable, r.blockers.length === 0);
      assert.deepEqual(r.blockers.map((b) => b.bdf).sort(), e.blockers, `${t.bdf}: blockers`);
      for (const b of r.blockers) if (b.bdf !== null && b.bdf !== t.bdf) assert.equal(b.driver, truth.find((x) => x.bdf === b.bdf)!.driver);
      if (t.group !== null) {
        assert.deepEqual(r.members.map((m) => m.bdf).sort(), truth.filter((x) => x.group === t.group).map((x) => x.bdf).sort());
        for (const m of r.members) assert.equal(m.driver, truth.find((x) => x.bdf === m.bdf)!.driver);
      }
      // The kernel's reserved_regions were read: the direct-mapped check is done.
      if (t.group !== null) assert.equal(r.directMappedChecked, true);
      checkPlanShape(r, truth);
    }
  });
}

// ---- the real machines' lspci dumps ----

/** Parse the dump independently: header lines, the class in brackets, the group and the driver lines. */
function truthFromLspci(text: string): Truth[] {
  const out: Truth[] = [];
  let cur: Truth | null = null;
  for (const line of text.split('\n')) {
    const h = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*?\[([0-9a-f]{4})\]: /.exec(line);
    if (h) {
      cur = { bdf: `${h[1] ?? '0000'}:${h[2]}`, cls: h[3]!, driver: null, group: null };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const g = /^\tIOMMU group: (\d+)/.exec(line);
    if (g) cur.group = Number(g[1]);
    const k = /^\tKernel driver in use: (\S+)/.exec(line);
    if (k) cur.driver = k[1]!;
  }
  return out;
}

for (const c of fixtureCases('real-lspci')) {
  const file = `${FIXTURES}real-lspci/${c}/lspci-vvnn.txt`;
  const text = readFileSync(file, 'utf8');
  const truth = truthFromLspci(text);
  test(`vfio-check real machine ${c}: every device's verdict follows the kernel's groups and drivers`, () => {
    assert.ok(truth.some((t) => t.group !== null));
    const machine = machineFromLspci(parseLspci(text, file), file);
    assert.equal(machine.topology.devices.length, truth.length, 'same functions as the independent parse');
    for (const t of truth) {
      const r = vfioCheck(machine, t.bdf);
      const e = expected(truth, t);
      assert.equal(r.groupSource, 'kernel');
      assert.equal(r.group, t.group, `${t.bdf}: group`);
      assert.equal(r.viable, e.viable, `${t.bdf}: viable`);
      assert.deepEqual(r.blockers.map((b) => b.bdf).sort(), e.blockers, `${t.bdf}: blockers`);
      assert.deepEqual(r.resetMethods, []);
      assert.equal(r.directMappedChecked, false);
      assert.ok(r.notes.some((n) => /reset methods unknown/.test(n)));
      assert.ok(r.notes.some((n) => /direct-mapped regions not checked: this needs the firmware tables/.test(n)));
      checkPlanShape(r, truth);
    }
  });
}

// ---- hand-checked cases ----

const Z390 = `${FIXTURES}real-lspci/intel-z390-asus-prime-z390-a-debian12-6.1/lspci-vvnn.txt`;
const z390Text = readFileSync(Z390, 'utf8');
const z390 = (text = z390Text): Machine => machineFromLspci(parseLspci(text, Z390), Z390);

test('Z390: the NVIDIA GPU 01:00.0 is not viable; nvidia, snd_hda_intel and xhci_hcd block; companions named; the root port left alone', () => {
  const r = vfioCheck(z390(), '01:00.0');
  assert.equal(r.bdf, '0000:01:00.0');
  assert.equal(r.group, 1);
  assert.equal(r.groupSource, 'kernel');
  assert.equal(r.viable, false);
  assert.deepEqual(
    r.blockers.map((b) => [b.bdf, b.driver]),
    [
      ['0000:01:00.0', 'nvidia'],
      ['0000:01:00.1', 'snd_hda_intel'],
      ['0000:01:00.2', 'xhci_hcd'],
    ],
  );
  assert.match(r.blockers[1]!.why, /bound to snd_hda_intel, a kernel DMA driver: the group cannot be owned for user DMA while it is bound/);
  assert.deepEqual(
    r.members.map((m) => [m.bdf, m.role, m.driver, m.class]),
    [
      ['0000:00:01.0', 'bridge', 'pcieport', '060400'],
      ['0000:01:00.0', 'target', 'nvidia', '030000'],
      ['0000:01:00.1', 'companion', 'snd_hda_intel', '040300'],
      ['0000:01:00.2', 'companion', 'xhci_hcd', '0c0330'],
      ['0000:01:00.3', 'companion', null, '0c8000'],
    ],
  );
  assert.equal(r.members[2]!.relation, 'GPU audio function of 0000:01:00.0');
  assert.equal(r.members[3]!.relation, 'GPU USB controller of 0000:01:00.0');
  assert.equal(r.members[4]!.relation, 'GPU USB-C UCSI controller of 0000:01:00.0');
  assert.match(r.members[1]!.name, /NVIDIA Corporation TU106/);
  const dev = (b: string) => `/sys/bus/pci/devices/${b}`;
  assert.deepEqual(r.plan, [
    { write: `${dev('0000:01:00.0')}/driver_override`, value: 'vfio-pci' },
    { write: `${dev('0000:01:00.0')}/driver/unbind`, value: '0000:01:00.0' },
    { write: '/sys/bus/pci/drivers_probe', value: '0000:01:00.0' },
    { write: `${dev('0000:01:00.1')}/driver_override`, value: 'vfio-pci' },
    { write: `${dev('0000:01:00.1')}/driver/unbind`, value: '0000:01:00.1' },
    { write: '/sys/bus/pci/drivers_probe', value: '0000:01:00.1' },
    { write: `${dev('0000:01:00.2')}/driver_override`, value: 'vfio-pci' },
    { write: `${dev('0000:01:00.2')}/driver/unbind`, value: '0000:01:00.2' },
    { write: '/sys/bus/pci/drivers_probe', value: '0000:01:00.2' },
    // The UCSI function is unbound: no unbind step.
    { write: `${dev('0000:01:00.3')}/driver_override`, value: 'vfio-pci' },
    { write: '/sys/bus/pci/drivers_probe', value: '0000:01:00.3' },
  ]);
  assert.ok(!r.plan.some((s) => s.write.includes('0000:00:01.0') || s.value === '0000:00:01.0'), 'the root port on pcieport needs no change');
});

test('a device alone in its group bound to vfio-pci is viable with an empty plan', () => {
  // The Z390's Wi-Fi card 04:00.0 is alone in group 10; pretend it was handed to vfio-pci.
  const text = z390Text.replace(/(\n04:00\.0 [^\n]*\n(?:\t[^\n]*\n)*?\tKernel driver in use: )iwlwifi/, '$1vfio-pci');
  assert.notEqual(text, z390Text);
  const r = vfioCheck(z390(text), '0000:04:00.0');
  assert.equal(r.group, 10);
  assert.deepEqual(r.members.map((m) => [m.bdf, m.role, m.driver]), [['0000:04:00.0', 'target', 'vfio-pci']]);
  assert.equal(r.viable, true);
  assert.deepEqual(r.blockers, []);
  assert.deepEqual(r.plan, []);
  // And on iwlwifi (as in the dump): not viable, the device itself is the blocker.
  const before = vfioCheck(z390(), '04:00.0');
  assert.equal(before.viable, false);
  assert.deepEqual(before.blockers.map((b) => b.bdf), ['0000:04:00.0']);
  assert.equal(before.plan.length, 3);
});

test('a group with a bridge bound to shpchp (t17 group 6): the bridge is a blocker, parked on pci-stub; the pcieport root port is left alone', () => {
  const { machine, options } = loadSysfs(`${FIXTURES}oracle/t17-pxb-expander-buses/sys.tar.gz`);
  const r = vfioCheck(machine, '0000:82:01.0', options);
  assert.equal(r.group, 6);
  assert.equal(r.viable, false);
  const bridge = r.blockers.find((b) => b.bdf === '0000:81:00.0')!;
  assert.equal(bridge.driver, 'shpchp');
  assert.match(bridge.why, /bridge bound to shpchp, a kernel DMA driver/);
  assert.deepEqual(r.members.map((m) => [m.bdf, m.role]), [['0000:80:00.0', 'bridge'], ['0000:81:00.0', 'bridge'], ['0000:82:01.0', 'target']]);
  assert.deepEqual(r.plan.slice(0, 3), [
    { write: '/sys/bus/pci/devices/0000:81:00.0/driver_override', value: 'pci-stub' },
    { write: '/sys/bus/pci/devices/0000:81:00.0/driver/unbind', value: '0000:81:00.0' },
    { write: '/sys/bus/pci/drivers_probe', value: '0000:81:00.0' },
  ]);
  assert.ok(!r.plan.some((s) => s.write.includes('0000:80:00.0')));
  assert.deepEqual(r.resetMethods, ['bus']);
  assert.equal(r.directMappedChecked, true);
  assert.deepEqual(r.directMappedRegions, []);
  // The rand-* and t21 snapshots with shpchp bridges: each such bridge blocks its group in every check.
  for (const c of ['rand-0004', 'rand-0006', 'rand-0012', 't21-pxb-bridges-amd']) {
    const s = JSON.parse(readFileSync(`${FIXTURES}oracle/${c}/summary.json`, 'utf8')) as Summary;
    const l = loadSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`);
    const shpc = Object.entries(s.devices).filter(([, d]) => d.driver === 'shpchp');
    assert.ok(shpc.length > 0, c);
    for (const [b] of shpc) {
      const x = vfioCheck(l.machine, b, l.options);
      assert.ok(x.blockers.some((k) => k.bdf === b && /^bridge bound to shpchp/.test(k.why)), `${c} ${b}`);
    }
  }
});

test('an RMRR (IOMMU_RESV_DIRECT) blocks the group; a relaxable one (GPU, ISA floppy range) does not', () => {
  const m = z390();
  // An RMRR on the Ethernet function 00:1f.6 (group 9 with the PCH functions): never assignable.
  const r = vfioCheck(m, '00:1f.6', { rmrrs: [{ start: 0x3e000000, length: 0x200000, devices: ['0000:00:1f.6'] }] });
  assert.equal(r.directMappedChecked, true);
  assert.ok(r.directMappedRegions.some((d) => d.bdf === '0000:00:1f.6' && d.type === 'direct' && d.blocks && d.start === '0x000000003e000000' && d.end === '0x000000003e1fffff'));
  const b = r.blockers.find((x) => x.bdf === '0000:00:1f.6')!;
  assert.match(b.why, /refuses the blocking domain for it \(EINVAL\)/);
  // The ISA bridge 00:1f.0 in the same group has the floppy range: direct-relaxable, not a blocker by itself.
  assert.ok(r.directMappedRegions.some((d) => d.bdf === '0000:00:1f.0' && d.type === 'direct-relaxable' && !d.blocks));
  assert.ok(r.notes.some((n) => /do not block assignment/.test(n)));
  assert.ok(!r.blockers.some((x) => x.bdf === '0000:00:1f.0'), 'the unbound ISA bridge is no blocker');
  // A GPU's RMRR is relaxable (device_rmrr_is_relaxable): the GPU group's blockers stay its drivers.
  const g = vfioCheck(m, '01:00.0', { rmrrs: [{ start: 0x3e000000, length: 0x200000, devices: ['0000:01:00.0'] }] });
  assert.ok(g.directMappedRegions.some((d) => d.bdf === '0000:01:00.0' && d.type === 'direct-relaxable'));
  assert.deepEqual(g.blockers.map((x) => x.bdf), ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2']);
});

test("a 'direct' line in the kernel's reserved_regions blocks the group even when no device can be named", () => {
  const { machine, options } = loadSysfs(`${FIXTURES}oracle/t07-pcie-to-pci-bridge-aliasing/sys.tar.gz`);
  const regions = new Map(options.kernelReservedRegions);
  regions.set(3, '0x000000007f000000 0x000000007f0fffff direct\n0x00000000fee00000 0x00000000feefffff msi\n');
  const r = vfioCheck(machine, '0000:00:04.0', { kernelReservedRegions: regions });
  assert.equal(r.viable, false);
  assert.deepEqual(r.directMappedRegions, [
    { bdf: null, type: 'direct', start: '0x000000007f000000', end: '0x000000007f0fffff', blocks: true, source: 'kernel' },
  ]);
  assert.equal(r.blockers.length, 1);
  assert.equal(r.blockers[0]!.bdf, null);
  assert.match(r.blockers[0]!.why, /EINVAL/);
  // Without the override, the same root port (alone, on pcieport) is viable.
  assert.equal(vfioCheck(machine, '0000:00:04.0', options).viable, true);
});

test('without the kernel reserved_regions a sysfs source says the direct-mapped check needs the firmware tables', () => {
  const { machine } = loadSysfs(`${FIXTURES}oracle/t07-pcie-to-pci-bridge-aliasing/sys.tar.gz`);
  const r = vfioCheck(machine, '0000:00:1f.2');
  assert.equal(r.directMappedChecked, false);
  assert.ok(r.notes.some((n) => /needs the firmware tables/.test(n) && /DMAR/.test(n)));
  // The model still reports the ISA bridge's floppy range (direct-relaxable).
  assert.ok(r.directMappedRegions.some((d) => d.bdf === '0000:00:1f.0' && d.type === 'direct-relaxable' && d.source === 'model'));
});

test('no active IOMMU (t15): the model predicts the group, says so, and nothing is viable yet', () => {
  const { machine, options } = loadSysfs(`${FIXTURES}oracle/t15-no-iommu/sys.tar.gz`);
  const some = machine.topology.devices.find((d) => d.classCode >> 16 === 0x02)!;
  const r = vfioCheck(machine, some.bdf, options);
  assert.equal(r.groupSource, 'model');
  assert.equal(r.iommuActive, false);
  assert.notEqual(r.group, null);
  assert.equal(r.viable, false);
  assert.ok(r.notes.some((n) => /no active IOMMU/.test(n) && /model's prediction/.test(n)));
  assert.ok(r.plan.length > 0, 'the plan still says what to do once the IOMMU is on');
  // Checking again on the same machine (the prediction is made once per machine).
  assert.deepEqual(vfioCheck(machine, some.bdf, options), r);
});

test('a function in no group (the AMD IOMMU itself) is not viable and gets no plan', () => {
  const file = `${FIXTURES}real-lspci/amd-x570-asus-prime-x570-pro-ubuntu2204-5.15/lspci-vvnn.txt`;
  const m = machineFromLspci(parseLspci(readFileSync(file, 'utf8'), file), file);
  const r = vfioCheck(m, '00:00.2');
  assert.equal(r.group, null);
  assert.equal(r.viable, false);
  assert.match(r.blockers[0]!.why, /in no IOMMU group \(the AMD IOMMU itself/);
  assert.deepEqual(r.plan, []);
  assert.deepEqual(r.members.map((x) => x.role), ['target']);
});

test('a malformed BDF is EINVAL and an absent one ENODEV, both naming the input', () => {
  const m = z390();
  assert.throws(() => vfioCheck(m, '01:00'), (e) => isIommuError(e, 'EINVAL') && e.input === '01:00');
  assert.throws(() => vfioCheck(m, '0000:01:20.0'), (e) => isIommuError(e, 'EINVAL'));
  assert.throws(() => vfioCheck(m, '0000:09:00.0'), (e) => isIommuError(e, 'ENODEV') && e.message.includes('0000:09:00.0'));
});
