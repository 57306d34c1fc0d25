import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciDevFlags } from '../../../src/pci/pci-dev.js';
import { PcieType } from '../../../src/pci/regs.js';
import { PCI_ANY_ID } from '../../../src/pci/quirks/acs.js';
import {
  applyPciFixups,
  FIXED_DMA_ALIAS_TBL,
  PCI_ANY_CLASS,
  PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS,
  PCI_DMA_ALIAS_FIXUPS,
  PCI_FIXUP_FUNCTIONS,
  pciFixupMatches,
  type PciFixupEntry,
} from '../../../src/pci/quirks/dma-alias.js';
import { aliasCount, childBus, makeDev, rootBus } from './helpers.js';

/** Root bus 0 with a PCIe root port 00:01.0 whose secondary bus is `n`; returns that bus. */
function belowRootPort(n: number) {
  const root = rootBus();
  const rp = makeDev(root, 1, 0, { vendor: 0x1234, device: 0x0001, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: n });
  return childBus(root, rp, n);
}

test('vector 14: Marvell 1b4b:9123 at 03:00.0 gets DMA alias 03:00.1', () => {
  const bus = belowRootPort(3);
  const dev = makeDev(bus, 0, 0, { vendor: 0x1b4b, device: 0x9123, classCode: 0x010601, pcieType: PcieType.LEG_END });
  assert.deepEqual(applyPciFixups(dev), ['quirk_dma_func1_alias']);
  assert.ok(dev.hasDmaAlias(0x01));
  assert.equal(aliasCount(dev), 1);
  assert.ok(dev.quirkNotes.some((n) => n.includes('DMA alias 00.1 added') && n.includes('quirk_dma_func1_alias')));
  // function 1 itself gets no alias
  const f1 = makeDev(bus, 0, 1, { vendor: 0x1b4b, device: 0x9123, classCode: 0x01018f, pcieType: PcieType.LEG_END });
  assert.deepEqual(applyPciFixups(f1), ['quirk_dma_func1_alias']);
  assert.equal(f1.dmaAliasMask, null);
  assert.match(f1.quirkNotes[0]!, /function 1 itself/);
});

test('the other function-1 aliasers: TTI, JMicron JMB388, Plextor M6E', () => {
  const bus = belowRootPort(4);
  for (const [vendor, device] of [
    [0x1103, 0x0642],
    [0x1103, 0x0645],
    [0x197b, 0x2392],
    [0x1c28, 0x0122],
  ] as const) {
    const dev = makeDev(bus, 2, 0, { vendor, device, pcieType: PcieType.ENDPOINT });
    assert.deepEqual(applyPciFixups(dev), ['quirk_dma_func1_alias']);
    assert.ok(dev.hasDmaAlias((2 << 3) | 1));
  }
});

