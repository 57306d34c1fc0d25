// The `iommu` command's contract: exit codes (0 ok, 1 failure, 2 usage),
// the JSON shape later tools rely on, and clear messages for bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from '../../src/cli/main.js';
import { FIXTURES } from '../fixtures.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

const T07 = `${FIXTURES}oracle/t07-pcie-to-pci-bridge-aliasing/sys.tar.gz`;
const Z390 = `${FIXTURES}real-lspci/intel-z390-asus-prime-z390-a-debian12-6.1/lspci-vvnn.txt`;

test('groups --json follows the documented shape', async () => {
  const r = await cli(['groups', '--sysfs', T07, '--json']);
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out);
  assert.equal(j.source, 'kernel');
  assert.ok(Array.isArray(j.groups) && j.groups.length === 7);
  assert.ok(Array.isArray(j.disagreements));
  for (const g of j.groups) {
    assert.equal(typeof g.id, 'number');
    for (const d of g.devices) {
      assert.deepEqual(Object.keys(d).sort(), ['bdf', 'class', 'device', 'driver', 'iommu', 'reservedRegions', 'vendor']);
      assert.match(d.bdf, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
      assert.match(d.vendor, /^[0-9a-f]{4}$/);
      assert.match(d.device, /^[0-9a-f]{4}$/);
      assert.match(d.class, /^[0-9a-f]{6}$/);
      assert.ok(d.driver === null || typeof d.driver === 'string');
    }
  }
  const ahci = j.groups.flatMap((g: { devices: { bdf: string }[] }) => g.devices).find((d: { bdf: string }) => d.bdf === '0000:00:1f.2');
  assert.deepEqual(ahci, {
    bdf: '0000:00:1f.2', vendor: '8086', device: '2922', class: '010601', driver: 'ahci', iommu: 'dmar0',
    reservedRegions: [{ start: '0x00000000fee00000', end: '0x00000000feefffff', type: 'msi' }],
  });
  for (const g of j.groups) assert.ok(g.reservedRegions.includes('0x00000000fee00000 0x00000000feefffff msi'));
});

test('groups text and --tree name every device and its group', async () => {
  const text = await cli(['groups', '--sysfs', T07]);
  assert.equal(text.code, 0);
  assert.match(text.out, /IOMMU group 5\n/);
  assert.match(text.out, /0000:03:02\.0 .*\[8086:100e\]/);
  const tree = await cli(['groups', '--sysfs', T07, '--tree']);
  assert.equal(tree.code, 0);
  assert.match(tree.out, /\[G5\] 0000:03:01\.0/);
  assert.match(tree.out, /pci0000:00/);
});

test('groups reads lspci text from standard input with -', async () => {
  // run() reads fd 0 for "-": exercise the same path with a file instead, and check "-" is accepted by the parser of options.
  const r = await cli(['groups', '--lspci', Z390, '--json']);
  assert.equal(r.code, 0);
  assert.equal(JSON.parse(r.out).source, 'kernel');
});

