import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { IommuError } from '../../src/base/errno.js';
import { readPciSysfs, type PciSysfsReading } from '../../src/sysfs/pci-reader.js';
import { DirSource, MemorySource, TarSource } from '../../src/sysfs/source.js';
import { ORACLE_DIR, addPciDevice, fakeConfig, oracleCases, readSummary, tempDir, writeTree } from './helpers.js';

function readCase(c: string): PciSysfsReading {
  return readPciSysfs(new TarSource(path.join(ORACLE_DIR, c, 'sys.tar.gz')));
}

test('oracle fixtures are all present', () => {
  const cases = oracleCases();
  assert.ok(cases.length >= 36, `${cases.length} cases`);
  for (const c of cases) {
    for (const f of ['sys.tar.gz', 'summary.json', 'meta.json', 'spec.json']) assert.ok(fs.existsSync(path.join(ORACLE_DIR, c, f)), `${c}/${f}`);
  }
});

for (const c of oracleCases()) {
  test(`oracle ${c}: readPciSysfs gives exactly the devices and groups of summary.json`, () => {
    const s = readSummary(c);
    const r = readCase(c);
    assert.deepEqual(r.functions.map((f) => f.bdf), Object.keys(s.devices).sort());
    for (const f of r.functions) {
      const d = s.devices[f.bdf]!;
      assert.equal(f.path, d.path, f.bdf);
      assert.equal(f.vendor, parseInt(d.vendor, 16), `${f.bdf} vendor`);
      assert.equal(f.device, parseInt(d.device, 16), `${f.bdf} device`);
      assert.equal(f.classCode, parseInt(d.class, 16), `${f.bdf} class`);
      assert.equal(f.driver, d.driver, `${f.bdf} driver`);
      assert.equal(f.kernelGroup, d.iommu_group === null ? null : Number(d.iommu_group), `${f.bdf} group`);
      assert.ok(f.config.length === 256 || f.config.length === 4096, `${f.bdf} config ${f.config.length}`);
      // config agrees with the id files
      assert.equal(f.config[0]! | (f.config[1]! << 8), f.vendor);
      assert.equal(f.config[2]! | (f.config[3]! << 8), f.device);
      assert.equal(f.config[9]! | (f.config[10]! << 8) | (f.config[11]! << 16), f.classCode);
      assert.equal(f.config[8], f.revision);
      assert.match(f.hostBridge, /^pci0000:[0-9a-f]{2}$/);
      assert.equal(f.path.split('/')[1], f.hostBridge);
      assert.deepEqual(f.problems, [], f.bdf);
    }
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.truncatedConfig, []);
    const ids = Object.keys(s.groups);
    if (ids.length === 0) {
      assert.equal(r.kernelGroups, null);
      assert.deepEqual(r.iommuUnits, []);
      assert.ok(r.functions.every((f) => f.iommu === null && f.kernelGroup === null));
    } else {
      assert.ok(r.kernelGroups !== null);
      assert.deepEqual(r.kernelGroups.map((g) => g.id), ids.map(Number).sort((a, b) => a - b));
      for (const g of r.kernelGroups) {
        assert.deepEqual(g.devices, [...s.groups[String(g.id)]!].sort(), `group ${g.id}`);
        assert.equal(g.type, s.group_types[String(g.id)], `group ${g.id} type`);
        assert.ok(g.reservedRegions !== null && g.reservedRegions.length > 0, `group ${g.id} reserved_regions`);
      }
      assert.equal(r.iommuUnits.length, 1);
      for (const f of r.functions) if (f.kernelGroup !== null) assert.equal(f.iommu, r.iommuUnits[0]);
    }
    const meta = JSON.parse(fs.readFileSync(path.join(ORACLE_DIR, c, 'meta.json'), 'utf8')) as { iommu: string };
    if (meta.iommu === 'intel') assert.ok('DMAR' in r.acpiTables && !('IVRS' in r.acpiTables));
    if (meta.iommu === 'amd') assert.ok('IVRS' in r.acpiTables && !('DMAR' in r.acpiTables));
    assert.ok('MCFG' in r.acpiTables);
    assert.equal(r.cmdline, null);
  });
}

