/**
 * Tests for src/iommu/sysfs-view.ts. The reference tree is
 * test/fixtures/iommu/t01-rootport-acs-vs-noacs.sysfs.txt: the IOMMU-group
 * part of a real /sys (Debian 6.1 kernel, QEMU q35 + intel-iommu), copied
 * from the oracle snapshot t01. The model is built by hand the way the
 * kernel probed that machine and must render the same entries byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isIommuError, type ErrnoName } from '../../src/base/errno.js';
import { BusType } from '../../src/device/bus.js';
import { Device } from '../../src/device/device.js';
import { IommuGroups, type IommuGroup } from '../../src/iommu/group.js';
import { allocResvRegion, IommuResvType } from '../../src/iommu/resv-region.js';
import { deviceSysfsPath, renderIommuSysfs, type SysfsEntry } from '../../src/iommu/sysfs-view.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/iommu/t01-rootport-acs-vs-noacs.sysfs.txt', import.meta.url));
const errno = (name: ErrnoName) => (e: unknown) => isIommuError(e, name);

/** Parse the fixture into comparable strings, one per entry. */
function loadFixture(): string[] {
  const out: string[] = [];
  for (const line of readFileSync(FIXTURE, 'utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [kind, ...rest] = line.split(' ');
    if (kind === 'd') out.push(`d ${rest[0]}`);
    else if (kind === 'l') out.push(`l ${rest[0]} -> ${rest[2]}`);
    else if (kind === 'f') out.push(`f ${rest[0]} ${rest[1]} ${JSON.stringify(JSON.parse(rest.slice(2).join(' ')))}`);
    else throw new Error(`bad fixture line ${line}`);
  }
  return out.sort();
}

function describe(e: SysfsEntry): string {
  switch (e.kind) {
    case 'dir':
      return `d ${e.path}`;
    case 'link':
      return `l ${e.path} -> ${e.target}`;
    case 'file':
      return `f ${e.mode.toString(8).padStart(4, '0')} ${e.path} ${JSON.stringify(e.content)}`;
  }
}

/** The t01 machine as the 6.1 kernel probed it (bus order), with VT-d's reserved regions. */
function t01(): { groups: IommuGroups; devs: Map<string, Device> } {
  const pci = new BusType('pci');
  const host = new Device('pci0000:00', pci);
  const devs = new Map<string, Device>();
  const mk = (bdf: string, parent: Device) => {
    const d = new Device(bdf, pci, parent);
    devs.set(bdf, d);
    return d;
  };
  for (const bdf of ['0000:00:00.0', '0000:00:02.0', '0000:00:03.0', '0000:00:04.0', '0000:00:05.0', '0000:00:1f.0', '0000:00:1f.2', '0000:00:1f.3']) {
    mk(bdf, host);
  }
  mk('0000:01:00.0', devs.get('0000:00:02.0')!);
  mk('0000:02:00.0', devs.get('0000:00:03.0')!);
  mk('0000:03:00.0', devs.get('0000:00:04.0')!);
  mk('0000:04:00.0', devs.get('0000:00:05.0')!);

  const msi = allocResvRegion(0xfee00000, 0x100000, 0x20 /* IOMMU_MMIO */, IommuResvType.MSI);
  const isa = allocResvRegion(0, 0x1000000, 3, IommuResvType.DIRECT_RELAXABLE); // VT-d ISA/floppy workaround
  const groups = new IommuGroups({ getResvRegions: (d) => (d.name === '0000:00:1f.0' ? [isa, msi] : [msi]) });
  const dmaFq = { type: 'DMA-FQ' as const };
  // probe order; a device joins the group of the first listed device it shares one with
  const joins: [string, string | null][] = [
    ['0000:00:00.0', null],
    ['0000:00:02.0', null],
    ['0000:00:03.0', null],
    ['0000:00:04.0', null],
    ['0000:00:05.0', null],
    ['0000:00:1f.0', null],
    ['0000:00:1f.2', '0000:00:1f.0'],
    ['0000:00:1f.3', '0000:00:1f.0'],
    ['0000:01:00.0', null],
    ['0000:02:00.0', null],
    ['0000:03:00.0', '0000:00:04.0'],
    ['0000:04:00.0', '0000:00:05.0'],
  ];
  for (const [bdf, via] of joins) {
    const d = devs.get(bdf)!;
    let g: IommuGroup;
    if (via === null) {
      g = groups.alloc();
      g.defaultDomain = dmaFq;
      g.domain = dmaFq;
    } else {
      g = groups.get(devs.get(via)!)!;
    }
    groups.addDevice(g, d);
    groups.put(g);
  }
  return { groups, devs };
}

test('t01: the rendered IOMMU-group tree matches the real kernel byte for byte', () => {
  const view = renderIommuSysfs(t01().groups);
  const expected = loadFixture();
  const got = view
    .entries()
    .filter((e) => e.path.startsWith('kernel/') || e.path === 'kernel' || (e.kind === 'link' && e.path.endsWith('/iommu_group')))
    .map(describe)
    .sort();
  assert.deepEqual(got, expected);
});

test('t01: reads through the view: files, links, directories, following links', () => {
  const { groups, devs } = t01();
  const view = renderIommuSysfs(groups);
  assert.deepEqual(view.readDir('kernel/iommu_groups'), ['0', '1', '2', '3', '4', '5', '6', '7']);
  assert.deepEqual(view.readDir('/sys/kernel/iommu_groups/5'), ['devices', 'reserved_regions', 'type']);
  assert.deepEqual(view.readDir('kernel/iommu_groups/5/devices'), ['0000:00:1f.0', '0000:00:1f.2', '0000:00:1f.3']);
  assert.equal(
    view.readFile('kernel/iommu_groups/5/reserved_regions'),
    '0x0000000000000000 0x0000000000ffffff direct-relaxable\n0x00000000fee00000 0x00000000feefffff msi\n',
  );
  assert.equal(view.readFile('/kernel/iommu_groups/0/type'), 'DMA-FQ\n');
  const ep = deviceSysfsPath(devs.get('0000:01:00.0')!);
  assert.equal(ep, 'devices/pci0000:00/0000:00:02.0/0000:01:00.0');
  assert.equal(view.readLink(`${ep}/iommu_group`), '../../../../kernel/iommu_groups/6');
  // following links both ways
  assert.deepEqual(view.readDir(`${ep}/iommu_group/devices`), ['0000:01:00.0']);
  assert.equal(view.readFile(`${ep}/iommu_group/type`), 'DMA-FQ\n');
  assert.equal(view.readLink('kernel/iommu_groups/6/devices/0000:01:00.0/iommu_group'), '../../../../kernel/iommu_groups/6');
  // ".." after a link is the physical parent (devices/pci0000:00), as in a kernel path walk
  assert.deepEqual(view.readDir('kernel/iommu_groups/3/devices/0000:03:00.0/iommu_group/devices/0000:00:04.0/..'), [
    '0000:00:00.0',
    '0000:00:02.0',
    '0000:00:03.0',
    '0000:00:04.0',
    '0000:00:05.0',
    '0000:00:1f.0',
    '0000:00:1f.2',
    '0000:00:1f.3',
  ]);
  assert.deepEqual(view.readDir(''), ['devices', 'kernel']);
  // errors
  assert.throws(() => view.readFile('kernel/iommu_groups/8/type'), errno('ENOENT'));
  assert.throws(() => view.readFile('kernel/iommu_groups/0'), errno('EISDIR'));
  assert.throws(() => view.readDir('kernel/iommu_groups/0/type'), errno('ENOTDIR'));
  assert.throws(() => view.readFile('kernel/iommu_groups/0/type/x'), errno('ENOTDIR'));
  assert.throws(() => view.readLink('kernel/iommu_groups/0/type'), errno('EINVAL'));
  assert.throws(() => view.readLink('kernel/iommu_groups/0/nope'), errno('ENOENT'));
  assert.ok(view.exists('kernel/iommu_groups/0/devices/0000:00:00.0/iommu_group'));
  assert.ok(!view.exists('kernel/iommu_groups/0/name'));
});

test('type file: unknown without a default domain or for a platform domain; each sysfs spelling', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  const read = () => renderIommuSysfs(groups).readFile('kernel/iommu_groups/0/type');
  assert.equal(read(), 'unknown\n');
  for (const t of ['blocked', 'identity', 'unmanaged', 'DMA', 'DMA-FQ'] as const) {
    g.defaultDomain = { type: t };
    assert.equal(read(), `${t}\n`);
  }
  g.defaultDomain = { type: 'platform' };
  assert.equal(read(), 'unknown\n');
  assert.equal(renderIommuSysfs(groups).readFile('kernel/iommu_groups/0/reserved_regions'), '');
});

