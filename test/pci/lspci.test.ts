/**
 * Tests for src/pci/lspci.ts: `lspci -vvnn` text → reconstructed config spaces.
 *
 * - every real-machine dump in test/fixtures/real-lspci/ (linux-hardware.org
 *   probes; provenance and grep counts in each folder's source.txt) parses
 *   into one function per header line, with per-machine spot checks read off
 *   the dumps;
 * - a differential test against the real config bytes captured from the
 *   same QEMU guests as test/fixtures/oracle-lspci/*.txt
 *   (test/fixtures/oracle/<case>/sys.tar.gz, `devices/**\/<bdf>/config`);
 * - noise: spliced `pcilib:` stderr, junk lines, empty / truncated input, and
 *   a fast-check property that junk between blocks never changes the result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import fc from 'fast-check';
import { parseLspci, isLspciDeviceHeader, type LspciFunction } from '../../src/pci/lspci.js';
import { IommuError } from '../../src/base/errno.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const REAL = `${FIXTURES}real-lspci/`;
const ORACLE_LSPCI = `${FIXTURES}oracle-lspci/`;
const ORACLE = `${FIXTURES}oracle/`;

// ---------------------------------------------------------------------------
// helpers (independent of the parser)

const u16 = (c: Uint8Array, o: number): number => (c[o] ?? 0) | ((c[o + 1] ?? 0) << 8);
const u32 = (c: Uint8Array, o: number): number => (u16(c, o) | (u16(c, o + 2) << 16)) >>> 0;

/** Standard capability chain as [offset, id] pairs (PCI_CAPABILITY_LIST / PCI_CB_CAPABILITY_LIST). */
function stdChain(c: Uint8Array): Array<[number, number]> {
  if (!(u16(c, 0x06) & 0x10)) return [];
  const out: Array<[number, number]> = [];
  let p = (c[(c[0x0e]! & 0x7f) === 2 ? 0x14 : 0x34] ?? 0) & ~3;
  for (let n = 0; p !== 0 && n < 48; n++) {
    out.push([p, c[p] ?? 0]);
    p = (c[p + 1] ?? 0) & ~3;
  }
  return out;
}

/** Extended capability chain as [offset, id] pairs, starting at 0x100. */
function extChain(c: Uint8Array): Array<[number, number]> {
  if (c.length <= 0x100) return [];
  const out: Array<[number, number]> = [];
  let p = 0x100;
  for (let n = 0; p !== 0 && n < 960; n++) {
    const h = u32(c, p);
    if (h === 0 || h === 0xffffffff) break;
    out.push([p, h & 0xffff]);
    p = (h >>> 20) & ~3;
  }
  return out;
}

const findStd = (c: Uint8Array, id: number): number => stdChain(c).find(([, i]) => i === id)?.[0] ?? 0;
const findExt = (c: Uint8Array, id: number): number => extChain(c).find(([, i]) => i === id)?.[0] ?? 0;

/** Device/port type from PCI_EXP_FLAGS, or -1 without a PCIe capability. */
function pcieType(c: Uint8Array): number {
  const e = findStd(c, 0x10);
  return e === 0 ? -1 : (u16(c, e + 2) >> 4) & 0xf;
}

const HEADER_RE = /^([0-9a-f]{4,}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] /;

function headerCount(text: string): number {
  return text.split('\n').filter((l) => HEADER_RE.test(l)).length;
}

function byBdf(fns: LspciFunction[], bdf: string): LspciFunction {
  const f = fns.find((x) => x.bdf === bdf);
  assert.ok(f, `function ${bdf} parsed`);
  return f;
}