test('explain says which bridge pulled a device into its group and why', async () => {
  const r = await cli(['explain', '0000:03:01.0', '--sysfs', T07, '--json']);
  assert.equal(r.code, 0);
  const e = JSON.parse(r.out);
  assert.equal(e.group, 5);
  assert.equal(e.kernelGroup, 5);
  assert.equal(e.agreesWithKernel, true);
  assert.ok(e.members.includes('0000:01:00.0'));
  // Behind the conventional bridge 02:04.0, the device's DMA carries that bridge's requester ID.
  assert.ok(e.steps.some((s: { step: number; text: string }) => s.step === 1 && s.text.includes('rewritten by bridge 0000:02:04.0')));
  // Directly behind the PCIe-to-PCI bridge 01:00.0, a device's DMA appears as 02:00.0 (secondary bus, devfn 0).
  const e2 = JSON.parse((await cli(['explain', '0000:02:01.0', '--sysfs', T07, '--json'])).out);
  assert.ok(e2.steps.some((s: { step: number; text: string }) => s.step === 1 && s.text.includes('as 0000:02:00.0, rewritten by bridge 0000:01:00.0')));
  const t = await cli(['explain', '03:01.0', '--sysfs', T07]);
  assert.equal(t.code, 0);
  assert.match(t.out, /Why \(pci_device_group/);
});

test('explain names missing ACS bits of a root port without ACS', async () => {
  const r = await cli(['explain', '0000:01:00.0', '--sysfs', `${FIXTURES}oracle/t01-rootport-acs-vs-noacs/sys.tar.gz`]);
  assert.equal(r.code, 0);
  assert.match(r.out, /no ACS capability|not enabled/);
});

test('exit code 2 for usage errors: unknown command, unknown option, missing argument', async () => {
  assert.equal((await cli(['frobnicate'])).code, 2);
  assert.equal((await cli(['groups', '--no-such-option'])).code, 2);
  assert.equal((await cli(['explain'])).code, 2);
  assert.equal((await cli(['snapshot'])).code, 2);
  // Only the mainline rule set exists today: another name is a usage error.
  assert.equal((await cli(['groups', '--rules', 'pcie-acs-2025'])).code, 2);
});

test('exit code 0 for --help', async () => {
  const r = await cli(['--help']);
  assert.equal(r.code, 0);
});

test('exit code 1 with the input named: a missing path', async () => {
  const r = await cli(['groups', '--sysfs', '/nonexistent/sys.tar.gz']);
  assert.equal(r.code, 1);
  assert.match(r.err, /\/nonexistent\/sys\.tar\.gz/);
  assert.doesNotMatch(r.err, /\n\s+at /); // no stack trace
});

test('exit code 1: a corrupt archive, a gzip of garbage, a truncated archive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-cli-'));
  try {
    const junk = join(dir, 'junk.tar.gz');
    writeFileSync(junk, 'this is not a tarball');
    const gz = join(dir, 'garbage.tar.gz');
    writeFileSync(gz, gzipSync(Buffer.from('x'.repeat(5000))));
    const trunc = join(dir, 'trunc.tar.gz');
    writeFileSync(trunc, readFileSync(T07).subarray(0, 3000));
    for (const f of [junk, gz, trunc]) {
      const r = await cli(['groups', '--sysfs', f]);
      assert.equal(r.code, 1, `${f}: ${r.err}`);
      assert.ok(r.err.includes(f), `message names the input: ${r.err}`);
      assert.doesNotMatch(r.err, /\n\s+at /);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exit code 1: lspci text with no device in it; a missing lspci file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-cli-'));
  try {
    const f = join(dir, 'empty.txt');
    writeFileSync(f, 'hello\nworld\n');
    const r = await cli(['groups', '--lspci', f]);
    assert.equal(r.code, 1);
    assert.ok(r.err.includes(f));
    const m = await cli(['groups', '--lspci', join(dir, 'missing.txt')]);
    assert.equal(m.code, 1);
    assert.ok(m.err.includes('missing.txt'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exit code 1: explain of a malformed or absent BDF names it', async () => {
  const bad = await cli(['explain', 'zz:99.9', '--sysfs', T07]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /zz:99\.9/);
  const absent = await cli(['explain', '0000:7f:00.0', '--sysfs', T07]);
  assert.equal(absent.code, 1);
  assert.match(absent.err, /0000:7f:00\.0/);
});

test('both --sysfs and --lspci is refused', async () => {
  const r = await cli(['groups', '--sysfs', T07, '--lspci', Z390]);
  assert.equal(r.code, 1);
  assert.match(r.err, /either --sysfs or --lspci/);
});

test('lspci text with noise lines still gives the kernel partition, with warnings in notes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-cli-'));
  try {
    const lines = readFileSync(Z390, 'utf8').split('\n');
    const noisy: string[] = [];
    lines.forEach((l, i) => {
      noisy.push(l);
      if (i % 37 === 5 && l === '') noisy.push('pcilib: sysfs_read_vpd: read failed: No such device', '', '%%% garbage line %%%', '');
    });
    const f = join(dir, 'noisy.txt');
    writeFileSync(f, noisy.join('\n'));
    const clean = JSON.parse((await cli(['groups', '--lspci', Z390, '--predict', '--json'])).out);
    const r = await cli(['groups', '--lspci', f, '--predict', '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual(j.groups, clean.groups);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the built command reads lspci text from standard input with --lspci -', async () => {
  const { spawnSync } = await import('node:child_process');
  const main = new URL('../../src/cli/main.js', import.meta.url).pathname;
  const r = spawnSync(process.execPath, [main, 'groups', '--lspci', '-', '--predict', '--json'], { input: readFileSync(Z390), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.source, 'model');
  assert.equal(j.input, '<stdin>');
  assert.equal(j.groups.length, 11);
  const usage = spawnSync(process.execPath, [main, 'groups', '--bogus'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  const fail = spawnSync(process.execPath, [main, 'groups', '--sysfs', '/nonexistent'], { encoding: 'utf8' });
  assert.equal(fail.status, 1);
  assert.match(fail.stderr, /^iommu: \/nonexistent: /);
});

test('a machine read without root (64-byte config) is predicted, and the output says which devices and what it means', async () => {
  const { TarSource } = await import('../../src/sysfs/source.js');
  // Extract t01 and cut every config to the 64 bytes a non-root reader gets.
  const src = TarSource.fromFile(`${FIXTURES}oracle/t01-rootport-acs-vs-noacs/sys.tar.gz`);
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-nonroot-'));
  try {
    const { execFileSync } = await import('node:child_process');
    execFileSync('tar', ['xzf', `${FIXTURES}oracle/t01-rootport-acs-vs-noacs/sys.tar.gz`, '-C', dir]);
    const bdfs = src.readDir('bus/pci/devices')!;
    for (const b of bdfs) {
      const p = join(dir, src.realPath(`bus/pci/devices/${b}`)!, 'config');
      writeFileSync(p, readFileSync(p).subarray(0, 64));
    }
    const r = await cli(['groups', '--sysfs', dir, '--json']);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual([...j.truncatedConfig].sort(), [...bdfs].sort());
    assert.ok(j.notes.some((n: string) => n.includes('only the first 64 bytes') && n.includes('run as root')));
    // Without capabilities every port looks like conventional PCI: the model's groups are wider, and the disagreement is reported.
    assert.ok(j.disagreements.length > 0);
    const text = await cli(['groups', '--sysfs', dir]);
    assert.match(text.out, /64 bytes of config space/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('snapshot of the live /sys, then groups from that snapshot, equal groups from the live /sys', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-snap-'));
  try {
    const out = join(dir, 'mybox.tar.gz');
    const s = await cli(['snapshot', '-o', out]);
    assert.equal(s.code, 0, s.err);
    assert.match(s.out, /^wrote .*mybox\.tar\.gz: \d+ files, \d+ links/);
    const live = JSON.parse((await cli(['groups', '--json'])).out);
    const snap = JSON.parse((await cli(['groups', '--sysfs', out, '--json'])).out);
    assert.deepEqual(snap.groups, live.groups);
    assert.equal(snap.source, live.source);
    // Never writes under /sys.
    const refused = await cli(['snapshot', '-o', '/sys/kernel/x.tar.gz']);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /refusing to write/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('groups text: reserved regions every group shares are said once; a group\'s own (the ISA floppy window) under it', async () => {
  const r = await cli(['groups', '--sysfs', `${FIXTURES}oracle/t13-intel-iommu-mixed/sys.tar.gz`]);
  assert.equal(r.code, 0);
  assert.equal(r.out.split('0x00000000fee00000 0x00000000feefffff msi').length - 1, 1, 'the MSI window once');
  assert.match(r.out, /Reserved regions of every group \(reserved_regions\):\n {2}reserved 0x00000000fee00000 0x00000000feefffff msi\n/);
  assert.match(r.out, /ISA bridge .*\n(?: .*\n)*? {4}reserved 0x0000000000000000 0x0000000000ffffff direct-relaxable \(firmware 1:1 mapping, relaxable/);
  // From lspci text there are no tables: no region lines at all.
  const l = await cli(['groups', '--lspci', Z390]);
  assert.doesNotMatch(l.out, /reserved 0x/);
});
