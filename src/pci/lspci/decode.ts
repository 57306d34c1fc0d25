/**
 * Capability bodies: turn the lines lspci prints under a `Capabilities:` line
 * back into register bits.
 *
 * Each capability kind has a table of sub-register tags (`DevCap2:`,
 * `ACSCtl:`, …) giving the register offset within the capability, its width,
 * and the `Name+`/`Name-` flags lspci prints for it (the inverse of pciutils'
 * `FLAG(reg, PCI_…)` calls). Continuation lines (three tabs deep) belong to
 * the tag of the line above; a continuation that starts with its own
 * `Word:` (e.g. `AtomicOpsCap:` under `DevCap2:`, `Changed:` under `SltSta:`)
 * is first looked up as `Tag/Word` and falls back to `Tag`.
 *
 * Only what lspci prints can be rebuilt; every other bit stays 0.
 *
 * Linux: include/uapi/linux/pci_regs.h. pciutils: ls-caps.c, ls-ecaps.c,
 * ls-caps-vendor.c.
 */

import { PCIE_PORT_TYPES } from './capnames.js';
import { applyFlags, flag, hex, log2Exact, numberAfter, put, setBits, clearBits, get } from './util.js';

/** One capability being rebuilt. */
export interface CapState {
  /** Offset of the capability header in config space. */
  off: number;
  /** Decoder key (see capnames.ts), `''` for header-only capabilities. */
  kind: string;
  /** True for an extended capability (offset ≥ 0x100). */
  ext: boolean;
  /** 1-based line of the `Capabilities:` line. */
  line: number;
  /** Text after `[xx] ` on the header line. */
  text: string;
  /** Current sub-register tag (e.g. `DevCap2`), `''` before the first one. */
  tag: string;
  /** Sub-register tags seen so far. */
  tagsSeen: Set<string>;
  /** MSI: 64-bit address capable (decides where Data/Mask/Pending live). */
  msi64?: boolean;
}

/** Where decoded facts go: the config buffer and per-function facts. */
export interface DecodeSink {
  /** The 4096-byte config space being rebuilt. */
  cfg: Uint8Array;
  /** Set from the PM capability `Status: Dn` line (`"D0"`, `"D3hot"`, …). */
  powerState: string | null;
}

type Flags = ReadonlyArray<readonly [string, number]>;
interface Reg {
  /** Offset within the capability. */
  off: number;
  w: 1 | 2 | 4;
  flags?: Flags;
  /** Extra decoding for numbers and enumerations. */
  fn?: (cfg: Uint8Array, at: number, text: string, cap: CapState) => void;
}

const SPEEDS: Record<string, number> = { '2.5': 1, '5': 2, '8': 3, '16': 4, '32': 5, '64': 6 };

/** PCI_EXP_LNKCAP_SLS / PCI_EXP_LNKSTA_CLS encoding of `Speed 8GT/s`. */
function speedCode(text: string): number {
  const i = text.indexOf('Speed ');
  if (i < 0) return NaN;
  const m = /^Speed ([0-9.]+)GT\/s/.exec(text.slice(i, i + 16));
  if (!m) return NaN;
  return SPEEDS[m[1] as string] ?? NaN;
}

function widthCode(text: string): number {
  return numberAfter(text, 'Width x');
}

/** Set the bit field `mask` (contiguous, shifted) of a register to `value << shift`. */
function field(cfg: Uint8Array, at: number, w: 1 | 2 | 4, shift: number, mask: number, value: number): void {
  if (!Number.isFinite(value) || value < 0) return;
  const v = ((get(cfg, at, w) & ~mask) | ((value << shift) & mask)) >>> 0;
  put(cfg, at, w, v);
}

const PM_AUX = [0, 55, 100, 160, 220, 270, 320, 375];
const L0S_LAT = ['<64ns', '<128ns', '<256ns', '<512ns', '<1us', '<2us', '<4us', 'unlimited'];
const L1_LAT = ['<1us', '<2us', '<4us', '<8us', '<16us', '<32us', '<64us', 'unlimited'];