function readConfigs(file: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  tar.t({
    file,
    sync: true,
    onReadEntry: (e) => {
      const m = /([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/config$/.exec(e.path);
      if (m === null || e.type !== 'File') return;
      const chunks: Buffer[] = [];
      e.on('data', (d: Buffer) => chunks.push(d));
      e.on('end', () => out.set(m[1] as string, new Uint8Array(Buffer.concat(chunks))));
    },
  });
  return out;
}

const realCases = readdirSync(REAL).filter((n) => existsSync(`${REAL}${n}/lspci-vvnn.txt`)).sort();
const readReal = (n: string): string => readFileSync(`${REAL}${n}/lspci-vvnn.txt`, 'utf8');
const parseReal = (n: string) => parseLspci(readReal(n), `${n}/lspci-vvnn.txt`);
const realByPrefix = (p: string): string => {
  const n = realCases.find((x) => x.startsWith(p));
  assert.ok(n, `fixture ${p}* present`);
  return n;
};

// ---------------------------------------------------------------------------
// real dumps

test('all 15 real-machine dumps are present with their source.txt', () => {
  assert.equal(realCases.length, 15);
  for (const n of realCases) assert.ok(existsSync(`${REAL}${n}/source.txt`), n);
});

for (const name of realCases) {
  test(`real dump ${name}: one function per header, groups, 4 KiB configs`, () => {
    const text = readReal(name);
    const src = readFileSync(`${REAL}${name}/source.txt`, 'utf8');
    const r = parseLspci(text, name);
    const headers = headerCount(text);
    assert.equal(r.functions.length, headers);
    // source.txt counted headers and group lines with grep, independently of us
    const devs = Number(/devices \(header lines\): (\d+)/.exec(src)?.[1]);
    const grouped = Number(/devices with an `IOMMU group:` line: (\d+)/.exec(src)?.[1]);
    assert.equal(r.functions.length, devs);
    assert.equal(r.functions.filter((f) => f.kernelGroup !== null).length, grouped);
    assert.equal(text.split('\n').filter((l) => l.startsWith('\tIOMMU group:')).length, grouped);
    const bdfs = new Set<string>();
    for (const f of r.functions) {
      assert.match(f.bdf, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
      bdfs.add(f.bdf);
      assert.equal(f.config.length, 4096);
      assert.notEqual(u16(f.config, 0), 0, `${f.bdf} vendor id`);
      assert.ok([256, 4096].includes(f.configSize));
      assert.equal(f.configSize === 4096, f.extendedCapsVisible);
      // chains built from the text are well formed: every listed capability is reachable
      // (stderr splices removed independently: "pcilib: …\n" glued the line to its continuation)
      const capLines = text.split('\n').slice(f.line).join('\n').replace(/pcilib: [^\n]*\n/g, '').split(/\n\n/)[0]!;
      const stdListed = (capLines.match(/^\tCapabilities: \[[0-9a-f]{2}\]/gm) ?? []).length;
      const extListed = (capLines.match(/^\tCapabilities: \[[0-9a-f]{3} v\d+\]/gm) ?? []).length;
      assert.equal(stdChain(f.config).length, stdListed, `${f.bdf} standard caps`);
      assert.equal(extChain(f.config).length, extListed, `${f.bdf} extended caps`);
    }
    assert.equal(bdfs.size, r.functions.length, 'BDFs unique');
    // the only warnings on real dumps are the spliced stderr lines
    for (const w of r.warnings) assert.match(w.message, /pcilib/);
    assert.equal(r.warnings.length, (text.match(/pcilib: /g) ?? []).length);
  });
}

test('Z690: CPU root port ACS, iGPU SR-IOV, PCH root ports in D3, spliced DevCtl', () => {
  const r = parseReal(realByPrefix('intel-z690'));
  const rp = byBdf(r.functions, '0000:00:01.0');
  assert.equal(rp.config[0x0e]! & 0x7f, 1);
  assert.deepEqual([rp.config[0x18], rp.config[0x19], rp.config[0x1a]], [0, 1, 1]);
  assert.equal(pcieType(rp.config), 4);
  const e = findStd(rp.config, 0x10);
  assert.equal(e, 0x40);
  assert.equal(u16(rp.config, e + 2) & 0x100, 0x100, 'Slot+');
  assert.equal(u32(rp.config, e + 0x24) & 0x20, 0x20, 'DevCap2 ARIFwd+');
  assert.equal(u16(rp.config, e + 0x28) & 0x20, 0, 'DevCtl2 ARIFwd-');
  const acs = findExt(rp.config, 0x0d);
  assert.equal(acs, 0x220);
  assert.equal(u16(rp.config, acs + 4), 0x1f); // SV TB RR CR UF
  assert.equal(u16(rp.config, acs + 6), 0x1d); // SV RR CR UF
  assert.equal(rp.kernelGroup, 2);
  assert.equal(rp.driver, 'pcieport');
  assert.equal(rp.powerState, 'D0');
  // extended caps in printed order, unknown IDs from "Extended Capability ID 0x2a"
  assert.deepEqual(extChain(rp.config), [[0x100, 1], [0x220, 0x0d], [0x150, 0x1f], [0xa30, 0x19], [0xa90, 0x25], [0xa9c, 0x26], [0xedc, 0x27], [0xadc, 0x2a], [0xb0c, 0x2b]]);

  const gpu = byBdf(r.functions, '0000:00:02.0');
  const sr = findExt(gpu.config, 0x10);
  assert.equal(sr, 0x320);
  assert.equal(u16(gpu.config, sr + 0x0c), 7);
  assert.equal(u16(gpu.config, sr + 0x0e), 7);
  assert.equal(u16(gpu.config, sr + 0x10), 0);
  assert.equal(u16(gpu.config, sr + 0x14), 1);
  assert.equal(u16(gpu.config, sr + 0x16), 1);
  assert.equal(u16(gpu.config, sr + 0x1a), 0x4680);
  assert.equal(pcieType(gpu.config), 9);
  assert.equal(u16(gpu.config, 0x2c), 0x1043);
  assert.equal(gpu.driver, 'i915');
  assert.deepEqual(gpu.kernelModules, ['i915']);
  assert.equal(gpu.names.className, 'VGA compatible controller');
  assert.equal(gpu.names.vendor, 'Intel Corporation');
  assert.equal(gpu.names.device, 'AlderLake-S GT1');

  for (const bdf of ['0000:00:1a.0', '0000:00:1b.0', '0000:00:1c.0', '0000:00:1d.0']) {
    const p = byBdf(r.functions, bdf);
    assert.equal(p.powerState, 'D3hot', bdf);
    assert.equal(p.extendedCapsVisible, false, bdf);
    assert.equal(p.configSize, 256, bdf);
    assert.equal(findExt(p.config, 0x0d), 0, bdf);
    assert.ok(p.kernelGroup !== null, bdf);
    assert.ok(p.assumptions.some((a) => /D3hot.*unknown/.test(a)), bdf);
    assert.equal(p.config[(findStd(p.config, 1)) + 4]! & 3, 3, `${bdf} PMCSR`);
  }
  for (const bdf of ['0000:00:1c.1', '0000:00:1c.2']) {
    assert.equal(findExt(byBdf(r.functions, bdf).config, 0x0d), 0x220, bdf);
  }
  // multi-function slot 00:1c.x: bit 7 on all, assumption on .0 only
  for (const bdf of ['0000:00:1c.0', '0000:00:1c.1', '0000:00:1c.2']) {
    assert.equal(byBdf(r.functions, bdf).config[0x0e], 0x81, bdf);
  }
  assert.ok(byBdf(r.functions, '0000:00:1c.0').assumptions.some((a) => /multi-function/.test(a)));
  assert.ok(!byBdf(r.functions, '0000:00:1c.1').assumptions.some((a) => /multi-function/.test(a)));
  assert.equal(byBdf(r.functions, '0000:00:01.0').config[0x0e], 0x01);

  // 07:00.0: "NoSnooppcilib: …\n-" rejoined to "NoSnoop-"; RlxdOrd+ on the same line
  const nic = byBdf(r.functions, '0000:07:00.0');
  const ne = findStd(nic.config, 0x10);
  assert.equal(u16(nic.config, ne + 8) & 0x0810, 0x0010);
  assert.equal((u16(nic.config, ne + 8) >> 12) & 7, 5, 'MaxReadReq 4096 from the line after the splice');
  assert.equal(r.warnings.length, 1);
  assert.equal(r.warnings[0]!.line, 1128);
});

test('Z390: PCH root ports without visible extended caps, Cannon Lake ACS without UpstreamFwd', () => {
  const r = parseReal(realByPrefix('intel-z390'));
  const rb = byBdf(r.functions, '0000:00:1b.0');
  assert.equal(rb.powerState, 'D0');
  assert.equal(rb.extendedCapsVisible, false);
  assert.ok(rb.assumptions.some((a) => /ACS is unknown/.test(a)));
  for (const bdf of ['0000:00:1c.0', '0000:00:1d.0']) assert.equal(byBdf(r.functions, bdf).powerState, 'D3hot');
  const c7 = byBdf(r.functions, '0000:00:1c.7');
  const acs = findExt(c7.config, 0x0d);
  assert.equal(acs, 0x140);
  assert.equal(u16(c7.config, acs + 4), 0x0f);
  assert.equal(u16(c7.config, acs + 6), 0x0d);
  // the CPU root port has extended caps but no ACS at all
  const cpu = byBdf(r.functions, '0000:00:01.0');
  assert.equal(cpu.extendedCapsVisible, true);
  assert.equal(findExt(cpu.config, 0x0d), 0);
  // GPU functions 01:00.0-3 in one slot
  for (const f of [0, 1, 2, 3]) assert.equal(byBdf(r.functions, `0000:01:00.${f}`).config[0x0e]! & 0x80, 0x80);
});

test('Threadripper TRX40: three pcilib splices, SAS2008 SR-IOV', () => {
  const r = parseReal(realByPrefix('amd-threadripper'));
  assert.deepEqual(r.warnings.map((w) => w.line), [332, 1215, 3020]);
  // 00:18.4: "<MAbortpcilib: …\n- >SERR- …": the Status line is whole again
  const df = byBdf(r.functions, '0000:00:18.4');
  assert.equal(u16(df.config, 0x06), 0); // all flags '-', DEVSEL=fast
  assert.equal(df.kernelGroup, 11);
  // 23:00.0: "[50] Power Managempcilib: …\nent version 3"
  const hba = byBdf(r.functions, '0000:23:00.0');
  assert.deepEqual(stdChain(hba.config).slice(0, 2), [[0x50, 0x01], [0x68, 0x10]]);
  assert.equal(u16(hba.config, 0x52) & 7, 3, 'PM version 3');
  assert.equal(hba.powerState, 'D0');
  for (const bdf of ['0000:01:00.0', '0000:23:00.0', '0000:4a:00.0']) {
    const c = byBdf(r.functions, bdf).config;
    const sr = findExt(c, 0x10);
    assert.equal(sr, 0x150, bdf);
    assert.equal(u16(c, sr + 0x0e), 16, `${bdf} TotalVFs`);
    assert.equal(u16(c, sr + 0x1a), 0x72, `${bdf} VF device`);
    assert.equal(findExt(c, 0x0e), 0x190, `${bdf} ARI`);
  }
  // 4a:00.0: "AuxPwpcilib: …\nr- TransPend-" in DevSta
  const c = byBdf(r.functions, '0000:4a:00.0').config;
  const e = findStd(c, 0x10);
  assert.equal(u16(c, e + 0x0a), 0x09); // CorrErr+ UnsupReq+, AuxPwr- TransPend-
  // hosts bridges and IOMMU functions have no group
  assert.equal(byBdf(r.functions, '0000:00:00.2').kernelGroup, null);
  assert.equal(r.functions.filter((f) => f.kernelGroup === null).length, 8);
});

test('Z790: MSI capability after a splice right after "[50] "; MAXIO NVMe with ACS and SR-IOV', () => {
  const r = parseReal(realByPrefix('intel-z790'));
  const f = byBdf(r.functions, '0000:07:00.0');
  assert.deepEqual(stdChain(f.config).slice(0, 3), [[0x40, 0x01], [0x50, 0x05], [0x70, 0x10]]);
  assert.equal(u16(f.config, 0x52), 0x0180); // MSI: Enable- Count=1/1 Maskable+ 64bit+
  const nvme = byBdf(r.functions, '0000:02:00.0');
  const acs = findExt(nvme.config, 0x0d);
  assert.equal(acs, 0x214);
  assert.equal(u16(nvme.config, acs + 4), 0x0c);
  assert.equal(u16(nvme.config, acs + 6), 0x0c);
  assert.equal(u16(nvme.config, findExt(nvme.config, 0x10) + 0x0e), 3);
});

test('Phoenix and Mendocino: splices inside a capability offset and inside LnkCap2', () => {
  const ph = parseReal(realByPrefix('amd-phoenix'));
  const p = byBdf(ph.functions, '0000:00:08.1');
  assert.deepEqual(extChain(p.config).slice(-3), [[0x400, 0x25], [0x410, 0x26], [0x450, 0x27]]);
  const acs = findExt(p.config, 0x0d);
  assert.equal(u16(p.config, acs + 4), 0x5f); // DirectTrans+ as well
  assert.equal(u16(p.config, acs + 6), 0x1d);
  // USB4 tunnel root ports without ACS share a group with their dummy host bridge
  const t = byBdf(ph.functions, '0000:00:03.1');
  assert.equal(findExt(t.config, 0x0d), 0);
  assert.equal(t.kernelGroup, byBdf(ph.functions, '0000:00:03.0').kernelGroup);

  const me = parseReal(realByPrefix('amd-mendocino'));
  const m = byBdf(me.functions, '0000:00:08.1');
  const e = findStd(m.config, 0x10);
  const lc2 = u32(m.config, e + 0x2c);
  assert.equal(lc2 & 0xfe, 0x1e, 'speeds 2.5-16GT/s');
  assert.equal(lc2 & 0x1800000, 0x1800000, 'Retimer+ 2Retimers+');
  assert.equal(u16(m.config, e + 0x30) & 0xf, 4, 'LnkCtl2 target 16GT/s on the line after');
});

test('EPYC servers: SR-IOV/ARI NIC, PCIe-to-PCI bridges, root ports without ACS', () => {
  const mi = parseReal(realByPrefix('amd-epyc-milan'));
  const x550 = byBdf(mi.functions, '0000:42:00.0');
  const sr = findExt(x550.config, 0x10);
  assert.equal(sr, 0x160);
  assert.deepEqual(
    [0x0c, 0x0e, 0x10, 0x14, 0x16].map((o) => u16(x550.config, sr + o)).concat(u16(x550.config, sr + 0x1a)),
    [64, 64, 0, 128, 2, 0x1565],
  );
  const ari = findExt(x550.config, 0x0e);
  assert.equal(ari, 0x150);
  assert.equal(x550.config[ari + 5], 1, 'ARI next function 1');
  assert.equal(findExt(x550.config, 0x03), 0x140, 'anonymised DSN still chained');
  const br = byBdf(mi.functions, '0000:44:00.0');
  assert.equal(pcieType(br.config), 7);
  assert.deepEqual([br.config[0x18], br.config[0x19], br.config[0x1a]], [0x44, 0x45, 0x45]);

  const de = parseReal(realByPrefix('amd-epyc-dell'));
  for (const bdf of ['0000:c0:05.1', '0000:c0:05.2']) {
    const p = byBdf(de.functions, bdf);
    assert.equal(pcieType(p.config), 4, bdf);
    assert.equal(p.extendedCapsVisible, true, bdf);
    assert.equal(findExt(p.config, 0x0d), 0, `${bdf} has no ACS`);
    assert.equal(p.kernelGroup, 4, bdf);
  }
  const gpp = byBdf(de.functions, '0000:c0:07.1');
  const acs = findExt(gpp.config, 0x0d);
  assert.equal(u16(gpp.config, acs + 4), 0x03);
  assert.equal(u16(gpp.config, acs + 6), 0x01);
  assert.equal(byBdf(de.functions, '0000:c2:00.0').config[0x19], 0xc3);

  const b650 = parseReal(realByPrefix('amd-b650'));
  const pb = byBdf(b650.functions, '0000:07:00.0');
  assert.equal(pcieType(pb.config), 7);
  assert.deepEqual([pb.config[0x18], pb.config[0x19], pb.config[0x1a]], [7, 8, 8]);
});

test('Xeon R640 (288 functions): SR-IOV X540, Sky Lake-E and C620 root port ACS', () => {
  const r = parseReal(realByPrefix('intel-xeon'));
  assert.equal(r.functions.length, 288);
  const x540 = byBdf(r.functions, '0000:19:00.0');
  const sr = findExt(x540.config, 0x10);
  assert.equal(u16(x540.config, sr + 0x0e), 64);
  assert.equal(u16(x540.config, sr + 0x1a), 0x1515);
  const sky = byBdf(r.functions, '0000:17:00.0');
  const a = findExt(sky.config, 0x0d);
  assert.deepEqual([u16(sky.config, a + 4), u16(sky.config, a + 6)], [0x1f, 0x1d]);
  const pch = byBdf(r.functions, '0000:00:1c.0');
  const b = findExt(pch.config, 0x0d);
  assert.deepEqual([u16(pch.config, b + 4), u16(pch.config, b + 6)], [0x0f, 0x0d]); // no UpstreamFwd
  // uncore RCiEPs without a PM capability have no power state
  assert.equal(byBdf(r.functions, '0000:00:05.0').powerState, null);
});

test('Alder Lake laptop: Thunderbolt 4 root ports reserve a bus range and have TransBlk+', () => {
  const r = parseReal(realByPrefix('intel-alderlake'));
  const tb = byBdf(r.functions, '0000:00:07.0');
  assert.deepEqual([tb.config[0x19], tb.config[0x1a]], [0x01, 0x38]);
  const a = findExt(tb.config, 0x0d);
  assert.deepEqual([u16(tb.config, a + 4), u16(tb.config, a + 6)], [0x1f, 0x1f]);
  assert.equal(u16(tb.config, 0x00), 0x8086);
  assert.equal(u16(tb.config, 0x02), 0x466e);
  assert.equal(tb.config[0x08], 0x04);
  assert.equal(u16(tb.config, 0x0a), 0x0604);
});

// ---------------------------------------------------------------------------
// differential test against real config bytes

const oracleCases = readdirSync(ORACLE_LSPCI).filter((n) => n.endsWith('.txt')).map((n) => n.slice(0, -4)).sort();

test('oracle lspci fixtures are all present', () => {
  assert.equal(oracleCases.length, 36);
  for (const c of oracleCases) assert.ok(existsSync(`${ORACLE}${c}/sys.tar.gz`), `${c}/sys.tar.gz`);
});

for (const c of oracleCases) {
  test(`oracle ${c}: reconstructed config agrees with the real bytes`, () => {
    const real = readConfigs(`${ORACLE}${c}/sys.tar.gz`);
    const text = readFileSync(`${ORACLE_LSPCI}${c}.txt`, 'utf8');
    const r = parseLspci(text, `${c}.txt`);
    assert.equal(r.functions.length, headerCount(text));
    assert.equal(r.functions.length, real.size, 'one function per sysfs device');
    // the lspci -tvnn tree at the top is skipped with a single warning
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!.message, /tree/);
    for (const f of r.functions) {
      const want = real.get(f.bdf);
      assert.ok(want, `${f.bdf} has a real config`);
      const got = f.config;
      const at = `${c} ${f.bdf}`;
      assert.equal(u16(got, 0x00), u16(want, 0x00), `${at} vendor`);
      assert.equal(u16(got, 0x02), u16(want, 0x02), `${at} device`);
      assert.equal(got[0x08], want[0x08], `${at} revision`);
      assert.deepEqual([...got.subarray(0x09, 0x0c)], [...want.subarray(0x09, 0x0c)], `${at} class`);
      const ht = want[0x0e]! & 0x7f;
      assert.equal(got[0x0e]! & 0x7f, ht, `${at} header type`);
      if (ht === 1) {
        assert.deepEqual([...got.subarray(0x18, 0x1b)], [...want.subarray(0x18, 0x1b)], `${at} bus numbers`);
      } else if (ht === 0) {
        assert.equal(u32(got, 0x2c), u32(want, 0x2c), `${at} subsystem`);
      }
      assert.equal(u16(got, 0x04), u16(want, 0x04), `${at} command`);
      assert.equal(u16(got, 0x06), u16(want, 0x06), `${at} status`);
      // the whole 64-byte header (BARs, bridge windows, ROM, interrupt line/pin, …), except what lspci
      // cannot show: header type bit 7, and the capability pointer when Status has no Cap bit
      const header = (cfg: Uint8Array): number[] =>
        [...cfg.subarray(0, 0x40)].map((v, i) => (i === 0x0e ? v & 0x7f : i === 0x34 && !(cfg[6]! & 0x10) ? 0 : v));
      assert.deepEqual(header(got), header(want), `${at} header bytes`);
      // whole capability chains, standard and extended, offsets and IDs
      assert.deepEqual(stdChain(got), stdChain(want), `${at} standard capabilities`);
      if (f.extendedCapsVisible) assert.equal(want.length, 4096, `${at} real config is 4 KiB`);
      assert.deepEqual(extChain(got), extChain(want), `${at} extended capabilities`);
      // PCIe capability offset, flags (version, port type, slot, IRQ) and DevCap2/DevCtl2 ARIFwd
      const e = findStd(want, 0x10);
      assert.equal(findStd(got, 0x10), e, `${at} PCIe capability offset`);
      if (e !== 0) {
        assert.equal(u16(got, e + 2), u16(want, e + 2), `${at} PCI_EXP_FLAGS`);
        assert.equal(pcieType(got), pcieType(want), `${at} port type`);
        const type = pcieType(want);
        // pciutils prints ARIFwd only for root and downstream ports (cap_express_dev2), and no
        // link registers for RCiEPs / event collectors (cap_express: link = 0): those bits are invisible
        if (type === 4 || type === 6) {
          assert.equal(u32(got, e + 0x24) & 0x20, u32(want, e + 0x24) & 0x20, `${at} DevCap2 ARIFwd`);
          assert.equal(u16(got, e + 0x28) & 0x20, u16(want, e + 0x28) & 0x20, `${at} DevCtl2 ARIFwd`);
        }
        if (type !== 9 && type !== 10) assert.equal(u32(got, e + 0x0c), u32(want, e + 0x0c), `${at} LnkCap`);
      }
      // bodies of capabilities lspci decodes completely
      const same = (off: number, from: number, to: number, what: string): void =>
        assert.deepEqual([...got.subarray(off + from, off + to)], [...want.subarray(off + from, off + to)], `${at} ${what}`);
      for (const [off, id] of stdChain(want)) {
        if (id === 0x01) same(off, 2, 6, 'PM PMC/PMCSR');
        if (id === 0x05) same(off, 2, 4, 'MSI flags');
        if (id === 0x11) same(off, 2, 12, 'MSI-X flags/table/PBA');
        if (id === 0x0d) same(off, 4, 8, 'bridge subsystem IDs');
        if (id === 0x12) same(off, 2, 8, 'SATA HBA');
      }
      for (const [off, id] of extChain(want)) {
        if (id === 0x01) same(off, 4, 0x0c, 'AER UESta/UEMsk');
        if (id === 0x03) same(off, 4, 0x0c, 'Device Serial Number');
      }
      // ACS capability and registers
      const acs = findExt(want, 0x0d);
      assert.equal(findExt(got, 0x0d), acs, `${at} ACS offset`);
      if (acs !== 0) {
        assert.equal(u16(got, acs + 4), u16(want, acs + 4), `${at} ACS Cap`);
        assert.equal(u16(got, acs + 6), u16(want, acs + 6), `${at} ACS Ctl`);
      }
      assert.equal(findExt(got, 0x0e), findExt(want, 0x0e), `${at} ARI`);
      assert.equal(findExt(got, 0x10), findExt(want, 0x10), `${at} SR-IOV`);
    }
  });
}

// ---------------------------------------------------------------------------
// synthetic input and noise

const BLOCK = [
  '00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:a33f] (rev f0) (prog-if 00 [Normal decode])',
  '\tSubsystem: ASUSTeK Computer Inc. Device [1043:8694]',
  '\tControl: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+',
  '\tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-',
  '\tIOMMU group: 7',
  '\tBus: primary=00, secondary=04, subordinate=05, sec-latency=0',
  '\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00',
  '\t\tDevCap2: Completion Timeout: Range ABC, TimeoutDis+ NROPrPrP- LTR+',
  '\t\t\t FRS- LN System CLS Not Supported, TPHComp- ExtTPHComp- ARIFwd+',
  '\t\tDevCtl2: Completion Timeout: 50us to 50ms, TimeoutDis- LTR+ 10BitTagReq- OBFF Disabled, ARIFwd+',
  '\tCapabilities: [80] MSI: Enable+ Count=1/1 Maskable- 64bit-',
  '\t\tAddress: fee00218  Data: 0000',
  '\tCapabilities: [a0] Power Management version 3',
  '\t\tFlags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME(D0+,D1-,D2-,D3hot+,D3cold+)',
  '\t\tStatus: D0 NoSoftRst- PME-Enable- DSel=0 DScale=0 PME-',
  '\tCapabilities: [100 v1] Advanced Error Reporting',
  '\tCapabilities: [140 v1] Access Control Services',
  '\t\tACSCap:\tSrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd- EgressCtrl- DirectTrans-',
  '\t\tACSCtl:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd- EgressCtrl- DirectTrans-',
  '\tKernel driver in use: pcieport',
  '',
  '04:00.0 Network controller [0280]: Intel Corporation Wi-Fi 6 AX200 [8086:2723] (rev 1a)',
  '\tSubsystem: Intel Corporation Wi-Fi 6 AX200NGW [8086:0084]',
  '\tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-',
  '\tCapabilities: [c8] Power Management version 3',
  '\t\tStatus: D3 NoSoftRst+ PME-Enable- DSel=0 DScale=0 PME-',
  '\tCapabilities: [40] Express (v2) Endpoint, MSI 00',
  '\tCapabilities: [100 v1] Alternative Routing-ID Interpretation (ARI)',
  '\t\tARICap:\tMFVC- ACS-, Next Function: 0',
  '\t\tARICtl:\tMFVC- ACS-, Function Group: 0',
  '\tKernel driver in use: iwlwifi',
  '\tKernel modules: iwlwifi, wl',
  '',
];
const BLOCK_TEXT = BLOCK.join('\n');

test('synthetic block: registers rebuilt as specified', () => {
  const r = parseLspci(BLOCK_TEXT, 'block.txt');
  assert.deepEqual(r.warnings, []);
  const [rp, wifi] = r.functions as [LspciFunction, LspciFunction];
  const c = rp.config;
  assert.equal(rp.bdf, '0000:00:1c.0');
  assert.equal(rp.line, 1);
  assert.equal(u16(c, 0), 0x8086);
  assert.equal(u16(c, 2), 0xa33f);
  assert.equal(c[8], 0xf0);
  assert.equal(c[9], 0);
  assert.equal(u16(c, 0x0a), 0x0604);
  assert.equal(c[0x0e], 1, 'single function: bit 7 clear');
  assert.deepEqual(rp.assumptions, []);
  assert.equal(u16(c, 0x04), 0x407);
  assert.equal(u16(c, 0x06), 0x10);
  assert.equal(c[0x34], 0x40);
  assert.deepEqual(stdChain(c), [[0x40, 0x10], [0x80, 0x05], [0xa0, 0x01]]);
  assert.deepEqual(extChain(c), [[0x100, 0x01], [0x140, 0x0d]]);
  assert.equal(u32(c, 0x140), 0x0001000d);
  assert.equal(u32(c, 0x100), 0x1401_0001);
  assert.equal(u16(c, 0x42), 0x0142, 'PCIe v2 root port, slot');
  assert.equal(u32(c, 0x40 + 0x24), 0x7 | 0x10 | 0x20 | 0x800);
  assert.equal(u16(c, 0x40 + 0x28), 0x20 | 0x400);
  assert.equal(u16(c, 0x82), 0x0001, 'MSI enabled, 32-bit');
  assert.equal(u32(c, 0x84), 0xfee00218);
  assert.equal(u16(c, 0xa2), 0xc803, 'PMC: version 3, PME from D0/D3hot/D3cold');
  assert.equal(u16(c, 0x144), 0x0f);
  assert.equal(u16(c, 0x146), 0x0d);
  assert.equal(rp.configSize, 4096);
  assert.equal(rp.kernelGroup, 7);
  assert.equal(rp.powerState, 'D0');
  assert.equal(rp.names.subsystem, 'ASUSTeK Computer Inc. Device');
  assert.equal(rp.names.vendor, 'Intel Corporation');
  assert.equal(rp.names.device, 'Device');
  assert.equal(u32(c, 0x2c), 0, 'type 1 header has no subsystem at 0x2c');

  assert.equal(wifi.powerState, 'D3hot');
  assert.equal(u16(wifi.config, 0xcc) & 3, 3);
  assert.equal(u16(wifi.config, 0xcc) & 8, 8, 'NoSoftRst+');
  assert.equal(wifi.kernelGroup, null);
  assert.deepEqual(wifi.kernelModules, ['iwlwifi', 'wl']);
  assert.equal(u16(wifi.config, 0x2c), 0x8086);
  assert.equal(u16(wifi.config, 0x2e), 0x0084);
  assert.deepEqual(stdChain(wifi.config), [[0xc8, 0x01], [0x40, 0x10]]);
  assert.deepEqual(extChain(wifi.config), [[0x100, 0x0e]]);
  assert.equal(wifi.line, 22);
});

test('pcilib stderr spliced into a line, at column 0, and before a header', () => {
  const clean = parseLspci(BLOCK_TEXT, 'clean');
  const lines = [...BLOCK];
  const i = lines.findIndex((l) => l.includes('ACSCtl'));
  const l = lines[i]!;
  const cut = l.indexOf('CmpltRedir');
  lines.splice(i, 1, `${l.slice(0, cut)}pcilib: sysfs_read_vpd: read failed: No such device`, l.slice(cut));
  lines.splice(3, 0, 'pcilib: Error reading /sys/bus/pci/devices/0000:00:08.3/label: Operation not permitted');
  const h = lines.findIndex((x) => x.startsWith('04:00.0'));
  lines.splice(h, 0, 'junk before a header pcilib: sysfs_read_vpd: read failed');
  const r = parseLspci(lines.join('\n'), 'spliced');
  assert.deepEqual(r.functions.map((f) => f.bdf), clean.functions.map((f) => f.bdf));
  assert.deepEqual(r.functions.map((f) => [...f.config]), clean.functions.map((f) => [...f.config]));
  assert.equal(r.warnings.filter((w) => /pcilib/.test(w.message)).length, 3);
  assert.ok(r.warnings.some((w) => w.line === i + 2 && /joined/.test(w.message)));
  assert.ok(r.warnings.some((w) => /outside any device block/.test(w.message)));
});

test('garbage inside a block is warned about with its line number and skipped', () => {
  const clean = parseLspci(BLOCK_TEXT, 'clean');
  const lines = [...BLOCK];
  lines.splice(10, 0, '\tFrobnicate: yes');
  lines.splice(4, 0, 'random words at column zero');
  lines.splice(14, 0, '\tCapabilities: [zz] Bogus');
  lines.splice(18, 0, '\tCapabilities: [41] MSI: Enable+ Count=1/1 Maskable- 64bit-');
  const r = parseLspci(lines.join('\n'), 'garbage');
  assert.deepEqual(r.functions.map((f) => [...f.config]), clean.functions.map((f) => [...f.config]));
  const lineNos = r.warnings.map((w) => w.line).sort((a, b) => a - b);
  assert.deepEqual(lineNos, [5, 12, 15, 19]);
  for (const w of r.warnings) assert.match(w.message, /0000:00:1c\.0/);
});

test('empty and non-lspci input is EINVAL naming the input', () => {
  for (const text of ['', '\n\n  \n', 'hello world\nthis is not lspci\n', '-[0000:00]-+-00.0  Intel Corporation Device [8086:29c0]\n']) {
    assert.throws(
      () => parseLspci(text, 'paste.txt'),
      (e: unknown) => e instanceof IommuError && e.errno === 'EINVAL' && e.input === 'paste.txt' && /paste\.txt: .*lspci/.test(e.message),
    );
  }
  assert.throws(() => parseLspci('', 'empty.txt'), /empty\.txt: .*empty/);
});

test('truncated block: no crash, missing registers noted', () => {
  const cut = BLOCK_TEXT.indexOf('\t\tACSCtl');
  const r = parseLspci(BLOCK_TEXT.slice(0, cut), 'truncated');
  assert.equal(r.functions.length, 1);
  const f = r.functions[0]!;
  assert.equal(findExt(f.config, 0x0d), 0x140);
  assert.equal(u16(f.config, 0x144), 0x0f);
  assert.equal(u16(f.config, 0x146), 0);
  assert.ok(f.assumptions.some((a) => /ACSCtl/.test(a)));
  // cut in the middle of a header line's ids
  const r2 = parseLspci('00:1f.2 SATA controller [0106]: Intel Corporation Dev', 'cut header');
  assert.equal(r2.functions.length, 1);
  assert.equal(u16(r2.functions[0]!.config, 0x0a), 0x0106);
  assert.equal(u16(r2.functions[0]!.config, 0x00), 0);
});

test('property: every prefix of a real dump parses (or is EINVAL when it has no header)', () => {
  const text = readReal(realByPrefix('intel-z390'));
  // a header cut before its "<class> [cccc]:" colon is not recognisable as one
  const headerCount = (t: string): number => t.split('\n').filter((l) => /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] [^:]*:/.test(l)).length;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: text.length }), (cut) => {
      const t = text.slice(0, cut);
      try {
        const r = parseLspci(t, 'prefix');
        assert.equal(r.functions.length, headerCount(t));
      } catch (e) {
        assert.ok(e instanceof IommuError && e.errno === 'EINVAL' && headerCount(t) === 0, String(e));
      }
    }),
    { numRuns: 150 },
  );
});

