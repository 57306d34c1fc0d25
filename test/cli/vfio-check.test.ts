// `iommu vfio-check`: the JSON contract, the text output with its not-executed plan, the exit codes, and the
// promise that the command only reads (run against a directory mirror, nothing in it changes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract } from 'tar';
import { run } from '../../src/cli/main.js';
import { PLAN_HEADING } from '../../src/cli/vfio-check.js';
import { FIXTURES } from '../fixtures.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

const T17 = `${FIXTURES}oracle/t17-pxb-expander-buses/sys.tar.gz`;
const Z390 = `${FIXTURES}real-lspci/intel-z390-asus-prime-z390-a-debian12-6.1/lspci-vvnn.txt`;

test('vfio-check --json prints one document of the documented shape', async () => {
  const r = await cli(['vfio-check', '01:00.0', '--lspci', Z390, '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out); // exactly one document: the whole output parses
  assert.deepEqual(Object.keys(j), [
    'bdf', 'group', 'viable', 'blockers', 'resetMethods', 'plan',
    'groupSource', 'members', 'directMappedRegions', 'directMappedChecked', 'iommuActive', 'input', 'notes',
  ]);
  assert.equal(j.bdf, '0000:01:00.0');
  assert.equal(j.group, 1);
  assert.equal(j.viable, false);
  assert.equal(j.groupSource, 'kernel');
  for (const b of j.blockers) assert.deepEqual(Object.keys(b), ['bdf', 'driver', 'why']);
  assert.deepEqual(j.blockers.map((b: { bdf: string }) => b.bdf), ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2']);
  for (const s of j.plan) {
    assert.deepEqual(Object.keys(s), ['write', 'value']);
    assert.match(s.write, /^\/sys\/bus\/pci\/(devices\/[0-9a-f:.]+\/(driver_override|driver\/unbind)|drivers_probe)$/);
  }
  assert.deepEqual(j.plan[0], { write: '/sys/bus/pci/devices/0000:01:00.0/driver_override', value: 'vfio-pci' });
  for (const m of j.members) {
    assert.deepEqual(Object.keys(m), ['bdf', 'driver', 'class', 'role', 'name', 'relation']);
    assert.match(m.class, /^[0-9a-f]{6}$/);
    assert.ok(['target', 'companion', 'bridge', 'other'].includes(m.role));
  }
  assert.deepEqual(j.resetMethods, []);
  assert.equal(j.directMappedChecked, false);
  assert.ok(j.notes.some((n: string) => /reset methods unknown/.test(n)), 'lspci source: reset methods unknown');
  assert.ok(j.notes.some((n: string) => /needs the firmware tables/.test(n)));
});

test('vfio-check --json from a snapshot: reset methods and the kernel\'s reserved_regions', async () => {
  const r = await cli(['vfio-check', '0000:82:01.0', '--sysfs', T17, '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.group, 6);
  assert.equal(j.viable, false);
  assert.deepEqual(j.resetMethods, ['bus']);
  assert.equal(j.directMappedChecked, true);
  assert.ok(j.blockers.some((b: { bdf: string; driver: string }) => b.bdf === '0000:81:00.0' && b.driver === 'shpchp'));
  const isa = JSON.parse((await cli(['vfio-check', '00:1f.2', '--sysfs', T17, '--json'])).out);
  assert.deepEqual(isa.directMappedRegions, [
    { bdf: '0000:00:1f.0', type: 'direct-relaxable', start: '0x0000000000000000', end: '0x0000000000ffffff', blocks: false, source: 'kernel' },
  ]);
});

test('vfio-check text: verdict, members, blockers and the plan under a NOT-executed heading, as shell lines', async () => {
  const r = await cli(['vfio-check', '01:00.0', '--lspci', Z390]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /NOT viable now — 3 blocker\(s\)/);
  assert.match(r.out, /companion 0000:01:00\.1 .*\n\s+GPU audio function of 0000:01:00\.0/);
  assert.ok(r.out.includes(PLAN_HEADING));
  assert.match(PLAN_HEADING, /NOT executed/);
  const plan = r.out.slice(r.out.indexOf(PLAN_HEADING));
  assert.match(plan, /\n {2}echo vfio-pci > \/sys\/bus\/pci\/devices\/0000:01:00\.0\/driver_override\n {2}echo 0000:01:00\.0 > \/sys\/bus\/pci\/devices\/0000:01:00\.0\/driver\/unbind\n {2}echo 0000:01:00\.0 > \/sys\/bus\/pci\/drivers_probe\n/);
  assert.match(r.out, /Reset methods\n {2}unknown \(lspci text\)/);
  // A viable group: nothing to write, still said under the heading.
  const ok = await cli(['vfio-check', '0000:00:04.0', '--sysfs', T17]);
  assert.equal(ok.code, 0);
  assert.match(ok.out, /viable now/);
  assert.match(ok.out, /NOT executed[^\n]*\n {2}\(nothing to write\)/);
});

test('vfio-check exit codes: 1 for a malformed or absent BDF or an unreadable source (named), 2 for usage', async () => {
  const bad = await cli(['vfio-check', '01:00', '--lspci', Z390]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /01:00: not a PCI address/);
  const slot = await cli(['vfio-check', '00:20.0', '--lspci', Z390]);
  assert.equal(slot.code, 1);
  const absent = await cli(['vfio-check', '0000:09:00.0', '--lspci', Z390]);
  assert.equal(absent.code, 1);
  assert.match(absent.err, /no PCI function 0000:09:00\.0/);
  const missing = await cli(['vfio-check', '01:00.0', '--lspci', '/nonexistent/lspci.txt']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /\/nonexistent\/lspci\.txt/);
  const missingSys = await cli(['vfio-check', '01:00.0', '--sysfs', '/nonexistent/snap.tar.gz']);
  assert.equal(missingSys.code, 1);
  assert.match(missingSys.err, /\/nonexistent\/snap\.tar\.gz/);
  assert.equal((await cli(['vfio-check', '01:00.0', '--sysfs', T17, '--lspci', Z390])).code, 1);
  assert.equal((await cli(['vfio-check'])).code, 2, 'missing BDF');
  assert.equal((await cli(['vfio-check', '01:00.0', '--no-such-option'])).code, 2);
  assert.equal((await cli(['vfio-check', '01:00.0', '02:00.0', '--lspci', Z390])).code, 2, 'extra argument');
  assert.equal((await cli(['vfio-check', '--help'])).code, 0);
});

/** Every entry under `dir` with its kind, size and modification time. */
function treeState(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = lstatSync(p);
      out.push(`${p} ${st.mode} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

test('vfio-check only reads: run on a directory mirror of /sys, it changes nothing there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-vfio-'));
  try {
    await extract({ file: T17, cwd: dir });
    const before = treeState(dir);
    assert.ok(before.length > 50);
    for (const bdf of ['0000:82:01.0', '0000:00:1f.2', '0000:41:00.0']) {
      const r = await cli(['vfio-check', bdf, '--sysfs', dir, '--json']);
      assert.equal(r.code, 0, r.err);
      assert.ok(JSON.parse(r.out).plan.length > 0);
    }
    assert.deepEqual(treeState(dir), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
