/**
 * Tests for src/pci/pci-ids.ts. Uses only the project fixture
 * test/fixtures/pci-ids/pci.ids (never the system's pci.ids). The expected
 * strings were produced by pciutils 3.9 `lspci -F <dump> -i <fixture>` (plain,
 * `-nn`, `-n`, `-v`, `-vmm`) for the same ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { isIommuError } from '../../src/base/errno.js';
import {
  PciIds,
  describeFunction,
  formatClassName,
  formatDeviceName,
  formatProgIf,
  formatSubsystem,
  formatSubsystemDeviceName,
  formatSubsystemVendorName,
  formatVendorDevice,
  formatVendorName,
  progIfName,
  type PciFunctionIds,
} from '../../src/pci/pci-ids.js';

// dist/test/pci/ → project root
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/pci-ids/pci.ids', import.meta.url));
const FIXTURE_TEXT = readFileSync(FIXTURE, 'utf8');
const ids = PciIds.parse(FIXTURE_TEXT, FIXTURE);

const MELLANOX_LONG =
  'MT25408A0-FCC-QI ConnectX, Dual Port 40Gb/s InfiniBand / 10GigE Adapter IC with PCIe 2.0 x8 5.0GT/s Interface';
const ICH9_SATA = '82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]';
const VIA_IDE = 'VT82C586A/B/VT82C686/A/B/VT823x/A/C PIPC Bus Master IDE';

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-pci-ids-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts `fn` throws an EINVAL IommuError whose input is `input` and whose message matches `re`. */
function assertBadInput(fn: () => unknown, input: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isIommuError(e, 'EINVAL'), `expected IommuError EINVAL, got ${String(e)}`);
    assert.equal(e.input, input);
    assert.ok(e.message.startsWith(`${input}: `), e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('parse: the fixture, every section', () => {
  assert.deepEqual(ids.counts, { vendors: 12, devices: 14, subsystems: 8, classes: 9, subclasses: 11, progIfs: 8 });
  assert.equal(ids.source, FIXTURE);
  assert.equal(ids.vendorName(0x8086), 'Intel Corporation');
  assert.equal(ids.vendorName(0x1028), 'Dell');
  assert.equal(ids.vendorName(0x1234), undefined);
  assert.equal(ids.deviceName(0x8086, 0x2922), ICH9_SATA);
  assert.equal(ids.deviceName(0x15b3, 0x673c), MELLANOX_LONG);
  assert.equal(ids.deviceName(0x8086, 0xffff), undefined);
  assert.equal(ids.deviceName(0x1234, 0x2922), undefined);
  // the same device id under two vendors
  assert.equal(ids.deviceName(0x1af4, 0x1000), 'Virtio network device');
  assert.equal(ids.deviceName(0x1022, 0x1483), 'Starship/Matisse GPP Bridge');
});

test('subsystemName: per-device entry, generic S block, subsystem == device, unknown', () => {
  assert.equal(ids.subsystemName(0x8086, 0x2922, 0x1043, 0x8277), 'P5K PRO Motherboard: 82801IR [ICH9R]');
  assert.equal(ids.subsystemName(0x10ec, 0x8168, 0x1043, 0x8677), 'PRIME B450M-A Motherboard');
  // "S 1af4 / 1100" applies to any device
  assert.equal(ids.subsystemName(0x1af4, 0x1041, 0x1af4, 0x1100), 'QEMU Virtual Machine');
  // subsystem ids equal to the device's ids: the device name
  assert.equal(ids.subsystemName(0x8086, 0x2922, 0x8086, 0x2922), ICH9_SATA);
  assert.equal(ids.subsystemName(0x1106, 0x0571, 0x1106, 0x0571), VIA_IDE);
  // entry belongs to another device
  assert.equal(ids.subsystemName(0x10ec, 0x8168, 0x1043, 0x8277), undefined);
  assert.equal(ids.subsystemName(0x10ec, 0x8168, 0x1028, 0xabcd), undefined);
});

test('className / classNames: subclass preferred, base class alone, prog-if', () => {
  assert.deepEqual(ids.classNames(0x010601), { class: 'Mass storage controller', subclass: 'SATA controller', progIf: 'AHCI 1.0' });
  assert.equal(ids.className(0x010601), 'SATA controller');
  assert.equal(ids.className(0x060400), 'PCI bridge');
  assert.deepEqual(ids.classNames(0x060401), { class: 'Bridge', subclass: 'PCI bridge', progIf: 'Subtractive decode' });
  assert.deepEqual(ids.classNames(0x130000), { class: 'Non-Essential Instrumentation' });
  assert.equal(ids.className(0x130000), 'Non-Essential Instrumentation');
  assert.deepEqual(ids.classNames(0x0d1100), {});
  assert.equal(ids.className(0x0d1100), undefined);
  assert.deepEqual(ids.classNames(0x01067f), { class: 'Mass storage controller', subclass: 'SATA controller' });
});

// ids, then lspci's output for them with the fixture (plain / -vmm / -v).
const CASES: Array<{ fn: PciFunctionIds; line: string; nn: string; vmm: [string, string, string]; progIf?: string; sub?: [string, string, string] }> = [
  {
    fn: { vendor: 0x8086, device: 0x2922, classCode: 0x010601, subsystemVendor: 0x1043, subsystemDevice: 0x8277 },
    line: `SATA controller: Intel Corporation ${ICH9_SATA}`,
    nn: `SATA controller [0106]: Intel Corporation ${ICH9_SATA} [8086:2922]`,
    vmm: ['SATA controller', 'Intel Corporation', ICH9_SATA],
    progIf: 'AHCI 1.0',
    sub: [
      'ASUSTeK Computer Inc. P5K PRO Motherboard: 82801IR [ICH9R]',
      'ASUSTeK Computer Inc.',
      'P5K PRO Motherboard: 82801IR [ICH9R]',
    ],
  },
  {
    fn: { vendor: 0x8086, device: 0xffff, classCode: 0x060400, subsystemVendor: 0, subsystemDevice: 0 },
    line: 'PCI bridge: Intel Corporation Device ffff',
    nn: 'PCI bridge [0604]: Intel Corporation Device [8086:ffff]',
    vmm: ['PCI bridge', 'Intel Corporation', 'Device ffff'],
    progIf: 'Normal decode',
  },
  {
    fn: { vendor: 0x1234, device: 0x5678, classCode: 0x060400, subsystemVendor: 0xffff, subsystemDevice: 0xffff },
    line: 'PCI bridge: Device 1234:5678',
    nn: 'PCI bridge [0604]: Device [1234:5678]',
    vmm: ['PCI bridge', 'Vendor 1234', 'Device 5678'],
    progIf: 'Normal decode',
  },
  {
    fn: { vendor: 0x10de, device: 0x1e87, classCode: 0x130000, subsystemVendor: 0x1043, subsystemDevice: 0x1234 },
    line: 'Non-Essential Instrumentation [1300]: NVIDIA Corporation TU104 [GeForce RTX 2080 Rev. A]',
    nn: 'Non-Essential Instrumentation [1300]: NVIDIA Corporation TU104 [GeForce RTX 2080 Rev. A] [10de:1e87]',
    vmm: ['Non-Essential Instrumentation [1300]', 'NVIDIA Corporation', 'TU104 [GeForce RTX 2080 Rev. A]'],
    sub: ['ASUSTeK Computer Inc. Device 1234', 'ASUSTeK Computer Inc.', 'Device 1234'],
  },
  {
    fn: { vendor: 0x1af4, device: 0x1041, classCode: 0x0d1100, subsystemVendor: 0x1af4, subsystemDevice: 0x1100 },
    line: 'Class 0d11: Red Hat, Inc. Virtio 1.0 network device',
    nn: 'Class [0d11]: Red Hat, Inc. Virtio 1.0 network device [1af4:1041]',
    vmm: ['Class 0d11', 'Red Hat, Inc.', 'Virtio 1.0 network device'],
    sub: ['Red Hat, Inc. QEMU Virtual Machine', 'Red Hat, Inc.', 'QEMU Virtual Machine'],
  },
  {
    fn: { vendor: 0x1106, device: 0x0571, classCode: 0x01018a, subsystemVendor: 0x1106, subsystemDevice: 0x0571 },
    line: `IDE interface: VIA Technologies, Inc. ${VIA_IDE}`,
    nn: `IDE interface [0101]: VIA Technologies, Inc. ${VIA_IDE} [1106:0571]`,
    vmm: ['IDE interface', 'VIA Technologies, Inc.', VIA_IDE],
    progIf: 'ISA Compatibility mode controller, supports both channels switched to PCI native mode, supports bus mastering',
    sub: [`VIA Technologies, Inc. ${VIA_IDE}`, 'VIA Technologies, Inc.', VIA_IDE],
  },
  {
    fn: { vendor: 0x1106, device: 0x0571, classCode: 0x010180, subsystemVendor: 0x1b21, subsystemDevice: 0x1234 },
    line: `IDE interface: VIA Technologies, Inc. ${VIA_IDE}`,
    nn: `IDE interface [0101]: VIA Technologies, Inc. ${VIA_IDE} [1106:0571]`,
    vmm: ['IDE interface', 'VIA Technologies, Inc.', VIA_IDE],
    progIf: 'Master',
    sub: ['Device 1b21:1234', 'Unknown vendor 1b21', 'Device 1234'],
  },
  {
    fn: { vendor: 0x1106, device: 0x0571, classCode: 0x010100, subsystemVendor: 0x1028, subsystemDevice: 0xabcd },
    line: `IDE interface: VIA Technologies, Inc. ${VIA_IDE}`,
    nn: `IDE interface [0101]: VIA Technologies, Inc. ${VIA_IDE} [1106:0571]`,
    vmm: ['IDE interface', 'VIA Technologies, Inc.', VIA_IDE],
    progIf: '', // lspci -v: "(prog-if 00 [])"
    sub: ['Dell Device abcd', 'Dell', 'Device abcd'],
  },
  {
    // longer than lspci's 128-byte buffer: cut with "..." (even the -nn ids)
    fn: { vendor: 0x15b3, device: 0x673c, classCode: 0x020000, subsystemVendor: 0x15b3, subsystemDevice: 0x0001 },
    line: 'Ethernet controller: Mellanox Technologies MT25408A0-FCC-QI ConnectX, Dual Port 40Gb/s InfiniBand / 10GigE Adapter IC with PCIe 2.0 x8 5.0GT/s In...',
    nn: 'Ethernet controller [0200]: Mellanox Technologies MT25408A0-FCC-QI ConnectX, Dual Port 40Gb/s InfiniBand / 10GigE Adapter IC with PCIe 2.0 x8 5.0GT/s In...',
    vmm: ['Ethernet controller', 'Mellanox Technologies', MELLANOX_LONG],
    sub: ['Mellanox Technologies Device 0001', 'Mellanox Technologies', 'Device 0001'],
  },
  {
    fn: { vendor: 0x144d, device: 0xa808, classCode: 0x010802, subsystemVendor: 0x144d, subsystemDevice: 0xa801 },
    line: 'Non-Volatile memory controller: Samsung Electronics Co Ltd NVMe SSD Controller SM981/PM981/PM983',
    nn: 'Non-Volatile memory controller [0108]: Samsung Electronics Co Ltd NVMe SSD Controller SM981/PM981/PM983 [144d:a808]',
    vmm: ['Non-Volatile memory controller', 'Samsung Electronics Co Ltd', 'NVMe SSD Controller SM981/PM981/PM983'],
    progIf: 'NVM Express',
    sub: ['Samsung Electronics Co Ltd SSD 970 EVO', 'Samsung Electronics Co Ltd', 'SSD 970 EVO'],
  },
];

test('describeFunction: as lspci, lspci -nn, lspci -v and lspci -vmm print them', () => {
  for (const c of CASES) {
    const n = describeFunction(ids, c.fn);
    assert.equal(`${n.className}: ${n.vendorDevice}`, c.line);
    assert.deepEqual([n.className, n.vendorName, n.deviceName], c.vmm);
    assert.equal(n.progIf, c.progIf);
    assert.deepEqual(
      n.subsystem === undefined ? undefined : [n.subsystem, n.subsystemVendorName, n.subsystemDeviceName],
      c.sub,
    );
    const m = describeFunction(ids, c.fn, 'mixed');
    assert.equal(`${m.className}: ${m.vendorDevice}`, c.nn);
    // the instance method is the same thing
    assert.deepEqual(ids.describeFunction(c.fn, 'mixed'), m);
  }
});

test('describeFunction: mixed and numeric field forms (lspci -vmm -nn / -n)', () => {
  const fn = CASES[0]!.fn;
  assert.deepEqual(describeFunction(ids, fn, 'mixed'), {
    className: 'SATA controller [0106]',
    vendorName: 'Intel Corporation [8086]',
    deviceName: `${ICH9_SATA} [2922]`,
    vendorDevice: `Intel Corporation ${ICH9_SATA} [8086:2922]`,
    progIf: 'AHCI 1.0',
    subsystem: 'ASUSTeK Computer Inc. P5K PRO Motherboard: 82801IR [ICH9R] [1043:8277]',
    subsystemVendorName: 'ASUSTeK Computer Inc. [1043]',
    subsystemDeviceName: 'P5K PRO Motherboard: 82801IR [ICH9R] [8277]',
  });
  assert.deepEqual(describeFunction(ids, fn, 'numeric'), {
    className: '0106',
    vendorName: '8086',
    deviceName: '2922',
    vendorDevice: '8086:2922',
    progIf: 'AHCI 1.0',
    subsystem: '1043:8277',
    subsystemVendorName: '1043',
    subsystemDeviceName: '8277',
  });
  assert.deepEqual(describeFunction(ids, { vendor: 0x1234, device: 0x5678, classCode: 0x0d1100 }, 'mixed'), {
    className: 'Class [0d11]',
    vendorName: 'Vendor [1234]',
    deviceName: 'Device [5678]',
    vendorDevice: 'Device [1234:5678]',
  });
});

test('describeFunction with no database: lspci id-only fallbacks', () => {
  const fn = CASES[0]!.fn;
  assert.deepEqual(describeFunction(null, fn), {
    className: 'Class 0106',
    vendorName: 'Vendor 8086',
    deviceName: 'Device 2922',
    vendorDevice: 'Device 8086:2922',
    subsystem: 'Device 1043:8277',
    subsystemVendorName: 'Unknown vendor 1043',
    subsystemDeviceName: 'Device 8277',
  });
  const m = describeFunction(null, fn, 'mixed');
  assert.equal(`${m.className}: ${m.vendorDevice}`, 'Class [0106]: Device [8086:2922]');
  // lspci composes the IDE prog-if without any database
  assert.equal(describeFunction(null, { vendor: 0x1106, device: 0x0571, classCode: 0x01018a }).progIf, 'Master SecP PriP');
  assert.equal(describeFunction(null, { vendor: 0x1022, device: 0x1483, classCode: 0x060400 }).vendorDevice, 'Device 1022:1483');
  // no subsystem fields for subsystem vendor 0000 / ffff / absent
  for (const sv of [0, 0xffff, undefined]) {
    const n = describeFunction(null, { vendor: 1, device: 2, classCode: 0, subsystemVendor: sv, subsystemDevice: 5 });
    assert.equal(n.subsystem, undefined);
    assert.equal(n.subsystemVendorName, undefined);
  }
});

test('format helpers: lspci fallback strings', () => {
  assert.equal(formatVendorName(ids, 0x8086), 'Intel Corporation');
  assert.equal(formatVendorName(null, 0x8086), 'Vendor 8086');
  assert.equal(formatVendorName(ids, 0xabc), 'Vendor 0abc');
  assert.equal(formatDeviceName(ids, 0x8086, 0x2922, 'numeric'), '2922');
  assert.equal(formatDeviceName(null, 0x8086, 0x2922), 'Device 2922');
  assert.equal(formatVendorDevice(null, 0x1234, 0x5678), 'Device 1234:5678');
  assert.equal(formatVendorDevice(ids, 0x8086, 0x0001), 'Intel Corporation Device 0001');
  assert.equal(formatClassName(null, 0x060400), 'Class 0604');
  assert.equal(formatClassName(ids, 0x060400), 'PCI bridge');
  assert.equal(formatClassName(ids, 0x06ee00), 'Bridge [06ee]');
  assert.equal(formatClassName(ids, 0x06ee00, 'numeric'), '06ee');
  assert.equal(formatClassName(ids, 0x06ee00, 'mixed'), 'Bridge [06ee]');
  assert.equal(formatProgIf(ids, 0x0c0330), 'XHCI');
  assert.equal(formatProgIf(ids, 0x0c0331), 'ProgIf 31');
  assert.equal(formatProgIf(null, 0x0c0330, 'mixed'), 'ProgIf [30]');
  assert.equal(formatProgIf(null, 0x01018f), 'Master SecP SecO PriP PriO');
  assert.equal(progIfName(null, 0x0101f0), undefined); // bits 0x70 set: no IDE decoding
  assert.equal(progIfName(ids, 0x0c0331), undefined);
  assert.equal(formatSubsystemVendorName(null, 0x1028), 'Unknown vendor 1028');
  assert.equal(formatSubsystemDeviceName(ids, 0x1af4, 0x1000, 0x1af4, 0x1100), 'QEMU Virtual Machine');
  assert.equal(formatSubsystem(ids, 0x1af4, 0x1000, 0x1028, 0x1f22), 'Dell Device 1f22');
  assert.equal(formatSubsystem(ids, 0x1af4, 0x1000, 0x1028, 0x1f22, 'mixed'), 'Dell Device [1028:1f22]');
});

test('property: without a database every name is the id-only form', () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const h4 = (n: number) => n.toString(16).padStart(4, '0');
  fc.assert(
    fc.property(u16, u16, fc.integer({ min: 0, max: 0xffffff }), u16, u16, (v, d, cc, sv, sd) => {
      const n = describeFunction(null, { vendor: v, device: d, classCode: cc, subsystemVendor: sv, subsystemDevice: sd });
      assert.equal(n.className, `Class ${h4(cc >>> 8)}`);
      assert.equal(n.vendorName, `Vendor ${h4(v)}`);
      assert.equal(n.deviceName, `Device ${h4(d)}`);
      assert.equal(n.vendorDevice, `Device ${h4(v)}:${h4(d)}`);
      if (sv !== 0 && sv !== 0xffff) assert.equal(n.subsystem, `Device ${h4(sv)}:${h4(sd)}`);
      const m = describeFunction(null, { vendor: v, device: d, classCode: cc }, 'mixed');
      assert.equal(`${m.className}: ${m.vendorDevice}`, `Class [${h4(cc >>> 8)}]: Device [${h4(v)}:${h4(d)}]`);
    }),
  );
});

