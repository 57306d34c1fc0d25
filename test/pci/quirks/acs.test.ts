import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  PCI_ACS_CR,
  PCI_ACS_DT,
  PCI_ACS_EC,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PcieType,
  REQ_ACS_FLAGS,
} from '../../../src/pci/regs.js';
import { PciDevFlags } from '../../../src/pci/pci-dev.js';
import {
  ACS_QUIRK_FUNCTIONS,
  PCI_ANY_ID,
  PCI_DEV_ACS_ENABLED,
  PCI_QUIRK_INTEL_PCH_ACS_IDS,
  pciAcsCtrlEnabled,
  pciDevSpecificAcsEnabled,
  pciDisableBrokenAcsCap,
  type QuirkContext,
} from '../../../src/pci/quirks/acs.js';
import { pciDevSpecificEnableAcs } from '../../../src/pci/quirks/acs-enable.js';
import { childBus, makeDev, rootBus } from './helpers.js';

const noIvrs: QuirkContext = { acpiIvrsPresent: false };
const ivrs: QuirkContext = { acpiIvrsPresent: true };

/** A bus 1 below an ACS-capable root port, for endpoints. */
function endpointBus() {
  const root = rootBus();
  const rp = makeDev(root, 1, 0, { vendor: 0x1234, device: 0x0001, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 1 });
  return childBus(root, rp, 1);
}

