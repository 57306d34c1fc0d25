import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { create } from 'tar';
import { IommuError } from '../../src/base/errno.js';
import { DirSource, MemorySource, TarSource, openSysfs } from '../../src/sysfs/source.js';
import { ORACLE_DIR, extractTo, tempDir, writeTree } from './helpers.js';

const T17 = path.join(ORACLE_DIR, 't17-pxb-expander-buses', 'sys.tar.gz');
const T12 = path.join(ORACLE_DIR, 't12-amd-iommu-mixed', 'sys.tar.gz');

function assertIommuError(fn: () => unknown, errno: string, input: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IommuError, `expected IommuError, got ${String(e)}`);
    assert.equal(e.errno, errno);
    assert.equal(e.input, input);
    assert.match(e.message, re);
    return true;
  });
}

test('TarSource: files, links, dirs and resolution inside the tree', () => {
  const src = new TarSource(T17);
  assert.equal(src.describe(), `archive ${T17}`);
  assert.equal(src.readLink('bus/pci/devices/0000:41:00.0'), '../../../devices/pci0000:40/0000:40:00.0/0000:41:00.0');
  assert.equal(src.realPath('bus/pci/devices/0000:41:00.0'), 'devices/pci0000:40/0000:40:00.0/0000:41:00.0');
  assert.equal(src.readText('bus/pci/devices/0000:41:00.0/vendor'), '0x8086');
  assert.equal(src.readFile('bus/pci/devices/0000:00:04.0/config')?.length, 4096);
  assert.equal(src.readFile('bus/pci/devices/0000:00:00.0/config')?.length, 256);
  // Link followed through a link: iommu_group → kernel/iommu_groups/9
  assert.equal(src.realPath('bus/pci/devices/0000:41:00.0/iommu_group'), 'kernel/iommu_groups/9');
  assert.deepEqual(src.readDir('bus/pci/devices/0000:41:00.0/iommu_group/devices'), ['0000:41:00.0']);
  assert.equal(src.entryKind('bus/pci/devices/0000:41:00.0'), 'link');
  assert.equal(src.entryKind('devices/pci0000:40'), 'dir');
  assert.equal(src.entryKind('kernel/iommu_groups/9/type'), 'file');
  assert.equal(src.readFile('no/such/file'), null);
  assert.equal(src.readLink('kernel/iommu_groups/9/type'), null);
  assert.equal(src.readDir('kernel/iommu_groups/9/type'), null);
  assert.equal(src.realPath(''), '');
  // readDir is sorted by code unit
  const devs = src.readDir('bus/pci/devices')!;
  assert.deepEqual(devs, [...devs].sort());
  assert.equal(devs.length, 15);
  // reserved_regions: multi-line text, one trailing newline removed
  const rr = src.readText('kernel/iommu_groups/4/reserved_regions')!;
  assert.ok(rr.includes('\n') && !rr.endsWith('\n'));
  assert.deepEqual(src.issues, []);
});

test('TarSource: the same tree whatever the entry prefix (./, sys/, ./sys/)', () => {
  const { dir, cleanup } = tempDir();
  try {
    extractTo(T17, path.join(dir, 'sys'));
    const plain = new TarSource(T17);
    const variants: [string, string, string[]][] = [
      ['dot.tar.gz', path.join(dir, 'sys'), ['.']],
      ['sys.tar.gz', dir, ['sys']],
      ['dotsys.tar', dir, ['./sys']],
    ];
    for (const [name, cwd, entries] of variants) {
      const out = path.join(dir, name);
      create({ gzip: name.endsWith('.gz'), file: out, cwd, portable: true, sync: true }, entries);
      const src = openSysfs(out);
      assert.ok(src instanceof TarSource, name);
      assert.deepEqual(src.readDir('bus/pci/devices'), plain.readDir('bus/pci/devices'), name);
      assert.equal(src.realPath('bus/pci/devices/0000:82:01.0'), plain.realPath('bus/pci/devices/0000:82:01.0'), name);
      assert.deepEqual(src.readFile('bus/pci/devices/0000:82:01.0/config'), plain.readFile('bus/pci/devices/0000:82:01.0/config'), name);
    }
  } finally {
    cleanup();
  }
});