test('property: a generated pci.ids parses back to its names', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9 .,()/[\]-]{0,30}[A-Za-z0-9)\]]$/);
  const db = fc.uniqueArray(
    fc.record({
      // ids from 1: libpci skips the per-device subsystem lookup for vendor or device 0
      v: fc.integer({ min: 1, max: 0xfffe }),
      name,
      devices: fc.uniqueArray(fc.record({ d: fc.integer({ min: 1, max: 0xffff }), name }), { selector: (x) => x.d, maxLength: 4 }),
    }),
    { selector: (x) => x.v, minLength: 1, maxLength: 8 },
  );
  fc.assert(
    fc.property(db, fc.boolean(), (vendors, crlf) => {
      const h4 = (n: number) => n.toString(16).padStart(4, '0');
      let text = '# generated\n\n';
      for (const v of vendors) {
        text += `${h4(v.v)}  ${v.name}\n`;
        for (const d of v.devices) text += `\t${h4(d.d)}  ${d.name}\n\t\t${h4(v.v)} ${h4(d.d)}  ${d.name} (self)\n`;
      }
      text += 'C 01  Mass storage controller\n';
      if (crlf) text = text.replaceAll('\n', '\r\n');
      const p = PciIds.parse(text, 'generated');
      for (const v of vendors) {
        assert.equal(p.vendorName(v.v), v.name);
        for (const d of v.devices) {
          assert.equal(p.deviceName(v.v, d.d), d.name);
          assert.equal(p.subsystemName(v.v, d.d, v.v, d.d), `${d.name} (self)`);
        }
      }
    }),
  );
});

