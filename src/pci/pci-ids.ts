/**
 * Names for PCI vendor, device, subsystem and class ids from the system's
 * `pci.ids` database, formatted exactly as `lspci` formats them, including
 * lspci's fallbacks when a name is unknown or no database is installed
 * (`Device 1234:5678`, `Class 0604`, `Intel Corporation Device 2922`, …).
 *
 * Mirrors pciutils: lib/names-parse.c (the file format and its parser),
 * lib/names.c (pci_lookup_name() and its fallbacks), lib/names-hash.c (the
 * lookup tables), lspci.c (which lookups `lspci`, `lspci -nn`, `lspci -vmm`
 * print). The udev hwdb and network (DNS) lookups of libpci are not modelled:
 * names come from `pci.ids` only.
 *
 * Class codes are always the 24-bit value of the config-space class register
 * as in sysfs `class` (`0x010601` = base class 01, subclass 06, prog-if 01),
 * never libpci's 16-bit `device_class`.
 *
 * The file format (pci.ids, "Syntax" comment at its top):
 * ```
 * # comment
 * vvvv  vendor name
 * \tdddd  device name
 * \t\tssvv ssdd  subsystem name
 * C cc  class name
 * \tss  subclass name
 * \t\tpp  programming interface name
 * ```
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { IommuError } from '../base/errno.js';

/**
 * How names are formatted, as lspci's `-n` options select (libpci:
 * `pacc->numeric_ids`, PCI_LOOKUP_NUMERIC / PCI_LOOKUP_MIXED):
 *
 * - `'name'`: plain `lspci`: the name, or a fallback such as `Device 2922`.
 * - `'mixed'`: `lspci -nn`: the name followed by the ids in brackets,
 *   `Intel Corporation [8086]`, or e.g. `Device [2922]`.
 * - `'numeric'`: `lspci -n`: only the ids, `8086`, `8086:2922`, `0106`.
 */
export type PciNameStyle = 'name' | 'mixed' | 'numeric';

/** The names of the three parts of a class code; each absent when the database lacks it. */
export interface PciClassNames {
  /** Base class name, e.g. `Mass storage controller` (pci.ids `C 01`). */
  class?: string;
  /** Subclass name, e.g. `SATA controller` (pci.ids `C 01` / `\t06`). */
  subclass?: string;
  /** Programming interface name, e.g. `AHCI 1.0` (pci.ids `C 01` / `\t06` / `\t\t01`). */
  progIf?: string;
}

/**
 * The ids of one PCI function, as read from its config space or sysfs
 * (`vendor`, `device`, `class`, `subsystem_vendor`, `subsystem_device`).
 */
export interface PciFunctionIds {
  /** Vendor id (16 bits). */
  vendor: number;
  /** Device id (16 bits). */
  device: number;
  /** 24-bit class code: base class, subclass, prog-if (`0x010601`). */
  classCode: number;
  /** Subsystem vendor id (16 bits), if the function has one. */
  subsystemVendor?: number;
  /** Subsystem device id (16 bits), if the function has one. */
  subsystemDevice?: number;
}

/**
 * The names lspci prints for one PCI function, each already formatted with
 * lspci's fallback when the database (or the entry) is missing.
 *
 * With style `'name'` (plain `lspci` / `lspci -vmm`), for an Intel ICH9 AHCI
 * controller 8086:2922 class 010601: `className` `SATA controller`,
 * `vendorName` `Intel Corporation`, `deviceName` `82801IR/IO/IH (ICH9R/DO/DH)
 * 6 port SATA Controller [AHCI mode]`, `vendorDevice` `Intel Corporation
 * 82801IR/…`, `progIf` `AHCI 1.0`. With no database: `Class 0106`,
 * `Vendor 8086`, `Device 2922`, `Device 8086:2922`, no `progIf`.
 *
 * `lspci`'s one-line form is `` `${className}: ${vendorDevice}` `` (plus
 * ` (rev xx)`); with style `'mixed'` this is exactly the `lspci -nn` line,
 * e.g. `SATA controller [0106]: Intel Corporation 82801… [8086:2922]`.
 */
