// Differential test against real machines: `lspci -vvnn` dumps with the
// running kernel's `IOMMU group:` lines. The model, reading only the text,
// must give the kernel's partition on every one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { groupsJson, partition } from './helpers.js';
import { FIXTURES, fixtureCases } from '../fixtures.js';

function kernelGroupsFromText(text: string): Map<number, string[]> {
  const m = new Map<number, string[]>();
  let cur: string | null = null;
  for (const line of text.split('\n')) {
    const h = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) /.exec(line);
    if (h) cur = `${h[1] ?? '0000'}:${h[2]}`;
    const g = /^\tIOMMU group: (\d+)/.exec(line);
    if (g && cur) {
      const id = Number(g[1]);
      if (!m.has(id)) m.set(id, []);
      m.get(id)!.push(cur);
    }
  }
  return m;
}



const cases = fixtureCases('real-lspci');

test('the real-machine dumps are all present', () => {
  assert.ok(cases.length >= 15, `expected at least 15 dumps, found ${cases.length}`);
});

for (const c of cases) {
  const file = `${FIXTURES}real-lspci/${c}/lspci-vvnn.txt`;
  const kernel = kernelGroupsFromText(readFileSync(file, 'utf8'));
  test(`real machine ${c}: --predict gives the kernel's partition`, async () => {
    assert.ok(kernel.size > 0, 'the dump has IOMMU group lines');
    const j = await groupsJson(['groups', '--lspci', file, '--predict', '--json']);
    assert.equal(j.source, 'model');
    assert.deepEqual(partition(j.groups.map((g) => g.devices.map((d) => d.bdf))), partition(kernel.values()));
  });
  test(`real machine ${c}: the kernel's groups are shown and the model agrees`, async () => {
    const j = await groupsJson(['groups', '--lspci', file, '--json']);
    assert.equal(j.source, 'kernel');
    assert.deepEqual(j.disagreements, []);
    assert.deepEqual(partition(j.groups.map((g) => g.devices.map((d) => d.bdf))), partition(kernel.values()));
  });
}
