// /sys/class/iommu against the real kernel: boot each oracle snapshot's IOMMU model and compare the
// units' class links, their `devices/` links and every device's `iommu` link with what the kernel showed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bootIommu } from '../../src/machine/boot.js';
import { machineFromSysfs } from '../../src/machine/machine.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { iommuUnitSysfsPath, renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';

for (const c of fixtureCases('oracle')) {
  const src = openSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`);
  const reading = readPciSysfs(src);
  const kernelUnits = src.readDir('class/iommu');
  if (!reading.kernelGroups || !kernelUnits || kernelUnits.length === 0) continue;
  const meta = JSON.parse(readFileSync(`${FIXTURES}oracle/${c}/meta.json`, 'utf8')) as { kernel_cmdline: string };
  test(`/sys/class/iommu of ${c}: unit links, devices/ links and each device's iommu link as the kernel's`, () => {
    const { core } = bootIommu(machineFromSysfs(reading), { cmdline: meta.kernel_cmdline });
    const view = renderIommuSysfs(core.groups, { units: core.units });
    assert.deepEqual(view.readDir('class/iommu'), [...kernelUnits].sort());
    for (const name of kernelUnits) {
      const unit = core.units.find((u) => u.name === name)!;
      assert.equal(view.readLink(`class/iommu/${name}`), src.readLink(`class/iommu/${name}`), `class/iommu/${name}`);
      const up = iommuUnitSysfsPath(unit);
      const kernelDevs = src.readDir(`${up}/devices`) ?? [];
      assert.deepEqual(view.readDir(`${up}/devices`), [...kernelDevs].sort(), `${name}/devices`);
      for (const d of kernelDevs) {
        assert.equal(view.readLink(`${up}/devices/${d}`), src.readLink(`${up}/devices/${d}`), `${name}/devices/${d}`);
        const devPath = `${up}/devices/${d}`;
        // The device's own `iommu` link, reached through the unit's link to it.
        assert.equal(view.readLink(`${devPath}/iommu`), src.readLink(`${devPath}/iommu`), `${d}/iommu`);
      }
    }
  });
}
