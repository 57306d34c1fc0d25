import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { IommuError } from '../../src/base/errno.js';
import { readPciSysfs, type PciSysfsReading } from '../../src/sysfs/pci-reader.js';
import { writeSnapshot } from '../../src/sysfs/snapshot.js';
import { DirSource, TarSource } from '../../src/sysfs/source.js';
import { ORACLE_DIR, extractTo, oracleCases, tempDir, writeTree } from './helpers.js';

/** Everything but the source name. */
function content(r: PciSysfsReading): Omit<PciSysfsReading, 'source'> {
  const { source: _s, ...rest } = r;
  return rest;
}

/** Every oracle case round-trips through a snapshot (~0.5 s each, extraction with node-tar dominates). */
const ROUND_TRIP_CASES = oracleCases();

for (const c of ROUND_TRIP_CASES) {
  test(`snapshot of extracted oracle ${c} re-reads to the same functions, config bytes and groups`, () => {
    const { dir, cleanup } = tempDir();
    try {
      const archive = path.join(ORACLE_DIR, c, 'sys.tar.gz');
      const mirror = path.join(dir, 'sys');
      extractTo(archive, mirror);
      const out = path.join(dir, 'snap.tar.gz');
      const rep = writeSnapshot(mirror, out);
      assert.equal(rep.outFile, out);
      assert.deepEqual(rep.skipped, []);
      assert.deepEqual(rep.truncatedConfig, []);
      assert.ok(rep.files > 0 && rep.links > 0);
      const before = readPciSysfs(new TarSource(archive));
      const snap = new TarSource(out);
      const after = readPciSysfs(snap);
      assert.deepEqual(content(after), content(before));
      for (let i = 0; i < before.functions.length; i++) {
        assert.deepEqual(after.functions[i]!.config, before.functions[i]!.config);
      }
      // Same layout details as the fixtures: drivers' bind links, IOMMU unit device links, host bridge dirs.
      const orig = new TarSource(archive);
      for (const d of orig.readDir('bus/pci/drivers') ?? []) {
        assert.deepEqual(snap.readDir(`bus/pci/drivers/${d}`), orig.readDir(`bus/pci/drivers/${d}`), `drivers/${d}`);
      }
      for (const u of orig.readDir('class/iommu') ?? []) {
        assert.equal(snap.readLink(`class/iommu/${u}`), orig.readLink(`class/iommu/${u}`));
        assert.deepEqual(snap.readDir(`class/iommu/${u}/devices`), orig.readDir(`class/iommu/${u}/devices`));
      }
      assert.deepEqual(snap.readDir('devices')?.filter((d) => d.startsWith('pci')), orig.readDir('devices')?.filter((d) => d.startsWith('pci')));
    } finally {
      cleanup();
    }
  });
}