export interface PciFunctionNames {
  /** lspci `PCI_LOOKUP_CLASS`: subclass name, `Mass storage controller [0106]` if only the base class is known, else `Class 0106`. */
  className: string;
  /** lspci `PCI_LOOKUP_VENDOR` (the `-vmm` `Vendor:` field): vendor name or `Vendor 8086`. */
  vendorName: string;
  /** lspci `PCI_LOOKUP_DEVICE` (the `-vmm` `Device:` field): device name or `Device 2922`. */
  deviceName: string;
  /** lspci `PCI_LOOKUP_VENDOR|PCI_LOOKUP_DEVICE`, the second half of an `lspci` line: `Intel Corporation 82801…`, `Intel Corporation Device 2922` or `Device 8086:2922`. */
  vendorDevice: string;
  /** Prog-if name as `lspci -v` shows it in `(prog-if 01 [AHCI 1.0])`; absent when unknown. */
  progIf?: string;
  /** lspci `-v` `Subsystem:` line (subsystem vendor and device as a pair); present when the function has a subsystem vendor other than 0000/ffff. */
  subsystem?: string;
  /** lspci `-vmm` `SVendor:` field: subsystem vendor name or `Unknown vendor 1028`; present like {@link PciFunctionNames.subsystem}. */
  subsystemVendorName?: string;
  /** lspci `-vmm` `SDevice:` field: subsystem name or `Device 1f22`; present like {@link PciFunctionNames.subsystem}. */
  subsystemDeviceName?: string;
}

/**
 * Where {@link PciIds.load} looks for the database when given no path, in
 * order, after `$PCI_IDS_PATH`. Each is also tried with `.gz` appended.
 * (pciutils: PCI_IDS_DIR / PCI_IDS in lib/Makefile; distributions install it
 * in one of these.)
 */
export const PCI_IDS_DEFAULT_PATHS: readonly string[] = [
  '/usr/share/misc/pci.ids',
  '/usr/share/hwdata/pci.ids',
  '/usr/share/pci.ids',
  '/var/lib/pciutils/pci.ids',
];

/** libpci's lookup buffer size for the names lspci prints (`char classbuf[128]`, `devbuf[128]`, … in lspci.c). */
const LSPCI_BUF = 128;
/** libpci's buffer for the `Subsystem:` line (`char ssnamebuf[256]` in lspci.c). */
const LSPCI_SSBUF = 256;

/** The kind of the entry being parsed (pciutils: the ID_* categories in lib/names.h). */
const enum Cat {
  None,
  Vendor,
  Device,
  Subsystem,
  GenSubsystem,
  Class,
  Subclass,
  ProgIf,
  Unknown,
}

const TAB = 9;
const SPACE = 32;
const LF = 10;
const CR = 13;
const HASH = 35;

/** Value of one hex digit, or -1 (pciutils: id_hex(), both cases accepted). */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Parses `count` hex digits of `s` at `pos`; -1 if any is not a hex digit. pciutils: id_hex(). */
function hexAt(s: string, pos: number, count: number): number {
  let x = 0;
  for (let i = 0; i < count; i++) {
    const d = hexDigit(s.charCodeAt(pos + i)); // NaN past the end → -1
    if (d < 0) return -1;
    x = (x << 4) | d;
  }
  return x;
}

function isWhite(c: number): boolean {
  return c === SPACE || c === TAB;
}

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, '0');
}

/**
 * lspci's truncation of a name that does not fit libpci's buffer: the
 * `size - 1` bytes snprintf() keeps, the last three replaced by `...`
 * (pciutils: format_name()). Counted in UTF-16 units, which equal bytes for
 * the ASCII pci.ids.
 */
function fit(s: string, size: number): string {
  return s.length >= size ? s.slice(0, size - 4) + '...' : s;
}

/**
 * pciutils: format_name(): one name with its number. `unknown` is the word
 * used when the name is missing (`Vendor`, `Device`, `Class`, …).
 */
function formatName(style: PciNameStyle, name: string | undefined, num: string, unknown: string, size = LSPCI_BUF): string {
  let s: string;
  if (style === 'numeric') s = num;
  else if (name === undefined) s = style === 'mixed' ? `${unknown} [${num}]` : `${unknown} ${num}`;
  else if (style === 'name') s = name;
  else s = `${name} [${num}]`;
  return fit(s, size);
}