test('parse tolerates CRLF, a BOM, indented comments, blank lines, reserved blocks, uppercase hex', () => {
  const crlf = PciIds.parse(FIXTURE_TEXT.replaceAll('\n', '\r\n'), 'crlf');
  assert.deepEqual(crlf.counts, ids.counts);
  for (const c of CASES) assert.deepEqual(describeFunction(crlf, c.fn), describeFunction(ids, c.fn));

  const text = [
    '\uFEFF# comment',
    '   ',
    '\t',
    'ABCD  Upper Case Vendor\t', // one trailing blank dropped
    '\tEF01\tTab Separated Device  ', // only one of two trailing blanks dropped, as libpci
    '\t# an indented comment',
    '\t\tabcd 0002  Sub',
    'X 1234  reserved block',
    '\tthese lines are not parsed',
    '\t\tnor these',
    'C 02  Network controller',
    '\t00  Ethernet controller',
    '',
  ].join('\n');
  const p = PciIds.parse(text, 'inline');
  assert.equal(p.vendorName(0xabcd), 'Upper Case Vendor');
  assert.equal(p.deviceName(0xabcd, 0xef01), 'Tab Separated Device ');
  assert.equal(p.subsystemName(0xabcd, 0xef01, 0xabcd, 0x0002), 'Sub');
  assert.equal(p.className(0x020000), 'Ethernet controller');
  assert.deepEqual(p.counts, { vendors: 1, devices: 1, subsystems: 1, classes: 1, subclasses: 1, progIfs: 0 });
  // no final newline
  assert.equal(PciIds.parse('8086  Intel Corporation', 'x').vendorName(0x8086), 'Intel Corporation');
});

