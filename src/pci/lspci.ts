/**
 * Parse `lspci -vvnn` text (as pasted into bug reports) into reconstructed
 * PCI configuration spaces, so the same config-space code that reads real
 * sysfs `config` files can read a paste.
 *
 * What is rebuilt is only what lspci printed: IDs, class, revision, header
 * type, Command/Status, BARs and expansion ROM, bridge bus numbers, windows,
 * secondary status and bridge control, interrupt pin/line, the standard and
 * extended capability chains at the printed offsets with the correct
 * capability IDs, and the capability registers lspci decodes (PCIe
 * Capabilities, DevCap/DevCtl, link, slot and root registers, DevCap2/DevCtl2/LnkCap2, PM,
 * MSI, MSI-X, ACS, ARI, ATS, PASID, PRI, SR-IOV, AER masks, DSN, vendor and
 * designated vendor-specific headers, …). Everything else is 0. Checked
 * against real config bytes: the whole 64-byte header of every QEMU oracle
 * function matches except header type bit 7 (see {@link parseLspci}).
 * If the paste also contains `lspci -x`/`-xxx`/`-xxxx` hex dump lines, those
 * real bytes are laid over the reconstruction.
 *
 * Noise is tolerated: `pcilib: …` stderr text spliced into a line is cut out
 * and the line rejoined with its continuation, `lspci -t` trees and other
 * text between device blocks are skipped with one warning per gap, and
 * unrecognised lines inside a block are warned about and skipped.
 *
 * Linux: include/uapi/linux/pci_regs.h, drivers/pci/probe.c (`pci_scan_slot`).
 * pciutils: lspci.c (`show_device`, `show_verbose`, `show_htype1`), ls-caps.c,
 * ls-ecaps.c, ls-kernel.c.
 */

import { IommuError } from '../base/errno.js';
import { EXT_CAP_NAMES, STD_CAP_NAMES, lookupCapName } from './lspci/capnames.js';
import { decodeCapHeader, decodeCapLine, lastIdPair, REQUIRED_TAGS, type CapState, type DecodeSink } from './lspci/decode.js';
import { VendorNameSplitter } from './lspci/names.js';
import { CONFIG_SPACE_SIZE, applyFlags, get, hex, numberAfter, put } from './lspci/util.js';

/** One PCI function rebuilt from its `lspci -vvnn` block. */
export interface LspciFunction {
  /** `"0000:00:1f.2"` — domain added as 0000 when lspci printed none; lower-case hex. */
  bdf: string;
  /** Reconstructed config space, always 4096 bytes; bytes we could not know are 0. */
  config: Uint8Array;
  /**
   * How much of `config` lspci could see: 4096 if any extended capability
   * (offset >= 0x100) was listed, else 256; 64 if lspci showed
   * `<access denied>` for capabilities (non-root run). A hex dump in the
   * paste can raise it to the dump's length.
   */
  configSize: number;
  /** True if at least one extended capability line was printed. */
  extendedCapsVisible: boolean;
  /**
   * Power state from the PM capability `Status: Dn` line, or null without a
   * PM capability. lspci prints `D3` for PMCSR state 3, reported here as
   * `"D3hot"` (a function in D3cold cannot be read at all).
   */
  powerState: string | null;
  /** `Kernel driver in use:` or null. */
  driver: string | null;
  /** `Kernel modules:` list (empty when the line is missing). */
  kernelModules: string[];
  /** `IOMMU group: N` or null. */
  kernelGroup: number | null;
  /** `NUMA node: N` or null. */
  numaNode: number | null;
  /**
   * Names as lspci printed them, without the `[xxxx]` / `[xxxx:xxxx]` IDs.
   * lspci prints vendor and device names run together; the split is learned
   * from the same dump (see lspci/names.ts) and noted in `assumptions` when
   * it had to be guessed.
   */
  names: { className: string; vendor: string; device: string; subsystem: string | null };
  /** 1-based line of the device header. */
  line: number;
  /** Statements of what had to be assumed for this function (e.g. multifunction bit inferred). */
  assumptions: string[];
}

/** A line that could not be placed, or something worth knowing about the input. */
export interface LspciWarning {
  /** 1-based line number in the input. */
  line: number;
  message: string;
}

/** Result of {@link parseLspci}. */
export interface LspciParseResult {
  /** Functions in input order, one per device header line. */
  functions: LspciFunction[];
  warnings: LspciWarning[];
}

// ---------------------------------------------------------------------------
// Lines

interface Line {
  text: string;
  /** 1-based physical line where this logical line starts. */
  no: number;
}

const BDF_RE = /^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([01][0-9a-fA-F])\.([0-7]) (\S.*)$/;

/** True for a line that starts an lspci device block (`[dddd:]bb:dd.f <class>: …`). */
export function isLspciDeviceHeader(line: string): boolean {
  const m = BDF_RE.exec(line);
  return m !== null && (m[5] as string).includes(':');
}

const PCILIB = 'pcilib: ';

/**
 * Split into logical lines: CR/LF normalised, and `pcilib: …` stderr text
 * spliced into a line cut out with the line rejoined to its continuation
 * (the next physical line) unless that continuation is a device header.
 */
