/**
 * Read the PCI functions, the kernel's IOMMU groups, the IOMMU units and the
 * ACPI IOMMU tables out of a sysfs tree ({@link SysfsSource}).
 *
 * Nothing here throws for a bad device: a truncated or garbage `config`, a
 * missing attribute, a broken link is recorded in that function's `problems`
 * (or the reading's `problems`) and reading goes on. Only a tree with no PCI
 * devices at all is an error.
 *
 * Linux: drivers/pci/pci-sysfs.c (the per-device attributes and `config`),
 * drivers/base/bus.c (`bus/pci/devices` links), drivers/base/dd.c (`driver`
 * link), drivers/iommu/iommu.c (`iommu_group` link, `kernel/iommu_groups/<N>/
 * {type,reserved_regions,devices}`), drivers/iommu/iommu-sysfs.c (`class/iommu`,
 * the `iommu` link), drivers/acpi/sysfs.c (`firmware/acpi/tables`).
 */
import { IommuError } from '../base/errno.js';
import type { SysfsSource } from './source.js';

/** One PCI function as sysfs shows it. */
export interface SysfsPciFunction {
  /** Canonical `dddd:bb:dd.f`, lower-case hex, e.g. `0000:00:1f.2` (the name in `bus/pci/devices`). */
  bdf: string;
  /** Resolved tree-relative device directory, e.g. `devices/pci0000:00/0000:00:1c.0/0000:01:00.0`. */
  path: string;
  /**
   * The PCI function whose directory this one's sits in (its upstream bridge), or
   * null when the parent directory is not a PCI function (a host bridge `pciDDDD:BB`).
   */
  parentBdf: string | null;
  /**
   * The host bridge the function is under: the nearest `pciDDDD:BB` component of
   * `path` — for ordinary machines the component under `devices/` (`pci0000:00`);
   * for a root bus that sits under a PCI device (Intel VMD, `…/0000:00:0e.0/pci10000:e0/…`)
   * or under ACPI/VMBus nodes (Hyper-V) it is that nested one. `''` if none (reported).
   */
  hostBridge: string;
  /**
   * Config space bytes as read from `config`: 256 (conventional) or 4096 (PCIe)
   * as root; 64 (128 for a CardBus bridge) for a non-root reader; empty if
   * unreadable. Linux: pci_read_config() in drivers/pci/pci-sysfs.c.
   */
  config: Uint8Array;
  /** `vendor` file (`0x8086`), or null if missing or garbage. Linux: vendor_show (pci-sysfs.c). */
  vendor: number | null;
  /** `device` file, or null if missing or garbage. */
  device: number | null;
  /** `class` file, 24 bits (`0x010601`), or null if missing or garbage. */
  classCode: number | null;
  /** `subsystem_vendor` file, or null if missing or garbage. */
  subsystemVendor: number | null;
  /** `subsystem_device` file, or null if missing or garbage. */
  subsystemDevice: number | null;
  /** `revision` file, or null if missing or garbage. */
  revision: number | null;
  /** Basename of the `driver` link (`e1000e`), or null if no driver is bound. Linux: driver_sysfs_add() in drivers/base/dd.c. */
  driver: string | null;
  /** The group number from the `iommu_group` link, or null (no IOMMU, or not grouped). Linux: iommu_group_add_device(). */
  kernelGroup: number | null;
  /** Basename of the `iommu` link (`dmar0`, `ivhd0`), or null. Linux: iommu_device_link() in drivers/iommu/iommu-sysfs.c. */
  iommu: string | null;
  /** Words of `reset_method` (`flr`, `pm`, `bus`), empty if the file is absent. Linux: reset_method_show() in drivers/pci/pci.c. */
  resetMethods: string[];
  /** BDF of the SR-IOV physical function (basename of the `physfn` link) for a VF, else null. Linux: pci_iov_sysfs_link() in drivers/pci/iov.c. */
  physfn: string | null;
  /** BDFs of the VFs (`virtfnN` links, in N order) for an enabled PF, else empty. */
  virtfns: string[];
  /** Problems reading this function, in words. */
  problems: string[];
}