const EXPRESS: Record<string, Reg> = {
  // PCI_EXP_DEVCAP
  DevCap: {
    off: 0x04, w: 4,
    flags: [['ExtTag', 0x20], ['AttnBtn', 0x1000], ['AttnInd', 0x2000], ['PwrInd', 0x4000], ['RBE', 0x8000], ['FLReset', 0x10000000]],
    fn: (cfg, at, t) => {
      const mps = numberAfter(t, 'MaxPayload');
      if (Number.isFinite(mps)) field(cfg, at, 4, 0, 0x7, log2Exact(mps / 128));
      const ph = numberAfter(t, 'PhantFunc');
      if (Number.isFinite(ph)) field(cfg, at, 4, 3, 0x18, ph);
      // endpoint acceptable latencies (PCI_EXP_DEVCAP_L0S 8:6, PCI_EXP_DEVCAP_L1 11:9)
      const lat = t.indexOf('Latency L0s');
      if (lat >= 0) {
        const l = t.slice(lat);
        const l0s = L0S_LAT.indexOf(/L0s (<\d+[nu]s|unlimited)/.exec(l)?.[1] ?? '');
        const l1 = L1_LAT.indexOf(/L1 (<\d+[nu]s|unlimited)/.exec(l)?.[1] ?? '');
        if (l0s >= 0) field(cfg, at, 4, 6, 0x1c0, l0s);
        if (l1 >= 0) field(cfg, at, 4, 9, 0xe00, l1);
      }
    },
  },
  // PCI_EXP_DEVCTL
  DevCtl: {
    off: 0x08, w: 2,
    flags: [
      ['CorrErr', 0x1], ['NonFatalErr', 0x2], ['FatalErr', 0x4], ['UnsupReq', 0x8],
      ['Correctable', 0x1], ['Non-Fatal', 0x2], ['Fatal', 0x4], ['Unsupported', 0x8],
      ['RlxdOrd', 0x10], ['ExtTag', 0x100], ['PhantFunc', 0x200], ['AuxPwr', 0x400], ['NoSnoop', 0x800],
      ['BrConfRtry', 0x8000], ['FLReset', 0x8000],
    ],
    fn: (cfg, at, t) => {
      const mps = numberAfter(t, 'MaxPayload');
      if (Number.isFinite(mps)) field(cfg, at, 2, 5, 0xe0, log2Exact(mps / 128));
      const mrr = numberAfter(t, 'MaxReadReq');
      if (Number.isFinite(mrr)) field(cfg, at, 2, 12, 0x7000, log2Exact(mrr / 128));
    },
  },
  // PCI_EXP_DEVSTA
  DevSta: {
    off: 0x0a, w: 2,
    flags: [['CorrErr', 0x1], ['NonFatalErr', 0x2], ['FatalErr', 0x4], ['UnsupReq', 0x8], ['AuxPwr', 0x10], ['TransPend', 0x20]],
  },
  // PCI_EXP_LNKCAP
  LnkCap: {
    off: 0x0c, w: 4,
    flags: [['ClockPM', 0x40000], ['Surprise', 0x80000], ['LLActRep', 0x100000], ['BwNot', 0x200000], ['ASPMOptComp', 0x400000]],
    fn: (cfg, at, t) => {
      const port = numberAfter(t, 'Port #');
      if (Number.isFinite(port)) field(cfg, at, 4, 24, 0xff000000, port & 0xff);
      field(cfg, at, 4, 0, 0xf, speedCode(t));
      const w = widthCode(t);
      if (Number.isFinite(w)) field(cfg, at, 4, 4, 0x3f0, w);
      // PCI_EXP_LNKCAP_L0SEL (14:12) / PCI_EXP_LNKCAP_L1EL (17:15), printed only for supported states
      const el = t.indexOf('Exit Latency');
      if (el >= 0) {
        const lat = t.slice(el);
        const l0s = L0S_LAT.indexOf(/L0s (<\d+[nu]s|unlimited)/.exec(lat)?.[1] ?? '');
        const l1 = L1_LAT.indexOf(/L1 (<\d+[nu]s|unlimited)/.exec(lat)?.[1] ?? '');
        if (l0s >= 0) field(cfg, at, 4, 12, 0x7000, l0s);
        if (l1 >= 0) field(cfg, at, 4, 15, 0x38000, l1);
      }
      if (t.includes('ASPM not supported')) field(cfg, at, 4, 10, 0xc00, 0);
      else if (t.includes('ASPM L0s L1')) field(cfg, at, 4, 10, 0xc00, 3);
      else if (t.includes('ASPM L0s')) field(cfg, at, 4, 10, 0xc00, 1);
      else if (t.includes('ASPM L1')) field(cfg, at, 4, 10, 0xc00, 2);
    },
  },
  // PCI_EXP_LNKCTL
  LnkCtl: {
    off: 0x10, w: 2,
    flags: [['Disabled', 0x10], ['Retrain', 0x20], ['CommClk', 0x40], ['ExtSynch', 0x80], ['ClockPM', 0x100], ['AutWidDis', 0x200], ['BWInt', 0x400], ['AutBWInt', 0x800]],
    fn: (cfg, at, t) => {
      if (t.includes('ASPM Disabled')) field(cfg, at, 2, 0, 0x3, 0);
      else if (t.includes('ASPM L0s L1 Enabled')) field(cfg, at, 2, 0, 0x3, 3);
      else if (t.includes('ASPM L0s Enabled')) field(cfg, at, 2, 0, 0x3, 1);
      else if (t.includes('ASPM L1 Enabled')) field(cfg, at, 2, 0, 0x3, 2);
      if (t.includes('RCB 128 bytes')) setBits(cfg, at, 2, 0x8);
    },
  },
  // PCI_EXP_LNKSTA
  LnkSta: {
    off: 0x12, w: 2,
    flags: [['TrErr', 0x400], ['Train', 0x800], ['SlotClk', 0x1000], ['DLActive', 0x2000], ['BWMgmt', 0x4000], ['ABWMgmt', 0x8000]],
    fn: (cfg, at, t) => {
      field(cfg, at, 2, 0, 0xf, speedCode(t));
      const w = widthCode(t);
      if (Number.isFinite(w)) field(cfg, at, 2, 4, 0x3f0, w);
    },
  },
  // PCI_EXP_SLTCAP
  SltCap: {
    off: 0x14, w: 4,
    flags: [
      ['AttnBtn', 0x1], ['PwrCtrl', 0x2], ['MRL', 0x4], ['AttnInd', 0x8], ['PwrInd', 0x10], ['HotPlug', 0x20], ['Surprise', 0x40],
      ['Interlock', 0x20000], ['NoCompl', 0x40000],
    ],
    fn: (cfg, at, t) => {
      const slot = numberAfter(t, 'Slot #');
      if (Number.isFinite(slot)) field(cfg, at, 4, 19, 0xfff80000, slot & 0x1fff);
    },
  },
  // PCI_EXP_SLTCTL
  SltCtl: {
    off: 0x18, w: 2,
    flags: [['AttnBtn', 0x1], ['PwrFlt', 0x2], ['MRL', 0x4], ['PresDet', 0x8], ['CmdCplt', 0x10], ['HPIrq', 0x20], ['LinkChg', 0x1000]],
  },
  'SltCtl/Control': {
    off: 0x18, w: 2, flags: [['Power', 0x400], ['Interlock', 0x800]],
    fn: (cfg, at, t) => {
      // PCI_EXP_SLTCTL_AIC (7:6) / PCI_EXP_SLTCTL_PIC (9:8): Unknown(reserved)=0, On=1, Blink=2, Off=3
      const ind = ['Unknown', 'On', 'Blink', 'Off'];
      const a = ind.indexOf(/AttnInd (\w+)/.exec(t)?.[1] ?? '');
      const p = ind.indexOf(/PwrInd (\w+)/.exec(t)?.[1] ?? '');
      if (a >= 0) field(cfg, at, 2, 6, 0xc0, a);
      if (p >= 0) field(cfg, at, 2, 8, 0x300, p);
    },
  },
  // PCI_EXP_SLTSTA
  SltSta: {
    off: 0x1a, w: 2,
    flags: [['AttnBtn', 0x1], ['PowerFlt', 0x2], ['CmdCplt', 0x10], ['MRL', 0x20], ['PresDet', 0x40], ['Interlock', 0x80]],
  },
  'SltSta/Changed': { off: 0x1a, w: 2, flags: [['MRL', 0x4], ['PresDet', 0x8], ['LinkState', 0x100]] },
  // PCI_EXP_RTCTL / PCI_EXP_RTCAP / PCI_EXP_RTSTA
  RootCtl: {
    off: 0x1c, w: 2,
    flags: [['ErrCorrectable', 0x1], ['ErrNon-Fatal', 0x2], ['ErrFatal', 0x4], ['PMEIntEna', 0x8], ['CRSVisible', 0x10]],
  },
  RootCap: { off: 0x1e, w: 2, flags: [['CRSVisible', 0x1]] },
  RootSta: {
    off: 0x20, w: 4,
    flags: [['PMEStatus', 0x10000], ['PMEPending', 0x20000]],
    fn: (cfg, at, t) => field(cfg, at, 4, 0, 0xffff, numberAfter(t, 'PME ReqID', 16)),
  },
  // PCI_EXP_DEVCAP2
  DevCap2: {
    off: 0x24, w: 4,
    flags: [
      ['TimeoutDis', 0x10], ['ARIFwd', 0x20], ['Routing', 0x40], ['32bit', 0x80], ['64bit', 0x100], ['128bitCAS', 0x200],
      ['NROPrPrP', 0x400], ['LTR', 0x800], ['TPHComp', 0x1000], ['ExtTPHComp', 0x2000],
      ['10BitTagComp', 0x10000], ['10BitTagReq', 0x20000], ['ExtFmt', 0x100000], ['EETLPPrefix', 0x200000], ['FRS', 0x80000000],
    ],
    fn: (cfg, at, t) => {
      const ranges: ReadonlyArray<readonly [string, number]> = [
        ['Range ABCD', 0xf], ['Range BCD', 0xe], ['Range ABC', 0x7], ['Range BC', 0x6], ['Range AB', 0x3], ['Range B', 0x2], ['Range A', 0x1],
      ];
      if (t.includes('Completion Timeout: Not Supported')) field(cfg, at, 4, 0, 0xf, 0);
      else for (const [s, v] of ranges) if (t.includes(s)) { field(cfg, at, 4, 0, 0xf, v); break; }
      if (t.includes('OBFF Via message/WAKE#')) field(cfg, at, 4, 18, 0xc0000, 3);
      else if (t.includes('OBFF Via WAKE#')) field(cfg, at, 4, 18, 0xc0000, 2);
      else if (t.includes('OBFF Via message')) field(cfg, at, 4, 18, 0xc0000, 1);
      const pfx = numberAfter(t, 'MaxEETLPPrefixes');
      if (Number.isFinite(pfx)) field(cfg, at, 4, 22, 0xc00000, pfx & 3);
    },
  },
  // PCI_EXP_DEVCTL2
  DevCtl2: {
    off: 0x28, w: 2,
    flags: [
      ['TimeoutDis', 0x10], ['ARIFwd', 0x20], ['ReqEn', 0x40], ['EgressBlck', 0x80], ['IDOReq', 0x100], ['IDOCompl', 0x200],
      ['LTR', 0x400], ['10BitTagReq', 0x1000], ['EETLPPrefixBlk', 0x8000],
    ],
    fn: (cfg, at, t) => {
      if (t.includes('OBFF Disabled')) field(cfg, at, 2, 13, 0x6000, 0);
      else if (t.includes('OBFF Via message A')) field(cfg, at, 2, 13, 0x6000, 1);
      else if (t.includes('OBFF Via message B')) field(cfg, at, 2, 13, 0x6000, 2);
      else if (t.includes('OBFF Via WAKE#')) field(cfg, at, 2, 13, 0x6000, 3);
    },
  },
  // PCI_EXP_LNKCAP2
  LnkCap2: {
    off: 0x2c, w: 4,
    flags: [['Crosslink', 0x100], ['Retimer', 0x800000], ['2Retimers', 0x1000000], ['DRS', 0x80000000]],
    fn: (cfg, at, t) => {
      const m = /Supported Link Speeds: ([0-9.]+)(?:-([0-9.]+))?GT\/s/.exec(t);
      if (!m) return;
      const lo = SPEEDS[m[1] as string];
      const hi = SPEEDS[(m[2] ?? m[1]) as string];
      if (lo === undefined || hi === undefined) return;
      let v = 0;
      for (let s = lo; s <= hi; s++) v |= 1 << s;
      field(cfg, at, 4, 0, 0xfe, v);
    },
  },
  // PCI_EXP_LNKCTL2
  LnkCtl2: {
    off: 0x30, w: 2,
    flags: [['EnterCompliance', 0x10], ['SpeedDis', 0x20]],
    fn: (cfg, at, t) => {
      const m = /Target Link Speed: ([0-9.]+)GT\/s/.exec(t);
      const s = m ? SPEEDS[m[1] as string] : undefined;
      if (s !== undefined) field(cfg, at, 2, 0, 0xf, s);
    },
  },
};