const JUNK_SAMPLES = [
  '\tCapabilities: [40] MSI: Enable+ Count=1/1 Maskable- 64bit+',
  '\t\tACSCtl:\tSrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-',
  '\tIOMMU group: 99',
  'pcilib: sysfs_read_vpd: read failed: No such device',
  'abc pcilib: Error reading label',
  '-[0000:00]-+-00.0  Intel Corporation Device [8086:29c0]',
  '           +-02.0-[01-03]----00.0-[02-03]--+-01.0  Device [1234:11e8]',
  '00: 86 80 68 46 06 00 90 20 02 00 00 06 00 00 00 00',
  'lspci: Unable to load libkmod resources: error -2',
  '$ sudo lspci -vvnn',
  '```',
  '',
  '\t',
  '00:1f',
];

test('property: junk lines between device blocks never change BDFs or config bytes', () => {
  for (const text of [readReal(realByPrefix('intel-z690')), readFileSync(`${ORACLE_LSPCI}t07-pcie-to-pci-bridge-aliasing.txt`, 'utf8')]) {
    const clean = parseLspci(text, 'clean');
    const lines = text.split('\n');
    const headerIdx = lines.flatMap((l, i) => (HEADER_RE.test(l) ? [i] : []));
    const junkLine = fc
      .oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom(...JUNK_SAMPLES))
      .map((s) => s.replace(/\n/g, ' '))
      .filter((s) => !HEADER_RE.test(s) && !isLspciDeviceHeader(s));
    const insertion = fc.record({ at: fc.integer({ min: 0, max: headerIdx.length - 1 }), junk: fc.array(junkLine, { minLength: 1, maxLength: 6 }) });
    fc.assert(
      fc.property(fc.array(insertion, { minLength: 1, maxLength: 5 }), (ins) => {
        const byAt = new Map<number, string[]>();
        for (const x of ins) byAt.set(headerIdx[x.at]!, [...(byAt.get(headerIdx[x.at]!) ?? []), ...x.junk]);
        const out: string[] = [];
        lines.forEach((l, i) => {
          out.push(...(byAt.get(i) ?? []), l);
        });
        const r = parseLspci(out.join('\n'), 'junk');
        assert.deepEqual(r.functions.map((f) => f.bdf), clean.functions.map((f) => f.bdf));
        r.functions.forEach((f, i) => assert.deepEqual(f.config, clean.functions[i]!.config, f.bdf));
      }),
      { numRuns: 60 },
    );
  }
});