/** One group from `kernel/iommu_groups/<N>`. Linux: struct iommu_group's kobject in drivers/iommu/iommu.c. */
export interface KernelIommuGroup {
  /** The group number (the directory name). */
  id: number;
  /** `type` (`DMA`, `DMA-FQ`, `identity`, `blocked`, `unmanaged`), or null if absent. Linux: iommu_group_show_type(). */
  type: string | null;
  /** `reserved_regions` text, one `start end type` line per region, or null if absent. Linux: iommu_group_show_resv_regions(). */
  reservedRegions: string | null;
  /** Member BDFs (`devices/` entries), sorted. */
  devices: string[];
}

/** Everything {@link readPciSysfs} found. */
export interface PciSysfsReading {
  /** The source's {@link SysfsSource.describe}. */
  source: string;
  /** PCI functions in `bus/pci/devices` order (sorted BDF); entries that point nowhere are left out (see `problems`). */
  functions: SysfsPciFunction[];
  /** Groups sorted by id, or null when `kernel/iommu_groups` is absent or empty (no active IOMMU). */
  kernelGroups: KernelIommuGroup[] | null;
  /** `class/iommu` entries (`dmar0`, `ivhd0`), sorted; empty if none. */
  iommuUnits: string[];
  /**
   * Each unit's driver attributes (`class/iommu/<unit>/intel-iommu/{cap,ecap,…}`,
   * `…/amd-iommu/{cap,features}`), as text without the newline: unit → file → value.
   * Linux: intel_iommu_groups (drivers/iommu/intel/iommu.c), amd_iommu_groups (drivers/iommu/amd/init.c).
   */
  iommuUnitAttrs: Record<string, Record<string, string>>;
  /** Readable ACPI tables among DMAR, IVRS, IORT, VIOT, MCFG (`firmware/acpi/tables/<name>`), raw bytes. */
  acpiTables: Record<string, Uint8Array>;
  /** The kernel command line if the tree holds one (a `cmdline` or `proc/cmdline` file); null otherwise — /proc is not part of sysfs. */
  cmdline: string | null;
  /** Source-wide problems, in words. */
  problems: string[];
  /** BDFs whose `config` could not be read in full (fewer than 256 bytes). */
  truncatedConfig: string[];
}

const BDF_RE = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const HOST_BRIDGE_RE = /^pci[0-9a-f]{4,8}:[0-9a-f]{2}$/;

/**
 * ACPI tables an IOMMU tool cares about, as named in `firmware/acpi/tables/`: DMAR (Intel VT-d),
 * IVRS (AMD-Vi), IORT (Arm SMMU), VIOT (virtio-iommu), MCFG (ECAM, i.e. 4096-byte config space).
 * Linux: acpi_table_attr_init() in drivers/acpi/sysfs.c (files are mode 0400: root only).
 */
export const IOMMU_ACPI_TABLES = ['DMAR', 'IVRS', 'IORT', 'VIOT', 'MCFG'] as const;

function basename(p: string): string {
  const s = p.endsWith('/') ? p.slice(0, -1) : p;
  const i = s.lastIndexOf('/');
  return i < 0 ? s : s.slice(i + 1);
}

/**
 * Parse a sysfs hex attribute (`0x8086\n`) from bytes without making a string;
 * null unless it is `0x` + 1–8 hex digits + optional trailing whitespace.
 */
function parseHexAttr(d: Uint8Array): number | null {
  let end = d.length;
  while (end > 0 && (d[end - 1] === 0x0a || d[end - 1] === 0x20 || d[end - 1] === 0x09 || d[end - 1] === 0x0d)) end--;
  if (end < 3 || end > 10 || d[0] !== 0x30 || (d[1] !== 0x78 && d[1] !== 0x58)) return null;
  let v = 0;
  for (let i = 2; i < end; i++) {
    const c = d[i]!;
    let x: number;
    if (c >= 0x30 && c <= 0x39) x = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) x = c - 0x57;
    else if (c >= 0x41 && c <= 0x46) x = c - 0x37;
    else return null;
    v = v * 16 + x;
  }
  return v;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

function showText(s: string): string {
  const t = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return JSON.stringify(t);
}

