/**
 * Write a snapshot of the part of a sysfs tree the IOMMU tools read, as a
 * `.tar.gz` whose archive root is `/sys` itself — the layout of the oracle
 * fixtures (test/fixtures/oracle/README.md), readable back with
 * {@link TarSource} and {@link readPciSysfs}.
 *
 * SAFETY: the source tree is only ever read, through {@link DirSource}
 * (`O_RDONLY | O_NOFOLLOW`, lstat, readlink, readdir, realpath). Writes go to a
 * private temporary directory and to `outFile`, which may not lie inside the
 * source tree or under `/sys`.
 *
 * Linux: the copied attributes are those of drivers/pci/pci-sysfs.c,
 * drivers/pci/iov.c, drivers/base/dd.c, drivers/iommu/iommu.c,
 * drivers/iommu/iommu-sysfs.c and drivers/acpi/sysfs.c.
 */
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { create as tarCreate } from 'tar';
import { IommuError } from '../base/errno.js';
import { IOMMU_ACPI_TABLES } from './pci-reader.js';
import { DirSource } from './source.js';

/** What {@link writeSnapshot} wrote. */
export interface SnapshotReport {
  /** Regular files written into the archive. */
  files: number;
  /** Symbolic links written into the archive. */
  links: number;
  /** Files that exist but could not be read (EACCES, EIO), tree-relative, with why; they are not in the archive. */
  skipped: { path: string; why: string }[];
  /** BDFs whose `config` read fewer than 256 bytes (a non-root reader gets 64); the short bytes are archived as read. */
  truncatedConfig: string[];
  /** The archive written (as given). */
  outFile: string;
}

/**
 * Per-device regular files copied when present.
 * Linux: pci_dev_attrs, pci_dev_config_attr, sriov_*_attrs (drivers/pci/pci-sysfs.c, iov.c), reset_method (pci.c).
 */
export const SNAPSHOT_DEVICE_FILES = [
  'config',
  'vendor',
  'device',
  'class',
  'revision',
  'subsystem_vendor',
  'subsystem_device',
  'reset_method',
  'ari_enabled',
  'numa_node',
  'irq',
  'driver_override',
  'secondary_bus_number',
  'subordinate_bus_number',
  'sriov_totalvfs',
  'sriov_numvfs',
  'sriov_offset',
  'sriov_stride',
  'sriov_vf_device',
] as const;

/**
 * Per-device links copied (target verbatim) when present, besides `virtfnN`.
 * Linux: driver_sysfs_add() (drivers/base/dd.c), iommu_group_add_device() (drivers/iommu/iommu.c),
 * iommu_device_link() (drivers/iommu/iommu-sysfs.c), pci_iov_sysfs_link() (drivers/pci/iov.c).
 */
export const SNAPSHOT_DEVICE_LINKS = ['driver', 'iommu_group', 'iommu', 'physfn'] as const;

const BDF_RE = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

function isInside(child: string, parent: string): boolean {
  const rel = nodePath.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !nodePath.isAbsolute(rel));
}

function realOrResolved(p: string): string {
  const abs = nodePath.resolve(p);
  try {
    return fs.realpathSync.native(abs); // exists (perhaps a link): where a write would really go
  } catch {
    // does not exist yet: resolve its directory
  }
  try {
    return nodePath.join(fs.realpathSync.native(nodePath.dirname(abs)), nodePath.basename(abs));
  } catch {
    return abs;
  }
}