test('oracle t17: pxb expander buses are their own host bridges, parents come from the path', () => {
  const r = readCase('t17-pxb-expander-buses');
  const by = new Map(r.functions.map((f) => [f.bdf, f]));
  assert.equal(by.get('0000:41:00.0')!.hostBridge, 'pci0000:40');
  assert.equal(by.get('0000:41:00.0')!.parentBdf, '0000:40:00.0');
  assert.equal(by.get('0000:40:00.0')!.parentBdf, null);
  assert.equal(by.get('0000:82:01.0')!.parentBdf, '0000:81:00.0');
  assert.equal(by.get('0000:82:01.0')!.hostBridge, 'pci0000:80');
  // The pxb devices themselves sit on bus 0 as host-bridge-class functions.
  assert.equal(by.get('0000:00:02.0')!.classCode, 0x060000);
  assert.equal(by.get('0000:00:02.0')!.hostBridge, 'pci0000:00');
});

test('oracle t12 (AMD): the IOMMU function is ungrouped and its iommu/ directory is not a problem', () => {
  const r = readCase('t12-amd-iommu-mixed');
  const f = r.functions.find((x) => x.bdf === '0000:00:01.0')!;
  assert.equal(f.classCode, 0x080600);
  assert.equal(f.kernelGroup, null);
  assert.equal(f.iommu, null);
  assert.deepEqual(f.problems, []);
  assert.deepEqual(r.iommuUnits, ['ivhd0']);
});

test('a hand-built mirror with a 64-byte config (non-root read): truncatedConfig and a clear problem', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = 'devices/pci0000:00/0000:00:1f.2';
    writeTree(
      dir,
      {
        [`${p}/config`]: fakeConfig(0x8086, 0x2922, 0x010601, 64),
        [`${p}/vendor`]: '0x8086\n',
        [`${p}/device`]: '0x2922\n',
        [`${p}/class`]: '0x010601\n',
        [`${p}/subsystem_vendor`]: '0x1af4\n',
        [`${p}/subsystem_device`]: '0x1100\n',
        [`${p}/revision`]: '0x02\n',
        [`${p}/reset_method`]: 'flr bus\n',
        'devices/pci0000:00/0000:00:00.0/config': fakeConfig(0x8086, 0x29c0, 0x060000, 256),
        'devices/pci0000:00/0000:00:00.0/vendor': '0x8086\n',
        'devices/pci0000:00/0000:00:00.0/device': '0x29c0\n',
        'devices/pci0000:00/0000:00:00.0/class': '0x060000\n',
        'devices/pci0000:00/0000:00:00.0/subsystem_vendor': '0x1af4\n',
        'devices/pci0000:00/0000:00:00.0/subsystem_device': '0x1100\n',
        'devices/pci0000:00/0000:00:00.0/revision': '0x00\n',
      },
      {
        'bus/pci/devices/0000:00:1f.2': `../../../${p}`,
        'bus/pci/devices/0000:00:00.0': '../../../devices/pci0000:00/0000:00:00.0',
        [`${p}/driver`]: '../../../bus/pci/drivers/ahci',
      },
    );
    fs.mkdirSync(path.join(dir, 'bus/pci/drivers/ahci'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'kernel/iommu_groups'), { recursive: true });
    const r = readPciSysfs(new DirSource(dir));
    assert.deepEqual(r.truncatedConfig, ['0000:00:1f.2']);
    const f = r.functions.find((x) => x.bdf === '0000:00:1f.2')!;
    assert.equal(f.config.length, 64);
    assert.equal(f.problems.length, 1);
    assert.match(f.problems[0]!, /only 64 bytes could be read/);
    assert.match(f.problems[0]!, /non-root/);
    assert.equal(f.vendor, 0x8086);
    assert.equal(f.revision, 2);
    assert.equal(f.driver, 'ahci');
    assert.deepEqual(f.resetMethods, ['flr', 'bus']);
    assert.equal(f.hostBridge, 'pci0000:00');
    assert.equal(f.parentBdf, null);
    assert.deepEqual(r.functions.find((x) => x.bdf === '0000:00:00.0')!.problems, []);
    assert.equal(r.kernelGroups, null, 'an empty kernel/iommu_groups means no active IOMMU');
    assert.deepEqual(r.problems, []);
  } finally {
    cleanup();
  }
});