/**
 * pciutils: format_name_pair(): vendor and device names with `vvvv:dddd`.
 * Note lspci's `Intel Corporation Device 2922`: with the vendor known, only
 * the device half of the number is printed (`num+5` in names.c).
 */
function formatNamePair(style: PciNameStyle, v: string | undefined, d: string | undefined, num: string, size = LSPCI_BUF): string {
  let s: string;
  if (style === 'numeric') s = num;
  else if (style === 'mixed') {
    if (v !== undefined && d !== undefined) s = `${v} ${d} [${num}]`;
    else if (v === undefined) s = `Device [${num}]`;
    else s = `${v} Device [${num}]`;
  } else {
    if (v !== undefined && d !== undefined) s = `${v} ${d}`;
    else if (v === undefined) s = `Device ${num}`;
    else s = `${v} Device ${num.slice(5)}`;
  }
  return fit(s, size);
}

/**
 * The IDE controller prog-if, composed from its bits as lspci does when
 * pci.ids has no entry (class 0101, bits 0x70 clear): e.g. 0x8a →
 * `Master SecP PriP`. With no bit set this is the empty string, as in
 * lspci (which then prints `(prog-if 00 [])`). pciutils: lib/names.c,
 * PCI_LOOKUP_PROGIF.
 */
function ideProgIf(pif: number): string {
  const parts: string[] = [];
  if (pif & 0x80) parts.push('Master');
  if (pif & 0x08) parts.push('SecP');
  if (pif & 0x04) parts.push('SecO');
  if (pif & 0x02) parts.push('PriP');
  if (pif & 0x01) parts.push('PriO');
  return parts.join(' ');
}

/**
 * A parsed `pci.ids` database: vendor, device, subsystem and class names
 * keyed by their numeric ids.
 *
 * Load it with {@link PciIds.load} (finds the installed database, `null`
 * when there is none) or {@link PciIds.system} (the same, loaded once and
 * cached), or parse text with {@link PciIds.parse}. Lookups return
 * `undefined` for unknown ids; the `format*` functions and
 * {@link describeFunction} add lspci's fallbacks and accept a `null`
 * database.
 *
 * Mirrors pciutils: lib/names-parse.c (id_parse_list()), lib/names-hash.c
 * (pci_id_insert(), pci_id_lookup()), lib/names.c (id_lookup_subsys()).
 */
export class PciIds {
  /** Where the database was read from (the `input` passed to {@link PciIds.parse}). */
  readonly source: string;
  /** Vendor names by vendor id. */
  private readonly vendors = new Map<number, string>();
  /** Device names by `vendor * 0x10000 + device`. */
  private readonly devices = new Map<number, string>();
  /** Subsystem names by `vendor * 0x10000 + device`, then `subvendor * 0x10000 + subdevice`. */
  private readonly subsystems = new Map<number, Map<number, string>>();
  /** Generic subsystem names (pci.ids `S` blocks) by `subvendor * 0x10000 + subdevice`. */
  private readonly genericSubsystems = new Map<number, string>();
  /** Base class names by base class. */
  private readonly classes = new Map<number, string>();
  /** Subclass names by `class << 8 | subclass`. */
  private readonly subclasses = new Map<number, string>();
  /** Prog-if names by the 24-bit class code. */
  private readonly progIfs = new Map<number, string>();

  private constructor(source: string) {
    this.source = source;
  }

  /** The {@link PciIds.system} result and the `$PCI_IDS_PATH` it was loaded under. */
  private static systemCache: { key: string; ids: PciIds | null } | undefined;