function logicalLines(text: string, warnings: LspciWarning[]): Line[] {
  const raw = text.split('\n');
  const out: Line[] = [];
  for (let i = 0; i < raw.length; i++) {
    const no = i + 1;
    let t = stripCr(raw[i] as string);
    let dropped = false;
    for (let guard = 0; guard < 64; guard++) {
      const p = t.indexOf(PCILIB);
      if (p < 0) break;
      const msg = t.slice(p).trim();
      const prefix = t.slice(0, p);
      if (prefix.trim() === '' && !prefix.includes('\t')) {
        warnings.push({ line: no, message: `stderr line skipped: "${clip(msg)}"` });
        dropped = true;
        break;
      }
      const next = raw[i + 1];
      if (next !== undefined && !isLspciDeviceHeader(stripCr(next))) {
        warnings.push({
          line: no,
          message: `stderr text "${clip(msg)}" was spliced into this line; removed it and joined the rest of the line from line ${no + 1}`,
        });
        i++;
        t = prefix + stripCr(next);
      } else {
        warnings.push({ line: no, message: `stderr text "${clip(msg)}" removed from the end of this line` });
        t = prefix;
      }
    }
    if (!dropped) out.push({ text: t, no });
  }
  return out;
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}

function clip(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// ---------------------------------------------------------------------------
// Per-function builder

interface ListedCap {
  state: CapState;
  /** Capability ID, null when the name was not recognised. */
  id: number | null;
  /** Extended capability version from `[100 v1]`. */
  version: number;
}

interface Builder {
  fn: LspciFunction;
  sink: DecodeSink;
  domain: number;
  bus: number;
  dev: number;
  func: number;
  classCode: number;
  /** Raw `<vendor> <device>` text and its vendor id (null without -nn). */
  nameText: string;
  vendorId: number | null;
  hasBusLine: boolean;
  subsysIds: [number, number] | null;
  std: ListedCap[];
  ext: ListedCap[];
  cur: ListedCap | null;
  /** Last depth-1 tag (for depth-2 continuation lines outside capabilities). */
  ctxTag: string;
  accessDenied: boolean;
  /** Leading spaces that make one indentation level, when the paste uses spaces instead of tabs. */
  spaceUnit: number;
  /** `Secondary status:` text (applied once the header type is known). */
  secStatusText: string | null;
  /** `BridgeCtl:` text including its continuation line. */
  bridgeCtlText: string;
  /** `Region N:` lines, `Expansion ROM at` and bridge window texts (applied once the header type is known). */
  regions: string[];
  romText: string | null;
  windows: { io: string | null; mem: string | null; pref: string | null };
  /** Hex dump lines (`lspci -x`): offset → 16 bytes. */
  hexDump: Map<number, number[]> | null;
  /** End of the hex dump (bytes). */
  hexBytes: number;
}

const COMMAND_FLAGS: ReadonlyArray<readonly [string, number]> = [
  ['I/O', 0x1], ['Mem', 0x2], ['BusMaster', 0x4], ['SpecCycle', 0x8], ['MemWINV', 0x10], ['VGASnoop', 0x20],
  ['ParErr', 0x40], ['Stepping', 0x80], ['SERR', 0x100], ['FastB2B', 0x200], ['DisINTx', 0x400],
];
const STATUS_FLAGS: ReadonlyArray<readonly [string, number]> = [
  ['INTx', 0x8], ['Cap', 0x10], ['66MHz', 0x20], ['UDF', 0x40], ['FastB2B', 0x80], ['ParErr', 0x100],
  ['>TAbort', 0x800], ['<TAbort', 0x1000], ['<MAbort', 0x2000], ['>SERR', 0x4000], ['<PERR', 0x8000],
];
const SEC_STATUS_FLAGS: ReadonlyArray<readonly [string, number]> = [
  ['66MHz', 0x20], ['FastB2B', 0x80], ['ParErr', 0x100],
  ['>TAbort', 0x800], ['<TAbort', 0x1000], ['<MAbort', 0x2000], ['<SERR', 0x4000], ['<PERR', 0x8000],
];
const BRIDGE_CTL_FLAGS: ReadonlyArray<readonly [string, number]> = [
  ['Parity', 0x1], ['SERR', 0x2], ['NoISA', 0x4], ['VGA', 0x8], ['VGA16', 0x10], ['MAbort', 0x20], ['>Reset', 0x40], ['FastB2B', 0x80],
  ['PriDiscTmr', 0x100], ['SecDiscTmr', 0x200], ['DiscTmrStat', 0x400], ['DiscTmrSERREn', 0x800],
];

/** Depth-1 tags lspci -vv prints that carry nothing we rebuild (accepted silently). */
const QUIET_TAGS = new Set([
  'DeviceName', 'Physical Slot',
  'Flags', 'BIST result', 'Memory window 0', 'Memory window 1', 'I/O window 0', 'I/O window 1', 'Module', 'Kernel module',
  'Product Name', 'Secondary status', 'BridgeCtl',
]);

function devselCode(t: string): number {
  if (t.includes('DEVSEL=medium')) return 1;
  if (t.includes('DEVSEL=slow')) return 2;
  if (t.includes('DEVSEL=fast')) return 0;
  return NaN;
}

function fmtBdf(domain: number, bus: number, dev: number, func: number): string {
  const d = domain.toString(16).padStart(4, '0');
  return `${d}:${bus.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${func}`;
}

/** Find `" [cccc]: "` (the class code after the class name) without backtracking. */
function findClassBracket(rest: string): { name: string; code: number; after: string } | null {
  let from = 0;
  for (;;) {
    const i = rest.indexOf(']:', from);
    if (i < 0) return null;
    if (i >= 6 && rest[i - 5] === '[' && rest[i - 6] === ' ') {
      const code = hex(rest.slice(i - 4, i));
      if (Number.isFinite(code)) return { name: rest.slice(0, i - 6), code, after: rest.slice(i + 2).trimStart() };
    }
    from = i + 1;
  }
}

/** Leading indentation depth: tabs count one level each, leading spaces count `unit` per level. */
function indentDepth(t: string, b: Builder | null): { depth: number; body: string } {
  let i = 0;
  let tabs = 0;
  while (t[i] === '\t') {
    tabs++;
    i++;
  }
  let spaces = 0;
  while (t[i] === ' ') {
    spaces++;
    i++;
  }
  const body = t.slice(i);
  if (tabs > 0 || spaces === 0) return { depth: tabs, body };
  if (b !== null && b.spaceUnit === 0) b.spaceUnit = spaces;
  const unit = b !== null && b.spaceUnit > 0 ? b.spaceUnit : 8;
  return { depth: Math.max(1, Math.round(spaces / unit)), body };
}

const HEXDUMP_RE = /^([0-9a-f]{2,3}): ((?:[0-9a-f]{2} ){15}[0-9a-f]{2})\s*$/;

// ---------------------------------------------------------------------------

/**
 * Parse `lspci -vvnn` output (also `-vvvnn`, `-vvnnk`, with or without a
 * leading `lspci -tvnn` tree) into one {@link LspciFunction} per device
 * header line, in input order.
 *
 * Header type (0x0e): 1 when lspci printed a `Bus: primary=…` line, 2 when
 * that bridge is of class 0607 (CardBus), else 0. Bit 7 (multi-function) is
 * not printed by lspci; it is set for every function of a slot that lists
 * more than one function, and for any function number > 0 (as Linux
 * `pci_scan_slot` does); inferring it for function 0 is noted in
 * `assumptions`.
 *
 * Capabilities are written at the printed offsets, chained in the printed
 * order (last next pointer 0), with the ID that pciutils' name implies; an
 * unrecognised name keeps its place in the chain with ID 0 and a warning.
 *
 * Never throws for bad text inside a device block: such lines become
 * `warnings` (with their line number) and parsing continues.
 *
 * @param text the lspci output
 * @param inputName file name or label of the input, used in the error
 * @throws IommuError `EINVAL` (with `input` = `inputName`) when the text has
 *   no device header line at all (empty input, or not lspci output).
 */
export function parseLspci(text: string, inputName: string): LspciParseResult {
  const warnings: LspciWarning[] = [];
  const lines = logicalLines(text, warnings);
  const builders: Builder[] = [];
  const names = new VendorNameSplitter();
  let noIdsWarned = false;

  let b: Builder | null = null;
  // gap = run of lines outside any device block
  let gap: { first: number; last: number; count: number; tree: boolean; warning: LspciWarning | null } | null = null;

  const closeGap = (): void => {
    if (gap !== null && gap.warning !== null) {
      const range = gap.first === gap.last ? `line ${gap.first}` : `lines ${gap.first}-${gap.last}`;
      gap.warning.message =
        `${range}: ${gap.count} line${gap.count === 1 ? '' : 's'} outside any device block skipped` +
        (gap.tree ? ' (looks like `lspci -t` tree output)' : ' (not `lspci -vv` device text)');
    }
    gap = null;
  };

  const warn = (line: number, message: string): void => {
    warnings.push({ line, message });
  };

  for (const { text: t, no } of lines) {
    const hm = BDF_RE.exec(t);
    if (hm !== null && (hm[5] as string).includes(':')) {
      closeGap();
      b = startDevice(hm, no);
      builders.push(b);
      continue;
    }
    if (t.trim() === '') {
      b = null;
      continue;
    }
    if (b === null) {
      if (gap === null) gap = { first: no, last: no, count: 0, tree: false, warning: null };
      gap.last = no;
      gap.count++;
      if (/^\s*[-+|\\`]/.test(t) || t.includes('-[')) gap.tree = true;
      if (gap.warning === null) {
        gap.warning = { line: no, message: '' };
        warnings.push(gap.warning);
      }
      continue;
    }
    const hx = HEXDUMP_RE.exec(t);
    if (hx !== null) {
      const base = parseInt(hx[1] as string, 16);
      const bytes = (hx[2] as string).split(' ');
      if (base % 16 === 0 && base + 16 <= CONFIG_SPACE_SIZE) {
        // real bytes from lspci -x/-xxx/-xxxx, laid over the reconstruction in finish()
        if (b.hexDump === null) b.hexDump = new Map();
        b.hexDump.set(base, bytes.map((x) => parseInt(x, 16)));
        b.hexBytes = Math.max(b.hexBytes, base + 16);
      }
      continue;
    }
    const { depth, body } = indentDepth(t, b);
    if (depth === 0) {
      warn(no, `unrecognised line in the block of ${b.fn.bdf} skipped: "${clip(t)}"`);
      continue;
    }
    if (depth === 1) {
      b.cur = null;
      deviceLine(b, body, no);
      continue;
    }
    // depth >= 2
    if (b.cur !== null) {
      decodeCapLine(b.sink, b.cur.state, body, depth);
    } else if (b.ctxTag === 'BridgeCtl') {
      b.bridgeCtlText += ` ${body}`;
    } else if (b.ctxTag === '') {
      warn(no, `indented line with nothing to belong to in the block of ${b.fn.bdf} skipped: "${clip(body)}"`);
    }
  }
  closeGap();

  if (builders.length === 0) {
    const what = text.trim() === '' ? 'the input is empty' : `none of its ${lines.length} lines is an lspci device header`;
    throw new IommuError(
      'EINVAL',
      `not lspci -vvnn output: ${what} (expected lines like "00:1f.2 SATA controller [0106]: Intel Corporation … [8086:2922]")`,
      { input: inputName },
    );
  }

  // names: learn vendor names from every header and Subsystem line, then split
  for (const x of builders) {
    if (x.vendorId !== null) names.learn(x.nameText, x.vendorId);
    if (x.subsysIds !== null && x.fn.names.subsystem !== null) names.learn(x.fn.names.subsystem, x.subsysIds[0]);
  }
  for (const x of builders) finish(x, names);
  inferMultifunction(builders);
  return { functions: builders.map((x) => x.fn), warnings };

  // -------------------------------------------------------------------------

  function startDevice(hm: RegExpExecArray, no: number): Builder {
    const domain = hm[1] !== undefined ? parseInt(hm[1], 16) : 0;
    const bus = parseInt(hm[2] as string, 16);
    const dev = parseInt(hm[3] as string, 16);
    const func = Number(hm[4]);
    const rest = hm[5] as string;
    const cfg = new Uint8Array(CONFIG_SPACE_SIZE);
    const fn: LspciFunction = {
      bdf: fmtBdf(domain, bus, dev, func),
      config: cfg,
      configSize: 256,
      extendedCapsVisible: false,
      powerState: null,
      driver: null,
      kernelModules: [],
      kernelGroup: null,
      numaNode: null,
      names: { className: '', vendor: '', device: '', subsystem: null },
      line: no,
      assumptions: [],
    };
    const nb: Builder = {
      fn, sink: { cfg, powerState: null }, domain, bus, dev, func, classCode: 0, nameText: '', vendorId: null,
      hasBusLine: false, subsysIds: null, std: [], ext: [], cur: null, ctxTag: '', accessDenied: false, spaceUnit: 0,
      secStatusText: null, bridgeCtlText: '', regions: [], romText: null, windows: { io: null, mem: null, pref: null },
      hexDump: null, hexBytes: 0,
    };
    const cls = findClassBracket(rest);
    if (cls === null) {
      // lspci -vv without -nn: "00:1f.2 SATA controller: Intel Corporation …"
      const c = rest.indexOf(': ');
      fn.names.className = c >= 0 ? rest.slice(0, c) : rest;
      fn.names.device = c >= 0 ? rest.slice(c + 2) : '';
      fn.assumptions.push('header has no [cccc] class / [vvvv:dddd] ids (lspci run without -nn?): vendor, device and class left 0');
      if (!noIdsWarned) {
        warn(no, 'device header without numeric ids; run lspci with -nn so vendor/device/class can be rebuilt');
        noIdsWarned = true;
      }
      return nb;
    }
    fn.names.className = cls.name;
    nb.classCode = cls.code;
    put(cfg, 0x0a, 2, cls.code);
    const ids = lastIdPair(cls.after);
    let suffix = cls.after;
    if (ids !== null) {
      nb.vendorId = ids[0];
      put(cfg, 0x00, 2, ids[0]);
      put(cfg, 0x02, 2, ids[1]);
      nb.nameText = cls.after.slice(0, ids[2]).trim();
      suffix = cls.after.slice(ids[2] + 11);
    } else {
      nb.nameText = cls.after.trim();
      fn.assumptions.push('header has no [vvvv:dddd] ids: vendor and device IDs left 0');
      if (!noIdsWarned) {
        warn(no, 'device header without [vvvv:dddd] ids; run lspci with -nn so vendor/device can be rebuilt');
        noIdsWarned = true;
      }
    }
    const rev = /\(rev ([0-9a-fA-F]{2})\)/.exec(suffix);
    if (rev) put(cfg, 0x08, 1, parseInt(rev[1] as string, 16));
    const pi = /\(prog-if ([0-9a-fA-F]{2})/.exec(suffix);
    if (pi) put(cfg, 0x09, 1, parseInt(pi[1] as string, 16));
    return nb;
  }

  function deviceLine(x: Builder, body: string, no: number): void {
    const cfg = x.sink.cfg;
    if (body.startsWith('Capabilities:')) {
      x.ctxTag = 'Capabilities';
      capabilityLine(x, body.slice('Capabilities:'.length).trim(), no);
      return;
    }
    if (body.startsWith('Expansion ROM at')) {
      x.ctxTag = 'Expansion ROM';
      x.romText = body.slice('Expansion ROM at'.length).trim();
      return;
    }
    if (body.startsWith('16-bit legacy interface ports at')) {
      x.ctxTag = '16-bit legacy interface ports';
      return;
    }
    if (body.startsWith('!!!')) {
      x.ctxTag = '!!!';
      warn(no, `lspci reported for ${x.fn.bdf}: ${clip(body.slice(3).trim(), 120)}`);
      return;
    }
    const c = body.indexOf(':');
    const tag = c > 0 ? body.slice(0, c) : '';
    const val = c > 0 ? body.slice(c + 1).trim() : '';
    x.ctxTag = tag;
    if (/^Region \d$/.test(tag)) {
      x.regions.push(body);
      return;
    }
    switch (tag) {
      case 'Subsystem': {
        const ids = lastIdPair(val);
        if (ids !== null) {
          x.subsysIds = [ids[0], ids[1]];
          x.fn.names.subsystem = val.slice(0, ids[2]).trim();
        } else x.fn.names.subsystem = val;
        return;
      }
      case 'Control':
        applyFlags(cfg, 0x04, 2, val, COMMAND_FLAGS);
        return;
      case 'Status': {
        applyFlags(cfg, 0x06, 2, val, STATUS_FLAGS);
        const ds = devselCode(val);
        if (Number.isFinite(ds)) put(cfg, 0x06, 2, (get(cfg, 0x06, 2) & ~0x600) | (ds << 9));
        return;
      }
      case 'Latency': {
        const lat = numberAfter(val, '');
        if (Number.isFinite(lat)) put(cfg, 0x0d, 1, lat);
        const cls = numberAfter(val, 'Cache Line Size:');
        if (Number.isFinite(cls)) put(cfg, 0x0c, 1, cls / 4);
        const mn = /(\d+)ns min/.exec(val);
        if (mn) put(cfg, 0x3e, 1, Math.round(Number(mn[1]) / 250));
        const mx = /(\d+)ns max/.exec(val);
        if (mx) put(cfg, 0x3f, 1, Math.round(Number(mx[1]) / 250));
        return;
      }
      case 'Interrupt': {
        // "pin A routed to IRQ 11": PCI_INTERRUPT_PIN; the IRQ is the kernel's (sysfs irq), written to
        // PCI_INTERRUPT_LINE when it fits, which matches the register for legacy-routed interrupts only
        const pin = /pin ([A-D])/.exec(val);
        if (pin) put(cfg, 0x3d, 1, (pin[1] as string).charCodeAt(0) - 64);
        const irq = numberAfter(val, 'routed to IRQ');
        if (Number.isFinite(irq) && irq < 0xff) put(cfg, 0x3c, 1, irq);
        return;
      }
      case 'IOMMU group': {
        const g = numberAfter(val, '');
        if (Number.isFinite(g)) x.fn.kernelGroup = g;
        else warn(no, `unreadable IOMMU group line for ${x.fn.bdf}: "${clip(val)}"`);
        return;
      }
      case 'NUMA node': {
        const n = /^-?\d+/.exec(val);
        if (n) x.fn.numaNode = Number(n[0]);
        return;
      }
      case 'Kernel driver in use':
        x.fn.driver = val === '' ? null : val;
        return;
      case 'Kernel modules':
        x.fn.kernelModules = val.split(',').map((s) => s.trim()).filter((s) => s !== '');
        return;
      case 'Bus': {
        // "primary=00, secondary=01, subordinate=01, sec-latency=0"
        x.hasBusLine = true;
        const p = numberAfter(val, 'primary=', 16);
        const s = numberAfter(val, 'secondary=', 16);
        const sub = numberAfter(val, 'subordinate=', 16);
        const lat = numberAfter(val, 'sec-latency=');
        if (Number.isFinite(p)) put(cfg, 0x18, 1, p);
        if (Number.isFinite(s)) put(cfg, 0x19, 1, s);
        if (Number.isFinite(sub)) put(cfg, 0x1a, 1, sub);
        if (Number.isFinite(lat)) put(cfg, 0x1b, 1, lat);
        if (!Number.isFinite(p) || !Number.isFinite(s) || !Number.isFinite(sub)) {
          warn(no, `incomplete Bus: line for ${x.fn.bdf}: "${clip(val)}"`);
        }
        return;
      }
      case 'I/O behind bridge':
        x.windows.io = val;
        return;
      case 'Memory behind bridge':
        x.windows.mem = val;
        return;
      case 'Prefetchable memory behind bridge':
        x.windows.pref = val;
        return;
      case 'Secondary status':
        x.secStatusText = val;
        return;
      case 'BridgeCtl':
        x.bridgeCtlText += ` ${val}`;
        return;
      default:
        if (QUIET_TAGS.has(tag)) return;
        warn(no, `unrecognised line in the block of ${x.fn.bdf} skipped: "${clip(body)}"`);
    }
  }

  function capabilityLine(x: Builder, rest: string, no: number): void {
    if (rest.startsWith('<access denied>')) {
      x.accessDenied = true;
      return;
    }
    const m = /^\[([0-9a-fA-F]{1,3})(?: v(\d+))?\] ?(.*)$/.exec(rest);
    if (m === null) {
      warn(no, `unreadable Capabilities line for ${x.fn.bdf} skipped: "${clip(rest)}"`);
      return;
    }
    const off = parseInt(m[1] as string, 16);
    const version = m[2] !== undefined ? Number(m[2]) : 1;
    let capText = (m[3] as string).trim();
    if (capText.startsWith('<chain looped>') || capText.startsWith('<chain broken>')) {
      warn(no, `lspci found a broken capability chain in ${x.fn.bdf} at [${m[1]}]: ${capText}`);
      x.fn.assumptions.push(`capability chain ends at [${m[1]}] where lspci reported ${capText}`);
      return;
    }
    const ext = off >= 0x100;
    const list = ext ? x.ext : x.std;
    if ((off & 3) !== 0 || (!ext && off < 0x40) || off > 0xffc) {
      warn(no, `capability offset [${m[1]}] of ${x.fn.bdf} is not a valid ${ext ? 'extended' : 'standard'} capability offset; skipped`);
      return;
    }
    if (x.std.some((c) => c.state.off === off) || x.ext.some((c) => c.state.off === off)) {
      warn(no, `capability offset [${m[1]}] of ${x.fn.bdf} listed twice; second one skipped`);
      return;
    }
    if (ext && capText.endsWith('<?>')) capText = capText.slice(0, -3).trimEnd();
    let name = lookupCapName(ext ? EXT_CAP_NAMES : STD_CAP_NAMES, capText);
    if (name === null) {
      const idm = ext ? /^Extended Capability ID (0x[0-9a-fA-F]+|\d+)/.exec(capText) : /^Capability ID (0x[0-9a-fA-F]+|\d+)/.exec(capText);
      if (idm) name = { id: Number(idm[1]), kind: '' };
    }
    const state: CapState = { off, kind: name?.kind ?? '', ext, line: no, text: capText, tag: '', tagsSeen: new Set() };
    const listed: ListedCap = { state, id: name?.id ?? null, version };
    if (name === null) {
      warn(no, `unknown ${ext ? 'extended ' : ''}capability "${clip(capText, 60)}" at [${m[1]}] of ${x.fn.bdf}: kept in the chain with ID 0`);
    }
    list.push(listed);
    x.cur = listed;
    decodeCapHeader(x.sink, state);
  }
}

function finish(x: Builder, names: VendorNameSplitter): void {
  const cfg = x.sink.cfg;
  const fn = x.fn;

  // header type (PCI_HEADER_TYPE): 1 = bridge (Bus: line), 2 = CardBus
  let htype = 0;
  if (x.hasBusLine) htype = x.classCode === 0x0607 ? 2 : 1;
  else if (x.classCode === 0x0604 || x.classCode === 0x0609) {
    htype = 1;
    fn.assumptions.push(`header type 1 assumed from class ${x.classCode.toString(16).padStart(4, '0')} (no Bus: line printed); bus numbers unknown`);
  } else if (x.classCode === 0x0607) {
    htype = 2;
    fn.assumptions.push('header type 2 (CardBus) assumed from class 0607 (no Bus: line printed)');
  }
  put(cfg, 0x0e, 1, htype);

  if (htype === 1) {
    if (x.secStatusText !== null) {
      applyFlags(cfg, 0x1e, 2, x.secStatusText, SEC_STATUS_FLAGS);
      const ds = devselCode(x.secStatusText);
      if (Number.isFinite(ds)) put(cfg, 0x1e, 2, (get(cfg, 0x1e, 2) & ~0x600) | (ds << 9));
    }
    if (x.bridgeCtlText !== '') applyFlags(cfg, 0x3e, 2, x.bridgeCtlText, BRIDGE_CTL_FLAGS);
    bridgeWindows(cfg, x.windows);
  }
  baseAddresses(cfg, htype, x.regions, x.romText);

  // subsystem IDs live in the header for types 0 (0x2c) and 2 (0x40); type 1 has them in the SSVID capability
  if (x.subsysIds !== null) {
    if (htype === 0) {
      put(cfg, 0x2c, 2, x.subsysIds[0]);
      put(cfg, 0x2e, 2, x.subsysIds[1]);
    } else if (htype === 2) {
      put(cfg, 0x40, 2, x.subsysIds[0]);
      put(cfg, 0x42, 2, x.subsysIds[1]);
    }
  }

  // standard capability chain
  const ptrReg = htype === 2 ? 0x14 : 0x34;
  if (x.std.length > 0) {
    put(cfg, ptrReg, 1, x.std[0]!.state.off);
    x.std.forEach((c, i) => {
      put(cfg, c.state.off, 1, c.id ?? 0);
      put(cfg, c.state.off + 1, 1, x.std[i + 1]?.state.off ?? 0);
    });
  }
  if (x.std.length > 0 || x.accessDenied) put(cfg, 0x06, 1, get(cfg, 0x06, 1) | 0x10); // PCI_STATUS_CAP_LIST

  // extended capability chain
  x.ext.forEach((c, i) => {
    const next = x.ext[i + 1]?.state.off ?? 0;
    put(cfg, c.state.off, 4, (((c.id ?? 0) & 0xffff) | ((c.version & 0xf) << 16) | ((next & 0xfff) << 20)) >>> 0);
  });
  if (x.ext.length > 0 && x.ext[0]!.state.off !== 0x100) {
    fn.assumptions.push(
      `first extended capability printed at [${x.ext[0]!.state.off.toString(16)}], not [100]: the chain as written cannot be found from 0x100`,
    );
  }

  // truncated capability bodies
  for (const c of [...x.std, ...x.ext]) {
    const req = REQUIRED_TAGS[c.state.kind];
    if (req === undefined) continue;
    const missing = req.filter((t) => !c.state.tagsSeen.has(t));
    if (missing.length > 0) {
      fn.assumptions.push(
        `${c.state.text} at [${c.state.off.toString(16)}] has no ${missing.join('/')} line (truncated paste?): those registers left 0`,
      );
    }
  }

  fn.extendedCapsVisible = x.ext.length > 0;
  fn.configSize = x.accessDenied ? 64 : x.ext.length > 0 ? 4096 : 256;
  if (x.accessDenied) {
    fn.assumptions.push('lspci showed <access denied> for capabilities (not run as root): only the first 64 bytes were visible, capability list unknown');
  }

  if (x.sink.powerState !== null) fn.powerState = x.sink.powerState === 'D3' ? 'D3hot' : x.sink.powerState;

  const express = x.std.find((c) => c.id === 0x10);
  if (express !== undefined && x.ext.length === 0 && !x.accessDenied) {
    const portType = (get(cfg, express.state.off + 2, 2) >> 4) & 0xf;
    if (fn.powerState !== null && fn.powerState.startsWith('D3')) {
      fn.assumptions.push(
        `PCIe function in ${fn.powerState}: lspci could not read its extended config space, so ACS/AER/ARI and other extended capabilities are unknown (not absent)`,
      );
    } else if (portType === 4 || portType === 5 || portType === 6) {
      // root, upstream and downstream ports: ACS decides IOMMU grouping, so say it is unknown
      fn.assumptions.push(
        'PCIe port shows no extended capabilities although not in D3: either it has none or lspci could not read beyond 0x100 (then ACS is unknown, not absent)',
      );
    }
  }

  // hex dump lines (lspci -x/-xxx/-xxxx) are real bytes: lay them over the reconstruction
  if (x.hexDump !== null) {
    for (const [base, bytes] of x.hexDump) bytes.forEach((v, i) => put(cfg, base + i, 1, v));
    fn.configSize = Math.max(fn.configSize, x.hexBytes <= 64 ? 64 : x.hexBytes <= 256 ? 256 : 4096);
    if (x.hexBytes > 256) fn.extendedCapsVisible = true;
  }

  // names
  if (x.vendorId !== null) {
    const s = names.split(x.nameText, x.vendorId);
    fn.names.vendor = s.vendor;
    fn.names.device = s.device;
    if (s.how === 'guess') fn.assumptions.push(`vendor name guessed as "${s.vendor}" (lspci prints vendor and device names run together)`);
    if (s.how === 'unknown') fn.assumptions.push('could not tell the vendor name from the device name; names.device holds both');
  }
}

/** A hex address as [low 32 bits, high 32 bits]; null if not hex. */
function addr64(h: string | undefined): [number, number] | null {
  if (h === undefined || !/^[0-9a-fA-F]{1,16}$/.test(h)) return null;
  return [parseInt(h.slice(-8), 16), h.length > 8 ? parseInt(h.slice(0, -8), 16) : 0];
}

/**
 * BARs from `Region N:` lines and the expansion ROM BAR. `[virtual]` regions
 * (known to the kernel, not in config space) are skipped; `<unassigned>` and
 * `<ignored>` ones get only their type bits.
 *
 * Linux: pci_regs.h PCI_BASE_ADDRESS_*, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS1.
 * pciutils: lspci.c `show_bases`, `show_rom`.
 */
function baseAddresses(cfg: Uint8Array, htype: number, regions: string[], rom: string | null): void {
  const nbars = htype === 0 ? 6 : htype === 1 ? 2 : 1;
  for (const r of regions) {
    const m = /^Region (\d): (Memory at|I\/O ports at) (\S+)(.*)$/.exec(r);
    if (m === null) continue;
    const n = Number(m[1]);
    const rest = m[4] as string;
    if (n >= nbars || rest.includes('[virtual]')) continue;
    const at = 0x10 + 4 * n;
    const a = addr64(m[3]);
    if (m[2] === 'I/O ports at') {
      if (a !== null) put(cfg, at, 4, ((a[0] & ~3) | 1) >>> 0);
      continue;
    }
    const is64 = rest.includes('(64-bit');
    let flags = rest.includes('(low-1M') ? 0x2 : is64 ? 0x4 : 0;
    if (/[ (]prefetchable\)/.test(rest)) flags |= 0x8;
    put(cfg, at, 4, ((a !== null ? a[0] & ~0xf : 0) | flags) >>> 0);
    if (is64 && n + 1 < nbars) put(cfg, at + 4, 4, a !== null ? a[1] : 0);
  }
  if (rom !== null && !rom.includes('[virtual]')) {
    const a = addr64(rom.split(' ')[0]);
    if (a !== null) put(cfg, htype === 1 ? 0x38 : 0x30, 4, ((a[0] & ~0x7ff) | (rom.includes('[disabled]') ? 0 : 1)) >>> 0);
  }
}

/**
 * Type 1 bridge windows from `I/O behind bridge:`, `Memory behind bridge:`
 * and `Prefetchable memory behind bridge:`. A `[disabled]` window without
 * addresses keeps only its (read-only) 32/64-bit type bits.
 *
 * Linux: pci_regs.h PCI_IO_BASE…PCI_IO_LIMIT_UPPER16. pciutils: lspci.c `show_htype1`.
 */
function bridgeWindows(cfg: Uint8Array, w: { io: string | null; mem: string | null; pref: string | null }): void {
  const range = (t: string): [[number, number], [number, number]] | null => {
    const m = /^([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16})/.exec(t);
    const lo = addr64(m?.[1]);
    const hi = addr64(m?.[2]);
    return lo !== null && hi !== null ? [lo, hi] : null;
  };
  if (w.io !== null) {
    const r = range(w.io);
    const t32 = w.io.includes('[32-bit]') || (r !== null && r[1][0] > 0xffff) ? 1 : 0;
    if (r !== null) {
      put(cfg, 0x1c, 1, ((r[0][0] >>> 8) & 0xf0) | t32);
      put(cfg, 0x1d, 1, ((r[1][0] >>> 8) & 0xf0) | t32);
      if (t32) {
        put(cfg, 0x30, 2, r[0][0] >>> 16);
        put(cfg, 0x32, 2, r[1][0] >>> 16);
      }
    } else if (t32) {
      put(cfg, 0x1c, 1, 1);
      put(cfg, 0x1d, 1, 1);
    }
  }
  if (w.mem !== null) {
    const r = range(w.mem);
    if (r !== null) {
      put(cfg, 0x20, 2, (r[0][0] >>> 16) & 0xfff0);
      put(cfg, 0x22, 2, (r[1][0] >>> 16) & 0xfff0);
    }
  }
  if (w.pref !== null) {
    const r = range(w.pref);
    const m = /^([0-9a-fA-F]+)-/.exec(w.pref);
    const t64 = w.pref.includes('[64-bit]') || (m !== null && (m[1] as string).length > 8) || (r !== null && r[1][1] !== 0) ? 1 : 0;
    if (r !== null) {
      put(cfg, 0x24, 2, ((r[0][0] >>> 16) & 0xfff0) | t64);
      put(cfg, 0x26, 2, ((r[1][0] >>> 16) & 0xfff0) | t64);
      if (t64) {
        put(cfg, 0x28, 4, r[0][1]);
        put(cfg, 0x2c, 4, r[1][1]);
      }
    } else if (t64) {
      put(cfg, 0x24, 2, 1);
      put(cfg, 0x26, 2, 1);
    }
  }
}

/**
 * Header type bit 7 (PCI_HEADER_TYPE_MFD): lspci -vv does not print it. Set it
 * for each function of a slot with more than one listed function and for any
 * function number > 0 (Linux `pci_scan_slot` scans functions 1-7 only when
 * function 0 says multi-function, so a listed fn > 0 implies it, and
 * `pci_setup_device` treats fn > 0 as part of a multi-function device).
 */
function inferMultifunction(builders: Builder[]): void {
  const slots = new Map<string, Builder[]>();
  for (const x of builders) {
    const key = `${x.domain}:${x.bus}:${x.dev}`;
    let l = slots.get(key);
    if (l === undefined) slots.set(key, (l = []));
    l.push(x);
  }
  for (const group of slots.values()) {
    const funcs = new Set(group.map((x) => x.func));
    for (const x of group) {
      if (x.hexDump !== null && x.hexBytes > 0x0e) continue; // the real header type byte is known
      if (x.func > 0 || funcs.size > 1) {
        put(x.sink.cfg, 0x0e, 1, get(x.sink.cfg, 0x0e, 1) | 0x80);
        if (x.func === 0) {
          const others = [...funcs].filter((f) => f !== 0).sort().map((f) => `.${f}`).join(', ');
          x.fn.assumptions.push(`multi-function bit (header type bit 7) inferred: functions ${others} of the same slot are listed too`);
        }
      }
    }
  }
}