test('parse rejects what is not a pci.ids, naming the input and line', () => {
  const bad: Array<[string, RegExp]> = [
    ['root:x:0:0:root:/root:/bin/bash\n', /line 1: expected "vvvv  vendor name"/],
    ['8086  Intel\n\t2922\n', /line 2: expected "\\tdddd  device name"/],
    ['8086  Intel\n\t2922  SATA\n\t\t\t1028 020d  too deep\n', /line 3: more than two tabs/],
    ['8086  Intel\n\t\t1028 020d  subsystem under a vendor\n', /line 2: doubly indented/],
    ['8086  Intel\n\t2922  SATA\n\t\t1028  Dell\n', /line 3: expected "\\t\\tssvv ssdd  subsystem name"/],
    ['\t2922  device before any vendor\n', /line 1: indented line outside/],
    ['8086  Intel\n8086  Intel again\n', /line 2: duplicate entry/],
    ['8086  Intel\n\t2922  A\n\t2922  B\n', /line 3: duplicate entry/],
    ['8086  \n', /line 1: entry without a name/],
    ['8086  Intel\nS 1028\n\t020d  x\n', /line 2: S block for vendor 1028, which does not exist/],
    ['C 1  Short\n', /line 1: expected "C cc  class name"/],
    ['C 01  Mass\n\tXY  sub\n', /line 2: expected "\\tss  subclass name"/],
    ['\u0000\u0001\u00ff garbage', /line 1:/],
    ['', /no vendor or class entries/],
    ['# only comments\n\n', /no vendor or class entries/],
  ];
  for (const [text, re] of bad) assertBadInput(() => PciIds.parse(text, 'in.ids'), 'in.ids', re);
});