test('vector 8: Intel 82576 (8086:10c9) multifunction endpoint without ACS is isolated by pci_quirk_mf_endpoint_acs', () => {
  const bus = endpointBus();
  for (const fn of [0, 1]) {
    const dev = makeDev(bus, 0, fn, { vendor: 0x8086, device: 0x10c9, multifunction: true, pcieType: PcieType.ENDPOINT });
    assert.equal(dev.acsCap, 0);
    assert.deepEqual(pciDevSpecificAcsEnabled(dev, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_mf_endpoint_acs' });
    // EC is not among what the quirk provides
    assert.deepEqual(pciDevSpecificAcsEnabled(dev, REQ_ACS_FLAGS | PCI_ACS_EC, noIvrs), {
      result: 0,
      quirk: 'pci_quirk_mf_endpoint_acs',
    });
  }
});

test('vector 15: Intel RCiEPs are isolated by pci_quirk_rciep_acs; the same with vendor 0x1234 has no quirk', () => {
  const root = rootBus();
  const intel = makeDev(root, 0x14, 0, { vendor: 0x8086, device: 0x43ed, multifunction: true, pcieType: PcieType.RC_END });
  assert.deepEqual(pciDevSpecificAcsEnabled(intel, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_rciep_acs' });
  const other = makeDev(root, 0x14, 2, { vendor: 0x1234, device: 0x43ed, multifunction: true, pcieType: PcieType.RC_END });
  assert.deepEqual(pciDevSpecificAcsEnabled(other, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
  // An Intel function that is not an RCiEP, not a listed NIC and not a root port: no quirk applies
  const ep = makeDev(endpointBus(), 0, 0, { vendor: 0x8086, device: 0x2723, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(ep, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
  // A conventional-PCI Intel function: pci_pcie_type() is not RC_END either
  const conv = makeDev(root, 0x1e, 0, { vendor: 0x8086, device: 0x244e, hdrType: 1 });
  assert.deepEqual(pciDevSpecificAcsEnabled(conv, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('vector 18: an unlisted Wangxun device is "not isolated" (0, authoritative) even with a correct ACS capability', () => {
  const bus = endpointBus();
  const dev = makeDev(bus, 0, 0, {
    vendor: 0x8088,
    device: 0x1234,
    multifunction: true,
    pcieType: PcieType.ENDPOINT,
    acs: { cap: REQ_ACS_FLAGS, ctl: REQ_ACS_FLAGS },
  });
  assert.deepEqual(pciDevSpecificAcsEnabled(dev, REQ_ACS_FLAGS, noIvrs), { result: 0, quirk: 'pci_quirk_wangxun_nic_acs' });
  for (const device of [0x0100, 0x010f, 0x1001, 0x2001, 0x5010, 0x5025, 0x5040, 0x5110, 0x5125, 0x5140]) {
    const listed = makeDev(bus, 1, 0, { vendor: 0x8088, device, multifunction: true, pcieType: PcieType.ENDPOINT });
    assert.deepEqual(pciDevSpecificAcsEnabled(listed, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_wangxun_nic_acs' });
  }
  const unlisted = makeDev(bus, 2, 0, { vendor: 0x8088, device: 0x0110, multifunction: true, pcieType: PcieType.ENDPOINT });
  assert.equal(pciDevSpecificAcsEnabled(unlisted, REQ_ACS_FLAGS, noIvrs).result, 0);
});

test('vector 4: Intel Cougar Point root port 8086:1c10 without ACS follows ACS_ENABLED_QUIRK', () => {
  const root = rootBus();
  const rp = makeDev(root, 0x1c, 0, {
    vendor: 0x8086,
    device: 0x1c10,
    hdrType: 1,
    multifunction: true,
    pcieType: PcieType.ROOT_PORT,
    secondaryBus: 1,
  });
  // flag clear: the quirk still decides, and says "not isolated"
  assert.deepEqual(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs), { result: 0, quirk: 'pci_quirk_intel_pch_acs' });
  // asking for nothing is always satisfied
  assert.equal(pciDevSpecificAcsEnabled(rp, 0, noIvrs).result, 1);
  rp.devFlags |= PciDevFlags.ACS_ENABLED_QUIRK;
  assert.deepEqual(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_intel_pch_acs' });
  // but not TB or EC, which the workaround does not provide
  assert.equal(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS | PCI_ACS_TB, noIvrs).result, 0);
  // the same device ID as an endpoint is not matched
  const ep = makeDev(endpointBus(), 0, 0, { vendor: 0x8086, device: 0x1c10, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(ep, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('vector 4: the PCH enable quirk sets ACS_ENABLED_QUIRK (RCBA step assumed) and the port becomes isolated', () => {
  const root = rootBus();
  const rp = makeDev(root, 0x1c, 4, { vendor: 0x8086, device: 0x1c18, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 2 });
  assert.equal(pciDevSpecificEnableAcs(rp), 'pci_quirk_enable_intel_pch_acs');
  assert.ok(rp.devFlags & PciDevFlags.ACS_ENABLED_QUIRK);
  assert.equal(rp.assumptions.length, 1);
  assert.match(rp.assumptions[0]!, /RCBA/);
  assert.equal(rp.config.read32(0xd8), 0, 'sysfs config bytes are not written');
  assert.equal(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs).result, 1);

  // a BIOS that left RCBA disabled: handled, but no flag
  const rp2 = makeDev(root, 0x1c, 5, { vendor: 0x8086, device: 0x1c1a, hdrType: 1, pcieType: PcieType.ROOT_PORT, secondaryBus: 3 });
  assert.equal(pciDevSpecificEnableAcs(rp2, { intelLpcAcsOk: false }), 'pci_quirk_enable_intel_pch_acs');
  assert.equal(rp2.devFlags & PciDevFlags.ACS_ENABLED_QUIRK, 0);
  assert.equal(pciDevSpecificAcsEnabled(rp2, REQ_ACS_FLAGS, noIvrs).result, 0);

  // synthetic config: MPC.IRBNCE is written
  const rp3 = makeDev(root, 0x1c, 6, { vendor: 0x8086, device: 0x1c1c, hdrType: 1, pcieType: PcieType.ROOT_PORT }, 'synthetic');
  pciDevSpecificEnableAcs(rp3);
  assert.equal(rp3.config.read32(0xd8), 1 << 26);
});

test('Intel SPT root port (8086:a110): dword Control at ACS+8 decides, the spec 16-bit Control does not', () => {
  const root = rootBus();
  const covers = makeDev(root, 0x1c, 0, {
    vendor: 0x8086,
    device: 0xa110,
    hdrType: 1,
    pcieType: PcieType.ROOT_PORT,
    sptAcs: { capDword: REQ_ACS_FLAGS | PCI_ACS_TB, ctlDword: REQ_ACS_FLAGS },
  });
  assert.equal(covers.acsCap, 0x100);
  assert.deepEqual(pciDevSpecificAcsEnabled(covers, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_intel_spt_pch_acs' });
  // TB is in Capability but not in Control
  assert.equal(pciDevSpecificAcsEnabled(covers, REQ_ACS_FLAGS | PCI_ACS_TB, noIvrs).result, 0);

  const short = makeDev(root, 0x1c, 1, {
    vendor: 0x8086,
    device: 0xa111,
    hdrType: 1,
    pcieType: PcieType.ROOT_PORT,
    // what lspci would call Control (at +6) looks fully enabled, but the real Control dword lacks CR and UF
    sptAcs: { capDword: REQ_ACS_FLAGS, ctlDword: PCI_ACS_SV | PCI_ACS_RR, specCtl: REQ_ACS_FLAGS },
  });
  assert.deepEqual(pciDevSpecificAcsEnabled(short, REQ_ACS_FLAGS, noIvrs), { result: 0, quirk: 'pci_quirk_intel_spt_pch_acs' });

  // flags the Capability does not implement count as hard-wired on
  const partial = makeDev(root, 0x1c, 2, {
    vendor: 0x8086,
    device: 0xa290,
    hdrType: 1,
    pcieType: PcieType.ROOT_PORT,
    sptAcs: { capDword: PCI_ACS_RR | PCI_ACS_CR, ctlDword: PCI_ACS_RR | PCI_ACS_CR },
  });
  assert.equal(pciDevSpecificAcsEnabled(partial, REQ_ACS_FLAGS, noIvrs).result, 1);

  // a listed SPT port without an ACS capability: no quirk applies (the standard path then says "no ACS")
  const noCap = makeDev(root, 0x1c, 3, { vendor: 0x8086, device: 0x9d10, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.deepEqual(pciDevSpecificAcsEnabled(noCap, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
  // an unlisted Intel root port with ACS: no quirk
  const other = makeDev(root, 0x1c, 4, {
    vendor: 0x8086,
    device: 0xa120,
    hdrType: 1,
    pcieType: PcieType.ROOT_PORT,
    acs: { cap: REQ_ACS_FLAGS, ctl: 0 },
  });
  assert.deepEqual(pciDevSpecificAcsEnabled(other, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('Intel SPT enable quirk: writes the Control dword for lspci input, leaves sysfs input alone', () => {
  const root = rootBus();
  const spec = {
    vendor: 0x8086,
    device: 0xa114,
    hdrType: 1 as const,
    pcieType: PcieType.ROOT_PORT,
    sptAcs: { capDword: REQ_ACS_FLAGS | PCI_ACS_TB | PCI_ACS_EC, ctlDword: 0 },
  };
  const fromLspci = makeDev(root, 0x1c, 0, spec, 'lspci');
  assert.equal(pciDevSpecificAcsEnabled(fromLspci, REQ_ACS_FLAGS, noIvrs).result, 0);
  assert.equal(pciDevSpecificEnableAcs(fromLspci), 'pci_quirk_enable_intel_spt_pch_acs');
  assert.equal(fromLspci.config.read32(0x108), REQ_ACS_FLAGS, 'SV|RR|CR|UF enabled, not TB or EC');
  assert.equal(pciDevSpecificAcsEnabled(fromLspci, REQ_ACS_FLAGS, noIvrs).result, 1);
  assert.ok(fromLspci.assumptions.some((a) => /lspci/.test(a)));
  assert.equal(fromLspci.devFlags & PciDevFlags.ACS_ENABLED_QUIRK, 0, 'the SPT quirk sets no dev flag');

  const fromSysfs = makeDev(root, 0x1c, 1, spec, 'sysfs');
  assert.equal(pciDevSpecificEnableAcs(fromSysfs), 'pci_quirk_enable_intel_spt_pch_acs');
  assert.equal(fromSysfs.config.read32(0x108), 0, 'sysfs config is what the kernel left: not written');
  assert.equal(pciDevSpecificAcsEnabled(fromSysfs, REQ_ACS_FLAGS, noIvrs).result, 0);

  // TB too when ATS is disabled or the port is untrusted
  const untrusted = makeDev(root, 0x1c, 2, spec, 'synthetic');
  untrusted.untrusted = true;
  pciDevSpecificEnableAcs(untrusted);
  assert.equal(untrusted.config.read32(0x108), REQ_ACS_FLAGS | PCI_ACS_TB);
  const noAts = makeDev(root, 0x1c, 3, spec, 'synthetic');
  pciDevSpecificEnableAcs(noAts, { atsDisabled: true });
  assert.equal(noAts.config.read32(0x108), REQ_ACS_FLAGS | PCI_ACS_TB);

  // no enable quirk for other functions
  const ep = makeDev(endpointBus(), 0, 0, { vendor: 0x1234, device: 0x5678, pcieType: PcieType.ENDPOINT });
  assert.equal(pciDevSpecificEnableAcs(ep), null);
  const intelEp = makeDev(endpointBus(), 0, 0, { vendor: 0x8086, device: 0x10c9, pcieType: PcieType.ENDPOINT });
  assert.equal(pciDevSpecificEnableAcs(intelEp), null);
});

test('AMD southbridge quirk (1002:4385) applies only to multifunction root-bus functions with an IVRS table', () => {
  const root = rootBus();
  const sb = makeDev(root, 0x14, 0, { vendor: 0x1002, device: 0x4385, classCode: 0x0c0500, multifunction: true });
  assert.deepEqual(pciDevSpecificAcsEnabled(sb, REQ_ACS_FLAGS, ivrs), { result: 1, quirk: 'pci_quirk_amd_sb_acs' });
  assert.deepEqual(pciDevSpecificAcsEnabled(sb, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
  // only RR, CR, EC, DT are relevant; EC and DT are not provided
  assert.equal(pciDevSpecificAcsEnabled(sb, PCI_ACS_SV | PCI_ACS_UF, ivrs).result, 1);
  assert.equal(pciDevSpecificAcsEnabled(sb, REQ_ACS_FLAGS | PCI_ACS_DT, ivrs).result, 0);
  const single = makeDev(root, 0x14, 3, { vendor: 0x1002, device: 0x439d, classCode: 0x060100 });
  assert.deepEqual(pciDevSpecificAcsEnabled(single, REQ_ACS_FLAGS, ivrs), { result: -1, quirk: null });
  const fch = makeDev(root, 0x14, 4, { vendor: 0x1022, device: 0x780f, hdrType: 1, multifunction: true });
  assert.equal(pciDevSpecificAcsEnabled(fch, REQ_ACS_FLAGS, ivrs).result, 1);
  const below = makeDev(endpointBus(), 0, 0, { vendor: 0x1002, device: 0x4385, multifunction: true });
  assert.deepEqual(pciDevSpecificAcsEnabled(below, REQ_ACS_FLAGS, ivrs), { result: -1, quirk: null });
});

test('a random vendor gets no quirk (-1)', () => {
  const dev = makeDev(endpointBus(), 0, 0, { vendor: 0x1234, device: 0x1111, multifunction: true, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(dev, REQ_ACS_FLAGS, ivrs), { result: -1, quirk: null });
});

test('Zhaoxin ports: listed IDs isolated, other root/downstream ports 0, other functions no quirk', () => {
  const root = rootBus();
  const listed = makeDev(root, 1, 0, { vendor: 0x1d17, device: 0x0715, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.deepEqual(pciDevSpecificAcsEnabled(listed, REQ_ACS_FLAGS, noIvrs), {
    result: 1,
    quirk: 'pci_quirk_zhaoxin_pcie_ports_acs',
  });
  const gap = makeDev(root, 1, 1, { vendor: 0x1d17, device: 0x0722, hdrType: 1, pcieType: PcieType.DOWNSTREAM });
  assert.deepEqual(pciDevSpecificAcsEnabled(gap, REQ_ACS_FLAGS, noIvrs), { result: 0, quirk: 'pci_quirk_zhaoxin_pcie_ports_acs' });
  const mfEp = makeDev(endpointBus(), 0, 0, { vendor: 0x1d17, device: 0x3038, multifunction: true, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(mfEp, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_mf_endpoint_acs' });
  const ep = makeDev(endpointBus(), 0, 0, { vendor: 0x1d17, device: 0x1000, multifunction: true, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(ep, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('Cavium: ThunderX root ports by range, multifunction devices by the later rows', () => {
  const root = rootBus();
  const rp = makeDev(root, 1, 0, { vendor: 0x177d, device: 0xa7ff, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.deepEqual(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_cavium_acs' });
  const tx3 = makeDev(root, 2, 0, { vendor: 0x177d, device: 0xb884, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.equal(pciDevSpecificAcsEnabled(tx3, REQ_ACS_FLAGS, noIvrs).result, 1);
  const bgx = makeDev(endpointBus(), 0, 0, { vendor: 0x177d, device: 0xa026, multifunction: true, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(bgx, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_mf_endpoint_acs' });
  const notRp = makeDev(root, 3, 0, { vendor: 0x177d, device: 0xa800, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.deepEqual(pciDevSpecificAcsEnabled(notRp, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('Annapurna Labs root port: isolated for SV/RR/CR/UF, not when more is asked', () => {
  const root = rootBus();
  const rp = makeDev(root, 0, 0, { vendor: 0x1c36, device: 0x0031, hdrType: 1, pcieType: PcieType.ROOT_PORT });
  assert.deepEqual(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk: 'pci_quirk_al_acs' });
  assert.equal(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS | PCI_ACS_EC, noIvrs).result, 0);
  const ep = makeDev(root, 1, 0, { vendor: 0x1c36, device: 0x0031, pcieType: PcieType.ENDPOINT });
  assert.deepEqual(pciDevSpecificAcsEnabled(ep, REQ_ACS_FLAGS, noIvrs), { result: -1, quirk: null });
});

test('root ports isolated by design: QCOM, HXT, NXP, X-Gene, Ampere, Broadcom, Loongson', () => {
  const root = rootBus();
  const cases: [number, number, string][] = [
    [0x17cb, 0x0400, 'pci_quirk_qcom_rp_acs'],
    [0x17cb, 0x0120, 'pci_quirk_qcom_rp_acs'],
    [0x1dbf, 0x0401, 'pci_quirk_qcom_rp_acs'],
    [0x1957, 0x8d9b, 'pci_quirk_nxp_rp_acs'],
    [0x10e8, 0xe004, 'pci_quirk_xgene_acs'],
    [0x1def, 0xe00c, 'pci_quirk_xgene_acs'],
    [0x14e4, 0xd714, 'pci_quirk_brcm_acs'],
    [0x0014, 0x7a69, 'pci_quirk_loongson_acs'],
  ];
  for (const [vendor, device, quirk] of cases) {
    const rp = makeDev(root, 1, 0, { vendor, device, hdrType: 1, pcieType: PcieType.ROOT_PORT });
    assert.deepEqual(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS, noIvrs), { result: 1, quirk }, `${vendor.toString(16)}:${device.toString(16)}`);
    assert.equal(pciDevSpecificAcsEnabled(rp, REQ_ACS_FLAGS | PCI_ACS_EC, noIvrs).result, 0);
  }
});

test('IDT 111d:80b5 / 8090: SV dropped from the ACS capabilities; others untouched', () => {
  const bus = endpointBus();
  const idt = makeDev(bus, 0, 0, { vendor: 0x111d, device: 0x80b5, hdrType: 1, pcieType: PcieType.DOWNSTREAM });
  assert.equal(pciDisableBrokenAcsCap(idt), PCI_ACS_SV);
  assert.equal(idt.quirkNotes.length, 1);
  const idt2 = makeDev(bus, 1, 0, { vendor: 0x111d, device: 0x8090, hdrType: 1, pcieType: PcieType.DOWNSTREAM });
  assert.equal(pciDisableBrokenAcsCap(idt2), PCI_ACS_SV);
  const other = makeDev(bus, 2, 0, { vendor: 0x111d, device: 0x8091, hdrType: 1, pcieType: PcieType.DOWNSTREAM });
  assert.equal(pciDisableBrokenAcsCap(other), 0);
  assert.equal(other.quirkNotes.length, 0);
});

test('pci_acs_ctrl_enabled semantics: 1 iff req is a subset of ena (u16)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (req, ena) => {
      assert.equal(pciAcsCtrlEnabled(req, ena), (req & ~ena) === 0 ? 1 : 0);
    }),
  );
  assert.equal(pciAcsCtrlEnabled(0x1d, 0x1001d), 1, 'bits above 16 are dropped');
  assert.equal(pciAcsCtrlEnabled(0x1001d, 0x1d), 1);
});

test('property: the result is -1/0/1, quirk is null iff -1, and functions of unlisted vendors never match', () => {
  const tableVendors = [...new Set(PCI_DEV_ACS_ENABLED.map((r) => r.vendor))];
  const types = [-1, 0, 1, 4, 5, 6, 7, 8, 9, 10];
  fc.assert(
    fc.property(
      fc.oneof(fc.constantFrom(...tableVendors), fc.integer({ min: 0, max: 0xfffe })),
      fc.oneof(fc.constantFrom(...PCI_DEV_ACS_ENABLED.map((r) => r.device)), fc.integer({ min: 0, max: 0xfffe })),
      fc.constantFrom(...types),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 0x7f }),
      fc.boolean(),
      (vendor, device, type, mf, onRoot, flags, withIvrs) => {
        const root = rootBus();
        const bus = onRoot ? root : endpointBus();
        const spec = type === -1 ? { vendor, device, multifunction: mf } : { vendor, device, multifunction: mf, pcieType: type };
        const dev = makeDev(bus, 0, 0, spec);
        const r = pciDevSpecificAcsEnabled(dev, flags, { acpiIvrsPresent: withIvrs });
        assert.ok(r.result === -1 || r.result === 0 || r.result === 1);
        assert.equal(r.quirk === null, r.result === -1);
        if (!tableVendors.includes(vendor)) assert.equal(r.result, -1);
      },
    ),
    { numRuns: 300 },
  );
});

test('table sanity: 132 rows in kernel order, no duplicate (vendor, device, quirk), IDs in range', () => {
  assert.equal(PCI_DEV_ACS_ENABLED.length, 132);
  const seen = new Set<string>();
  for (const r of PCI_DEV_ACS_ENABLED) {
    assert.ok(Number.isInteger(r.vendor) && r.vendor >= 0 && r.vendor <= 0xffff, `vendor ${r.vendor}`);
    assert.ok(Number.isInteger(r.device) && r.device >= 0 && r.device <= 0xffff, `device ${r.device}`);
    assert.notEqual(r.vendor, PCI_ANY_ID, 'the kernel has no vendor wildcard rows');
    assert.ok(r.chip.length > 0);
    assert.equal(typeof ACS_QUIRK_FUNCTIONS[r.quirk], 'function');
    const k = `${r.vendor}:${r.device}:${r.quirk}`;
    assert.ok(!seen.has(k), `duplicate ${k}`);
    seen.add(k);
  }
  // the kernel's first and last rows, and the order of the three Intel wildcard rows
  assert.deepEqual([PCI_DEV_ACS_ENABLED[0]!.vendor, PCI_DEV_ACS_ENABLED[0]!.device], [0x1002, 0x4385]);
  assert.equal(PCI_DEV_ACS_ENABLED.at(-1)!.quirk, 'pci_quirk_wangxun_nic_acs');
  const intelAny = PCI_DEV_ACS_ENABLED.filter((r) => r.vendor === 0x8086 && r.device === PCI_ANY_ID).map((r) => r.quirk);
  assert.deepEqual(intelAny, ['pci_quirk_rciep_acs', 'pci_quirk_intel_pch_acs', 'pci_quirk_intel_spt_pch_acs']);
  const counts = new Map<string, number>();
  for (const r of PCI_DEV_ACS_ENABLED) counts.set(r.quirk, (counts.get(r.quirk) ?? 0) + 1);
  assert.equal(counts.get('pci_quirk_amd_sb_acs'), 8);
  assert.equal(counts.get('pci_quirk_mf_endpoint_acs'), 3 + 48 + 2 + 3 + 8 + 3);
  assert.equal(counts.get('pci_quirk_nxp_rp_acs'), 24);
  assert.equal(counts.get('pci_quirk_loongson_acs'), 10);
  assert.equal(counts.get('pci_quirk_qcom_rp_acs'), 6);
  assert.equal(counts.get('pci_quirk_xgene_acs'), 9);
});

test('Intel PCH ID list: 119 unique IDs in range, Cougar Point 1c10-1c1f included', () => {
  assert.equal(PCI_QUIRK_INTEL_PCH_ACS_IDS.length, 119);
  assert.equal(new Set(PCI_QUIRK_INTEL_PCH_ACS_IDS).size, 119);
  for (const id of PCI_QUIRK_INTEL_PCH_ACS_IDS) assert.ok(id > 0 && id < 0xffff);
  for (let d = 0x1c10; d <= 0x1c1f; d++) assert.ok(PCI_QUIRK_INTEL_PCH_ACS_IDS.includes(d));
  assert.ok(!PCI_QUIRK_INTEL_PCH_ACS_IDS.includes(0x1d11), 'Patsburg lists even IDs only');
  assert.ok(!PCI_QUIRK_INTEL_PCH_ACS_IDS.includes(0x8d1f), 'Wellsburg stops at 8d1e');
});
