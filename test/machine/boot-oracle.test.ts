// The domain layer against the real kernel: boot the IOMMU model the way each
// oracle snapshot's kernel was booted (its command line), probe the topology
// through the driver, and compare every group's members, `type` and
// `reserved_regions` file with what the kernel showed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bootIommu } from '../../src/machine/boot.js';
import { machineFromSysfs } from '../../src/machine/machine.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';

const IDS_DIFFER = new Set(['t17-pxb-expander-buses']); // probe order of pxb host bridges

for (const c of fixtureCases('oracle')) {
  const src = openSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`);
  const reading = readPciSysfs(src);
  if (!reading.kernelGroups) continue;
  const meta = JSON.parse(readFileSync(`${FIXTURES}oracle/${c}/meta.json`, 'utf8')) as { kernel_cmdline: string };
  test(`boot ${c} (${meta.kernel_cmdline.replace(/.*loglevel=4 ?/, '') || 'defaults'}): groups, type and reserved_regions as the kernel's`, () => {
    const { core } = bootIommu(machineFromSysfs(reading), { cmdline: meta.kernel_cmdline });
    const view = renderIommuSysfs(core.groups);
    const byMembers = (groups: { id: number; devices: string[] }[]) => new Map(groups.map((g) => [[...g.devices].sort().join(' '), g.id]));
    const kernel = byMembers(reading.kernelGroups!.map((g) => ({ id: g.id, devices: g.devices })));
    const model = byMembers([...core.groups].map((g) => ({ id: g.id, devices: g.devices.map((d) => d.dev.name) })));
    assert.deepEqual([...model.keys()].sort(), [...kernel.keys()].sort());
    for (const [members, kid] of kernel) {
      const mid = model.get(members)!;
      if (!IDS_DIFFER.has(c)) assert.equal(mid, kid, `group id of {${members}}`);
      const k = reading.kernelGroups!.find((g) => g.id === kid)!;
      assert.equal(view.readFile(`kernel/iommu_groups/${mid}/type`), `${k.type}\n`, `type of group ${kid}`);
      assert.equal(view.readFile(`kernel/iommu_groups/${mid}/reserved_regions`), src.readText(`kernel/iommu_groups/${kid}/reserved_regions`) + '\n', `reserved_regions of group ${kid}`);
    }
  });
}

test('a machine is probed once: a second prediction or boot is EBUSY with a clear message', async () => {
  const { predictGroups } = await import('../../src/machine/predict.js');
  const { IommuError } = await import('../../src/base/errno.js');
  const m = machineFromSysfs(readPciSysfs(openSysfs(`${FIXTURES}oracle/t01-rootport-acs-vs-noacs/sys.tar.gz`)));
  predictGroups(m);
  assert.throws(() => predictGroups(m), (e: unknown) => e instanceof IommuError && e.errno === 'EBUSY' && /already probed/.test(e.message));
  assert.throws(() => bootIommu(m), (e: unknown) => e instanceof IommuError && e.errno === 'EBUSY');
});