test('load: the fixture by path, and its gzip variant', () => {
  const p = PciIds.load(FIXTURE);
  assert.ok(p);
  assert.equal(p.source, FIXTURE);
  assert.deepEqual(p.counts, ids.counts);
  withTmp((dir) => {
    const gz = join(dir, 'pci.ids.gz');
    writeFileSync(gz, gzipSync(readFileSync(FIXTURE)));
    const g = PciIds.load(gz);
    assert.equal(g?.source, gz);
    assert.deepEqual(g?.counts, ids.counts);
    // asked for pci.ids, only pci.ids.gz exists
    assert.equal(PciIds.load(join(dir, 'pci.ids'))?.source, gz);
    // gzip recognised by content, whatever the name
    const odd = join(dir, 'names.db');
    writeFileSync(odd, gzipSync(FIXTURE_TEXT));
    assert.equal(PciIds.load(odd)?.vendorName(0x8086), 'Intel Corporation');
    // asked for x.gz, only x exists (libpci pci_open())
    const plain = join(dir, 'plain.ids');
    writeFileSync(plain, FIXTURE_TEXT);
    assert.equal(PciIds.load(plain + '.gz')?.source, plain);
  });
});

test('load: a missing file means no database (null)', () => {
  withTmp((dir) => {
    assert.equal(PciIds.load(join(dir, 'pci.ids')), null);
    assert.equal(PciIds.load(join(dir, 'pci.ids.gz')), null);
    assert.equal(PciIds.load(join(dir, 'no', 'such', 'dir', 'pci.ids')), null);
    assert.equal(PciIds.load(join(FIXTURE, 'not-a-dir')), null); // ENOTDIR
  });
});