test('snapshot archives are deterministic and rooted at /sys (entries bus/, devices/, …)', () => {
  const { dir, cleanup } = tempDir();
  try {
    const mirror = path.join(dir, 'sys');
    extractTo(path.join(ORACLE_DIR, 't12-amd-iommu-mixed', 'sys.tar.gz'), mirror);
    const a = path.join(dir, 'a.tar.gz');
    const b = path.join(dir, 'b.tar.gz');
    writeSnapshot(mirror, a);
    writeSnapshot(mirror, b);
    assert.deepEqual(fs.readFileSync(a), fs.readFileSync(b));
    const raw = zlib.gunzipSync(fs.readFileSync(a));
    const firstName = raw.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    assert.match(firstName, /^(bus|class|devices|firmware|kernel)\//);
    // The AMD unit lives inside its PCI function's directory; its attributes are kept.
    const s = new TarSource(a);
    assert.equal(s.realPath('class/iommu/ivhd0'), 'devices/pci0000:00/0000:00:01.0/iommu/ivhd0');
    assert.ok(s.readFile('class/iommu/ivhd0/amd-iommu/cap') !== null);
  } finally {
    cleanup();
  }
});

test('snapshot: unreadable files are skipped and reported; short config is kept and reported', () => {
  const { dir, cleanup } = tempDir();
  try {
    const mirror = path.join(dir, 'sys');
    const p = 'devices/pci0000:00/0000:00:1f.2';
    writeTree(
      mirror,
      { [`${p}/config`]: new Uint8Array(64), [`${p}/vendor`]: '0x8086\n', [`${p}/device`]: '0x2922\n', [`${p}/class`]: '0x010601\n' },
      { 'bus/pci/devices/0000:00:1f.2': `../../../${p}` },
    );
    // A directory where a file should be (EISDIR) stands in for EACCES/EIO, which root cannot provoke.
    fs.mkdirSync(path.join(mirror, 'firmware/acpi/tables'), { recursive: true });
    fs.writeFileSync(path.join(mirror, 'firmware/acpi/tables/MCFG'), new Uint8Array(60));
    let fifo = true;
    try {
      execFileSync('mkfifo', [path.join(mirror, p, 'revision')]);
    } catch {
      fifo = false;
    }
    const out = path.join(dir, 'snap.tar.gz');
    const rep = writeSnapshot(mirror, out);
    assert.deepEqual(rep.truncatedConfig, ['0000:00:1f.2']);
    if (fifo) assert.deepEqual(rep.skipped, [{ path: `${p}/revision`, why: 'EINVAL: not a regular file' }]);
    const r = readPciSysfs(new TarSource(out));
    assert.equal(r.functions[0]!.config.length, 64);
    assert.deepEqual(r.truncatedConfig, ['0000:00:1f.2']);
    assert.ok('MCFG' in r.acpiTables);
    assert.equal(r.kernelGroups, null);
  } finally {
    cleanup();
  }
});



test('snapshot: refuses to write inside the source tree or under /sys, and never creates the file', () => {
  const { dir, cleanup } = tempDir();
  try {
    const mirror = path.join(dir, 'sys');
    extractTo(path.join(ORACLE_DIR, 't01-rootport-acs-vs-noacs', 'sys.tar.gz'), mirror);
    const inside = path.join(mirror, 'devices', 'snap.tar.gz');
    assert.throws(() => writeSnapshot(mirror, inside), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL' && e.input === inside);
    assert.equal(fs.existsSync(inside), false);
    assert.throws(() => writeSnapshot(mirror, '/sys/snap.tar.gz'), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
    // A link that points into the tree is followed by the check, as a write would follow it.
    const sneaky = path.join(dir, 'sneaky.tar.gz');
    fs.symlinkSync(path.join(mirror, 'kernel', 'iommu_groups', '0', 'type'), sneaky);
    const before = fs.readFileSync(path.join(mirror, 'kernel', 'iommu_groups', '0', 'type'));
    assert.throws(() => writeSnapshot(mirror, sneaky), (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL');
    assert.deepEqual(fs.readFileSync(path.join(mirror, 'kernel', 'iommu_groups', '0', 'type')), before);
  } finally {
    cleanup();
  }
});

test('snapshot: a missing root or a tree without bus/pci is a clear error', () => {
  const { dir, cleanup } = tempDir();
  try {
    assert.throws(() => writeSnapshot(path.join(dir, 'nope'), path.join(dir, 'o.tar.gz')), (e: unknown) => e instanceof IommuError && e.errno === 'ENOENT');
    fs.mkdirSync(path.join(dir, 'empty'));
    assert.throws(
      () => writeSnapshot(path.join(dir, 'empty'), path.join(dir, 'o.tar.gz')),
      (e: unknown) => e instanceof IommuError && /no PCI devices found at .*is this a sysfs tree\?/.test(e.message),
    );
    assert.equal(fs.existsSync(path.join(dir, 'o.tar.gz')), false);
    // An unwritable destination (a directory in the way) is an IommuError naming it, and the staging dir is gone.
    const mirror = path.join(dir, 'sys');
    extractTo(path.join(ORACLE_DIR, 't01-rootport-acs-vs-noacs', 'sys.tar.gz'), mirror);
    const blocked = path.join(dir, 'blocked');
    fs.mkdirSync(blocked);
    assert.throws(() => writeSnapshot(mirror, blocked), (e: unknown) => e instanceof IommuError && e.input === blocked);
  } finally {
    cleanup();
  }
});

test('snapshot of this machine\'s live /sys re-reads to the same PCI functions as DirSource("/sys")', () => {
  assert.ok(fs.existsSync('/sys/bus/pci/devices'), 'this machine has a PCI sysfs');
  const { dir, cleanup } = tempDir();
  try {
    const out = path.join(dir, 'live.tar.gz');
    const live = readPciSysfs(new DirSource('/sys'));
    const rep = writeSnapshot('/sys', out);
    const snap = readPciSysfs(new TarSource(out));
    assert.equal(rep.truncatedConfig.length, live.truncatedConfig.length);
    assert.deepEqual(snap.functions.map((f) => f.bdf), live.functions.map((f) => f.bdf));
    for (let i = 0; i < live.functions.length; i++) {
      const a = live.functions[i]!;
      const b = snap.functions[i]!;
      // Config space is live hardware state (status bits can change between reads): compare length and ids.
      const { config: ca, ...ra } = a;
      const { config: cb, ...rb } = b;
      assert.deepEqual(rb, ra, a.bdf);
      assert.equal(cb.length, ca.length, a.bdf);
      assert.deepEqual(cb.subarray(0, 4), ca.subarray(0, 4), a.bdf);
      assert.deepEqual(cb.subarray(8, 12), ca.subarray(8, 12), a.bdf);
    }
    assert.deepEqual(snap.kernelGroups, live.kernelGroups);
    assert.deepEqual(snap.iommuUnits, live.iommuUnits);
    assert.deepEqual(Object.keys(snap.acpiTables), Object.keys(live.acpiTables));
  } finally {
    cleanup();
  }
});
