/**
 * Shared helpers for the sysfs tests: where the oracle fixtures are, temp
 * directories, extracting an archive, and building small synthetic trees.
 * (Not a test file; node --test runs it and finds no tests.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { extract } from 'tar';
import { MemorySource } from '../../src/sysfs/source.js';

/** test/fixtures/oracle in the source tree (tests run from dist/test/sysfs/). */
export const ORACLE_DIR = fileURLToPath(new URL('../../../test/fixtures/oracle/', import.meta.url));

/** The oracle case names (t01-…, rand-NNNN), sorted. */
export function oracleCases(): string[] {
  return fs
    .readdirSync(ORACLE_DIR)
    .filter((c) => fs.existsSync(path.join(ORACLE_DIR, c, 'sys.tar.gz')))
    .sort();
}

/** One device of an oracle summary.json. */
export interface SummaryDevice {
  path: string;
  vendor: string;
  device: string;
  class: string;
  driver: string | null;
  iommu_group: string | null;
}

/** An oracle summary.json. */
export interface Summary {
  devices: Record<string, SummaryDevice>;
  groups: Record<string, string[]>;
  group_types: Record<string, string>;
}

/** Parse test/fixtures/oracle/<c>/summary.json. */
export function readSummary(c: string): Summary {
  return JSON.parse(fs.readFileSync(path.join(ORACLE_DIR, c, 'summary.json'), 'utf8')) as Summary;
}

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'iommukit-sysfs-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Extract an archive into `dir` (created if needed). */
export function extractTo(archive: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  extract({ file: archive, cwd: dir, sync: true });
}

/** Options of {@link addPciDevice}. */
export interface FakeDevice {
  bdf: string;
  /** Device directory, e.g. devices/pci0000:00/0000:00:1c.0/0000:01:00.0; default devices/pci0000:00/<bdf>. */
  path?: string;
  vendor?: number;
  device?: number;
  classCode?: number;
  /** Config bytes; default 256 bytes with vendor/device/class filled in. */
  config?: Uint8Array;
  driver?: string;
  group?: number;
}

/** A config space of `len` bytes with ids and class filled in. */
export function fakeConfig(vendor: number, device: number, classCode: number, len = 256): Uint8Array {
  const c = new Uint8Array(len);
  c[0] = vendor & 0xff;
  c[1] = vendor >> 8;
  c[2] = device & 0xff;
  c[3] = device >> 8;
  c[9] = classCode & 0xff;
  c[10] = (classCode >> 8) & 0xff;
  c[11] = classCode >> 16;
  return c;
}

const hex = (n: number, w: number): string => `0x${n.toString(16).padStart(w, '0')}`;

/** Relative link target from directory `fromDir` to tree path `to` (both tree-relative). */
export function relTarget(fromDir: string, to: string): string {
  return path.posix.relative(fromDir, to);
}

/** Add one PCI function the way sysfs lays it out (bus link, attributes, driver/group links). Returns its path. */
export function addPciDevice(src: MemorySource, d: FakeDevice): string {
  const p = d.path ?? `devices/pci0000:00/${d.bdf}`;
  const vendor = d.vendor ?? 0x8086;
  const device = d.device ?? 0x10d3;
  const cls = d.classCode ?? 0x020000;
  src.addLink(`bus/pci/devices/${d.bdf}`, relTarget('bus/pci/devices', p));
  src.addFile(`${p}/config`, d.config ?? fakeConfig(vendor, device, cls));
  src.addFile(`${p}/vendor`, `${hex(vendor, 4)}\n`);
  src.addFile(`${p}/device`, `${hex(device, 4)}\n`);
  src.addFile(`${p}/class`, `${hex(cls, 6)}\n`);
  src.addFile(`${p}/subsystem_vendor`, '0x1af4\n');
  src.addFile(`${p}/subsystem_device`, '0x1100\n');
  src.addFile(`${p}/revision`, '0x00\n');
  if (d.driver !== undefined) {
    src.addDir(`bus/pci/drivers/${d.driver}`);
    src.addLink(`${p}/driver`, relTarget(p, `bus/pci/drivers/${d.driver}`));
    src.addLink(`bus/pci/drivers/${d.driver}/${d.bdf}`, relTarget(`bus/pci/drivers/${d.driver}`, p));
  }
  if (d.group !== undefined) {
    const g = `kernel/iommu_groups/${d.group}`;
    src.addFile(`${g}/type`, 'DMA\n');
    src.addFile(`${g}/reserved_regions`, '0x00000000fee00000 0x00000000feefffff msi\n');
    src.addLink(`${p}/iommu_group`, relTarget(p, g));
    src.addLink(`${g}/devices/${d.bdf}`, relTarget(`${g}/devices`, p));
  }
  return p;
}

/** Write a MemorySource-like layout into a real directory: files and links under `root`. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>, links: Record<string, string> = {}): void {
  for (const [p, data] of Object.entries(files)) {
    const abs = path.join(root, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, data);
  }
  for (const [p, target] of Object.entries(links)) {
    const abs = path.join(root, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.symlinkSync(target, abs);
  }
}