/**
 * Read the PCI functions and IOMMU state of a sysfs tree.
 *
 * For each `bus/pci/devices/<BDF>` link: the resolved device directory, its
 * `config` (kept as read, however short), the id attributes, the `driver`,
 * `iommu_group` and `iommu` links, `reset_method`, `physfn`/`virtfnN`. Then the
 * groups of `kernel/iommu_groups`, the `class/iommu` units and the ACPI tables.
 * Cross-checks each function's `iommu_group` link against the group's
 * `devices/` listing and `config`'s ids against the `vendor`/`device` files.
 *
 * Linux: pci_create_sysfs_dev_files()/pci_dev_attrs in drivers/pci/pci-sysfs.c,
 * iommu_group_add_device() in drivers/iommu/iommu.c.
 *
 * @throws IommuError ENOENT `no PCI devices found at <source> (is this a sysfs tree?)`
 *   when `bus/pci/devices` is absent; ENODEV with the same words when it is empty.
 */
export function readPciSysfs(src: SysfsSource): PciSysfsReading {
  const source = src.describe();
  const names = src.readDir('bus/pci/devices');
  if (names === null) {
    throw new IommuError('ENOENT', `no PCI devices found at ${source} (is this a sysfs tree? bus/pci/devices is missing)`, { input: source });
  }
  if (names.length === 0) {
    throw new IommuError('ENODEV', `no PCI devices found at ${source} (is this a sysfs tree? bus/pci/devices is empty)`, { input: source });
  }
  const problems: string[] = [];
  const functions: SysfsPciFunction[] = [];
  const truncatedConfig: string[] = [];
  const reported = new Set<string>();

  for (const name of names) {
    const f = readFunction(src, name, problems, reported);
    if (f === null) continue;
    functions.push(f);
    if (f.config.length < 256) truncatedConfig.push(f.bdf);
  }
  if (functions.length === 0) {
    problems.push(`none of the ${names.length} entries of bus/pci/devices could be read`);
  }

  const kernelGroups = readGroups(src, problems);
  crossCheckGroups(functions, kernelGroups, problems);

  const iommuUnits = src.readDir('class/iommu') ?? [];
  const iommuUnitAttrs: Record<string, Record<string, string>> = {};
  for (const u of iommuUnits) {
    const attrs: Record<string, string> = {};
    for (const sub of ['intel-iommu', 'amd-iommu']) {
      for (const f of src.readDir(`class/iommu/${u}/${sub}`) ?? []) {
        const t = src.readText(`class/iommu/${u}/${sub}/${f}`);
        if (t !== null) attrs[f] = t;
      }
    }
    iommuUnitAttrs[u] = attrs;
  }
  const acpiTables: Record<string, Uint8Array> = {};
  for (const t of IOMMU_ACPI_TABLES) {
    const p = `firmware/acpi/tables/${t}`;
    const r = src.tryReadFile(p);
    if (r.ok) acpiTables[t] = r.data;
    else if (!r.absent) {
      problems.push(`${p}: exists but could not be read (${r.why}); ACPI tables are readable by root only`);
      reported.add(p);
    }
  }
  const cmdline = src.readText('cmdline') ?? src.readText('proc/cmdline');

  // Anything the source could not read (or ignored while loading) that was not already said per function.
  const said = new Set<string>();
  for (const issue of src.issues) {
    const line = `${issue.path}: ${issue.why}`;
    if (!reported.has(issue.path) && !said.has(line)) {
      said.add(line);
      problems.push(line);
    }
  }
  return { source, functions, kernelGroups, iommuUnits, iommuUnitAttrs, acpiTables, cmdline, problems, truncatedConfig };
}

