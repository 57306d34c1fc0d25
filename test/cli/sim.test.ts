// `iommu sim`: the trace of a scenario — translations (IOTLB hit, walk, the
// stale window of lazy invalidation), faults as the driver reports them,
// refused calls with Linux's errno — and the exit codes for bad scenarios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import type { SimTrace } from '../../src/sim/run.js';
import { FIXTURES } from '../fixtures.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

const SCENARIO = `${FIXTURES}sim/strict-vs-lazy.json`;

test('sim --json: every step of the example scenario resolves as the IOMMU would', async () => {
  const r = await cli(['sim', SCENARIO, '--json']);
  assert.equal(r.code, 0, r.err);
  const t = JSON.parse(r.out) as SimTrace;
  assert.equal(t.iommu.driver, 'intel-iommu');
  assert.equal(t.iommu.defaultDomainType, 'DMA-FQ');
  const ev = t.events;
  assert.equal(ev[4]!.data, 'deadbeefcafef00d'); // DMA read through the user domain
  assert.equal(ev[5]!.via, 'iotlb');
  assert.equal(ev[5]!.phys, '0x80000004');
  assert.equal(ev[6]!.fault?.reason, 'permission'); // write to a read-only mapping
  assert.equal(ev[6]!.fault?.access, 'write');
  assert.equal(ev[7]!.errno, 'EEXIST'); // map over a mapping
  assert.equal(ev[8]!.errno, 'EINVAL'); // misaligned map
  assert.equal(ev[9]!.bytes, 0x2000);
  assert.equal(ev[10]!.fault?.reason, 'not-present'); // strict unmap of a user mapping invalidated the IOTLB
  assert.equal(ev[12]!.dma, '0xfffff000'); // top-down IOVA allocation below 4 GiB
  assert.equal(ev[15]!.via, 'iotlb-stale'); // the lazy-invalidation window
  assert.equal(ev[17]!.fault?.reason, 'not-present'); // after the flush-queue timeout
  assert.equal(ev[18]!.fault?.reason, 'reserved'); // the MSI window is never memory
  assert.equal(t.faults.length, 4);
  assert.ok(t.faults.every((f) => !f.handled));
});

test('sim text trace marks faults and refusals', async () => {
  const r = await cli(['sim', SCENARIO]);
  assert.equal(r.code, 0);
  assert.match(r.out, /IOTLB hit on a STALE entry/);
  assert.match(r.out, /FAULT \(permission\)/);
  assert.match(r.out, /EEXIST/);
});