test('openSysfs: a directory is read in place (DirSource) and matches the archive', () => {
  const { dir, cleanup } = tempDir();
  try {
    extractTo(T12, dir);
    const d = openSysfs(dir);
    assert.ok(d instanceof DirSource);
    assert.equal(d.describe(), `directory ${dir}`);
    const t = new TarSource(T12);
    for (const p of ['bus/pci/devices', 'kernel/iommu_groups', 'class/iommu', 'devices/pci0000:00/0000:00:01.0/iommu/ivhd0/devices']) {
      assert.deepEqual(d.readDir(p), t.readDir(p), p);
    }
    for (const bdf of t.readDir('bus/pci/devices')!) {
      const lp = `bus/pci/devices/${bdf}`;
      assert.equal(d.readLink(lp), t.readLink(lp));
      assert.equal(d.realPath(lp), t.realPath(lp));
      assert.deepEqual(d.readFile(`${lp}/config`), t.readFile(`${lp}/config`));
      assert.equal(d.readText(`${lp}/class`), t.readText(`${lp}/class`));
      assert.equal(d.realPath(`${lp}/iommu`), t.realPath(`${lp}/iommu`));
      assert.equal(d.entryKind(`${lp}/driver`), t.entryKind(`${lp}/driver`));
    }
    assert.deepEqual(d.readFile('firmware/acpi/tables/IVRS'), t.readFile('firmware/acpi/tables/IVRS'));
    assert.equal(d.readFile('nope'), null);
    assert.equal(d.realPath('nope/nope'), null);
  } finally {
    cleanup();
  }
});

test('DirSource: absolute /sys links in a mirror do not leak into the live /sys', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeTree(dir, { 'devices/pci0000:00/0000:00:00.0/vendor': '0x1234\n' }, {
      'bus/pci/devices/0000:00:00.0': '/sys/devices/pci0000:00/0000:00:00.0',
      'escape': '../../../../../etc',
    });
    const d = new DirSource(dir);
    assert.equal(d.realPath('bus/pci/devices/0000:00:00.0'), null);
    assert.equal(d.readText('bus/pci/devices/0000:00:00.0/vendor'), null);
    assert.equal(d.readDir('escape'), null);
    assert.ok(d.issues.some((i) => /outside the tree/.test(i.why)));
    // MemorySource maps /sys/… to its own root instead.
    const m = new MemorySource('m');
    m.addFile('devices/pci0000:00/0000:00:00.0/vendor', '0x1234\n');
    m.addLink('bus/pci/devices/0000:00:00.0', '/sys/devices/pci0000:00/0000:00:00.0');
    m.addLink('escape', '../../etc');
    assert.equal(m.readText('bus/pci/devices/0000:00:00.0/vendor'), '0x1234');
    assert.equal(m.realPath('escape'), null);
  } finally {
    cleanup();
  }
});

test('DirSource: FIFOs and directories are refused, not hung on', () => {
  const { dir, cleanup } = tempDir();
  try {
    fs.mkdirSync(path.join(dir, 'd'));
    const fifo = path.join(dir, 'fifo');
    let mk = true;
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      mk = false; // no mkfifo tool: only the directory case is checked
    }
    const d = new DirSource(dir);
    const r = d.tryReadFile('d');
    assert.equal(r.ok, false);
    if (mk) {
      const f = d.tryReadFile('fifo');
      assert.equal(f.ok, false);
      assert.ok(!f.ok && /not a regular file/.test(f.why));
    }
  } finally {
    cleanup();
  }
});