function readFunction(src: SysfsSource, name: string, problems: string[], reported: Set<string>): SysfsPciFunction | null {
  const linkPath = `bus/pci/devices/${name}`;
  if (!BDF_RE.test(name)) {
    problems.push(`${linkPath}: not a PCI address (dddd:bb:dd.f); ignored`);
    return null;
  }
  const target = src.readLink(linkPath);
  const path = src.realPath(linkPath);
  if (path === null || src.entryKind(path) !== 'dir') {
    problems.push(
      target !== null
        ? `${linkPath} → ${target} points nowhere (broken link); ${name} skipped`
        : `${linkPath} is not a device directory; ${name} skipped`,
    );
    return null;
  }
  const fp: string[] = [];
  if (target === null) fp.push(`${linkPath} is a directory, not a link into devices/ (a copy that followed links?): parent and host bridge are unknown`);
  const comps = path.split('/');
  if (comps[comps.length - 1] !== name) fp.push(`${linkPath} resolves to ${path}, whose name is not ${name}`);
  const parentName = comps.length >= 2 ? comps[comps.length - 2]! : '';
  const parentBdf = BDF_RE.test(parentName) ? parentName : null;
  let hostBridge = '';
  for (let i = comps.length - 2; i >= 0; i--) {
    if (HOST_BRIDGE_RE.test(comps[i]!)) {
      hostBridge = comps[i]!;
      break;
    }
  }
  if (hostBridge === '' && target !== null) fp.push(`${path}: no host bridge (pciDDDD:BB) directory above the device`);

  // config
  const cfgPath = `${path}/config`;
  let config: Uint8Array = new Uint8Array(0);
  const cr = src.tryReadFile(cfgPath);
  if (!cr.ok && !cr.absent) reported.add(cfgPath);
  if (cr.ok) {
    config = cr.data;
    const n = config.length;
    if (n === 0) fp.push('config: empty (0 bytes read)');
    else if (n === 64 || n === 128) {
      fp.push(
        `config: only ${n} bytes could be read — a non-root reader gets only the first ${n} bytes of config space ` +
          '(run as root to see capabilities: PCIe, ACS, SR-IOV, ARI)',
      );
    } else if (n < 64) fp.push(`config: truncated, only ${n} bytes (not even the 64-byte header)`);
    else if (n < 256) fp.push(`config: truncated, only ${n} of at least 256 bytes`);
    else if (n !== 256 && n !== 4096) fp.push(`config: unexpected length ${n} (expected 256 or 4096)`);
  } else fp.push(cr.absent ? 'config: missing' : `config: could not be read (${cr.why})`);

  const num = (attr: string, max: number): number | null => {
    const p = `${path}/${attr}`;
    const r = src.tryReadFile(p);
    if (!r.ok) {
      if (!r.absent) reported.add(p);
      fp.push(r.absent ? `${attr}: missing` : `${attr}: could not be read (${r.why})`);
      return null;
    }
    const v = parseHexAttr(r.data);
    if (v === null) {
      const t = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).toString('latin1').trim();
      fp.push(`${attr}: garbage ${showText(t)} (expected 0x… hex)`);
      return null;
    }
    if (v > max) {
      fp.push(`${attr}: 0x${v.toString(16)} is out of range (max 0x${max.toString(16)})`);
      return null;
    }
    return v;
  };
  const vendor = num('vendor', 0xffff);
  const device = num('device', 0xffff);
  const classCode = num('class', 0xffffff);
  const subsystemVendor = num('subsystem_vendor', 0xffff);
  const subsystemDevice = num('subsystem_device', 0xffff);
  const revision = num('revision', 0xff);

  if (config.length >= 4) {
    const cv = config[0]! | (config[1]! << 8);
    const cd = config[2]! | (config[3]! << 8);
    if (cv === 0xffff && cd === 0xffff) {
      fp.push('config: reads as all 0xff (device gone, powered off or inaccessible)');
    } else if ((vendor !== null && cv !== vendor) || (device !== null && cd !== device)) {
      fp.push(
        `config: ids ${hex4(cv)}:${hex4(cd)} do not match the vendor/device files ` +
          `${vendor === null ? '?' : hex4(vendor)}:${device === null ? '?' : hex4(device)} (garbage config?)`,
      );
    }
  }

  const linkBase = (attr: string): string | null => {
    const p = `${path}/${attr}`;
    const t = src.readLink(p);
    if (t === null) {
      const k = src.entryKind(p);
      // An AMD IOMMU's own function has an `iommu/` directory (the parent of its ivhdN class device), not a link.
      if (k !== null && !(attr === 'iommu' && k === 'dir')) fp.push(`${attr}: is a ${k === 'dir' ? 'directory' : 'file'}, expected a link`);
      return null;
    }
    const b = basename(t);
    if (src.realPath(p) === null) fp.push(`${attr}: broken link → ${t}`);
    return b === '' || b === '.' || b === '..' ? null : b;
  };
  const driver = linkBase('driver');
  const groupName = linkBase('iommu_group');
  let kernelGroup: number | null = null;
  if (groupName !== null) {
    if (/^\d+$/.test(groupName)) kernelGroup = parseInt(groupName, 10);
    else fp.push(`iommu_group: link names ${showText(groupName)}, not a group number`);
  }
  const iommu = linkBase('iommu');

  let resetMethods: string[] = [];
  const rp = `${path}/reset_method`;
  const rr = src.tryReadFile(rp);
  if (!rr.ok && !rr.absent) reported.add(rp);
  if (rr.ok) resetMethods = Buffer.from(rr.data.buffer, rr.data.byteOffset, rr.data.byteLength).toString('latin1').split(/\s+/).filter((w) => w !== '');
  else if (!rr.absent) fp.push(`reset_method: could not be read (${rr.why})`);

  const physfn = linkBase('physfn');
  if (physfn !== null && !BDF_RE.test(physfn)) fp.push(`physfn: link names ${showText(physfn)}, not a PCI address`);
  const virtfns: string[] = [];
  // Only PFs with VFs enabled have virtfnN links (numbered from 0): list the directory only then.
  const entries = src.entryKind(`${path}/virtfn0`) === null ? [] : (src.readDir(path) ?? []);
  const vfLinks = entries
    .filter((e) => /^virtfn\d+$/.test(e))
    .sort((a, b) => parseInt(a.slice(6), 10) - parseInt(b.slice(6), 10));
  for (const v of vfLinks) {
    const b = linkBase(v);
    if (b !== null) virtfns.push(b);
  }

  return {
    bdf: name,
    path,
    parentBdf,
    hostBridge,
    config,
    vendor,
    device,
    classCode,
    subsystemVendor,
    subsystemDevice,
    revision,
    driver,
    kernelGroup,
    iommu,
    resetMethods,
    physfn: physfn !== null && BDF_RE.test(physfn) ? physfn : null,
    virtfns,
    problems: fp,
  };
}