const PM: Record<string, Reg> = {
  // PCI_PM_PMC (upper 16 bits of the capability header dword)
  Flags: {
    off: 0x02, w: 2,
    fn: (cfg, at, t) => {
      const p = t.indexOf('PME(');
      const head = p >= 0 ? t.slice(0, p) : t;
      applyFlags(cfg, at, 2, head, [['PMEClk', 0x8], ['DSI', 0x20], ['D1', 0x200], ['D2', 0x400]]);
      const aux = PM_AUX.indexOf(numberAfter(head, 'AuxCurrent='));
      if (aux >= 0) field(cfg, at, 2, 6, 0x1c0, aux);
      if (p >= 0) {
        const e = t.indexOf(')', p);
        const pme = t.slice(p + 4, e < 0 ? undefined : e);
        applyFlags(cfg, at, 2, pme, [['D0', 0x800], ['D1', 0x1000], ['D2', 0x2000], ['D3hot', 0x4000], ['D3cold', 0x8000]]);
      }
    },
  },
  // PCI_PM_CTRL (PMCSR)
  Status: {
    off: 0x04, w: 2,
    flags: [['NoSoftRst', 0x8], ['PME-Enable', 0x100], ['PME', 0x8000]],
    fn: (cfg, at, t) => {
      const m = /^Status: D([0-3])(hot|cold)?/.exec(t);
      if (m) field(cfg, at, 2, 0, 0x3, Number(m[1]));
      const dsel = numberAfter(t, 'DSel=');
      if (Number.isFinite(dsel)) field(cfg, at, 2, 9, 0x1e00, dsel & 0xf);
      const dscale = numberAfter(t, 'DScale=');
      if (Number.isFinite(dscale)) field(cfg, at, 2, 13, 0x6000, dscale & 3);
    },
  },
  // PCI_PM_PPB_EXTENSIONS
  Bridge: {
    off: 0x06, w: 1,
    fn: (cfg, at, t) => {
      const pm = flag(t, 'PM');
      if (pm !== null) (pm ? setBits : clearBits)(cfg, at, 1, 0x80);
      const b3 = flag(t, 'B3');
      if (b3 !== null) (b3 ? clearBits : setBits)(cfg, at, 1, 0x40);
    },
  },
};