function oneDevice(mutate: (m: MemorySource, p: string) => void): PciSysfsReading {
  const m = new MemorySource('synthetic');
  addPciDevice(m, { bdf: '0000:00:00.0', vendor: 0x8086, device: 0x29c0, classCode: 0x060000 });
  const p = addPciDevice(m, { bdf: '0000:01:00.0', path: 'devices/pci0000:00/0000:00:1c.0/0000:01:00.0', driver: 'e1000e', group: 3 });
  addPciDevice(m, { bdf: '0000:00:1c.0', vendor: 0x8086, device: 0x2940, classCode: 0x060400, driver: 'pcieport', group: 2 });
  mutate(m, p);
  return readPciSysfs(m);
}

function fn(r: PciSysfsReading, bdf = '0000:01:00.0') {
  const f = r.functions.find((x) => x.bdf === bdf);
  assert.ok(f, `${bdf} read`);
  return f;
}

test('bad input: a clean synthetic tree has no problems (baseline)', () => {
  const r = oneDevice(() => {});
  assert.equal(r.functions.length, 3);
  const f = fn(r);
  assert.equal(f.parentBdf, '0000:00:1c.0');
  assert.equal(f.kernelGroup, 3);
  assert.equal(f.driver, 'e1000e');
  assert.deepEqual(f.problems, []);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.kernelGroups?.map((g) => [g.id, g.devices]), [[2, ['0000:00:1c.0']], [3, ['0000:01:00.0']]]);
});

test('bad input: truncated config keeps the bytes read and records a problem', () => {
  const full = fakeConfig(0x8086, 0x10d3, 0x020000, 256);
  const r = oneDevice((m, p) => m.addFile(`${p}/config`, full.subarray(0, 100)));
  const f = fn(r);
  assert.deepEqual(f.config, full.subarray(0, 100));
  assert.deepEqual(r.truncatedConfig, ['0000:01:00.0']);
  assert.match(f.problems.join('\n'), /config: truncated, only 100 of at least 256 bytes/);
  const r2 = oneDevice((m, p) => m.addFile(`${p}/config`, full.subarray(0, 10)));
  assert.match(fn(r2).problems.join('\n'), /only 10 bytes \(not even the 64-byte header\)/);
  const r3 = oneDevice((m, p) => m.addFile(`${p}/config`, new Uint8Array(0)));
  assert.match(fn(r3).problems.join('\n'), /config: empty/);
  const r4 = oneDevice((m, p) => m.addFile(`${p}/config`, full.subarray(0, 128)));
  assert.match(fn(r4).problems.join('\n'), /only 128 bytes could be read/);
});

test('bad input: garbage config (ids disagree with the id files, or all 0xff) is reported', () => {
  const r = oneDevice((m, p) => m.addFile(`${p}/config`, fakeConfig(0x1234, 0x5678, 0x020000)));
  assert.match(fn(r).problems.join('\n'), /config: ids 1234:5678 do not match the vendor\/device files 8086:10d3/);
  assert.equal(fn(r).config.length, 256);
  const r2 = oneDevice((m, p) => m.addFile(`${p}/config`, new Uint8Array(256).fill(0xff)));
  assert.match(fn(r2).problems.join('\n'), /all 0xff/);
  const r3 = oneDevice((m, p) => m.addFile(`${p}/config`, fakeConfig(0x8086, 0x10d3, 0x020000, 300)));
  assert.match(fn(r3).problems.join('\n'), /unexpected length 300/);
});

