// The model's sysfs view against the real kernel's: for every oracle snapshot
// with an active IOMMU, the groups the model forms, rendered as sysfs, have
// the same `kernel/iommu_groups/<id>/devices/<bdf>` links and the same
// `<device>/iommu_group` links, byte for byte, as the kernel showed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderIommuSysfs } from '../../src/iommu/sysfs-view.js';
import { machineFromSysfs } from '../../src/machine/machine.js';
import { predictGroups } from '../../src/machine/predict.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';

const IDS_DIFFER = new Set(['t17-pxb-expander-buses']); // probe order of pxb host bridges (see oracle.test.ts)

for (const c of fixtureCases('oracle')) {
  if (IDS_DIFFER.has(c)) continue;
  const src = openSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`);
  const reading = readPciSysfs(src);
  if (!reading.kernelGroups) continue;
  test(`sysfs view of the model matches the kernel's links: ${c}`, () => {
    const view = renderIommuSysfs(predictGroups(machineFromSysfs(reading)).registry);
    const kernelIds = src.readDir('kernel/iommu_groups')!.sort();
    assert.deepEqual(view.readDir('kernel/iommu_groups')!.slice().sort(), kernelIds);
    for (const id of kernelIds) {
      const members = src.readDir(`kernel/iommu_groups/${id}/devices`)!;
      assert.deepEqual(view.readDir(`kernel/iommu_groups/${id}/devices`)!.slice().sort(), [...members].sort(), `group ${id} members`);
      for (const m of members) {
        const p = `kernel/iommu_groups/${id}/devices/${m}`;
        assert.equal(view.readLink(p), src.readLink(p), p);
      }
    }
    for (const f of reading.functions) {
      // Functions in no group (an AMD IOMMU's own) have no link on either side.
      const p = `${f.path}/iommu_group`;
      assert.equal(view.exists(p) ? view.readLink(p) : null, src.readLink(p), p);
    }
  });
}