test('DirSource on the live /sys: sysfs text files report 4096 bytes but read their real length', () => {
  const d = new DirSource('/sys');
  if (!fs.existsSync('/sys/bus/pci/devices')) {
    // A machine without PCI sysfs: the directory is simply absent, no error.
    assert.equal(d.readDir('bus/pci/devices'), null);
    return;
  }
  assert.equal(d.describe(), 'live sysfs /sys');
  const bdf = d.readDir('bus/pci/devices')![0]!;
  const v = d.readFile(`bus/pci/devices/${bdf}/vendor`)!;
  assert.equal(v.length, 7); // "0x8086\n"
  assert.match(d.readText(`bus/pci/devices/${bdf}/vendor`)!, /^0x[0-9a-f]{4}$/);
  assert.match(d.realPath(`bus/pci/devices/${bdf}`)!, /^devices\/pci[0-9a-f]{4}:[0-9a-f]{2}\//);
  const cfg = d.readFile(`bus/pci/devices/${bdf}/config`)!;
  assert.ok([64, 128, 256, 4096].includes(cfg.length), `config ${cfg.length}`);
});

test('MemorySource: unreadable files read as null and are recorded in issues', () => {
  const m = new MemorySource('synthetic');
  m.addFile('firmware/acpi/tables/DMAR', new Uint8Array(8), { unreadable: 'EACCES: permission denied' });
  const r = m.tryReadFile('firmware/acpi/tables/DMAR');
  assert.deepEqual(r, { ok: false, absent: false, why: 'EACCES: permission denied' });
  assert.equal(m.readFile('firmware/acpi/tables/DMAR'), null);
  assert.deepEqual(m.issues[0], { path: 'firmware/acpi/tables/DMAR', why: 'EACCES: permission denied' });
  // Link loops end in ELOOP, not a hang.
  m.addLink('a', 'b');
  m.addLink('b', 'a');
  assert.equal(m.realPath('a'), null);
  assert.deepEqual(m.tryReadFile('a/x'), { ok: false, absent: true, why: 'ELOOP: too many levels of symbolic links' });
});

test('openSysfs: a path that does not exist → ENOENT naming it', () => {
  assertIommuError(() => openSysfs('/nonexistent/sys.tar.gz'), 'ENOENT', '/nonexistent/sys.tar.gz', /no such file/);
  assertIommuError(() => new TarSource('/nonexistent/x.tar.gz'), 'ENOENT', '/nonexistent/x.tar.gz', /no such file/);
  assertIommuError(() => new DirSource('/nonexistent/dir'), 'ENOENT', '/nonexistent/dir', /cannot open/);
});

test('openSysfs: a file that is not gzip or tar → EINVAL', () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'garbage.tar.gz');
    fs.writeFileSync(f, 'this is not an archive, just some text\n'.repeat(40));
    assertIommuError(() => openSysfs(f), 'EINVAL', f, /not a gzip or tar archive/);
    const e = path.join(dir, 'empty.tar.gz');
    fs.writeFileSync(e, '');
    assertIommuError(() => openSysfs(e), 'EINVAL', e, /empty file/);
    const xz = path.join(dir, 'x.tar.xz');
    fs.writeFileSync(xz, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]));
    assertIommuError(() => openSysfs(xz), 'EINVAL', xz, /xz data: only \.tar\.gz/);
  } finally {
    cleanup();
  }
});

test('openSysfs: a truncated .tar.gz → EINVAL "truncated gzip data"', () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'cut.tar.gz');
    const full = fs.readFileSync(T17);
    fs.writeFileSync(f, full.subarray(0, Math.floor(full.length / 2)));
    assertIommuError(() => openSysfs(f), 'EINVAL', f, /truncated gzip data/);
  } finally {
    cleanup();
  }
});

test('openSysfs: a corrupt .tar.gz (bytes flipped) → EINVAL "corrupt gzip data"', () => {
  const { dir, cleanup } = tempDir();
  try {
    const f = path.join(dir, 'bad.tar.gz');
    const b = Buffer.from(fs.readFileSync(T17));
    for (let i = 200; i < 400; i++) b[i] = b[i]! ^ 0x5a;
    fs.writeFileSync(f, b);
    assertIommuError(() => openSysfs(f), 'EINVAL', f, /(corrupt|truncated) gzip data/);
  } finally {
    cleanup();
  }
});

test('TarSource: a plain tar cut short → EINVAL "truncated tar data"', () => {
  const raw = zlib.gunzipSync(fs.readFileSync(T17));
  // Cut mid-block, on a block boundary mid-archive, and right after the last entry's data (end marker lost).
  let last = raw.length - 1;
  while (raw[last] === 0) last--;
  for (const cut of [30000, 512 * 60, Math.ceil((last + 1) / 512) * 512]) {
    assertIommuError(() => TarSource.fromBuffer(raw.subarray(0, cut), 'cut.tar'), 'EINVAL', 'cut.tar', /truncated tar data/);
  }
  // A header whose checksum fails mid-archive is corruption, not a partial load.
  let off = 0;
  // Find a header block (ustar magic at 257) near the middle and flip a byte of its name.
  for (off = Math.floor(raw.length / 1024) * 512; off < raw.length; off += 512) if (raw.subarray(off + 257, off + 262).toString('latin1') === 'ustar') break;
  const corrupt = Buffer.from(raw);
  corrupt[off + 1] = corrupt[off + 1]! ^ 0x20;
  assertIommuError(() => TarSource.fromBuffer(corrupt, 'corrupt.tar'), 'EINVAL', 'corrupt.tar', /corrupt tar data \(TAR_ENTRY_INVALID/);
  // The whole plain tar loads.
  const ok = TarSource.fromBuffer(raw, 'whole.tar');
  assert.equal(ok.readDir('bus/pci/devices')?.length, 15);
  // A gzip of a cut tar is valid gzip but still truncated tar.
  assertIommuError(() => TarSource.fromBuffer(zlib.gzipSync(raw.subarray(0, 512 * 60)), 'cut2.tar.gz'), 'EINVAL', 'cut2.tar.gz', /truncated tar data/);
});