test('bad input: a missing vendor file gives vendor null and a problem', () => {
  const m = new MemorySource('synthetic');
  const p = addPciDevice(m, { bdf: '0000:00:02.0' });
  const m2 = new MemorySource('synthetic');
  for (const f of ['config', 'device', 'class', 'subsystem_vendor', 'subsystem_device', 'revision']) m2.addFile(`${p}/${f}`, m.readFile(`${p}/${f}`)!);
  m2.addLink('bus/pci/devices/0000:00:02.0', '../../../devices/pci0000:00/0000:00:02.0');
  const f = fn(readPciSysfs(m2), '0000:00:02.0');
  assert.equal(f.vendor, null);
  assert.equal(f.device, 0x10d3);
  assert.deepEqual(f.problems, ['vendor: missing']);
});

test('bad input: garbage in id files gives null and says what was there', () => {
  const r = oneDevice((m, p) => {
    m.addFile(`${p}/vendor`, 'hello\n');
    m.addFile(`${p}/class`, '0x1234567\n');
    m.addFile(`${p}/revision`, '');
  });
  const f = fn(r);
  assert.equal(f.vendor, null);
  assert.equal(f.classCode, null);
  assert.equal(f.revision, null);
  const text = f.problems.join('\n');
  assert.match(text, /vendor: garbage "hello"/);
  assert.match(text, /class: 0x1234567 is out of range/);
  assert.match(text, /revision: garbage ""/);
});

test('bad input: a broken driver link keeps the name and records a problem', () => {
  const r = oneDevice((m, p) => m.addLink(`${p}/driver`, '../../../../bus/pci/drivers/vfio-pci'));
  const f = fn(r);
  assert.equal(f.driver, 'vfio-pci');
  assert.deepEqual(f.problems, ['driver: broken link → ../../../../bus/pci/drivers/vfio-pci']);
});

test('bad input: a device link in bus/pci/devices pointing nowhere skips that device and says so', () => {
  const r = oneDevice((m) => m.addLink('bus/pci/devices/0000:05:00.0', '../../../devices/pci0000:00/0000:00:1c.0/0000:05:00.0'));
  assert.equal(r.functions.length, 3);
  assert.ok(!r.functions.some((f) => f.bdf === '0000:05:00.0'));
  assert.deepEqual(r.problems, [
    'bus/pci/devices/0000:05:00.0 → ../../../devices/pci0000:00/0000:00:1c.0/0000:05:00.0 points nowhere (broken link); 0000:05:00.0 skipped',
  ]);
});

test('bad input: a non-BDF name in bus/pci/devices is ignored with a problem', () => {
  const r = oneDevice((m) => m.addLink('bus/pci/devices/garbage', '../../../devices/pci0000:00/0000:00:00.0'));
  assert.equal(r.functions.length, 3);
  assert.deepEqual(r.problems, ['bus/pci/devices/garbage: not a PCI address (dddd:bb:dd.f); ignored']);
});

test('bad input: iommu_group link and group listing that disagree are reported', () => {
  const r = oneDevice((m, p) => m.addLink(`${p}/iommu_group`, '../../../../kernel/iommu_groups/2'));
  assert.equal(fn(r).kernelGroup, 2);
  const text = r.problems.join('\n');
  assert.match(text, /0000:01:00.0: in group 2 by its iommu_group link, but not in kernel\/iommu_groups\/2\/devices/);
  assert.match(text, /0000:01:00.0: listed in kernel\/iommu_groups\/3\/devices, but its iommu_group link says 2/);
});

test('bad input: unreadable files (EIO, EACCES) are reported, never thrown', () => {
  const r = oneDevice((m, p) => {
    m.addFile(`${p}/config`, new Uint8Array(0), { unreadable: 'EIO: i/o error' });
    m.addFile('firmware/acpi/tables/DMAR', new Uint8Array(0), { unreadable: 'EACCES: permission denied' });
    m.addFile('firmware/acpi/tables/MCFG', new Uint8Array(60));
  });
  const f = fn(r);
  assert.equal(f.config.length, 0);
  assert.deepEqual(r.truncatedConfig, ['0000:01:00.0']);
  assert.deepEqual(f.problems, ['config: could not be read (EIO: i/o error)']);
  assert.deepEqual(Object.keys(r.acpiTables), ['MCFG']);
  assert.deepEqual(r.problems, [
    'firmware/acpi/tables/DMAR: exists but could not be read (EACCES: permission denied); ACPI tables are readable by root only',
  ]);
});

