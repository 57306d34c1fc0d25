// IOMMU units from the firmware tables: with --predict, each device's unit
// comes from DMAR/IVRS and must equal the kernel's `iommu` link on every
// snapshot; and the DMAR matching order on a hand-built two-unit table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firmwareIommuUnits } from '../../src/machine/firmware-units.js';
import { machineFromSysfs, machineFromTopology } from '../../src/machine/machine.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { PcieType } from '../../src/pci/regs.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { openSysfs } from '../../src/sysfs/source.js';
import { readPciSysfs } from '../../src/sysfs/pci-reader.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';
import { groupsJson } from './helpers.js';
import { header, table } from '../firmware/build.js';

for (const c of fixtureCases('oracle')) {
  const reading = readPciSysfs(openSysfs(`${FIXTURES}oracle/${c}/sys.tar.gz`));
  if (!reading.kernelGroups) continue;
  test(`firmware units of ${c} equal the kernel's iommu links; groups --predict --json reports them`, async () => {
    const fw = firmwareIommuUnits(machineFromSysfs(reading))!;
    assert.ok(fw, 'the snapshot has a DMAR or IVRS table');
    for (const f of reading.functions) assert.equal(fw.units.get(f.bdf) ?? null, f.iommu, `${f.bdf}`);
    const j = await groupsJson(['groups', '--sysfs', `${FIXTURES}oracle/${c}/sys.tar.gz`, '--predict', '--json']);
    for (const g of j.groups) for (const d of g.devices) assert.equal(d.iommu, reading.functions.find((f) => f.bdf === d.bdf)!.iommu);
  });
}

test('DMAR matching: explicit scopes first (a bridge scope covers its subtree), the INCLUDE_PCI_ALL unit last', () => {
  const b = header('DMAR').u8(38).u8(0).raw(new Array(10).fill(0));
  // dmar0: INCLUDE_PCI_ALL, segment 0, no scopes.
  b.u16(0).u16(16).u8(1).u8(0).u16(0).u64(0xfed90000n);
  // dmar1: explicit, a PCI sub-hierarchy scope for the root port 00:1c.0.
  b.u16(0).u16(24).u8(0).u8(0).u16(0).u64(0xfed91000n);
  b.u8(2).u8(8).u16(0).u8(0).u8(0).u8(0x1c).u8(0);
  const machine = {
    ...machineFromTopology(
      buildPciTopology([
        { bdf: '0000:00:02.0', config: buildConfig({ pcieType: PcieType.RC_END, classCode: 0x030000 }), origin: 'synthetic' },
        { bdf: '0000:00:1c.0', config: buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 3, subordinate: 3 } }), origin: 'synthetic' },
        { bdf: '0000:03:00.0', config: buildConfig({ pcieType: PcieType.ENDPOINT }), origin: 'synthetic' },
      ]),
    ),
    acpiTables: { DMAR: table(b) },
  };
  const fw = firmwareIommuUnits(machine)!;
  assert.equal(fw.units.get('0000:00:1c.0'), 'dmar1');
  assert.equal(fw.units.get('0000:03:00.0'), 'dmar1'); // below the bridge in dmar1's scope
  assert.equal(fw.units.get('0000:00:02.0'), 'dmar0'); // everything else: the include-all unit
});

test('no firmware tables (lspci text): no units, and groups --json says null', async () => {
  const j = await groupsJson(['groups', '--lspci', `${FIXTURES}real-lspci/intel-z390-asus-prime-z390-a-debian12-6.1/lspci-vvnn.txt`, '--predict', '--json']);
  assert.ok(j.groups.every((g) => g.devices.every((d) => d.iommu === null)));
});