function readGroups(src: SysfsSource, problems: string[]): KernelIommuGroup[] | null {
  const entries = src.readDir('kernel/iommu_groups');
  if (entries === null || entries.length === 0) return null;
  const groups: KernelIommuGroup[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) {
      problems.push(`kernel/iommu_groups/${e}: not a group number; ignored`);
      continue;
    }
    const base = `kernel/iommu_groups/${e}`;
    const devs = src.readDir(`${base}/devices`);
    if (devs === null) problems.push(`${base}/devices: missing`);
    groups.push({
      id: parseInt(e, 10),
      type: src.readText(`${base}/type`),
      reservedRegions: src.readText(`${base}/reserved_regions`),
      devices: devs ?? [],
    });
  }
  groups.sort((a, b) => a.id - b.id);
  return groups.length > 0 ? groups : null;
}

function crossCheckGroups(functions: SysfsPciFunction[], groups: KernelIommuGroup[] | null, problems: string[]): void {
  const byId = new Map<number, Set<string>>();
  for (const g of groups ?? []) byId.set(g.id, new Set(g.devices));
  for (const f of functions) {
    if (f.kernelGroup === null) continue;
    const members = byId.get(f.kernelGroup);
    if (members === undefined) problems.push(`${f.bdf}: iommu_group link names group ${f.kernelGroup}, which kernel/iommu_groups does not have`);
    else if (!members.has(f.bdf)) problems.push(`${f.bdf}: in group ${f.kernelGroup} by its iommu_group link, but not in kernel/iommu_groups/${f.kernelGroup}/devices`);
  }
  if (groups === null) return;
  const byBdf = new Map(functions.map((f) => [f.bdf, f] as const));
  for (const g of groups) {
    for (const d of g.devices) {
      const f = byBdf.get(d);
      if (f !== undefined && f.kernelGroup !== g.id) {
        problems.push(`${d}: listed in kernel/iommu_groups/${g.id}/devices, but its iommu_group link says ${f.kernelGroup ?? 'none'}`);
      }
    }
  }
}