/** Write `hex` into the MSI Address/Data registers; layout depends on 64-bit capability. */
const MSI: Record<string, Reg> = {
  Address: {
    off: 0x04, w: 4,
    fn: (cfg, at, t, cap) => {
      const m = /^Address: ([0-9a-fA-F]{8,16})\s+Data: ([0-9a-fA-F]{4})/.exec(t);
      if (!m) return;
      const a = m[1] as string;
      const is64 = cap.msi64 ?? a.length > 8;
      if (a.length > 8) {
        put(cfg, at, 4, parseInt(a.slice(-8), 16));
        if (is64) put(cfg, at + 4, 4, parseInt(a.slice(0, -8), 16));
      } else put(cfg, at, 4, parseInt(a, 16));
      put(cfg, at + (is64 ? 8 : 4), 2, parseInt(m[2] as string, 16));
    },
  },
  Masking: {
    off: 0x0c, w: 4,
    fn: (cfg, at, t, cap) => {
      const base = at + (cap.msi64 ? 4 : 0);
      const mask = hex(/^Masking: ([0-9a-fA-F]{8})/.exec(t)?.[1]);
      const pend = hex(/Pending: ([0-9a-fA-F]{8})/.exec(t)?.[1]);
      if (Number.isFinite(mask)) put(cfg, base, 4, mask);
      if (Number.isFinite(pend)) put(cfg, base + 4, 4, pend);
    },
  },
};

