// Hotplug through the bus notifier, at random: functions hot-added and hot-removed, SR-IOV VFs enabled and
// disabled in bulk, DMA issued by live and removed devices. After every step the group invariants hold; at
// the end, with everything hot-plugged gone again, no group, group id, domain page table or reference leaked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bootIommu } from '../../src/machine/boot.js';
import { machineFromTopology } from '../../src/machine/machine.js';
import { buildConfig } from '../../src/pci/config-builder.js';
import { buildPciTopology } from '../../src/pci/topology.js';
import { pciHotAdd, pciHotRemove } from '../../src/pci/hotplug.js';
import { pciDisableSriov, pciEnableSriov, pciNumVf } from '../../src/pci/sriov.js';
import { PcieType, PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF } from '../../src/pci/regs.js';
import type { PciDev } from '../../src/pci/pci-dev.js';
import { devIommu, type IommuCore } from '../../src/iommu/core.js';
import type { IommuDomain } from '../../src/iommu/domain.js';
import { dmaMapPage, dmaUnmapPage } from '../../src/iommu/dma-iommu.js';
import { iommuTranslate } from '../../src/iommu/translate.js';
import { IOMMU_READ } from '../../src/io-pgtable/io-pgtable.js';

const ACS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
/** Hot-add slots: behind the ACS root port 00:03.0 (bus 7) and the non-ACS root port 00:02.0 (bus 4). */
const SLOTS = ['0000:07:00.0', '0000:07:00.1', '0000:07:00.2', '0000:04:00.0', '0000:04:00.1', '0000:00:05.0', '0000:00:06.0'];

function machine() {
  const topo = buildPciTopology(
    [
      ['0000:00:01.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 1, subordinate: 3 }, acs: { cap: ACS, ctrl: ACS } })],
      ['0000:01:00.0', buildConfig({ pcieType: PcieType.ENDPOINT, sriov: { totalVfs: 600, firstVfOffset: 1, vfStride: 1, vfDevice: 0x10ed } })],
      ['0000:00:02.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 4, subordinate: 4 } })],
      ['0000:00:03.0', buildConfig({ pcieType: PcieType.ROOT_PORT, bridge: { primary: 0, secondary: 7, subordinate: 7 }, acs: { cap: ACS, ctrl: ACS } })],
    ].map(([bdf, config]) => ({ bdf: bdf as string, config: config as Uint8Array, origin: 'synthetic' as const })),
  );
  const booted = bootIommu(machineFromTopology(topo), { cmdline: 'intel_iommu=on iommu.strict=1', driver: 'intel' });
  return { topo, core: booted.core, pf: topo.byBdf.get('0000:01:00.0')! };
}

function checkInvariants(core: IommuCore, live: readonly PciDev[], gone: readonly PciDev[]): void {
  const ids = new Set<number>();
  for (const p of live) {
    const di = devIommu(p.dev);
    assert.ok(di, `${p.bdf} is probed`);
    const g = core.groups.get(p.dev)!;
    assert.ok(g.devices.some((x) => x.dev === p.dev), `${p.bdf} listed by its group`);
    assert.ok(g.defaultDomain && g.domain, `${p.bdf}: its group has a default domain attached`);
    assert.equal(di.domain, g.domain, `${p.bdf} is on its group's domain`);
    assert.ok(!(g.domain as IommuDomain).freed);
    ids.add(g.id);
    core.groups.put(g);
  }
  for (const p of gone) {
    assert.equal(p.dev.iommuGroup, null, `${p.bdf} removed: no group`);
    assert.equal(devIommu(p.dev), null);
  }
  const groups = [...core.groups];
  assert.equal(groups.length, ids.size, 'every group has a live member, none is shared by accident');
  for (const g of groups) assert.equal(g.refcount, g.devices.length, `group ${g.id}: one reference per member, none leaked`);
}

type Cmd = { op: 'add'; slot: number } | { op: 'remove'; pick: number } | { op: 'enable'; n: number } | { op: 'disable' } | { op: 'dma'; pick: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), slot: fc.nat(SLOTS.length - 1) }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('enable' as const), n: fc.integer({ min: 1, max: 600 }) }),
  fc.record({ op: fc.constant('disable' as const) }),
  fc.record({ op: fc.constant('dma' as const), pick: fc.nat() }),
);