test('name file appears with set_name, shows "<name>\\n", disappears when cleared', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  const path = `kernel/iommu_groups/${g.id}/name`;
  assert.ok(!renderIommuSysfs(groups).exists(path));
  g.setName('vfio-noiommu');
  const v1 = renderIommuSysfs(groups);
  assert.equal(v1.readFile(path), 'vfio-noiommu\n');
  assert.deepEqual(
    v1.entries().find((e) => e.path === path),
    { kind: 'file', path, mode: 0o444, content: 'vfio-noiommu\n' },
  );
  g.setName(null);
  const v2 = renderIommuSysfs(groups);
  assert.ok(!v2.exists(path));
  assert.deepEqual(v2.readDir(`kernel/iommu_groups/${g.id}`), ['devices', 'reserved_regions', 'type']);
  assert.equal(v1.readFile(path), 'vfio-noiommu\n'); // a view is a snapshot
});

test('duplicate link names and device paths; released groups leave the tree', () => {
  const groups = new IommuGroups();
  const bus = new BusType('platform');
  const a = new Device('foo', bus, new Device('soc', bus));
  const b = new Device('foo', bus, new Device('bar', bus, new Device('soc2', bus)));
  const g = groups.alloc();
  groups.addDevice(g, a);
  groups.addDevice(g, b);
  const view = renderIommuSysfs(groups);
  assert.equal(view.readLink('kernel/iommu_groups/0/devices/foo'), '../../../../devices/soc/foo');
  assert.equal(view.readLink('kernel/iommu_groups/0/devices/foo.0'), '../../../../devices/soc2/bar/foo');
  assert.equal(view.readLink('devices/soc2/bar/foo/iommu_group'), '../../../../kernel/iommu_groups/0');
  assert.equal(view.readLink('devices/soc/foo/iommu_group'), '../../../kernel/iommu_groups/0');
  // same path twice cannot be rendered
  const twin = new Device('foo', bus, new Device('soc', bus));
  groups.addDevice(g, twin);
  assert.throws(() => renderIommuSysfs(groups), errno('EEXIST'));
  groups.removeDevice(twin);
  groups.removeDevice(a);
  groups.removeDevice(b);
  groups.put(g);
  assert.deepEqual(renderIommuSysfs(groups).entries(), [
    { kind: 'dir', path: 'kernel', mode: 0o755 },
    { kind: 'dir', path: 'kernel/iommu_groups', mode: 0o755 },
  ]);
});

test('rendering from inside a forEachDev callback ⇒ EDEADLK (reserved_regions/type take group->mutex)', () => {
  const groups = new IommuGroups();
  const g = groups.alloc();
  groups.addDevice(g, new Device('a', new BusType('x')));
  g.forEachDev(() => {
    assert.throws(() => renderIommuSysfs(groups), errno('EDEADLK'));
  });
  assert.throws(() => deviceSysfsPath(new Device('a/b', new BusType('x'))), errno('EINVAL'));
});