  /**
   * Finds and parses the installed `pci.ids`.
   *
   * With `path`, reads that file (or, like libpci's pci_open(), `path`
   * without `.gz` if `path` ends in `.gz` and is missing, or `path.gz` if
   * `path` is missing). Without, tries `$PCI_IDS_PATH` (when set and
   * non-empty), then each of {@link PCI_IDS_DEFAULT_PATHS}, each followed by
   * its `.gz` variant, and uses the first file that exists. Gzip-compressed
   * files are recognised by their magic bytes, whatever their name.
   *
   * Returns `null` when no file exists (no database installed): names are
   * then absent and the `format*` helpers print ids only, as lspci does.
   *
   * @throws {IommuError} `EINVAL` (with `input` = the file) when the file
   *   exists but is not a pci.ids: bad gzip data, a line that does not parse,
   *   a duplicate entry, or no entries at all (lspci would silently accept an
   *   empty file), or the path is a directory. `EACCES` / `EIO` when it
   *   cannot be read. Missing files are not errors.
   */
  static load(path?: string): PciIds | null {
    const candidates: string[] = [];
    const addWithVariants = (p: string): void => {
      if (p.endsWith('.gz')) candidates.push(p, p.slice(0, -3));
      else candidates.push(p, p + '.gz');
    };
    if (path !== undefined) addWithVariants(path);
    else {
      const env = process.env['PCI_IDS_PATH'];
      if (env !== undefined && env !== '') addWithVariants(env);
      for (const p of PCI_IDS_DEFAULT_PATHS) addWithVariants(p);
    }
    for (const file of candidates) {
      const data = readIfExists(file);
      if (data === null) continue;
      return PciIds.parse(decode(data, file), file);
    }
    return null;
  }

  /**
   * {@link PciIds.load} with no path, done on first call and cached: the
   * database is read and parsed only when a name is first needed. The cache
   * is keyed by `$PCI_IDS_PATH`, so changing it reloads.
   *
   * @throws {IommuError} as {@link PciIds.load}; errors are not cached.
   */
  static system(): PciIds | null {
    const key = process.env['PCI_IDS_PATH'] ?? '';
    if (PciIds.systemCache?.key !== key) PciIds.systemCache = { key, ids: PciIds.load() };
    return PciIds.systemCache.ids;
  }