test('hotplug property: random add/remove of functions and VFs keeps the group invariants and leaks nothing', () => {
  fc.assert(
    fc.property(fc.array(cmd, { maxLength: 40 }), (cmds) => {
      const { topo, core, pf } = machine();
      const baseGroups = [...core.groups].map((g) => g.id);
      const basePages = core.mem.tablePagesInUse;
      const base = [...topo.devices];
      const hot: PciDev[] = [];
      const gone: PciDev[] = [];
      const live = (): PciDev[] => [...base, ...hot, ...topo.devices.filter((d) => d.isVirtfn)];
      for (const c of cmds) {
        if (c.op === 'add') {
          const bdf = SLOTS[c.slot]!;
          if (topo.byBdf.has(bdf)) continue;
          hot.push(pciHotAdd(topo, bdf, buildConfig({ pcieType: PcieType.ENDPOINT, multifunction: bdf.endsWith('.1') || bdf.endsWith('.2') })));
        } else if (c.op === 'remove') {
          const vfs = topo.devices.filter((d) => d.isVirtfn);
          const pool = [...hot, ...vfs];
          if (pool.length === 0) continue;
          const p = pool[c.pick % pool.length]!;
          pciHotRemove(topo, p);
          if (hot.includes(p)) hot.splice(hot.indexOf(p), 1);
          gone.push(p);
        } else if (c.op === 'enable') {
          if (pciNumVf(pf) > 0 || topo.devices.some((d) => d.physfn === pf)) continue;
          pciEnableSriov(topo, pf, c.n);
        } else if (c.op === 'disable') {
          const vfs = topo.devices.filter((d) => d.physfn === pf);
          pciDisableSriov(topo, pf);
          gone.push(...vfs);
        } else {
          // DMA: a hot-plugged device maps a page and translates it (its domain's tables go with it); a removed one faults.
          // (Only devices whose group has no boot-time member: a shared group's domain keeps its tables.)
          const all = live().filter((d) => {
            const g = core.groups.get(d.dev)!;
            core.groups.put(g);
            return !g.devices.some((m) => base.some((b) => b.dev === m.dev));
          });
          if (all.length === 0) continue;
          const p = all[c.pick % all.length]!;
          const iova = dmaMapPage(core, p.dev, 0x4000_0000, 4096);
          assert.equal(iommuTranslate(core, p.dev, iova + 8, IOMMU_READ), 0x4000_0008);
          assert.equal(dmaUnmapPage(core, p.dev, iova, 4096), 4096);
          if (gone.length > 0) {
            const g = gone[c.pick % gone.length]!;
            if (!g.dev.registered) assert.equal(iommuTranslate(core, g.dev, 0x1000, IOMMU_READ), -1);
          }
        }
        checkInvariants(core, live(), gone.filter((g) => !g.dev.registered));
      }
      // Tear down everything hot-plugged: the core is back where it started.
      pciDisableSriov(topo, pf);
      for (const p of [...hot].reverse()) pciHotRemove(topo, p);
      assert.deepEqual([...core.groups].map((g) => g.id), baseGroups, 'the same groups, no leaked group or id');
      assert.equal(core.mem.tablePagesInUse, basePages, 'every page table of a freed domain returned');
      checkInvariants(core, base, []);
      const next = core.groups.alloc();
      assert.equal(next.id, Math.max(-1, ...baseGroups) + 1, 'the next group id is the first free one');
      core.groups.put(next);
    }),
    { numRuns: 60, seed: 0x10c0 },
  );
});