test('property: arbitrary lines inside device blocks never throw and never lose a function', () => {
  const sample = readReal(realByPrefix('intel-z690')).split('\n').filter((l) => l.startsWith('\t'));
  // real body lines with random cuts and byte flips, plus junk
  const mutated = fc
    .tuple(fc.constantFrom(...sample), fc.nat(), fc.nat(), fc.string({ unit: 'binary', maxLength: 4 }))
    .map(([l, a, b, ins]) => {
      const i = a % (l.length + 1);
      const j = Math.min(l.length, i + (b % 8));
      return (l.slice(0, i) + ins + l.slice(j)).replace(/\n/g, '');
    });
  const line = fc.oneof(mutated, fc.constantFrom(...JUNK_SAMPLES), fc.string({ unit: 'binary' }).map((x) => x.replace(/\n/g, '')));
  fc.assert(
    fc.property(fc.array(fc.array(line, { maxLength: 30 }), { minLength: 1, maxLength: 4 }), (blocks) => {
      const text = blocks
        .map((body, k) => [`00:${k.toString(16).padStart(2, '0')}.0 PCI bridge [0604]: Intel Corporation Device [8086:7ab8]`, ...body].join('\n'))
        .join('\n\n');
      const r = parseLspci(text, 'fuzz');
      blocks.forEach((_, k) => {
        const f = byBdf(r.functions, `0000:00:${k.toString(16).padStart(2, '0')}.0`);
        assert.equal(f.config.length, 4096);
        assert.equal(u16(f.config, 0), 0x8086); // (a junk `00: 86 80 …` hex dump line may overwrite the rest)
      });
    }),
    { numRuns: 300 },
  );
});