function barOffset(cfg: Uint8Array, at: number, t: string): void {
  const bar = numberAfter(t, 'BAR=');
  const off = hex(/offset=([0-9a-fA-F]{8})/.exec(t)?.[1]);
  if (Number.isFinite(bar) && Number.isFinite(off)) put(cfg, at, 4, ((off & ~7) | (bar & 7)) >>> 0);
}

const MSIX: Record<string, Reg> = {
  'Vector table': { off: 0x04, w: 4, fn: barOffset },
  PBA: { off: 0x08, w: 4, fn: barOffset },
};

const AF: Record<string, Reg> = {
  AFCap: { off: 0x03, w: 1, flags: [['TP', 0x1], ['FLR', 0x2]] },
  AFCtrl: { off: 0x04, w: 1, flags: [['FLR', 0x1]] },
  AFStatus: { off: 0x05, w: 1, flags: [['TP', 0x1]] },
};

const ACS_FLAGS: Flags = [
  ['SrcValid', 0x01], ['TransBlk', 0x02], ['ReqRedir', 0x04], ['CmpltRedir', 0x08],
  ['UpstreamFwd', 0x10], ['EgressCtrl', 0x20], ['DirectTrans', 0x40],
];

const ACS: Record<string, Reg> = {
  // PCI_ACS_CAP, PCI_ACS_CTRL
  ACSCap: { off: 0x04, w: 2, flags: ACS_FLAGS },
  ACSCtl: { off: 0x06, w: 2, flags: ACS_FLAGS },
};

const ARI: Record<string, Reg> = {
  // PCI_ARI_CAP, PCI_ARI_CTRL
  ARICap: {
    off: 0x04, w: 2, flags: [['MFVC', 0x1], ['ACS', 0x2]],
    fn: (cfg, at, t) => field(cfg, at, 2, 8, 0xff00, numberAfter(t, 'Next Function:')),
  },
  ARICtl: {
    off: 0x06, w: 2, flags: [['MFVC', 0x1], ['ACS', 0x2]],
    fn: (cfg, at, t) => field(cfg, at, 2, 4, 0x70, numberAfter(t, 'Function Group:')),
  },
};

const ATS: Record<string, Reg> = {
  // PCI_ATS_CAP, PCI_ATS_CTRL
  ATSCap: {
    off: 0x04, w: 2, flags: [['PageAligned', 0x20], ['GlobalInval', 0x40]],
    fn: (cfg, at, t) => field(cfg, at, 2, 0, 0x1f, numberAfter(t, 'Invalidate Queue Depth:', 16)),
  },
  ATSCtl: {
    off: 0x06, w: 2, flags: [['Enable', 0x8000]],
    fn: (cfg, at, t) => field(cfg, at, 2, 0, 0x1f, numberAfter(t, 'Smallest Translation Unit:', 16)),
  },
};

const PASID: Record<string, Reg> = {
  // PCI_PASID_CAP, PCI_PASID_CTRL
  PASIDCap: {
    off: 0x04, w: 2, flags: [['Exec', 0x2], ['Priv', 0x4]],
    fn: (cfg, at, t) => field(cfg, at, 2, 8, 0x1f00, numberAfter(t, 'Max PASID Width:', 16)),
  },
  PASIDCtl: { off: 0x06, w: 2, flags: [['Enable', 0x1], ['Exec', 0x2], ['Priv', 0x4]] },
};

const PRI: Record<string, Reg> = {
  // PCI_PRI_CTRL, PCI_PRI_STATUS, PCI_PRI_MAX_REQ, PCI_PRI_ALLOC_REQ
  PRICtl: { off: 0x04, w: 2, flags: [['Enable', 0x1], ['Reset', 0x2]] },
  PRISta: { off: 0x06, w: 2, flags: [['RF', 0x1], ['UPRGI', 0x2], ['Stopped', 0x100], ['PASID', 0x8000]] },
  'Page Request Capacity': {
    off: 0x08, w: 4,
    fn: (cfg, at, t) => {
      const cap = numberAfter(t, 'Page Request Capacity:', 16);
      const alloc = numberAfter(t, 'Page Request Allocation:', 16);
      if (Number.isFinite(cap)) put(cfg, at, 4, cap);
      if (Number.isFinite(alloc)) put(cfg, at + 4, 4, alloc);
    },
  },
};