test('load: an existing file that is not a pci.ids is an IommuError naming it', () => {
  withTmp((dir) => {
    const garbage = join(dir, 'pci.ids');
    writeFileSync(garbage, 'this is not\na pci.ids file\n');
    assertBadInput(() => PciIds.load(garbage), garbage, /line 1: .*not a pci\.ids/);

    const binary = join(dir, 'binary.ids');
    writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]));
    assertBadInput(() => PciIds.load(binary), binary, /line 1:/);

    const badGz = join(dir, 'bad.ids.gz');
    writeFileSync(badGz, Buffer.concat([gzipSync(FIXTURE_TEXT).subarray(0, 100)]));
    assertBadInput(() => PciIds.load(badGz), badGz, /bad gzip data/);

    const gzGarbage = join(dir, 'garbage.ids.gz');
    writeFileSync(gzGarbage, gzipSync('<html>not found</html>\n'));
    assertBadInput(() => PciIds.load(gzGarbage), gzGarbage, /line 1:/);

    const empty = join(dir, 'empty.ids');
    writeFileSync(empty, '');
    assertBadInput(() => PciIds.load(empty), empty, /no vendor or class entries/);

    const asDir = join(dir, 'dir.ids');
    mkdirSync(asDir);
    assertBadInput(() => PciIds.load(asDir), asDir, /is a directory/);
  });
});