test('multi-function inference: lone fn 0, slot with .0 and .3, lone fn 2', () => {
  const hdr = (bdf: string) => `${bdf} Ethernet controller [0200]: Intel Corporation I350 Gigabit Network Connection [8086:1521] (rev 01)\n\tStatus: Cap- 66MHz-\n`;
  const r = parseLspci([hdr('01:00.0'), hdr('02:00.0'), hdr('02:00.3'), hdr('03:00.2')].join('\n'), 'mf');
  const [a, b, c, d] = r.functions as [LspciFunction, LspciFunction, LspciFunction, LspciFunction];
  assert.equal(a.config[0x0e], 0x00);
  assert.deepEqual(a.assumptions, []);
  assert.equal(b.config[0x0e], 0x80);
  assert.equal(b.assumptions.length, 1);
  assert.match(b.assumptions[0]!, /multi-function.*\.3/);
  assert.equal(c.config[0x0e], 0x80);
  assert.deepEqual(c.assumptions, []);
  assert.equal(d.config[0x0e], 0x80);
  assert.deepEqual(d.assumptions, []);
});

test('access denied, CardBus, domains, unknown capability names, no -nn', () => {
  const text = [
    '0001:02:00.0 Ethernet controller [0200]: Intel Corporation I210 Gigabit Network Connection [8086:1533] (rev 03)',
    '\tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-',
    '\tCapabilities: <access denied>',
    '',
    '03:00.0 CardBus bridge [0607]: Texas Instruments PCI1510 PC card Cardbus Controller [104c:ac56]',
    '\tSubsystem: Dell Device [1028:0184]',
    '\tBus: primary=03, secondary=04, subordinate=07, sec-latency=176',
    '\tCapabilities: [a0] Power Management version 2',
    '\t\tStatus: D0 NoSoftRst- PME-Enable- DSel=0 DScale=0 PME-',
    '',
    '10000:e0:06.0 PCI bridge [0604]: Intel Corporation Device [8086:a74d]',
    '\tCapabilities: [40] Frobnication Engine',
    '\tCapabilities: [50] Capability ID 0x16 [0001]',
    '\tCapabilities: [60] Express (v2) Root Port (Slot-), MSI 00',
    '\tCapabilities: [100 v1] Extended Capability ID 0x2c',
    '\tCapabilities: [200 v2] Quantum Entanglement <?>',
    '\tCapabilities: [300 v1] Access Control Services',
    '',
    '00:1f.3 Audio device: Intel Corporation Cannon Lake PCH cAVS',
    '\tKernel driver in use: snd_hda_intel',
    '',
  ].join('\n');
  const r = parseLspci(text, 'mixed');
  const [nd, cb, vmd, nonn] = r.functions as [LspciFunction, LspciFunction, LspciFunction, LspciFunction];
  assert.equal(nd.bdf, '0001:02:00.0');
  assert.equal(nd.configSize, 64);
  assert.equal(u16(nd.config, 6) & 0x10, 0x10);
  assert.ok(nd.assumptions.some((a) => /access denied/.test(a)));

  assert.equal(cb.config[0x0e], 2);
  assert.equal(cb.config[0x14], 0xa0, 'CardBus capability pointer at 0x14');
  assert.equal(cb.config[0x34], 0);
  assert.deepEqual([cb.config[0x18], cb.config[0x19], cb.config[0x1a], cb.config[0x1b]], [3, 4, 7, 176]);
  assert.equal(u16(cb.config, 0x40), 0x1028);
  assert.equal(cb.names.vendor, 'Texas Instruments');

  assert.equal(vmd.bdf, '10000:e0:06.0');
  assert.deepEqual(stdChain(vmd.config), [[0x40, 0], [0x50, 0x16], [0x60, 0x10]]);
  assert.deepEqual(extChain(vmd.config), [[0x100, 0x2c], [0x200, 0], [0x300, 0x0d]]);
  assert.equal(u32(vmd.config, 0x200) >>> 16 & 0xf, 2);
  assert.ok(r.warnings.some((w) => w.line === 12 && /Frobnication/.test(w.message)));
  assert.ok(r.warnings.some((w) => w.line === 16 && /Quantum/.test(w.message)));
  assert.ok(!r.warnings.some((w) => /Capability ID/.test(w.message)));
  assert.ok(vmd.assumptions.some((a) => /ACSCap\/ACSCtl/.test(a)));
  assert.ok(vmd.assumptions.some((a) => /header type 1 assumed/.test(a)));

  assert.equal(nonn.names.className, 'Audio device');
  assert.equal(nonn.driver, 'snd_hda_intel');
  assert.equal(u16(nonn.config, 0), 0);
  assert.ok(r.warnings.some((w) => w.line === 19 && /-nn/.test(w.message)));
});