const SRIOV: Record<string, Reg> = {
  // PCI_SRIOV_CAP
  IOVCap: {
    off: 0x04, w: 4, flags: [['Migration', 0x1], ['10BitTagReq', 0x4]],
    fn: (cfg, at, t) => {
      let imn = numberAfter(t, 'Interrupt Message Number:', 16);
      if (!Number.isFinite(imn)) imn = numberAfter(t, 'IntMsgNum');
      field(cfg, at, 4, 21, 0xffe00000, imn & 0x7ff);
    },
  },
  // PCI_SRIOV_CTRL, PCI_SRIOV_STATUS
  IOVCtl: {
    off: 0x08, w: 2,
    flags: [['Enable', 0x1], ['Migration', 0x2], ['Interrupt', 0x4], ['MSE', 0x8], ['ARIHierarchy', 0x10], ['10BitTagReq', 0x20]],
  },
  IOVSta: { off: 0x0a, w: 2, flags: [['Migration', 0x1]] },
  // PCI_SRIOV_INITIAL_VF, _TOTAL_VF, _NUM_VF, _FUNC_LINK
  'Initial VFs': {
    off: 0x0c, w: 2,
    fn: (cfg, at, t) => {
      const vals: ReadonlyArray<readonly [string, number, 1 | 2, 10 | 16]> = [
        ['Initial VFs:', 0x0c, 2, 10], ['Total VFs:', 0x0e, 2, 10], ['Number of VFs:', 0x10, 2, 10],
        ['Function Dependency Link:', 0x12, 1, 16],
      ];
      for (const [label, off, w, radix] of vals) {
        const v = numberAfter(t, label, radix);
        if (Number.isFinite(v)) put(cfg, at - 0x0c + off, w, v);
      }
    },
  },
  // PCI_SRIOV_VF_OFFSET, _VF_STRIDE, _VF_DID
  'VF offset': {
    off: 0x14, w: 2,
    fn: (cfg, at, t) => {
      const base = at - 0x14;
      const off = numberAfter(t, 'VF offset:');
      const stride = numberAfter(t, 'stride:');
      const did = numberAfter(t, 'Device ID:', 16);
      if (Number.isFinite(off)) put(cfg, base + 0x14, 2, off);
      if (Number.isFinite(stride)) put(cfg, base + 0x16, 2, stride);
      if (Number.isFinite(did)) put(cfg, base + 0x1a, 2, did);
    },
  },
  // PCI_SRIOV_SUP_PGSIZE, PCI_SRIOV_SYS_PGSIZE
  'Supported Page Size': {
    off: 0x1c, w: 4,
    fn: (cfg, at, t) => {
      const sup = numberAfter(t, 'Supported Page Size:', 16);
      const sys = numberAfter(t, 'System Page Size:', 16);
      if (Number.isFinite(sup)) put(cfg, at, 4, sup);
      if (Number.isFinite(sys)) put(cfg, at + 4, 4, sys);
    },
  },
  // PCI_SRIOV_VFM
  'VF Migration': {
    off: 0x3c, w: 4,
    fn: (cfg, at, t) => {
      const off = numberAfter(t, 'offset:', 16);
      const bir = numberAfter(t, 'BIR:', 16);
      if (Number.isFinite(off) && Number.isFinite(bir)) put(cfg, at, 4, ((off & ~7) | (bir & 7)) >>> 0);
    },
  },
};

/** SR-IOV `Region N: Memory at ADDR (64-bit, prefetchable)` → VF BAR N (PCI_SRIOV_BAR + 4N). */
function sriovRegion(cfg: Uint8Array, capOff: number, t: string): void {
  const m = /^Region ([0-5]): Memory at ([0-9a-fA-F]{1,16}) \((32|64)-bit, (non-)?prefetchable\)/.exec(t);
  if (!m) return;
  const n = Number(m[1]);
  const addr = m[2] as string;
  const lo = parseInt(addr.slice(-8), 16);
  const hi = addr.length > 8 ? parseInt(addr.slice(0, -8), 16) : 0;
  const is64 = m[3] === '64';
  const at = capOff + 0x24 + 4 * n;
  put(cfg, at, 4, ((lo & ~0xf) | (is64 ? 0x4 : 0) | (m[4] ? 0 : 0x8)) >>> 0);
  if (is64 && n < 5) put(cfg, at + 4, 4, hi);
}

const AER_UE: Flags = [
  ['DLP', 0x10], ['SDES', 0x20], ['TLP', 0x1000], ['FCP', 0x2000], ['CmpltTO', 0x4000], ['CmpltAbrt', 0x8000],
  ['UnxCmplt', 0x10000], ['RxOF', 0x20000], ['MalfTLP', 0x40000], ['ECRC', 0x80000], ['UnsupReq', 0x100000],
  ['ACSViol', 0x200000], ['UncorrIntErr', 0x400000], ['BlockedTLP', 0x800000], ['AtomicOpBlocked', 0x1000000],
  ['TLPBlockedErr', 0x2000000], ['PoisonTLPBlocked', 0x4000000],
];
const AER_CE: Flags = [
  ['RxErr', 0x1], ['BadTLP', 0x40], ['BadDLLP', 0x80], ['Rollover', 0x100], ['Timeout', 0x1000],
  ['AdvNonFatalErr', 0x2000], ['CorrIntErr', 0x4000], ['HeaderOF', 0x8000],
];

const AER: Record<string, Reg> = {
  // PCI_ERR_UNCOR_STATUS/MASK/SEVER, PCI_ERR_COR_STATUS/MASK, PCI_ERR_CAP, PCI_ERR_ROOT_COMMAND
  UESta: { off: 0x04, w: 4, flags: AER_UE },
  UEMsk: { off: 0x08, w: 4, flags: AER_UE },
  UESvrt: { off: 0x0c, w: 4, flags: AER_UE },
  CESta: { off: 0x10, w: 4, flags: AER_CE },
  CEMsk: { off: 0x14, w: 4, flags: AER_CE },
  AERCap: {
    off: 0x18, w: 4,
    flags: [
      ['ECRCGenCap', 0x20], ['ECRCGenEn', 0x40], ['ECRCChkCap', 0x80], ['ECRCChkEn', 0x100],
      ['MultHdrRecCap', 0x200], ['MultHdrRecEn', 0x400], ['TLPPfxPres', 0x800], ['HdrLogCap', 0x1000],
    ],
    fn: (cfg, at, t) => field(cfg, at, 4, 0, 0x1f, numberAfter(t, 'First Error Pointer:', 16)),
  },
  RootCmd: { off: 0x2c, w: 4, flags: [['CERptEn', 0x1], ['NFERptEn', 0x2], ['FERptEn', 0x4]] },
};