  /**
   * Parses the text of a `pci.ids` file. Accepts what libpci accepts:
   * `#` comments (also indented), blank lines, CRLF line ends, vendor /
   * device / subsystem entries, the `C` class section (class / subclass /
   * prog-if), `S` generic-subsystem blocks, and skips other reserved
   * `X ...` blocks. One trailing space or tab of a name is dropped.
   *
   * @param text the file contents (already decompressed).
   * @param input what the text was read from, for error messages.
   * @throws {IommuError} `EINVAL` with `input` and the line number when a
   *   line does not parse (pciutils: "Parse error at FILE, line N"), an
   *   entry is duplicated ("Duplicate entry"), an `S` block names an
   *   unknown vendor ("Vendor does not exist"), or the text holds no
   *   vendor or class entry at all (not a pci.ids).
   */
  static parse(text: string, input: string): PciIds {
    const ids = new PciIds(input);
    let cat = Cat.None;
    let id1 = 0;
    let id2 = 0;
    let deviceKey = 0;
    let lineNo = 0;
    let entries = 0;
    const len = text.length;
    let start = text.charCodeAt(0) === 0xfeff ? 1 : 0; // tolerate a UTF-8 BOM

    const fail = (what: string): never => {
      throw new IommuError('EINVAL', `line ${lineNo}: ${what}; not a pci.ids database`, { input });
    };

    while (start < len) {
      lineNo++;
      let nl = text.indexOf('\n', start);
      if (nl < 0) nl = len;
      let end = nl;
      if (end > start && text.charCodeAt(end - 1) === CR) end--;
      const lineStart = start;
      start = nl + 1;

      // pciutils drops one trailing blank.
      if (end > lineStart && isWhite(text.charCodeAt(end - 1))) end--;
      // Skip blank lines and comments (a comment may be indented).
      let p = lineStart;
      while (p < end && isWhite(text.charCodeAt(p))) p++;
      if (p >= end || text.charCodeAt(p) === HASH) continue;

      p = lineStart;
      while (p < end && text.charCodeAt(p) === TAB) p++;
      const nest = p - lineStart;
      const c0 = text.charCodeAt(p);
      const c1 = text.charCodeAt(p + 1);

      let kind: Cat;
      let key = 0;
      if (nest === 0) {
        if (c0 === 67 /* C */ && c1 === SPACE) {
          id1 = hexAt(text, p + 2, 2);
          if (id1 < 0 || !isWhite(text.charCodeAt(p + 4))) fail('expected "C cc  class name"');
          kind = cat = Cat.Class;
          key = id1;
          p += 5;
        } else if (c0 === 83 /* S */ && c1 === SPACE) {
          id1 = hexAt(text, p + 2, 4);
          if (id1 < 0 || p + 6 !== end) fail('expected "S vvvv"');
          if (!ids.vendors.has(id1)) fail(`S block for vendor ${hex(id1, 4)}, which does not exist`);
          cat = Cat.GenSubsystem;
          continue;
        } else if (c0 >= 65 && c0 <= 90 && c1 === SPACE) {
          cat = Cat.Unknown; // reserved block: skip it and its nested lines
          continue;
        } else {
          id1 = hexAt(text, p, 4);
          if (id1 < 0 || !isWhite(text.charCodeAt(p + 4))) fail('expected "vvvv  vendor name"');
          kind = cat = Cat.Vendor;
          key = id1;
          p += 5;
        }
        id2 = 0;
      } else if (cat === Cat.Unknown) {
        continue;
      } else if (nest === 1) {
        switch (cat) {
          case Cat.Vendor:
          case Cat.Device:
          case Cat.Subsystem:
            id2 = hexAt(text, p, 4);
            if (id2 < 0 || !isWhite(text.charCodeAt(p + 4))) fail('expected "\\tdddd  device name"');
            kind = cat = Cat.Device;
            key = deviceKey = id1 * 0x10000 + id2;
            p += 5;
            break;
          case Cat.GenSubsystem:
            id2 = hexAt(text, p, 4);
            if (id2 < 0 || !isWhite(text.charCodeAt(p + 4))) fail('expected "\\tdddd  subsystem name"');
            kind = Cat.GenSubsystem;
            key = id1 * 0x10000 + id2;
            p += 5;
            break;
          case Cat.Class:
          case Cat.Subclass:
          case Cat.ProgIf:
            id2 = hexAt(text, p, 2);
            if (id2 < 0 || !isWhite(text.charCodeAt(p + 2))) fail('expected "\\tss  subclass name"');
            kind = cat = Cat.Subclass;
            key = (id1 << 8) | id2;
            p += 3;
            break;
          default:
            return fail('indented line outside a vendor or class block');
        }
      } else if (nest === 2) {
        switch (cat) {
          case Cat.Device:
          case Cat.Subsystem: {
            const sv = hexAt(text, p, 4);
            const sd = hexAt(text, p + 5, 4);
            if (sv < 0 || !isWhite(text.charCodeAt(p + 4)) || sd < 0 || !isWhite(text.charCodeAt(p + 9)))
              fail('expected "\\t\\tssvv ssdd  subsystem name"');
            kind = cat = Cat.Subsystem;
            key = sv * 0x10000 + sd;
            p += 10;
            break;
          }
          case Cat.Class:
          case Cat.Subclass:
          case Cat.ProgIf: {
            const pif = hexAt(text, p, 2);
            if (pif < 0 || !isWhite(text.charCodeAt(p + 2))) fail('expected "\\t\\tpp  prog-if name"');
            kind = cat = Cat.ProgIf;
            key = (id1 << 16) | (id2 << 8) | pif;
            p += 3;
            break;
          }
          default:
            return fail('doubly indented line outside a device or class block');
        }
      } else {
        return fail('more than two tabs of indentation');
      }

      while (p < end && isWhite(text.charCodeAt(p))) p++;
      if (p >= end) fail('entry without a name');
      const name = text.slice(p, end);

      let map: Map<number, string>;
      switch (kind) {
        case Cat.Vendor:
          map = ids.vendors;
          break;
        case Cat.Device:
          map = ids.devices;
          break;
        case Cat.Subsystem: {
          let m = ids.subsystems.get(deviceKey);
          if (m === undefined) ids.subsystems.set(deviceKey, (m = new Map()));
          map = m;
          break;
        }
        case Cat.GenSubsystem:
          map = ids.genericSubsystems;
          break;
        case Cat.Class:
          map = ids.classes;
          break;
        case Cat.Subclass:
          map = ids.subclasses;
          break;
        default:
          map = ids.progIfs;
          break;
      }
      if (map.has(key)) fail('duplicate entry');
      map.set(key, name);
      entries++;
    }
    if (ids.vendors.size === 0 && ids.classes.size === 0) {
      throw new IommuError('EINVAL', `no vendor or class entries (${entries} entries); not a pci.ids database`, { input });
    }
    return ids;
  }

