/**
 * A read-only sysfs tree rendered from an {@link IommuGroups} registry, with
 * the paths, link targets and file texts Linux shows:
 *
 * ```
 * kernel/iommu_groups/<id>/                        dir
 * kernel/iommu_groups/<id>/devices/<link name>  -> ../../../../devices/<device path>
 * kernel/iommu_groups/<id>/reserved_regions        0444  one "0x%016llx 0x%016llx <type>\n" line per region
 * kernel/iommu_groups/<id>/type                    0644  "DMA-FQ\n", …, "unknown\n"
 * kernel/iommu_groups/<id>/name                    0444  "<name>\n", only while a name is set
 * devices/<device path>/iommu_group             -> ../…/../kernel/iommu_groups/<id>   (one "../" per component of "devices/<device path>")
 * class/iommu/<unit>                            -> ../../devices/<unit path>           (with `units`)
 * <unit path>/devices/<device name>             -> the device, relative              (iommu_device_link())
 * devices/<device path>/iommu                   -> the unit, relative
 * ```
 *
 * A unit's path is `devices/virtual/iommu/<name>` (VT-d: no parent device) or
 * `<its hardware device's path>/iommu/<name>` (AMD-Vi: the IOMMU's PCI function).
 * Link targets are the shortest relative paths, as sysfs makes them
 * (sysfs_get_target_path()).
 *
 * A device's path is `devices/` followed by the names of its ancestors (root
 * first) and its own name, e.g. `devices/pci0000:00/0000:00:1c.0/0000:01:00.0`.
 * Only what the IOMMU group model defines is rendered (plus the directories
 * leading to it): no device attributes. The view is a
 * snapshot: it does not follow later changes to the registry.
 *
 * Paths are relative to /sys (a leading `/sys/` or `/` is accepted); `.`
 * and `..` components are resolved, and symlinks are followed as a kernel
 * path walk would (readFile/readDir follow every link, readLink all but the last).
 *
 * Linux: iommu_group_alloc() (group kobject, `devices` kobject, attribute
 * files), iommu_group_alloc_device() (the two links), iommu_group_set_name(),
 * iommu_group_show_resv_regions(), iommu_group_show_type(),
 * drivers/iommu/iommu.c; Documentation/ABI/testing/sysfs-kernel-iommu_groups.
 */
import { IommuError } from '../base/errno.js';
import type { Device } from '../device/device.js';
import { groupTypeText } from './domain-type.js';
import type { IommuGroups } from './group.js';
import type { IommuUnit } from './iommu-unit.js';
import { formatResvRegions } from './resv-region.js';

/** A directory (mode 0755). */
export interface SysfsDirEntry {
  readonly kind: 'dir';
  readonly path: string;
  readonly mode: number;
}
/** A regular attribute file with its full text. */
export interface SysfsFileEntry {
  readonly kind: 'file';
  readonly path: string;
  /** Permission bits, e.g. 0o444 for `reserved_regions`, 0o644 for `type`. */
  readonly mode: number;
  readonly content: string;
}
/** A symbolic link with its (relative) target, as readlink(2) returns it. */
export interface SysfsLinkEntry {
  readonly kind: 'link';
  readonly path: string;
  readonly mode: number;
  readonly target: string;
}
/** One node of a {@link SysfsView}; `path` is relative to /sys, without a leading slash. */
export type SysfsEntry = SysfsDirEntry | SysfsFileEntry | SysfsLinkEntry;

/** A read-only sysfs tree. All paths are relative to /sys. */
export interface SysfsView {
  /**
   * The text of a file (following symlinks).
   * @throws IommuError ENOENT if missing; EISDIR for a directory; ENOTDIR if
   *   a non-final component is a file; ELOOP after 40 links.
   */
  readFile(path: string): string;
  /**
   * The target of a symlink (the final component is not followed).
   * @throws IommuError ENOENT if missing; EINVAL if not a symlink (as readlink(2)).
   */
  readLink(path: string): string;
  /**
   * The names in a directory (following symlinks), sorted by code unit.
   * @throws IommuError ENOENT if missing; ENOTDIR if not a directory.
   */
  readDir(path: string): string[];
  /** True if the path resolves (following symlinks) to an entry. */
  exists(path: string): boolean;
  /** Every entry (directories, files, links), sorted by path; the root itself is not listed. */
  entries(): SysfsEntry[];
}

