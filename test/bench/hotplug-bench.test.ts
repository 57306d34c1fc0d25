// The hotplug benchmark's workload is real work: every VF gets its own group and default domain, and all go again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hotplugVfBench } from '../../bench/hotplug-bench.js';

test('vf_add_remove workload: n VFs probed into n new groups with a page table each, then released (small n)', () => {
  const r = hotplugVfBench(300, 2);
  assert.equal(r.devices, 300);
  assert.equal(r.groups, 302, 'the root port, the PF and one group per VF');
  assert.equal(r.table_pages, 302, 'one DMA domain root table per group');
  assert.equal(r.cycles, 2);
});