test('load() / system(): $PCI_IDS_PATH is looked at first; system() caches', () => {
  const saved = process.env['PCI_IDS_PATH'];
  try {
    process.env['PCI_IDS_PATH'] = FIXTURE;
    assert.equal(PciIds.load()?.source, FIXTURE);
    const a = PciIds.system();
    assert.equal(a?.source, FIXTURE);
    assert.equal(PciIds.system(), a); // parsed once
    withTmp((dir) => {
      const copy = join(dir, 'pci.ids');
      writeFileSync(copy, FIXTURE_TEXT);
      process.env['PCI_IDS_PATH'] = copy;
      const b = PciIds.system();
      assert.equal(b?.source, copy); // env changed: reloaded
      assert.notEqual(b, a);
      const garbage = join(dir, 'garbage.ids');
      writeFileSync(garbage, 'garbage\n');
      process.env['PCI_IDS_PATH'] = garbage;
      assertBadInput(() => PciIds.load(), garbage, /not a pci\.ids/);
      assertBadInput(() => PciIds.system(), garbage, /not a pci\.ids/);
    });
  } finally {
    if (saved === undefined) delete process.env['PCI_IDS_PATH'];
    else process.env['PCI_IDS_PATH'] = saved;
  }
});

test('a 40k-line, ~1.4 MB pci.ids parses completely (size of the real file)', () => {
  // Synthetic database shaped like the real one (2300 vendors, 17600 devices, 15400 subsystems).
  const h4 = (n: number) => n.toString(16).padStart(4, '0');
  const lines: string[] = ['#', '#\tList of PCI ID\'s', '#', ''];
  let devices = 0;
  for (let v = 0; v < 2300; v++) {
    lines.push(`${h4(v * 28)}  Vendor number ${v} Technology Corporation, Inc.`);
    for (let d = 0; d < 8 && devices < 17600; d++, devices++) {
      lines.push(`\t${h4(d * 4099)}  Device ${d} of vendor ${v}: Some PCI Express Controller [Model ${d}]`);
      for (let s = 0; s < 1 + (d % 2); s++) lines.push(`\t\t${h4(s * 7 + 1)} ${h4(v)}  Subsystem ${s} OEM Card / Motherboard`);
    }
  }
  lines.push(...FIXTURE_TEXT.slice(FIXTURE_TEXT.indexOf('C 00')).split('\n'));
  const text = lines.join('\n');
  assert.ok(lines.length > 38000 && text.length > 1_300_000, `${lines.length} lines, ${text.length} chars`);
  const parsed = PciIds.parse(text, 'synthetic');
  assert.equal(parsed.counts.devices, 17600);
});