  /** Number of vendors, devices, subsystems and classes parsed (for diagnostics). */
  get counts(): { vendors: number; devices: number; subsystems: number; classes: number; subclasses: number; progIfs: number } {
    let subsystems = this.genericSubsystems.size;
    for (const m of this.subsystems.values()) subsystems += m.size;
    return {
      vendors: this.vendors.size,
      devices: this.devices.size,
      subsystems,
      classes: this.classes.size,
      subclasses: this.subclasses.size,
      progIfs: this.progIfs.size,
    };
  }

  /** Vendor name (`Intel Corporation` for 0x8086), or `undefined`. pciutils: ID_VENDOR lookup. */
  vendorName(vendor: number): string | undefined {
    return this.vendors.get(vendor);
  }

  /** Device name for vendor:device, or `undefined`. pciutils: ID_DEVICE lookup. */
  deviceName(vendor: number, device: number): string | undefined {
    return this.devices.get(vendor * 0x10000 + device);
  }

  /**
   * Subsystem name for a device's subsystem ids, or `undefined`, looked up as
   * libpci does: the entry under the device, else an `S` block entry for
   * the subsystem ids, else (when the subsystem ids equal the device's ids)
   * the device name. As in libpci, the per-device entry is not consulted
   * when `vendor` or `device` is 0. pciutils: lib/names.c id_lookup_subsys().
   */
  subsystemName(vendor: number, device: number, subsystemVendor: number, subsystemDevice: number): string | undefined {
    const sub = subsystemVendor * 0x10000 + subsystemDevice;
    let name: string | undefined;
    if (vendor > 0 && device > 0) name = this.subsystems.get(vendor * 0x10000 + device)?.get(sub);
    name ??= this.genericSubsystems.get(sub);
    if (name === undefined && vendor === subsystemVendor && device === subsystemDevice) name = this.deviceName(vendor, device);
    return name;
  }

  /**
   * The name lspci shows for a 24-bit class code: the subclass name
   * (`SATA controller` for 0x010601), else the base class name, else
   * `undefined`. Use {@link formatClassName} for lspci's exact text, which
   * marks a base-class-only name with the number.
   */
  className(classCode: number): string | undefined {
    const c = this.classNames(classCode);
    return c.subclass ?? c.class;
  }

  /**
   * Names of the base class, subclass and prog-if of a 24-bit class code,
   * each absent when unknown: 0x010601 → `{ class: 'Mass storage
   * controller', subclass: 'SATA controller', progIf: 'AHCI 1.0' }`. The
   * prog-if is the pci.ids entry only (see {@link formatProgIf} for lspci's
   * IDE fallback).
   */
  classNames(classCode: number): PciClassNames {
    const cls = (classCode >>> 16) & 0xff;
    const sub = (classCode >>> 8) & 0xff;
    const out: PciClassNames = {};
    const c = this.classes.get(cls);
    if (c !== undefined) out.class = c;
    const s = this.subclasses.get((cls << 8) | sub);
    if (s !== undefined) out.subclass = s;
    const p = this.progIfs.get(classCode & 0xffffff);
    if (p !== undefined) out.progIf = p;
    return out;
  }

  /** {@link describeFunction} with this database. */
  describeFunction(fn: PciFunctionIds, style: PciNameStyle = 'name'): PciFunctionNames {
    return describeFunction(this, fn, style);
  }

}

/** Reads a file; `null` if it does not exist. Other failures are IommuErrors naming the file. */
function readIfExists(file: string): Buffer | null {
  try {
    if (!existsSync(file)) return null;
    if (statSync(file).isDirectory()) throw new IommuError('EINVAL', 'is a directory, not a pci.ids database', { input: file });
    return readFileSync(file);
  } catch (e) {
    if (e instanceof IommuError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new IommuError(code === 'EACCES' || code === 'EPERM' ? 'EACCES' : 'EIO', `cannot read: ${(e as Error).message}`, {
      input: file,
      cause: e,
    });
  }
}

/** Decompresses gzip data (by magic bytes, as gzopen() does) and decodes UTF-8. */
function decode(data: Buffer, file: string): string {
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
    try {
      data = gunzipSync(data);
    } catch (e) {
      throw new IommuError('EINVAL', `bad gzip data: ${(e as Error).message}; not a pci.ids database`, { input: file, cause: e });
    }
  }
  return data.toString('utf8');
}

