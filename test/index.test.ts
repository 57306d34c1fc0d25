// The package's entry point: the README's library example works as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSysfs, readPciSysfs, machineFromSysfs, predictGroups, compareGroups, IommuError, PcieType } from '../src/index.js';
import { FIXTURES } from './fixtures.js';

test('README library example: read a snapshot, predict the groups, compare with the kernel', () => {
  const machine = machineFromSysfs(readPciSysfs(openSysfs(`${FIXTURES}oracle/t05-switch-downstream-ports/sys.tar.gz`)));
  const prediction = predictGroups(machine);
  assert.ok(prediction.groups.length > 3);
  assert.ok(prediction.groups.every((g) => g.devices.length > 0));
  assert.equal(compareGroups(machine, prediction).partitionsAgree, true);
  assert.equal(PcieType.ROOT_PORT, 4);
});

test('errors carry the errno name Linux would return', () => {
  assert.throws(() => openSysfs('/nonexistent/path'), (e: unknown) => e instanceof IommuError && e.errno === 'ENOENT' && e.code === -2);
});

test('the package root exports the driver, firmware-table and hotplug API', async () => {
  const lib = await import('../src/index.js');
  for (const name of ['createMockIommu', 'createVirtioIommu', 'createArmSmmuV3FromIort', 'iortFirmwareConfig', 'iommuFwspecInit', 'iommuFwspecAddIds', 'parseDmar', 'parseIvrs', 'parseIort', 'pciHotAdd', 'pciHotRemove', 'pciEnableSriov', 'pciDisableSriov']) {
    assert.equal(typeof (lib as Record<string, unknown>)[name], 'function', name);
  }
});