/**
 * Copy the IOMMU-relevant subset of a sysfs tree into a `.tar.gz` (archive root
 * = the sysfs root):
 * - `bus/pci/devices/*` links, and every directory along their targets
 *   (host bridges `devices/pci0000:00/` included);
 * - per device, {@link SNAPSHOT_DEVICE_FILES} and the links
 *   {@link SNAPSHOT_DEVICE_LINKS} and `virtfnN`, targets verbatim;
 * - `bus/pci/drivers/<drv>/` directories and their `<bdf>` links;
 * - `kernel/iommu_groups/<N>/{type,reserved_regions,name,devices/*}`;
 * - `class/iommu/*` links, each unit's `devices/*` links and the attribute files
 *   of its subdirectories (`intel-iommu/cap`, `amd-iommu/features`, …);
 * - `firmware/acpi/tables/{DMAR,IVRS,IORT,VIOT,MCFG}` when readable.
 *
 * The copy is staged in a temporary directory (removed afterwards, also on
 * error) and archived with node-tar (`portable`, mtimes set to the epoch, so the
 * same tree gives the same archive). Files that exist but cannot be read are
 * left out and listed in `skipped`; `config` is archived with the bytes that
 * could be read.
 *
 * @param liveRoot the sysfs root to copy (`/sys`, or a mirror directory); only read.
 * @param outFile the `.tar.gz` to write (created or replaced).
 * @throws IommuError ENOENT if `liveRoot` does not exist or has no
 *   `bus/pci/devices` ("no PCI devices found at … (is this a sysfs tree?)");
 *   EINVAL if `outFile` lies inside `liveRoot` or under `/sys`; EIO (or EACCES)
 *   if the staging directory or `outFile` cannot be written.
 */