test('bad input: a tree without bus/pci → "no PCI devices found at … (is this a sysfs tree?)"', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeTree(dir, { 'kernel/iommu_groups/0/type': 'DMA\n', 'README': 'not sysfs\n' });
    assert.throws(
      () => readPciSysfs(new DirSource(dir)),
      (e: unknown) =>
        e instanceof IommuError && e.errno === 'ENOENT' && e.message.includes(`no PCI devices found at directory ${dir} (is this a sysfs tree?`),
    );
    fs.mkdirSync(path.join(dir, 'bus/pci/devices'), { recursive: true });
    assert.throws(
      () => readPciSysfs(new DirSource(dir)),
      (e: unknown) => e instanceof IommuError && e.errno === 'ENODEV' && /no PCI devices found at .*is this a sysfs tree\?/.test(e.message),
    );
  } finally {
    cleanup();
  }
});

test('bad input: bus/pci/devices entries that are directories (a copy that followed links) are read with a note', () => {
  const m = new MemorySource('synthetic');
  const tmp = new MemorySource('x');
  const p = addPciDevice(tmp, { bdf: '0000:00:02.0' });
  for (const f of tmp.readDir(p)!) m.addFile(`bus/pci/devices/0000:00:02.0/${f}`, tmp.readFile(`${p}/${f}`)!);
  const r = readPciSysfs(m);
  const f = fn(r, '0000:00:02.0');
  assert.equal(f.vendor, 0x8086);
  assert.equal(f.hostBridge, '');
  assert.match(f.problems.join('\n'), /is a directory, not a link into devices\//);
});

test('SR-IOV links: physfn and virtfnN (in N order) are read', () => {
  const m = new MemorySource('synthetic');
  const pf = addPciDevice(m, { bdf: '0000:03:00.0' });
  const vfs = ['0000:03:10.0', '0000:03:10.2', '0000:03:11.0'];
  vfs.forEach((v, i) => {
    const vp = addPciDevice(m, { bdf: v, device: 0x10ed });
    m.addLink(`${vp}/physfn`, '../0000:03:00.0');
    m.addLink(`${pf}/virtfn${i === 2 ? 10 : i}`, `../${v}`);
  });
  const r = readPciSysfs(m);
  assert.deepEqual(fn(r, '0000:03:00.0').virtfns, vfs);
  assert.equal(fn(r, '0000:03:10.2').physfn, '0000:03:00.0');
  assert.equal(fn(r, '0000:03:00.0').physfn, null);
  assert.ok(r.functions.every((f) => f.problems.length === 0));
});

test('nested host bridge (VMD-style): hostBridge is the nearest pciDDDD:BB, parentBdf null', () => {
  const m = new MemorySource('synthetic');
  addPciDevice(m, { bdf: '0000:00:0e.0', classCode: 0x010400 });
  addPciDevice(m, { bdf: '10000:e0:06.0', path: 'devices/pci0000:00/0000:00:0e.0/pci10000:e0/10000:e0:06.0', classCode: 0x060400 });
  const f = fn(readPciSysfs(m), '10000:e0:06.0');
  assert.equal(f.hostBridge, 'pci10000:e0');
  assert.equal(f.parentBdf, null);
});

test('readPciSysfs on the live /sys never throws past a clear error', () => {
  if (!fs.existsSync('/sys/bus/pci/devices')) {
    assert.throws(() => readPciSysfs(new DirSource('/sys')), (e: unknown) => e instanceof IommuError && e.errno === 'ENOENT' && /no PCI devices found/.test(e.message));
    return;
  }
  const r = readPciSysfs(new DirSource('/sys'));
  assert.equal(r.source, 'live sysfs /sys');
  assert.equal(r.functions.length, fs.readdirSync('/sys/bus/pci/devices').length);
  for (const f of r.functions) {
    assert.ok(f.vendor !== null && f.config.length >= 64, f.bdf);
    assert.equal(f.config[0]! | (f.config[1]! << 8), f.vendor);
  }
  const groups = fs.existsSync('/sys/kernel/iommu_groups') ? fs.readdirSync('/sys/kernel/iommu_groups') : [];
  assert.equal(r.kernelGroups === null, groups.length === 0);
});

test('as a real non-root user on the live /sys: 64-byte configs and root-only ACPI tables are reported, not thrown', () => {
  // The project's machines run tests as root with setpriv and a PCI sysfs: drop to nobody for real.
  assert.equal(process.getuid?.(), 0, 'tests run as root here (to drop privileges to nobody)');
  assert.ok(fs.existsSync('/usr/bin/setpriv'), 'setpriv (util-linux) is installed');
  assert.ok(fs.existsSync('/sys/bus/pci/devices'), 'this machine has a PCI sysfs');
  // nobody cannot read the checkout (it may sit in a 0700 directory): run from a world-readable copy of the build.
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'iommukit-nonroot-build-'));
  const distSrc = fileURLToPath(new URL('../../src/', import.meta.url));
  const nodeModules = fileURLToPath(new URL('../../../node_modules/', import.meta.url));
  fs.cpSync(distSrc, path.join(stage, 'dist/src'), { recursive: true });
  fs.cpSync(nodeModules, path.join(stage, 'node_modules'), { recursive: true, dereference: true });
  fs.writeFileSync(path.join(stage, 'package.json'), '{"type":"module"}');
  execFileSync('chmod', ['-R', 'a+rX', stage]);
  fs.chmodSync(stage, 0o755);
  const mod = (p: string): string => JSON.stringify(pathToFileURL(path.join(stage, 'dist/src/sysfs', p)).href);
  const code = `
    import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
    import { DirSource, TarSource } from ${mod('source.js')};
    import { readPciSysfs } from ${mod('pci-reader.js')};
    import { writeSnapshot } from ${mod('snapshot.js')};
    const r = readPciSysfs(new DirSource('/sys'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iommukit-nonroot-'));
    try {
      const rep = writeSnapshot('/sys', path.join(dir, 's.tar.gz'));
      const s = readPciSysfs(new TarSource(path.join(dir, 's.tar.gz')));
      console.log(JSON.stringify({ n: r.functions.length, truncated: r.truncatedConfig, fproblems: r.functions.map((f) => f.problems),
        problems: r.problems, lens: r.functions.map((f) => f.config.length), rep, snapTruncated: s.truncatedConfig }));
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }`;
  let out: string;
  try {
    out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], {
      cwd: '/',
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const r = JSON.parse(out) as {
    n: number;
    truncated: string[];
    fproblems: string[][];
    problems: string[];
    lens: number[];
    rep: { skipped: { path: string; why: string }[]; truncatedConfig: string[] };
    snapTruncated: string[];
  };
  assert.equal(r.truncated.length, r.n);
  assert.ok(r.lens.every((l) => l === 64 || l === 128));
  for (const p of r.fproblems) assert.match(p.join('\n'), /only (64|128) bytes could be read — a non-root reader/);
  assert.deepEqual(r.rep.truncatedConfig, r.truncated);
  assert.deepEqual(r.snapTruncated, r.truncated);
  const tables = fs.readdirSync('/sys/firmware/acpi/tables').filter((x) => ['DMAR', 'IVRS', 'IORT', 'VIOT', 'MCFG'].includes(x));
  for (const tb of tables) {
    assert.ok(r.problems.some((p) => p.startsWith(`firmware/acpi/tables/${tb}: exists but could not be read (EACCES`)), tb);
    assert.ok(r.rep.skipped.some((s) => s.path === `firmware/acpi/tables/${tb}` && /EACCES/.test(s.why)), tb);
  }
});
