/**
 * Seeded random PCI topologies of any size — root ports with and without ACS,
 * multifunction slots, switches, PCIe-to-PCI bridges with conventional devices
 * behind them — for property tests and benchmarks.
 */
import { buildConfig, type FunctionSpec } from './config-builder.js';
import { formatBdf } from './pci-dev.js';
import { PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, PcieType } from './regs.js';
import type { PciFunctionInput } from './topology.js';

const ACS_ALL = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

/** A small, fast, seeded PRNG (mulberry32): returns [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One generated function with its position in the tree. */
export interface SyntheticFunction extends PciFunctionInput {
  /** The sysfs path (`devices/pci0000:00/…/<bdf>`). */
  readonly path: string;
}

/**
 * About `count` functions (exactly `count` unless a domain runs out of bus
 * numbers first, then more domains are used), reproducible from `seed`.
 * Each domain has a root bus 00 with root ports (60 % with ACS, some in
 * multifunction slots), switches below some ports, PCIe-to-PCI bridges with
 * conventional devices below others, and multifunction endpoints.
 */
export function syntheticTopology(count: number, seed = 1): SyntheticFunction[] {
  const rnd = mulberry32(seed);
  const out: SyntheticFunction[] = [];
  let domain = 0;
  while (out.length < count) {
    let nextBus = 1;
    const hb = `pci${domain.toString(16).padStart(4, '0')}:00`;
    const add = (bus: number, devfn: number, spec: FunctionSpec, parentPath: string, parentBdf: string | null): SyntheticFunction => {
      const bdf = formatBdf(domain, bus, devfn);
      const f: SyntheticFunction = { bdf, config: buildConfig(spec), origin: 'synthetic', parentBdf, hostBridge: hb, path: `${parentPath}/${bdf}` };
      out.push(f);
      return f;
    };
    const endpoints = (bus: number, parent: SyntheticFunction, conventional: boolean): void => {
      const slots = conventional ? 1 + Math.floor(rnd() * 4) : 1;
      for (let s = 0; s < slots && out.length < count; s++) {
        const nfn = rnd() < 0.3 ? 2 + Math.floor(rnd() * 3) : 1;
        const acs = !conventional && rnd() < 0.5;
        for (let fn = 0; fn < nfn && out.length < count; fn++) {
          add(bus, (s << 3) | fn, conventional ? { multifunction: nfn > 1 } : { pcieType: PcieType.ENDPOINT, multifunction: nfn > 1, ...(acs ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : {}) }, parent.path, parent.bdf);
        }
      }
    };
    const rootPath = `devices/${hb}`;
    // Root bus: up to 31 slots of root ports, then the domain is full or count reached.
    for (let slot = 1; slot < 32 && out.length < count && nextBus < 250; slot++) {
      const nfn = rnd() < 0.25 ? 2 + Math.floor(rnd() * 6) : 1;
      for (let fn = 0; fn < nfn && out.length < count && nextBus < 250; fn++) {
        const acs = rnd() < 0.6;
        const kind = rnd();
        const sec = nextBus++;
        if (kind < 0.2 && nextBus + 8 < 250) {
          // A switch: upstream port, 2–6 downstream ports, an endpoint each.
          const ndsp = 2 + Math.floor(rnd() * 5);
          const sub = sec + 1 + ndsp;
          nextBus = sub + 1;
          const rp = add(0, (slot << 3) | fn, { pcieType: PcieType.ROOT_PORT, multifunction: nfn > 1, bridge: { primary: 0, secondary: sec, subordinate: sub }, ...(acs ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : {}) }, rootPath, null);
          const usp = add(sec, 0, { pcieType: PcieType.UPSTREAM, bridge: { primary: sec, secondary: sec + 1, subordinate: sub } }, rp.path, rp.bdf);
          for (let d = 0; d < ndsp && out.length < count; d++) {
            const dspAcs = rnd() < 0.7;
            const b = sec + 2 + d;
            const dsp = add(sec + 1, d << 3, { pcieType: PcieType.DOWNSTREAM, bridge: { primary: sec + 1, secondary: b, subordinate: b }, ...(dspAcs ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : {}) }, usp.path, usp.bdf);
            endpoints(b, dsp, false);
          }
        } else if (kind < 0.3 && nextBus < 250) {
          const b = nextBus++;
          const rp = add(0, (slot << 3) | fn, { pcieType: PcieType.ROOT_PORT, multifunction: nfn > 1, bridge: { primary: 0, secondary: sec, subordinate: b }, ...(acs ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : {}) }, rootPath, null);
          const br = add(sec, 0, { pcieType: PcieType.PCI_BRIDGE, bridge: { primary: sec, secondary: b, subordinate: b } }, rp.path, rp.bdf);
          endpoints(b, br, true);
        } else {
          const rp = add(0, (slot << 3) | fn, { pcieType: PcieType.ROOT_PORT, multifunction: nfn > 1, bridge: { primary: 0, secondary: sec, subordinate: sec }, ...(acs ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : {}) }, rootPath, null);
          endpoints(sec, rp, false);
        }
      }
    }
    domain++;
  }
  return out;
}