export function writeSnapshot(liveRoot: string, outFile: string): SnapshotReport {
  const src = new DirSource(liveRoot);
  const outReal = realOrResolved(outFile);
  if (isInside(outReal, src.realRoot) || isInside(outReal, '/sys')) {
    throw new IommuError('EINVAL', `refusing to write the snapshot inside the sysfs tree (${src.realRoot}) or under /sys`, { input: outFile });
  }
  const devNames = src.readDir('bus/pci/devices');
  if (devNames === null) {
    throw new IommuError('ENOENT', `no PCI devices found at ${src.describe()} (is this a sysfs tree? bus/pci/devices is missing)`, { input: liveRoot });
  }

  let tmp: string;
  try {
    tmp = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'iommukit-snapshot-'));
  } catch (e) {
    throw new IommuError('EIO', `cannot create a staging directory: ${(e as Error).message}`, { input: os.tmpdir(), cause: e });
  }
  const report: SnapshotReport = { files: 0, links: 0, skipped: [], truncatedConfig: [], outFile };
  try {
    const st = new Stager(src, tmp, report);
    st.copy(devNames);
    const top = fs.readdirSync(tmp).sort();
    try {
      tarCreate({ gzip: true, file: outFile, cwd: tmp, portable: true, sync: true, mtime: new Date(0) }, top);
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new IommuError(code === 'EACCES' ? 'EACCES' : code === 'ENOENT' ? 'ENOENT' : 'EIO', `cannot write the archive: ${(e as Error).message}`, {
        input: outFile,
        cause: e,
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return report;
}

/** Copies entries from the source tree into the staging directory. */
class Stager {
  private readonly madeDirs = new Set<string>();
  private readonly done = new Set<string>();

  constructor(
    private readonly src: DirSource,
    private readonly tmp: string,
    private readonly report: SnapshotReport,
  ) {}

  private dir(rel: string): void {
    if (rel === '' || this.madeDirs.has(rel)) return;
    fs.mkdirSync(nodePath.join(this.tmp, rel), { recursive: true });
    this.madeDirs.add(rel);
  }

  private parentOf(rel: string): string {
    const i = rel.lastIndexOf('/');
    return i < 0 ? '' : rel.slice(0, i);
  }

  /** Copy a link verbatim if `rel` is one. */
  private link(rel: string): boolean {
    if (this.done.has(rel)) return true;
    const t = this.src.readLink(rel);
    if (t === null) return false;
    this.dir(this.parentOf(rel));
    fs.symlinkSync(t, nodePath.join(this.tmp, rel));
    this.done.add(rel);
    this.report.links++;
    return true;
  }

  /** Copy a regular file if it exists and is readable; unreadable ones go to `skipped`. */
  private file(rel: string): Uint8Array | null {
    if (this.done.has(rel)) return null;
    if (this.src.entryKind(rel) !== 'file') return null;
    const r = this.src.tryReadFile(rel);
    if (!r.ok) {
      if (!r.absent) this.report.skipped.push({ path: rel, why: r.why });
      return null;
    }
    this.dir(this.parentOf(rel));
    fs.writeFileSync(nodePath.join(this.tmp, rel), r.data, { mode: 0o644 });
    this.done.add(rel);
    this.report.files++;
    return r.data;
  }

  copy(devNames: string[]): void {
    this.dir('bus/pci/devices');
    for (const name of devNames) {
      const lp = `bus/pci/devices/${name}`;
      const kind = this.src.entryKind(lp);
      const real = this.src.realPath(lp);
      if (kind === 'link') this.link(lp);
      if (real === null || this.src.entryKind(real) !== 'dir') {
        if (kind !== 'link') this.report.skipped.push({ path: lp, why: 'not a link to a device directory' });
        continue;
      }
      this.dir(real); // and every directory along it: devices/pci0000:00/…
      this.device(real, name);
    }
    this.drivers();
    this.groups();
    this.iommuUnits();
    this.acpi();
  }

  private device(real: string, bdf: string): void {
    for (const f of SNAPSHOT_DEVICE_FILES) {
      const data = this.file(`${real}/${f}`);
      if (f === 'config' && data !== null && data.length < 256) this.report.truncatedConfig.push(bdf);
    }
    for (const l of SNAPSHOT_DEVICE_LINKS) this.link(`${real}/${l}`);
    for (const e of this.src.readDir(real) ?? []) {
      if (/^virtfn\d+$/.test(e)) this.link(`${real}/${e}`);
    }
  }

  private drivers(): void {
    const drvs = this.src.readDir('bus/pci/drivers');
    if (drvs === null) return;
    for (const d of drvs) {
      const base = `bus/pci/drivers/${d}`;
      if (this.src.entryKind(base) !== 'dir') continue;
      this.dir(base);
      for (const e of this.src.readDir(base) ?? []) {
        if (BDF_RE.test(e)) this.link(`${base}/${e}`);
      }
    }
  }

  private groups(): void {
    const ids = this.src.readDir('kernel/iommu_groups');
    if (ids === null) return;
    this.dir('kernel/iommu_groups');
    for (const id of ids) {
      const base = `kernel/iommu_groups/${id}`;
      if (this.src.entryKind(base) !== 'dir') continue;
      this.dir(base);
      for (const f of ['type', 'reserved_regions', 'name']) this.file(`${base}/${f}`);
      this.dir(`${base}/devices`);
      for (const e of this.src.readDir(`${base}/devices`) ?? []) this.link(`${base}/devices/${e}`);
    }
  }

  private iommuUnits(): void {
    const units = this.src.readDir('class/iommu');
    if (units === null) return;
    this.dir('class/iommu');
    for (const u of units) {
      const lp = `class/iommu/${u}`;
      this.link(lp);
      const real = this.src.realPath(lp);
      if (real === null || this.src.entryKind(real) !== 'dir') continue;
      this.dir(real);
      for (const e of this.src.readDir(real) ?? []) {
        const p = `${real}/${e}`;
        if (e === 'devices') {
          this.dir(p);
          for (const d of this.src.readDir(p) ?? []) this.link(`${p}/${d}`);
        } else if (e !== 'power' && this.src.entryKind(p) === 'dir') {
          // Unit attributes: intel-iommu/{cap,ecap,version,address,…}, amd-iommu/{cap,features}.
          for (const a of this.src.readDir(p) ?? []) {
            if (this.src.entryKind(`${p}/${a}`) === 'file') this.file(`${p}/${a}`);
          }
        }
      }
    }
  }

  private acpi(): void {
    for (const t of IOMMU_ACPI_TABLES) this.file(`firmware/acpi/tables/${t}`);
  }
}