const TABLES: Record<string, Record<string, Reg>> = {
  express: EXPRESS, pm: PM, msi: MSI, msix: MSIX, af: AF, aer: AER,
  acs: ACS, ari: ARI, ats: ATS, pasid: PASID, pri: PRI, sriov: SRIOV,
};

/**
 * Decode what the capability header line itself says (the text after
 * `[xx] `) into the capability body: PCIe Capabilities register, PM version,
 * MSI/MSI-X Message Control, DSN, vendor-specific headers, …
 */
export function decodeCapHeader(sink: DecodeSink, cap: CapState): void {
  const cfg = sink.cfg;
  const t = cap.text;
  const o = cap.off;
  switch (cap.kind) {
    case 'express': {
      // PCI_EXP_FLAGS: version 3:0, type 7:4, slot 8, IRQ 13:9
      let rest = t.slice('Express'.length).trimStart();
      let version = 0;
      const vm = /^\(v(\d+)\)\s*/.exec(rest);
      if (vm) {
        version = Number(vm[1]) & 0xf;
        rest = rest.slice(vm[0].length);
      }
      let type = -1;
      for (const [name, ty] of PCIE_PORT_TYPES) {
        if (rest.startsWith(name)) {
          type = ty;
          break;
        }
      }
      if (type < 0) {
        const um = /^Unknown type (\d+)/.exec(rest);
        if (um) type = Number(um[1]) & 0xf;
      }
      const slot = flag(rest, 'Slot') === true ? 1 : 0;
      const irq = numberAfter(rest, ', MSI', 16);
      const flags = version | (Math.max(type, 0) << 4) | (slot << 8) | ((Number.isFinite(irq) ? irq & 0x1f : 0) << 9);
      put(cfg, o + 2, 2, flags);
      break;
    }
    case 'pm': {
      const v = numberAfter(t, 'version');
      if (Number.isFinite(v)) field(cfg, o + 2, 2, 0, 0x7, v & 7);
      break;
    }
    case 'msi': {
      // PCI_MSI_FLAGS
      let f = 0;
      if (flag(t, 'Enable') === true) f |= 0x1;
      const m = /Count=(\d+)\/(\d+)/.exec(t);
      if (m) {
        const mme = log2Exact(Number(m[1]));
        const mmc = log2Exact(Number(m[2]));
        if (Number.isFinite(mmc)) f |= (mmc & 7) << 1;
        if (Number.isFinite(mme)) f |= (mme & 7) << 4;
      }
      cap.msi64 = flag(t, '64bit') === true;
      if (cap.msi64) f |= 0x80;
      if (flag(t, 'Maskable') === true) f |= 0x100;
      put(cfg, o + 2, 2, f);
      break;
    }
    case 'msix': {
      // PCI_MSIX_FLAGS
      let f = 0;
      const n = numberAfter(t, 'Count=');
      if (Number.isFinite(n) && n >= 1) f |= (n - 1) & 0x7ff;
      if (flag(t, 'Masked') === true) f |= 0x4000;
      if (flag(t, 'Enable') === true) f |= 0x8000;
      put(cfg, o + 2, 2, f);
      break;
    }
    case 'ssvid': {
      const ids = lastIdPair(t);
      if (ids) {
        put(cfg, o + 4, 2, ids[0]);
        put(cfg, o + 6, 2, ids[1]);
      }
      break;
    }
    case 'vndr': {
      const len = numberAfter(t, 'Len=', 16);
      if (Number.isFinite(len)) put(cfg, o + 2, 1, len);
      const virtio = ['', 'CommonCfg', 'Notify', 'ISR', 'DeviceCfg'];
      const vm = /VirtIO: (\w+)/.exec(t);
      if (vm) {
        const ty = virtio.indexOf(vm[1] as string);
        if (ty > 0) put(cfg, o + 3, 1, ty);
      }
      break;
    }
    case 'ht': {
      // Linux: HT_CAPTYPE_* in the top bits of the byte at +3
      if (t.includes('MSI Mapping')) {
        put(cfg, o + 3, 1, 0xa8);
        let f = 0;
        if (flag(t, 'Enable') === true) f |= 0x1;
        if (flag(t, 'Fixed') === true) f |= 0x2;
        put(cfg, o + 2, 1, f);
      } else if (t.includes('Host or Secondary Interface')) put(cfg, o + 3, 1, 0x20);
      else if (t.includes('Slave or Primary Interface')) put(cfg, o + 3, 1, 0x00);
      break;
    }
    case 'sata': {
      const m = /SATA HBA v(\d+)\.(\d+)/.exec(t);
      if (m) put(cfg, o + 2, 1, ((Number(m[1]) & 0xf) << 4) | (Number(m[2]) & 0xf));
      const b = /BAR(\d) Offset=([0-9a-fA-F]{8})/.exec(t);
      if (b) put(cfg, o + 4, 4, ((Number(b[1]) + 4) | ((parseInt(b[2] as string, 16) & 0xfffff) << 4)) >>> 0);
      else if (t.includes('InCfgSpace')) put(cfg, o + 4, 4, 0xf);
      break;
    }
    case 'slotid': {
      const n = numberAfter(t, 'Slot ID:');
      const ch = numberAfter(t, 'chassis', 16);
      let esr = Number.isFinite(n) ? n & 0x1f : 0;
      if (flag(t, 'First') === true) esr |= 0x20;
      put(cfg, o + 2, 1, esr);
      if (Number.isFinite(ch)) put(cfg, o + 3, 1, ch);
      break;
    }
    case 'dsn': {
      const m = /([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})-([0-9a-fA-F]{2})/.exec(t);
      if (m) {
        const b = m.slice(1, 9).map((x) => parseInt(x, 16));
        // printed high dword (t2) first, most significant byte first
        for (let i = 0; i < 4; i++) {
          put(cfg, o + 8 + 3 - i, 1, b[i] as number);
          put(cfg, o + 4 + 3 - i, 1, b[4 + i] as number);
        }
      }
      break;
    }
    case 'evndr': {
      // PCI_EVNDR_HEADER: ID 15:0, Rev 19:16, Len 31:20 (Len printed as %03x)
      const id = numberAfter(t, 'ID=', 16);
      const rev = numberAfter(t, 'Rev=');
      const len = numberAfter(t, 'Len=', 16);
      if (Number.isFinite(id) && Number.isFinite(rev) && Number.isFinite(len)) {
        put(cfg, o + 4, 4, ((id & 0xffff) | ((rev & 0xf) << 16) | ((len & 0xfff) << 20)) >>> 0);
      }
      break;
    }
    case 'dvsec': {
      // PCI_DVSEC_HEADER1: vendor 15:0, rev 19:16, len 31:20 (Len printed as %d); HEADER2: ID
      const vendor = numberAfter(t, 'Vendor=', 16);
      const id = numberAfter(t, 'ID=', 16);
      const rev = numberAfter(t, 'Rev=');
      const len = numberAfter(t, 'Len=');
      if (Number.isFinite(vendor) && Number.isFinite(rev) && Number.isFinite(len)) {
        put(cfg, o + 4, 4, ((vendor & 0xffff) | ((rev & 0xf) << 16) | ((len & 0xfff) << 20)) >>> 0);
      }
      if (Number.isFinite(id)) put(cfg, o + 8, 2, id);
      break;
    }
    default:
      break;
  }
}

