/**
 * Build PCI buses and bridges from a flat list of functions (read from sysfs,
 * reconstructed from lspci, or generated), in the order the kernel's scan
 * would find them.
 *
 * Scan order: root buses by (domain, bus number); on each bus every function
 * by devfn, then each bridge's secondary bus in turn, depth first; SR-IOV VFs
 * last (they appear when a PF driver enables them). This is the order devices
 * are added to the PCI bus and hence probed by the IOMMU core.
 *
 * Linux: pci_scan_child_bus_extend(), pci_scan_slot(), pci_scan_bridge_extend(),
 * pci_setup_device(), pci_fixup_device(pci_fixup_header) (drivers/pci/probe.c,
 * drivers/pci/quirks.c), pci_iov_add_virtfn() (drivers/pci/iov.c).
 */
import { IommuError } from '../base/errno.js';
import { BusType } from '../device/bus.js';
import { Device } from '../device/device.js';
import { ConfigSpace } from './config-space.js';
import { hex, parseBdf, PciBus, PciDev, type ConfigOrigin } from './pci-dev.js';
import { applyPciFixups } from './quirks/dma-alias.js';
import { pciDevSpecificEnableAcs } from './quirks/acs-enable.js';

/** One function as a reader found it. */
export interface PciFunctionInput {
  /** `dddd:bb:dd.f` (or `bb:dd.f`). */
  readonly bdf: string;
  /** Config space bytes as read (64, 256 or 4096 long). */
  readonly config: Uint8Array;
  /** Where the bytes came from. */
  readonly origin: ConfigOrigin;
  /** The PCI function this one sits under in sysfs (its upstream bridge), when known. */
  readonly parentBdf?: string | null;
  /** Host bridge name (`pci0000:00`) when known (sysfs). */
  readonly hostBridge?: string;
  /** True for an SR-IOV virtual function (sysfs `physfn` link). */
  readonly isVirtfn?: boolean;
  /** The PF of a VF, when known. */
  readonly physfnBdf?: string | null;
}

/**
 * The scanned topology.
 *
 * Read-only to its users. It changes in place only through the hotplug and
 * SR-IOV calls (`pciHotAdd()` / `pciHotRemove()` in `hotplug.ts`,
 * `pciEnableSriov()` / `pciDisableSriov()` in `sriov.ts`), which reach the
 * mutable lists behind `devices` and `byBdf` with {@link pciTopologyLists}:
 * added functions are appended to `devices` (after the scanned ones, in add =
 * probe order), removed ones are dropped from it, and the buses' `devices` /
 * `children` lists change with them.
 */
export interface PciTopology {
  /** The `pci` bus type: its `devices` list is in scan (= probe) order, then hot-add order. */
  readonly pciBus: BusType;
  /** Root buses in scan order. */
  readonly rootBuses: readonly PciBus[];
  /** All functions in scan (= probe) order, then hot-add / VF-enable order. */
  readonly devices: readonly PciDev[];
  /** Lookup by canonical `dddd:bb:dd.f`. */
  readonly byBdf: ReadonlyMap<string, PciDev>;
  /** Host bridge devices (`pci0000:00`), parents of the root buses' functions. */
  readonly hostBridges: readonly Device[];
  /** Inputs that could not be placed, with why. */
  readonly problems: readonly string[];
}

/** The mutable lists behind a {@link PciTopology}'s read-only `devices` and `byBdf`. */
export interface PciTopologyLists {
  /** The array `topology.devices` is. */
  readonly devices: PciDev[];
  /** The map `topology.byBdf` is. */
  readonly byBdf: Map<string, PciDev>;
}

const topologyLists = new WeakMap<PciTopology, PciTopologyLists>();

/**
 * @internal For the hotplug and SR-IOV code only: the mutable array and map
 * behind `topology.devices` and `topology.byBdf` (the same objects, not
 * copies). Works for a topology from {@link buildPciTopology} and for a copy
 * of one that shares its lists (`{ ...topology }`).
 * @throws IommuError EINVAL if `topology`'s lists are not a plain, unfrozen
 *   array and a Map (a hand-made or frozen topology cannot be changed).
 */
export function pciTopologyLists(topology: PciTopology): PciTopologyLists {
  const known = topologyLists.get(topology);
  if (known) return known;
  const { devices, byBdf } = topology;
  if (Array.isArray(devices) && !Object.isFrozen(devices) && byBdf instanceof Map) {
    return { devices: devices as PciDev[], byBdf: byBdf as Map<string, PciDev> };
  }
  throw new IommuError('EINVAL', 'this topology cannot be changed: its devices/byBdf are not a mutable array and Map', { input: 'PciTopology' });
}