test('Ricoh e832 function 1 gets alias to function 0; function 0 gets none', () => {
  const bus = belowRootPort(5);
  const f1 = makeDev(bus, 0, 1, { vendor: 0x1180, device: 0xe832, classCode: 0x0c0010, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(f1), ['quirk_dma_func0_alias']);
  assert.ok(f1.hasDmaAlias(0x00));
  assert.equal(aliasCount(f1), 1);
  const f0 = makeDev(bus, 0, 0, { vendor: 0x1180, device: 0xe832, classCode: 0x0c0010, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(f0), ['quirk_dma_func0_alias']);
  assert.equal(f0.dmaAliasMask, null);
  // Glenfly HD audio at function 1
  const gf = makeDev(bus, 1, 1, { vendor: 0x6766, device: 0x3d41, classCode: 0x040300, pcieType: PcieType.ENDPOINT });
  applyPciFixups(gf);
  assert.ok(gf.hasDmaAlias(1 << 3));
});

test('Adaptec 9005:0285: fixed alias 01.0 only with a subsystem in fixed_dma_alias_tbl', () => {
  const bus = belowRootPort(6);
  const a3405 = makeDev(bus, 0x0e, 0, { vendor: 0x9005, device: 0x0285, classCode: 0x010400, subsystem: { vendor: 0x9005, device: 0x02bb } });
  assert.deepEqual(applyPciFixups(a3405), ['quirk_fixed_dma_alias']);
  assert.ok(a3405.hasDmaAlias(0x08));
  assert.equal(aliasCount(a3405), 1);
  const a3805 = makeDev(bus, 0x0e, 1, { vendor: 0x9005, device: 0x0285, classCode: 0x010400, subsystem: { vendor: 0x9005, device: 0x02bc } });
  applyPciFixups(a3805);
  assert.ok(a3805.hasDmaAlias(0x08));
  const other = makeDev(bus, 0x0f, 0, { vendor: 0x9005, device: 0x0285, classCode: 0x010400, subsystem: { vendor: 0x9005, device: 0x0200 } });
  assert.deepEqual(applyPciFixups(other), ['quirk_fixed_dma_alias']);
  assert.equal(other.dmaAliasMask, null);
  assert.match(other.quirkNotes[0]!, /9005:0200 is not in fixed_dma_alias_tbl/);
  const wrongSubVendor = makeDev(bus, 0x10, 0, { vendor: 0x9005, device: 0x0285, subsystem: { vendor: 0x1028, device: 0x02bb } });
  applyPciFixups(wrongSubVendor);
  assert.equal(wrongSubVendor.dmaAliasMask, null);
  assert.equal(FIXED_DMA_ALIAS_TBL.length, 2);
});

test('ASMedia 1b21:1080 bridge below a PCIe root port gets PCIE_BRIDGE_ALIAS; not on a root bus', () => {
  const bus = belowRootPort(2);
  const asm = makeDev(bus, 0, 0, { vendor: 0x1b21, device: 0x1080, hdrType: 1, secondaryBus: 3 });
  assert.equal(asm.isPcie, false);
  assert.deepEqual(applyPciFixups(asm), ['quirk_use_pcie_bridge_dma_alias']);
  assert.ok(asm.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS);

  const onRoot = makeDev(rootBus(), 0x1e, 0, { vendor: 0x1b21, device: 0x1080, hdrType: 1, secondaryBus: 3 });
  assert.deepEqual(applyPciFixups(onRoot), ['quirk_use_pcie_bridge_dma_alias']);
  assert.equal(onRoot.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS, 0);
  assert.match(onRoot.quirkNotes[0]!, /root bus/);
});

test('quirk_use_pcie_bridge_dma_alias: not below a PCIe-to-PCI bridge, not below a conventional bridge, not with its own PCIe capability', () => {
  const root = rootBus();
  const rp = makeDev(root, 1, 0, { vendor: 0x1234, device: 1, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 1 });
  const bus1 = childBus(root, rp, 1);
  const pcieToPci = makeDev(bus1, 0, 0, { vendor: 0x1234, device: 2, hdrType: 1, pcieType: PcieType.PCI_BRIDGE, secondaryBus: 2 });
  const bus2 = childBus(bus1, pcieToPci, 2);
  const behindBridge = makeDev(bus2, 4, 0, { vendor: 0x10e3, device: 0x8113, hdrType: 1, secondaryBus: 3 });
  applyPciFixups(behindBridge);
  assert.equal(behindBridge.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS, 0);
  assert.match(behindBridge.quirkNotes[0]!, /itself a PCIe-to-PCI bridge/);

  const bus3 = childBus(bus2, behindBridge, 3);
  const belowConventional = makeDev(bus3, 0, 0, { vendor: 0x1283, device: 0x8892, hdrType: 1, secondaryBus: 4 });
  applyPciFixups(belowConventional);
  assert.equal(belowConventional.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS, 0);
  assert.match(belowConventional.quirkNotes[0]!, /not PCIe/);

  const withPcie = makeDev(bus1, 1, 0, { vendor: 0x1283, device: 0x8893, hdrType: 1, pcieType: PcieType.PCI_BRIDGE, secondaryBus: 5 });
  applyPciFixups(withPcie);
  assert.equal(withPcie.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS, 0);

  const notBridge = makeDev(bus1, 2, 0, { vendor: 0x8086, device: 0x244e });
  applyPciFixups(notBridge);
  assert.equal(notBridge.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS, 0);

  // below a downstream port: yes
  const dsp = makeDev(bus1, 3, 0, { vendor: 0x1234, device: 3, hdrType: 1, pcieType: PcieType.DOWNSTREAM, secondaryBus: 6 });
  const bus6 = childBus(bus1, dsp, 6);
  const intel = makeDev(bus6, 0, 0, { vendor: 0x8086, device: 0x244e, hdrType: 1, secondaryBus: 7 });
  applyPciFixups(intel);
  assert.ok(intel.devFlags & PciDevFlags.PCIE_BRIDGE_ALIAS);
});

test('PLX NTB 10b5:87b0 aliases all 256 devfns', () => {
  const dev = makeDev(belowRootPort(8), 0, 1, { vendor: 0x10b5, device: 0x87b0, classCode: 0x068000, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(dev), ['quirk_plx_ntb_dma_alias']);
  assert.equal(aliasCount(dev), 256);
  assert.ok(dev.quirkNotes.some((n) => n.includes('00.0..1f.7')));
});

test('Cavium ThunderX2 14e4:9000 bridge gets BRIDGE_XLATE_ROOT', () => {
  const root = rootBus();
  const br = makeDev(root, 0, 0, { vendor: 0x14e4, device: 0x9000, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 1 });
  assert.deepEqual(applyPciFixups(br), ['quirk_bridge_cavm_thrx2_pcie_root']);
  assert.ok(br.devFlags & PciDevFlags.BRIDGE_XLATE_ROOT);
  const br2 = makeDev(root, 1, 0, { vendor: 0x14e4, device: 0x9084, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 2 });
  applyPciFixups(br2);
  assert.ok(br2.devFlags & PciDevFlags.BRIDGE_XLATE_ROOT);
});

test('MIC x200 aliases 10.0, 11.0, 12.3; VCA aliases functions 0-4 of every slot', () => {
  const bus = belowRootPort(9);
  const mic = makeDev(bus, 0, 0, { vendor: 0x8086, device: 0x2264, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(mic), ['quirk_mic_x200_dma_alias']);
  assert.deepEqual(
    [...Array(256).keys()].filter((d) => mic.hasDmaAlias(d)),
    [0x80, 0x88, 0x93],
  );
  const vca = makeDev(bus, 1, 0, { vendor: 0x8086, device: 0x295a, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(vca), ['quirk_pex_vca_alias']);
  assert.equal(aliasCount(vca), 32 * 5);
  assert.ok(vca.hasDmaAlias((31 << 3) | 4));
  assert.ok(!vca.hasDmaAlias((31 << 3) | 5));
});

test('Switchtec NTB: class-restricted final fixup; aliases unknown (assumption), management function not matched', () => {
  const bus = belowRootPort(10);
  const ntb = makeDev(bus, 0, 1, { vendor: 0x11f8, device: 0x8531, classCode: 0x068000, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(ntb), ['quirk_switchtec_ntb_dma_alias']);
  assert.equal(ntb.dmaAliasMask, null);
  assert.equal(ntb.assumptions.length, 1);
  assert.match(ntb.assumptions[0]!, /aliases are unknown/);
  const mgmt = makeDev(bus, 0, 0, { vendor: 0x11f8, device: 0x8531, classCode: 0x058000, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(mgmt), []);
  const efar = makeDev(bus, 1, 0, { vendor: 0x1055, device: 0x1006, classCode: 0x068000, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(efar), ['quirk_switchtec_ntb_dma_alias']);
});

test('ASPEED AST1150 gets PCI_BRIDGE_NO_ALIAS', () => {
  const bus = belowRootPort(11);
  const br = makeDev(bus, 0, 0, { vendor: 0x1a03, device: 0x1150, hdrType: 1, pcieType: PcieType.PCI_BRIDGE, secondaryBus: 12 });
  assert.deepEqual(applyPciFixups(br), ['quirk_aspeed_pci_bridge_no_alias']);
  assert.equal(br.devFlags & PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS, PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS);
});

test('no fixup for an unrelated function', () => {
  const dev = makeDev(belowRootPort(1), 0, 0, { vendor: 0x1234, device: 0x9123, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(dev), []);
  assert.equal(dev.quirkNotes.length, 0);
  const intel = makeDev(belowRootPort(1), 0, 0, { vendor: 0x8086, device: 0x9123, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(applyPciFixups(intel), []);
});

test('pci_do_fixups matching: PCI_ANY_ID vendor/device and shifted class', () => {
  const dev = makeDev(belowRootPort(1), 0, 0, { vendor: 0x1234, device: 0x5678, classCode: 0x068000, pcieType: PcieType.ENDPOINT });
  const any: PciFixupEntry = {
    pass: 'header',
    vendor: PCI_ANY_ID,
    device: PCI_ANY_ID,
    classCode: PCI_ANY_CLASS,
    classShift: 0,
    hook: 'quirk_dma_func0_alias',
    chip: 'test',
  };
  assert.ok(pciFixupMatches(any, dev));
  assert.ok(pciFixupMatches({ ...any, classCode: 0x0680, classShift: 8 }, dev));
  assert.ok(pciFixupMatches({ ...any, classCode: 0x06, classShift: 16 }, dev));
  assert.ok(!pciFixupMatches({ ...any, classCode: 0x0604, classShift: 8 }, dev));
  assert.ok(pciFixupMatches({ ...any, vendor: 0x1234 }, dev));
  assert.ok(!pciFixupMatches({ ...any, vendor: 0x1235 }, dev));
  assert.ok(!pciFixupMatches({ ...any, device: 0x5679 }, dev));
});

test('fixup table sanity: 141 entries, no duplicates, IDs in range, every hook implemented', () => {
  assert.equal(PCI_DMA_ALIAS_FIXUPS.length, 141);
  const seen = new Set<string>();
  for (const f of PCI_DMA_ALIAS_FIXUPS) {
    assert.ok(Number.isInteger(f.vendor) && f.vendor >= 0 && f.vendor < 0xffff);
    assert.ok(Number.isInteger(f.device) && f.device >= 0 && f.device < 0xffff);
    assert.equal(typeof PCI_FIXUP_FUNCTIONS[f.hook], 'function');
    assert.ok(f.chip.length > 0);
    if (f.classCode !== PCI_ANY_CLASS) {
      assert.equal(f.pass, 'final');
      assert.equal(f.classShift, 8);
    }
    const k = `${f.pass}:${f.vendor}:${f.device}:${f.hook}`;
    assert.ok(!seen.has(k), `duplicate ${k}`);
    seen.add(k);
  }
  const count = (hook: string) => PCI_DMA_ALIAS_FIXUPS.filter((f) => f.hook === hook).length;
  assert.equal(count('quirk_dma_func0_alias'), 4);
  assert.equal(count('quirk_dma_func1_alias'), 19);
  assert.equal(count('quirk_use_pcie_bridge_dma_alias'), 5);
  assert.equal(count('quirk_pex_vca_alias'), 6);
  assert.equal(count('quirk_switchtec_ntb_dma_alias'), 99);
  assert.equal(count('quirk_plx_ntb_dma_alias'), 2);
});