test('a fault handler on the domain takes the fault (report_iommu_fault)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-sim-'));
  try {
    const f = join(dir, 's.json');
    writeFileSync(
      f,
      JSON.stringify({
        topology: [
          { bdf: '00:01.0', type: 'root-port', secondary: 1, acs: true },
          { bdf: '01:00.0', type: 'endpoint' },
        ],
        steps: [
          { op: 'domain-alloc', name: 'd', device: '01:00.0' },
          { op: 'attach', domain: 'd', device: '01:00.0' },
          { op: 'fault-handler', domain: 'd', handled: true },
          { op: 'translate', device: '01:00.0', iova: '0x5000' },
          { op: 'attach', domain: 'd', device: '00:01.0' },
        ],
      }),
    );
    const t = JSON.parse((await cli(['sim', f, '--json'])).out) as SimTrace;
    assert.equal(t.events[3]!.fault?.handled, true);
    // One domain may serve several groups: the root port's group can join it.
    assert.equal(t.events[4]!.ok, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad scenarios exit 1 naming the file and what is wrong; no topology is an error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-sim-'));
  try {
    const notJson = join(dir, 'a.json');
    writeFileSync(notJson, '{ not json');
    const r1 = await cli(['sim', notJson]);
    assert.equal(r1.code, 1);
    assert.match(r1.err, /a\.json: not JSON/);
    const bad = join(dir, 'b.json');
    writeFileSync(bad, JSON.stringify({ steps: [{ op: 'map', domain: 'd', iova: 'zz', phys: 0, size: 4096 }] }));
    const r2 = await cli(['sim', bad]);
    assert.equal(r2.code, 1);
    assert.match(r2.err, /steps\.0\.iova/);
    const noTopo = join(dir, 'c.json');
    writeFileSync(noTopo, JSON.stringify({ steps: [] }));
    const r3 = await cli(['sim', noTopo]);
    assert.equal(r3.code, 1);
    assert.match(r3.err, /no topology/);
    const r4 = await cli(['sim', join(dir, 'missing.json')]);
    assert.equal(r4.code, 1);
    assert.match(r4.err, /missing\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sim against a real-kernel snapshot topology (--sysfs)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iommukit-sim-'));
  try {
    const f = join(dir, 's.json');
    writeFileSync(
      f,
      JSON.stringify({
        iommu: { cmdline: 'intel_iommu=on iommu.strict=1' },
        steps: [
          { op: 'dma-map', device: '0000:01:00.0', phys: '0x1000000', size: 4096, as: 'b' },
          { op: 'read', device: '0000:01:00.0', iova: '0xfffff000', length: 4 },
          { op: 'dma-unmap', device: '0000:01:00.0', handle: 'b' },
          { op: 'read', device: '0000:01:00.0', iova: '0xfffff000', length: 4 },
        ],
      }),
    );
    const r = await cli(['sim', f, '--sysfs', `${FIXTURES}oracle/t05-switch-downstream-ports/sys.tar.gz`, '--json']);
    assert.equal(r.code, 0, r.err);
    const t = JSON.parse(r.out) as SimTrace;
    assert.equal(t.iommu.strict, true);
    assert.equal(t.events[1]!.bytes, 4);
    assert.equal(t.events[3]!.fault?.reason, 'not-present');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sim: driver binding and DMA ownership — EPERM claim while e1000e is bound, EBUSY bind while owned, release, rebind', async () => {
  const r = await cli(['sim', `${FIXTURES}sim/vfio-claim.json`, '--json']);
  assert.equal(r.code, 0, r.err);
  const t = JSON.parse(r.out) as SimTrace;
  const ev = t.events;
  assert.equal(ev[0]!.ok, true);
  assert.equal(ev[1]!.errno, 'EPERM');
  assert.equal(ev[3]!.ok, true);
  assert.equal(ev[4]!.errno, 'EBUSY');
  assert.equal(ev[5]!.ok, true);
  assert.equal(ev[6]!.fault?.reason, 'blocked'); // the blocking domain while owned
  assert.equal(ev[10]!.bytes, 3);
  assert.equal(ev[11]!.fault?.reason, 'not-present'); // outside the user's 1 GiB
  assert.match(ev[12]!.text, /blocking domain/);
  assert.equal(ev[15]!.ok, true); // e1000e binds again after release
});

test('sim: subdevices get their own groups and a PASID of their parent; PASID-tagged DMA translates through the domain at that PASID', async () => {
  const r = await cli(['sim', `${FIXTURES}sim/pasid-subdevices.json`, '--json']);
  assert.equal(r.code, 0, r.err);
  const t = JSON.parse(r.out) as SimTrace;
  const ev = t.events;
  assert.deepEqual(t.groups.filter((g) => g.type === 'unknown').map((g) => g.devices), [['wq0'], ['wq1'], ['nopasid']]);
  assert.match(ev[8]!.text, /at PASID 1 of its parent/);
  assert.match(ev[9]!.text, /at PASID 2 of its parent/);
  assert.equal(ev[10]!.data, '11111111');
  assert.equal(ev[11]!.data, '22222222');
  assert.equal(ev[12]!.data, '22222222'); // the parent's own PASID-2 requests: wq1's domain
  assert.equal(ev[13]!.fault?.reason, 'no-translation'); // nothing attached at PASID 7
  assert.equal(ev[15]!.fault?.reason, 'not-present'); // detached: wq0's requests are the parent's RID traffic
  assert.equal(ev[18]!.phys, '0x50000000');
  assert.match(ev[21]!.text, /primary domain/);
});

test('sim: IOASID sets, quotas and notifications — subscribers get id, set and private data; FREE from free and from freeing the set', async () => {
  const r = await cli(['sim', `${FIXTURES}sim/ioasid-notifications.json`, '--json']);
  assert.equal(r.code, 0, r.err);
  const ev = (JSON.parse(r.out) as SimTrace).events;
  assert.equal(ev[6]!.errno, 'ENOSPC'); // quota 2
  assert.deepEqual(ev[8]!.notifications!.map((n) => `${n.subscriber}:${n.cmd}:${n.id}:${n.set}`), ['vmm-pasid-table:bind:1:vm1', 'idxd-driver:bind:1:vm1']);
  assert.deepEqual(ev[9]!.notifications!.map((n) => n.subscriber), ['vmm-pasid-table']); // vm2: no per-set subscriber
  assert.deepEqual(ev[10]!.notifications!.map((n) => `${n.subscriber}:${n.cmd}`), ['vmm-pasid-table:free', 'idxd-driver:free']);
  assert.deepEqual(ev[10]!.notifications![0]!.pdata, { name: 'a' });
  assert.deepEqual(ev[12]!.notifications!.map((n) => `${n.subscriber}:${n.cmd}:${n.id}`), ['idxd-driver:free:2']); // the unsubscribed one never runs
  assert.match(ev[13]!.text, /IOASID 1 allocated/); // lowest free again
});