/** The last `[xxxx:xxxx]` id pair in a line, as numbers, with the index of its `[`. */
export function lastIdPair(text: string): [number, number, number] | null {
  let end = text.length;
  for (;;) {
    const i = text.lastIndexOf('[', end - 1);
    if (i < 0) return null;
    if (text[i + 5] === ':' && text[i + 10] === ']') {
      const a = hex(text.slice(i + 1, i + 5));
      const b = hex(text.slice(i + 6, i + 10));
      if (Number.isFinite(a) && Number.isFinite(b)) return [a, b, i];
    }
    if (i === 0) return null;
    end = i;
  }
}

/** Sub-register tag of a capability body line (`DevCap2`, `Initial VFs`, …) or null. */
export function lineTag(text: string): string | null {
  const m = /^([A-Za-z0-9][A-Za-z0-9 _#\-]{0,30}?):(?:\s|$)/.exec(text);
  return m ? (m[1] as string) : null;
}

/**
 * Decode one body line of a capability. `depth` is the number of leading
 * tabs; lines three or more tabs deep continue the current tag. Lines the
 * table does not know are ignored (they still belong to the capability).
 */
export function decodeCapLine(sink: DecodeSink, cap: CapState, text: string, depth: number): void {
  const tag = lineTag(text);
  let key: string;
  if (depth >= 3 && cap.tag !== '') {
    key = tag !== null ? `${cap.tag}/${tag}` : cap.tag;
  } else {
    cap.tag = tag ?? '';
    key = cap.tag;
    if (cap.tag !== '') cap.tagsSeen.add(cap.tag);
  }
  if (cap.kind === 'pm' && cap.tag === 'Status' && depth < 3) {
    const m = /^Status: (D[0-3](?:hot|cold)?)/.exec(text);
    if (m) sink.powerState = m[1] as string;
  }
  if (cap.kind === 'sriov' && depth < 3 && cap.tag.startsWith('Region ')) {
    sriovRegion(sink.cfg, cap.off, text);
    return;
  }
  const table = TABLES[cap.kind];
  if (table === undefined) return;
  const reg = table[key] ?? (key.includes('/') ? table[cap.tag] : undefined);
  if (reg === undefined) return;
  const at = cap.off + reg.off;
  if (reg.flags) applyFlags(sink.cfg, at, reg.w, text, reg.flags);
  if (reg.fn) reg.fn(sink.cfg, at, text, cap);
}

/** Sub-register tags each capability kind must show for its registers to be known (used for truncation warnings). */
export const REQUIRED_TAGS: Readonly<Record<string, readonly string[]>> = {
  acs: ['ACSCap', 'ACSCtl'],
  sriov: ['Initial VFs', 'VF offset'],
  ari: ['ARICap'],
};