test('pasted with spaces instead of tabs, with CRLF, or with lspci -x hex lines', () => {
  const clean = parseLspci(BLOCK_TEXT, 'clean');
  const spaced = BLOCK.map((l) => l.replace(/^\t+/, (t) => '    '.repeat(t.length))).join('\n');
  const crlf = BLOCK.join('\r\n');
  for (const t of [spaced, crlf]) {
    const r = parseLspci(t, 'variant');
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.functions.map((f) => [...f.config]), clean.functions.map((f) => [...f.config]));
  }
  const hexed = [
    '00:00.0 Host bridge [0600]: Intel Corporation 8th Gen Core Processor Host Bridge/DRAM Registers [8086:3e30] (rev 0d)',
    '\tSubsystem: ASUSTeK Computer Inc. Device [1043:8694]',
    '00: 86 80 30 3e 06 00 90 20 0d 00 00 06 00 00 80 00',
    '10: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00',
    '20: 00 00 00 00 00 00 00 00 00 00 00 00 43 10 94 86',
    '30: 00 00 00 00 e0 00 00 00 00 00 00 00 00 00 00 00',
    '',
  ].join('\n');
  const h = parseLspci(hexed, 'hex').functions[0]!;
  assert.equal(h.config[0x0e], 0x80, 'real header type byte from the dump');
  assert.equal(h.config[0x34], 0xe0);
  assert.equal(u16(h.config, 0x06), 0x2090);
  assert.equal(h.configSize, 256);
});

test('parsing the same 260 kB dump twice gives identical results (no state carried between parses)', () => {
  const text = readReal(realByPrefix('intel-xeon'));
  const a = parseLspci(text, 'first');
  const b = parseLspci(text, 'second');
  assert.equal(a.functions.length, b.functions.length);
  for (let i = 0; i < a.functions.length; i++) assert.deepEqual(a.functions[i]!.config, b.functions[i]!.config);
});