/**
 * lspci's vendor name (`PCI_LOOKUP_VENDOR`, the `-vmm` `Vendor:` field):
 * `Intel Corporation`; unknown or no database: `Vendor 8086`; `'mixed'`:
 * `Intel Corporation [8086]` / `Vendor [8086]`; `'numeric'`: `8086`.
 * pciutils: lib/names.c pci_lookup_name(), format_name().
 */
export function formatVendorName(ids: PciIds | null, vendor: number, style: PciNameStyle = 'name'): string {
  return formatName(style, ids?.vendorName(vendor), hex(vendor, 4), 'Vendor');
}

/**
 * lspci's device name (`PCI_LOOKUP_DEVICE`, the `-vmm` `Device:` field):
 * the name, else `Device 2922` (`'mixed'`: `… [2922]` / `Device [2922]`;
 * `'numeric'`: `2922`). pciutils: lib/names.c pci_lookup_name().
 */
export function formatDeviceName(ids: PciIds | null, vendor: number, device: number, style: PciNameStyle = 'name'): string {
  return formatName(style, ids?.deviceName(vendor, device), hex(device, 4), 'Device');
}

/**
 * lspci's vendor and device (`PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE`, the
 * text after the class in an `lspci` line): `Intel Corporation 82801…`;
 * device unknown: `Intel Corporation Device 2922`; vendor unknown or no
 * database: `Device 8086:2922`. `'mixed'` (`lspci -nn`): `… [8086:2922]`,
 * `Intel Corporation Device [8086:2922]`, `Device [8086:2922]`.
 * `'numeric'`: `8086:2922`. Names longer than lspci's 128-byte buffer end in
 * `...` as in lspci. pciutils: lib/names.c format_name_pair().
 */
export function formatVendorDevice(ids: PciIds | null, vendor: number, device: number, style: PciNameStyle = 'name'): string {
  return formatNamePair(style, ids?.vendorName(vendor), ids?.deviceName(vendor, device), `${hex(vendor, 4)}:${hex(device, 4)}`);
}

/**
 * lspci's class name (`PCI_LOOKUP_CLASS`) for a 24-bit class code (the
 * prog-if byte is ignored): the subclass name (`SATA controller`); when only
 * the base class is known, its name with the number even without `-nn`
 * (`Mass storage controller [0106]`); when neither, `Class 0106`.
 * `'mixed'`: `SATA controller [0106]` / `Class [0106]`; `'numeric'`:
 * `0106`. pciutils: lib/names.c pci_lookup_name(), PCI_LOOKUP_CLASS.
 */
export function formatClassName(ids: PciIds | null, classCode: number, style: PciNameStyle = 'name'): string {
  const cls16 = (classCode >>> 8) & 0xffff;
  const parts = ids ? ids.classNames(classCode) : {};
  let name = parts.subclass;
  let st = style;
  if (name === undefined && parts.class !== undefined) {
    name = parts.class;
    if (st !== 'numeric') st = 'mixed'; // "Include full class number"
  }
  return formatName(st, name, hex(cls16, 4), 'Class');
}

/**
 * lspci's prog-if name (`PCI_LOOKUP_PROGIF`) for a 24-bit class code: the
 * pci.ids entry; for an IDE controller (class 0101) with no entry and bits
 * 0x70 clear, the bits spelled out (`Master SecP PriP` for 0x8a); else
 * `ProgIf 01` (`'mixed'`: `… [01]` / `ProgIf [01]`; `'numeric'`: `01`).
 * pciutils: lib/names.c pci_lookup_name(), PCI_LOOKUP_PROGIF.
 */
export function formatProgIf(ids: PciIds | null, classCode: number, style: PciNameStyle = 'name'): string {
  return formatName(style, progIfName(ids, classCode), hex(classCode & 0xff, 2), 'ProgIf');
}

/**
 * The prog-if name lspci `-v` shows in `(prog-if 8a [Master SecP PriP])`,
 * or `undefined` when there is none (lspci's PCI_LOOKUP_NO_NUMBERS): the
 * pci.ids entry, else lspci's IDE composition (class 0101, bits 0x70 clear),
 * which needs no database and is `''` for prog-if 00 (lspci prints
 * `(prog-if 00 [])`).
 */