/**
 * Build the topology.
 * @throws IommuError EINVAL if no function could be placed at all.
 */
export function buildPciTopology(inputs: readonly PciFunctionInput[], source = 'input'): PciTopology {
  const problems: string[] = [];
  interface Parsed {
    readonly input: PciFunctionInput;
    readonly domain: number;
    readonly bus: number;
    readonly devfn: number;
    readonly bdf: string;
    readonly cfg: ConfigSpace;
  }
  const byBus = new Map<number, Parsed[]>(); // key: domain << 8 | bus
  const seen = new Set<string>();
  const parsed: Parsed[] = [];
  for (const input of inputs) {
    const b = parseBdf(input.bdf);
    if (!b) {
      problems.push(`${input.bdf}: not a PCI address (expected dddd:bb:dd.f): skipped`);
      continue;
    }
    const bdf = `${hex(b.domain, 4)}:${hex(b.bus, 2)}:${hex(b.devfn >> 3, 2)}.${b.devfn & 7}`;
    if (seen.has(bdf)) {
      problems.push(`${bdf}: listed twice: the second copy was ignored`);
      continue;
    }
    seen.add(bdf);
    if (input.config.length < 0x10) {
      problems.push(`${bdf}: config space has only ${input.config.length} bytes (the header needs 64): skipped`);
      continue;
    }
    const p: Parsed = { input, domain: b.domain, bus: b.bus, devfn: b.devfn, bdf, cfg: new ConfigSpace(input.config) };
    parsed.push(p);
    const key = busKey(b.domain, b.bus);
    let list = byBus.get(key);
    if (!list) byBus.set(key, (list = []));
    list.push(p);
  }
  if (parsed.length === 0) throw new IommuError('EINVAL', 'no PCI function could be read', { input: source });
  for (const list of byBus.values()) list.sort((x, y) => x.devfn - y.devfn);

  // Which bridge each bus hangs off: the sysfs parent when known, else the bridge whose secondary bus it is.
  const parentOfBus = new Map<number, string>(); // bus key -> bridge bdf
  for (const p of parsed) {
    if (p.input.parentBdf) {
      const pb = parseBdf(p.input.parentBdf);
      if (pb) parentOfBus.set(busKey(p.domain, p.bus), canonical(pb.domain, pb.bus, pb.devfn));
    }
  }
  const childBusesOf = new Map<string, number[]>(); // bridge bdf -> bus keys (from sysfs parents)
  for (const [k, bridge] of parentOfBus) {
    let l = childBusesOf.get(bridge);
    if (!l) childBusesOf.set(bridge, (l = []));
    l.push(k);
  }
  const bridgeBySecondary = new Map<number, string>();
  for (const p of parsed) {
    const ht = p.cfg.read8(0x0e) & 0x7f;
    if (ht !== 1 && ht !== 2) continue;
    const sec = p.cfg.read8(0x19);
    if (sec === 0 || sec === 0xff || sec <= p.bus) continue;
    const k = busKey(p.domain, sec);
    if (!bridgeBySecondary.has(k)) bridgeBySecondary.set(k, p.bdf);
  }
  const virtfnParsed: Parsed[] = [];
  const rootKeys: number[] = [];
  for (const [k, list] of byBus) {
    const hasVfOnly = list.every((p) => p.input.isVirtfn);
    if (hasVfOnly && !parentOfBus.has(k) && !bridgeBySecondary.has(k)) {
      virtfnParsed.push(...list);
      continue;
    }
    if (!parentOfBus.has(k) && !bridgeBySecondary.has(k)) rootKeys.push(k);
  }
  rootKeys.sort((a, b) => a - b);

  const pciBus = new BusType('pci');
  const hostBus = new BusType('pci_host');
  const devices: PciDev[] = [];
  const byBdf = new Map<string, PciDev>();
  const rootBuses: PciBus[] = [];
  const hostBridges: Device[] = [];
  const placed = new Set<number>();
  const pendingVfs: Parsed[] = [];

  const scanBus = (bus: PciBus, parentDev: Device): void => {
    const key = busKey(bus.domain, bus.number);
    if (placed.has(key)) return;
    placed.add(key);
    const list = byBus.get(key) ?? [];
    // pci_scan_child_bus: every slot's functions first…
    for (const p of list) {
      if (p.input.isVirtfn) {
        pendingVfs.push(p);
        continue;
      }
      const dev = new PciDev(pciBus, bus, p.devfn, p.cfg, p.input.origin, parentDev);
      // pci_scan_slot() marks every function found after function 0 as multifunction.
      if ((p.devfn & 7) !== 0) dev.multifunction = true;
      bus.devices.push(dev);
      register(dev);
    }
    // …then each bridge's secondary bus, in order.
    for (const dev of [...bus.devices]) {
      if (!dev.isBridge) continue;
      const childKeys: number[] = childBusesOf.get(dev.bdf)?.slice() ?? [];
      if (childKeys.length === 0) {
        const k = busKey(bus.domain, dev.secondaryBus);
        if (bridgeBySecondary.get(k) === dev.bdf) childKeys.push(k);
      }
      for (const k of childKeys.sort((a, b) => a - b)) {
        if (placed.has(k)) continue;
        const child = new PciBus(bus.domain, k & 0xff, bus, dev, bus.hostBridge);
        dev.subordinate = child;
        bus.children.push(child);
        scanBus(child, dev.dev);
      }
    }
  };
  const register = (dev: PciDev): void => {
    // pci_fixup_device(pci_fixup_header, dev) at pci_setup_device() time, then pci_enable_acs() quirks.
    applyPciFixups(dev);
    pciDevSpecificEnableAcs(dev);
    devices.push(dev);
    byBdf.set(dev.bdf, dev);
    pciBus.devices.push(dev.dev);
    dev.dev.registered = true;
  };

  for (const k of rootKeys) {
    const domain = Math.floor(k / 256);
    const number = k & 0xff;
    const first = byBus.get(k)![0]!;
    const hbName = first.input.hostBridge ?? `pci${hex(domain, 4)}:${hex(number, 2)}`;
    let hb = hostBridges.find((h) => h.name === hbName);
    if (!hb) {
      hb = new Device(hbName, hostBus, null);
      hostBridges.push(hb);
    }
    const bus = new PciBus(domain, number, null, null, hbName);
    rootBuses.push(bus);
    scanBus(bus, hb);
  }
  // Buses whose bridge was never reached (a bridge missing from the input, a loop in sysfs parents).
  for (const [k, list] of byBus) {
    if (placed.has(k) || list.every((p) => p.input.isVirtfn)) continue;
    for (const p of list) problems.push(`${p.bdf}: its bus ${hex(k & 0xff, 2)} hangs off a bridge that is not in the input: treated as a root bus`);
    const domain = Math.floor(k / 256);
    const hbName = `pci${hex(domain, 4)}:${hex(k & 0xff, 2)}`;
    const hb = new Device(hbName, hostBus, null);
    hostBridges.push(hb);
    const bus = new PciBus(domain, k & 0xff, null, null, hbName);
    rootBuses.push(bus);
    scanBus(bus, hb);
  }

  // SR-IOV VFs: added when the PF's driver enables them; multifunction = 0; on the PF's bus,
  // or on a virtual bus (self = null) under it when the VF routing ID crosses a bus number.
  for (const p of [...pendingVfs, ...virtfnParsed]) {
    const pf = p.input.physfnBdf ? byBdf.get(normalise(p.input.physfnBdf)) : undefined;
    if (!pf) {
      problems.push(`${p.bdf}: SR-IOV VF whose PF is not in the input: skipped`);
      continue;
    }
    let bus: PciBus = pf.bus;
    if (p.bus !== pf.bus.number || p.domain !== pf.bus.domain) {
      let vbus = pf.bus.children.find((c) => c.self === null && c.number === p.bus);
      if (!vbus) {
        vbus = new PciBus(p.domain, p.bus, pf.bus, null, pf.bus.hostBridge);
        pf.bus.children.push(vbus);
      }
      bus = vbus;
    }
    const dev = new PciDev(pciBus, bus, p.devfn, p.cfg, p.input.origin, pf.dev.parent);
    dev.multifunction = false;
    dev.isVirtfn = true;
    dev.physfn = pf;
    bus.devices.push(dev);
    register(dev);
  }
  const topology: PciTopology = { pciBus, rootBuses, devices, byBdf, hostBridges, problems };
  topologyLists.set(topology, { devices, byBdf });
  return topology;
}

function busKey(domain: number, bus: number): number {
  return domain * 256 + bus;
}

function canonical(domain: number, bus: number, devfn: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(devfn >> 3, 2)}.${devfn & 7}`;
}

function normalise(bdf: string): string {
  const b = parseBdf(bdf);
  return b ? canonical(b.domain, b.bus, b.devfn) : bdf;
}