/**
 * The sysfs path of a device relative to /sys: `devices/` + the names of its
 * ancestors (outermost first) + its name.
 * @throws IommuError EINVAL if a name in the chain is empty, `.`, `..` or
 *   contains `/` (not a valid kobject name).
 * Linux: kobject_get_path() of the device kobject (under /sys/devices).
 */
export function deviceSysfsPath(dev: Device): string {
  const names: string[] = [];
  for (let d: Device | null = dev; d !== null; d = d.parent) {
    if (d.name === '' || d.name === '.' || d.name === '..' || d.name.includes('/')) {
      throw new IommuError('EINVAL', `device name ${JSON.stringify(d.name)} is not a valid sysfs name`, { input: dev.name });
    }
    names.push(d.name);
  }
  return ['devices', ...names.reverse()].join('/');
}

const MAX_LINKS = 40;

/** Split a /sys-relative path into components, dropping `/sys`, empty and `.` parts. */
function components(path: string): string[] {
  let p = path;
  if (p === '/sys' || p.startsWith('/sys/')) p = p.slice(4);
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

class RenderedView implements SysfsView {
  readonly #entries: Map<string, SysfsEntry>;
  readonly #children: Map<string, Set<string>>;

  constructor(entries: Map<string, SysfsEntry>) {
    this.#entries = entries;
    this.#children = new Map([['', new Set<string>()]]);
    for (const path of entries.keys()) {
      const slash = path.lastIndexOf('/');
      const parent = slash < 0 ? '' : path.slice(0, slash);
      let set = this.#children.get(parent);
      if (set === undefined) {
        set = new Set();
        this.#children.set(parent, set);
      }
      set.add(path.slice(slash + 1));
    }
  }

  /** Walk a path; returns the entry's path ('' = root). */
  #resolve(path: string, followLast: boolean): string {
    const todo = components(path);
    const cur: string[] = [];
    let links = 0;
    while (todo.length > 0) {
      const c = todo.shift()!;
      if (c === '..') {
        cur.pop();
        continue;
      }
      const parent = cur.join('/');
      if (parent !== '') {
        const pe = this.#entries.get(parent);
        if (pe !== undefined && pe.kind !== 'dir') throw new IommuError('ENOTDIR', 'not a directory', { input: path });
      }
      cur.push(c);
      const p = cur.join('/');
      const e = this.#entries.get(p);
      if (e === undefined) throw new IommuError('ENOENT', 'no such file or directory', { input: path });
      if (e.kind === 'link' && (todo.length > 0 || followLast)) {
        if (++links > MAX_LINKS) throw new IommuError('ELOOP', 'too many levels of symbolic links', { input: path });
        cur.pop();
        todo.unshift(...components(e.target));
      }
    }
    return cur.join('/');
  }

  readFile(path: string): string {
    const p = this.#resolve(path, true);
    const e = this.#entries.get(p);
    if (e === undefined || e.kind === 'dir') throw new IommuError('EISDIR', 'is a directory', { input: path });
    if (e.kind !== 'file') throw new IommuError('EINVAL', 'not a regular file', { input: path });
    return e.content;
  }

  readLink(path: string): string {
    const p = this.#resolve(path, false);
    const e = this.#entries.get(p);
    if (e === undefined || e.kind !== 'link') throw new IommuError('EINVAL', 'not a symbolic link', { input: path });
    return e.target;
  }

  readDir(path: string): string[] {
    const p = this.#resolve(path, true);
    const e = this.#entries.get(p);
    if (p !== '' && (e === undefined || e.kind !== 'dir')) throw new IommuError('ENOTDIR', 'not a directory', { input: path });
    return [...(this.#children.get(p) ?? [])].sort();
  }

  exists(path: string): boolean {
    try {
      this.#resolve(path, true);
      return true;
    } catch (e) {
      if (e instanceof IommuError) return false;
      throw e;
    }
  }

  entries(): SysfsEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}

/** Options of {@link renderIommuSysfs}. */
export interface RenderOptions {
  /** Registered IOMMU units to render under /sys/class/iommu with their device links (default: none). */
  readonly units?: readonly IommuUnit[];
}

/**
 * The sysfs path of an IOMMU unit relative to /sys: under its hardware
 * device (`<path>/iommu/<name>`), or `devices/virtual/iommu/<name>`.
 * Linux: iommu_device_sysfs_add(), drivers/iommu/iommu-sysfs.c.
 */
export function iommuUnitSysfsPath(unit: IommuUnit): string {
  return unit.hwdev ? `${deviceSysfsPath(unit.hwdev)}/iommu/${unit.name}` : `devices/virtual/iommu/${unit.name}`;
}

/** The shortest relative link target from the directory `fromDir` to `to` (both /sys-relative). Linux: sysfs_get_target_path(). */
function relativeTarget(fromDir: string, to: string): string {
  const a = fromDir.split('/');
  const b = to.split('/');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return '../'.repeat(a.length - i) + b.slice(i).join('/');
}

/**
 * Render the sysfs view of every live group of `groups` (see the module
 * comment for the layout). Reading the groups' reserved regions and types
 * happens now, once.
 * @throws IommuError EEXIST if two member devices have the same sysfs path
 *   (impossible in Linux); EINVAL for a device name that is not a valid sysfs
 *   name; EDEADLK if called from a forEachDev callback (Linux's
 *   `reserved_regions` and `type` reads take group->mutex).
 * Linux: the /sys/kernel/iommu_groups tree, drivers/iommu/iommu.c.
 */
export function renderIommuSysfs(groups: IommuGroups, opts: RenderOptions = {}): SysfsView {
  const entries = new Map<string, SysfsEntry>();
  const dir = (path: string): void => {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const e = entries.get(p);
      if (e === undefined) entries.set(p, { kind: 'dir', path: p, mode: 0o755 });
      else if (e.kind !== 'dir') throw new IommuError('EEXIST', 'a sysfs file or link is in the way of a directory', { input: p });
    }
  };
  const leaf = (e: SysfsEntry): void => {
    const slash = e.path.lastIndexOf('/');
    dir(e.path.slice(0, slash));
    if (entries.has(e.path)) throw new IommuError('EEXIST', 'duplicate sysfs entry (two devices with the same path?)', { input: e.path });
    entries.set(e.path, e);
  };

  dir('kernel/iommu_groups');
  for (const group of groups) {
    const base = `kernel/iommu_groups/${group.id}`;
    dir(`${base}/devices`);
    const resv = formatResvRegions(groups.getGroupResvRegions(group));
    for (const { dev, name } of group.devices) {
      const devPath = deviceSysfsPath(dev);
      leaf({ kind: 'link', path: `${base}/devices/${name}`, mode: 0o777, target: `../../../../${devPath}` });
      const depth = devPath.split('/').length;
      leaf({ kind: 'link', path: `${devPath}/iommu_group`, mode: 0o777, target: `${'../'.repeat(depth)}${base}` });
    }
    leaf({ kind: 'file', path: `${base}/reserved_regions`, mode: 0o444, content: resv });
    leaf({ kind: 'file', path: `${base}/type`, mode: 0o644, content: groupTypeText(group.defaultDomain) });
    if (group.name !== null) leaf({ kind: 'file', path: `${base}/name`, mode: 0o444, content: `${group.name}\n` });
  }
  const link = (path: string, to: string): void => {
    leaf({ kind: 'link', path, mode: 0o777, target: relativeTarget(path.slice(0, path.lastIndexOf('/')), to) });
  };
  if (opts.units) dir('class/iommu');
  for (const unit of opts.units ?? []) {
    const up = iommuUnitSysfsPath(unit);
    dir(`${up}/devices`);
    link(`class/iommu/${unit.name}`, up);
    for (const dev of unit.devices) {
      const dp = deviceSysfsPath(dev);
      link(`${up}/devices/${dev.name}`, dp);
      link(`${dp}/iommu`, up);
    }
  }
  return new RenderedView(entries);
}