export function progIfName(ids: PciIds | null, classCode: number): string | undefined {
  const pif = classCode & 0xff;
  const name = ids?.classNames(classCode).progIf;
  if (name !== undefined) return name;
  if (((classCode >>> 8) & 0xffff) === 0x0101 && !(pif & 0x70)) return ideProgIf(pif);
  return undefined;
}

/**
 * lspci's subsystem vendor name (`PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_VENDOR`,
 * the `-vmm` `SVendor:` field): the vendor name, else `Unknown vendor 1028`
 * (note: not `Vendor 1028`). pciutils: lib/names.c pci_lookup_name().
 */
export function formatSubsystemVendorName(ids: PciIds | null, subsystemVendor: number, style: PciNameStyle = 'name'): string {
  return formatName(style, ids?.vendorName(subsystemVendor), hex(subsystemVendor, 4), 'Unknown vendor');
}

/**
 * lspci's subsystem name (`PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE`, the
 * `-vmm` `SDevice:` field): {@link PciIds.subsystemName}, else
 * `Device 1f22`. pciutils: lib/names.c pci_lookup_name().
 */
export function formatSubsystemDeviceName(
  ids: PciIds | null,
  vendor: number,
  device: number,
  subsystemVendor: number,
  subsystemDevice: number,
  style: PciNameStyle = 'name',
): string {
  return formatName(style, ids?.subsystemName(vendor, device, subsystemVendor, subsystemDevice), hex(subsystemDevice, 4), 'Device');
}

/**
 * lspci `-v`'s `Subsystem:` line (`PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_VENDOR
 * | PCI_LOOKUP_DEVICE`): subsystem vendor name and subsystem name, with the
 * same fallbacks as {@link formatVendorDevice} on `ssvv:ssdd`, e.g.
 * `Dell Device 1f22`, `Device 1028:1f22`. Truncated at lspci's 256-byte
 * buffer. pciutils: lib/names.c, lspci.c show_terse().
 */
export function formatSubsystem(
  ids: PciIds | null,
  vendor: number,
  device: number,
  subsystemVendor: number,
  subsystemDevice: number,
  style: PciNameStyle = 'name',
): string {
  return formatNamePair(
    style,
    ids?.vendorName(subsystemVendor),
    ids?.subsystemName(vendor, device, subsystemVendor, subsystemDevice),
    `${hex(subsystemVendor, 4)}:${hex(subsystemDevice, 4)}`,
    LSPCI_SSBUF,
  );
}

/**
 * Everything lspci prints by name for one PCI function, with lspci's
 * fallbacks (see {@link PciFunctionNames}); `ids` may be `null` when no
 * database is installed, giving the id-only forms (`Class 0106`,
 * `Vendor 8086`, `Device 2922`, `Device 8086:2922`). Subsystem fields are
 * present only when `subsystemVendor` is given and is neither 0000 nor
 * ffff, as lspci prints them. pciutils: lspci.c show_terse(),
 * show_machine().
 */
export function describeFunction(ids: PciIds | null, fn: PciFunctionIds, style: PciNameStyle = 'name'): PciFunctionNames {
  const out: PciFunctionNames = {
    className: formatClassName(ids, fn.classCode, style),
    vendorName: formatVendorName(ids, fn.vendor, style),
    deviceName: formatDeviceName(ids, fn.vendor, fn.device, style),
    vendorDevice: formatVendorDevice(ids, fn.vendor, fn.device, style),
  };
  const progIf = progIfName(ids, fn.classCode);
  if (progIf !== undefined) out.progIf = fit(progIf, LSPCI_BUF);
  const sv = fn.subsystemVendor;
  if (sv !== undefined && sv !== 0 && sv !== 0xffff) {
    const sd = fn.subsystemDevice ?? 0;
    out.subsystem = formatSubsystem(ids, fn.vendor, fn.device, sv, sd, style);
    out.subsystemVendorName = formatSubsystemVendorName(ids, sv, style);
    out.subsystemDeviceName = formatSubsystemDeviceName(ids, fn.vendor, fn.device, sv, sd, style);
  }
  return out;
}
