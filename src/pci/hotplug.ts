/**
 * PCI hot-add and hot-remove on a topology built by buildPciTopology(): one
 * function appears on an existing bus (a slot was powered up, a device was
 * rescanned), or a function — with everything below it, if it is a bridge —
 * goes away. Each change goes through the driver model (device_add() /
 * device_del()), so the `pci` bus notifier chain, which the IOMMU core
 * watches, sees BUS_NOTIFY_ADD_DEVICE / BUS_NOTIFY_DEL_DEVICE /
 * BUS_NOTIFY_REMOVED_DEVICE exactly as on Linux.
 *
 * The same machinery adds and removes SR-IOV VFs (`sriov.ts`): the helpers
 * marked `@internal` below are shared with it.
 *
 * Linux: pci_scan_single_device(), pci_device_add() (drivers/pci/probe.c),
 * pci_bus_add_device() (drivers/pci/bus.c), pci_stop_and_remove_bus_device()
 * (drivers/pci/remove.c).
 */
import { IommuError } from '../base/errno.js';
import { deviceAdd, deviceDel, deviceDelMany, type Device } from '../device/device.js';
import { ConfigSpace } from './config-space.js';
import { formatBdf, hex, parseBdf, PciBus, PciDev, toPciDev, type ConfigOrigin } from './pci-dev.js';
import { pciDevSpecificEnableAcs } from './quirks/acs-enable.js';
import { applyPciFixups } from './quirks/dma-alias.js';
import { PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF } from './regs.js';
import { pciTopologyLists, type PciTopology } from './topology.js';

/** Bytes of the type 0/1 header: the least config space a hot-added function must come with. */
const PCI_STD_HEADER_SIZEOF = 64;

/**
 * Hot-add one function at `bdf` to an existing bus of `topo`: a root bus or
 * a bridge's secondary bus (not an SR-IOV virtual bus).
 *
 * The function is set up as the scan in buildPciTopology() sets one up: a
 * PciDev whose parent device is the bridge's (or, on a root bus, the host
 * bridge device), `multifunction` forced for function numbers > 0 (as
 * pci_scan_slot() does), the header fixups and ACS-enable quirks applied; it
 * is appended to `bus.devices`, `topo.devices` and `topo.byBdf`, then added
 * with deviceAdd() (which appends it to `topo.pciBus.devices` and sends
 * ADD_DEVICE: the IOMMU core probes it). A bridge gets an empty secondary
 * bus (a PciBus numbered by its Secondary Bus register, linked as
 * `pdev.subordinate` and in `bus.children` after the ADD_DEVICE), so later
 * hot-adds can go below it.
 *
 * `config` (64, 256 or 4096 bytes, index = config-space offset) is copied:
 * quirks that write config space write the copy. On failure nothing is
 * changed: a deviceAdd() that throws (a bus notifier threw) is undone — the
 * device is deleted again (DEL_DEVICE / REMOVED_DEVICE, so a half-done probe
 * is released) and unlinked — and the error is rethrown.
 *
 * @param topo the topology to change (built by buildPciTopology()).
 * @param bdf `dddd:bb:dd.f` or `bb:dd.f` (hex).
 * @param config the function's config space as read, at least 64 bytes.
 * @param origin where `config` came from (default `'synthetic'`).
 * @returns the new function.
 * @throws IommuError EINVAL (input = `bdf`) for a malformed BDF, a config
 *   shorter than 64 bytes, or a bridge whose Secondary/Subordinate Bus numbers
 *   do not fit below its bus (secondary must be above the bus number,
 *   subordinate ≥ secondary, both within the bus's bus-number range);
 *   EEXIST if a function is already at `bdf`; ENODEV if there is no bus
 *   `dddd:bb` (or it is an SR-IOV virtual bus); EBUSY if a hot-added bridge's
 *   secondary bus number is already in use; EINVAL if `topo` cannot be
 *   changed; whatever a bus notifier throws from ADD_DEVICE.
 * Linux: pci_scan_single_device() → pci_scan_device() / pci_setup_device() /
 *   pci_device_add() (drivers/pci/probe.c), pci_bus_add_device()
 *   (drivers/pci/bus.c); a bridge's bus: pci_add_new_bus() (drivers/pci/probe.c).
 */
export function pciHotAdd(topo: PciTopology, bdf: string, config: Uint8Array, origin: ConfigOrigin = 'synthetic'): PciDev {
  const lists = pciTopologyLists(topo);
  const b = typeof bdf === 'string' ? parseBdf(bdf) : null;
  if (!b) throw new IommuError('EINVAL', 'not a PCI address (expected dddd:bb:dd.f)', { input: String(bdf) });
  const name = formatBdf(b.domain, b.bus, b.devfn);
  if (!(config instanceof Uint8Array) || config.length < PCI_STD_HEADER_SIZEOF) {
    const len = config instanceof Uint8Array ? `${config.length} bytes` : 'not a Uint8Array';
    throw new IommuError('EINVAL', `config space is ${len} (the header needs ${PCI_STD_HEADER_SIZEOF})`, { input: name });
  }
  if (lists.byBdf.has(name)) throw new IommuError('EEXIST', 'a function is already at this address', { input: name });
  const bus = pciFindBus(topo, b.domain, b.bus);
  if (!bus) throw new IommuError('ENODEV', `no PCI bus ${hex(b.domain, 4)}:${hex(b.bus, 2)} (not a root bus nor a bridge's secondary bus)`, { input: name });
  if (isVirtualBus(bus)) throw new IommuError('ENODEV', `bus ${bus.name} is an SR-IOV virtual bus: only VFs live there`, { input: name });
  const parent: Device | null = bus.self ? bus.self.dev : (topo.hostBridges.find((h) => h.name === bus.hostBridge) ?? null);
  const pdev = new PciDev(topo.pciBus, bus, b.devfn, new ConfigSpace(config.slice()), origin, parent);
  if ((b.devfn & 7) !== 0) pdev.multifunction = true;
  let child: PciBus | null = null;
  if (pdev.isBridge) {
    const sec = pdev.secondaryBus;
    const sub = pdev.subordinateBus;
    const end = pciBusNumberEnd(bus);
    if (sec <= bus.number || sec > end || sub < sec || sub > end) {
      throw new IommuError(
        'EINVAL',
        `bridge with secondary bus ${hex(sec, 2)} and subordinate bus ${hex(sub, 2)} does not fit below bus ${bus.name} (buses ${hex(bus.number, 2)}-${hex(end, 2)})`,
        { input: name },
      );
    }
    const taken = pciFindBus(topo, b.domain, sec);
    if (taken) throw new IommuError('EBUSY', `its secondary bus number ${hex(sec, 2)} is already bus ${taken.name}`, { input: name });
    child = new PciBus(bus.domain, sec, bus, pdev, bus.hostBridge);
  }
  pciAddFunction(topo, pdev);
  // pci_scan_child_bus(): a bridge's secondary bus is set up after the bridge itself was added.
  if (child) {
    pdev.subordinate = child;
    bus.children.push(child);
  }
  return pdev;
}

/**
 * Hot-remove `pdev` and everything below it, children first: for a bridge,
 * the functions of its secondary bus in reverse order, each recursively
 * (deepest first), then the bridge; a PF first loses its VFs (VF 0 first, as
 * pci_disable_sriov() removes them; its NumVFs and VF Enable are cleared).
 * Each function is deleted (deviceDel semantics: driver unbound, DEL_DEVICE,
 * off `topo.pciBus.devices`, REMOVED_DEVICE: the IOMMU core releases it),
 * then unlinked from its bus's `devices`, `topo.byBdf` and `topo.devices`.
 * A removed bridge's secondary bus is unlinked from its parent's `children`
 * and `subordinate` set to null; SR-IOV virtual buses left empty are
 * unlinked. Removing a single VF leaves its PF's NumVFs as it is (as Linux
 * does when a VF is removed through sysfs).
 *
 * The removal is O(n + k) for k functions in a topology of n: `topo.devices`
 * and `topo.pciBus.devices` are compacted once, after the last REMOVED_DEVICE
 * (see deviceDelMany()). A removal cannot be undone: if a bus notifier
 * throws, the functions before it stay removed (and unlinked), the rest stay,
 * and the error propagates.
 *
 * @param topo the topology (built by buildPciTopology()).
 * @param pdev a function of `topo`.
 * @throws IommuError ENODEV (input = the BDF) if `pdev` is not (or no longer)
 *   a function of `topo`; EINVAL if `topo` cannot be changed; whatever a bus
 *   notifier throws.
 * Linux: pci_stop_and_remove_bus_device() → pci_stop_bus_device() /
 *   pci_remove_bus_device(), drivers/pci/remove.c; sriov_del_vfs(),
 *   drivers/pci/iov.c.
 */
export function pciHotRemove(topo: PciTopology, pdev: PciDev): void {
  const lists = pciTopologyLists(topo);
  if (!(pdev instanceof PciDev) || lists.byBdf.get(pdev.bdf) !== pdev || !pdev.dev.registered) {
    const what = pdev instanceof PciDev ? pdev.bdf : String(pdev);
    throw new IommuError('ENODEV', 'not a function of this topology (already removed?)', { input: what });
  }
  const vfsOf = pciVfsByPf(topo);
  const order: PciDev[] = [];
  const pfs: PciDev[] = [];
  const visit = (d: PciDev): void => {
    const sub = d.subordinate;
    if (sub) {
      for (let i = sub.devices.length - 1; i >= 0; i--) {
        const c: PciDev = sub.devices[i]!;
        // A VF next to its PF goes when that PF is visited (all its VFs together, in VF order).
        if (c.isVirtfn && c.physfn !== null && c.physfn.bus === sub && vfsOf.has(c.physfn)) continue;
        visit(c);
      }
    }
    const vfs = vfsOf.get(d);
    if (vfs) for (const vf of vfs) order.push(vf);
    if (vfs || pciSriovEnabledCount(d) > 0) pfs.push(d);
    order.push(d);
  };
  visit(pdev);
  pciRemoveFunctions(topo, order, pfs);
}

/**
 * @internal Shared with `sriov.ts`: the bus `domain:number` of `topo`
 * (root buses, bridges' secondary buses and SR-IOV virtual buses), or null.
 * O(number of buses). Linux: pci_find_bus(), drivers/pci/search.c.
 */
export function pciFindBus(topo: PciTopology, domain: number, number: number): PciBus | null {
  let found: PciBus | null = null;
  const walk = (bus: PciBus): void => {
    if (found) return;
    if (bus.domain === domain && bus.number === number) {
      found = bus;
      return;
    }
    for (const c of bus.children) walk(c);
  };
  for (const r of topo.rootBuses) walk(r);
  return found;
}

/**
 * @internal Shared with `sriov.ts`: every bus of `domain` in `topo`, by bus
 * number (the first found in scan order when a number repeats).
 */
export function pciBusesOfDomain(topo: PciTopology, domain: number): Map<number, PciBus> {
  const out = new Map<number, PciBus>();
  const walk = (bus: PciBus): void => {
    if (bus.domain === domain && !out.has(bus.number)) out.set(bus.number, bus);
    for (const c of bus.children) walk(c);
  };
  for (const r of topo.rootBuses) walk(r);
  return out;
}

/**
 * @internal The last bus number `bus` routes (its busn_res end): a bridge's
 * Subordinate Bus number; a root bus: 0xff; an SR-IOV virtual bus: its own
 * number. Linux: pci_bus.busn_res.end.
 */
export function pciBusNumberEnd(bus: PciBus): number {
  if (bus.self) return bus.self.subordinateBus;
  return bus.parent ? bus.number : 0xff;
}

/** @internal True for an SR-IOV virtual bus: no bridge above it, yet not a root bus. Linux: virtfn_add_bus(), drivers/pci/iov.c. */
export function isVirtualBus(bus: PciBus): boolean {
  return bus.self === null && bus.parent !== null;
}

/**
 * @internal Shared with `sriov.ts`: add a PciDev already constructed on its
 * bus: append to `pdev.bus.devices`, run the header fixups and ACS-enable
 * quirks, append to `topo.devices` / `topo.byBdf`, then deviceAdd(). On
 * failure everything is undone (see {@link pciHotAdd}) and the error rethrown.
 * Linux: pci_device_add() (drivers/pci/probe.c) with pci_fixup_device(pci_fixup_header) and pci_enable_acs().
 */
export function pciAddFunction(topo: PciTopology, pdev: PciDev): void {
  const lists = pciTopologyLists(topo);
  const bus = pdev.bus;
  bus.devices.push(pdev);
  try {
    applyPciFixups(pdev);
    pciDevSpecificEnableAcs(pdev);
    lists.devices.push(pdev);
    lists.byBdf.set(pdev.bdf, pdev);
    deviceAdd(pdev.dev);
  } catch (e) {
    undoAdd(topo, pdev);
    throw e;
  }
}

/** Undo a failed pciAddFunction(): delete the device again if it got added, then unlink it everywhere. */
function undoAdd(topo: PciTopology, pdev: PciDev): void {
  const lists = pciTopologyLists(topo);
  const dev = pdev.dev;
  if (dev.registered) {
    // An ADD_DEVICE notifier threw after the device was on the bus: let the notifiers release what they did.
    try {
      deviceDel(dev);
    } catch {
      // A notifier threw again: take the device off the bus without it.
    }
    if (dev.registered) dev.registered = false;
    const i = dev.bus.devices.lastIndexOf(dev);
    if (i >= 0) dev.bus.devices.splice(i, 1);
  }
  removeLast(pdev.bus.devices, pdev);
  removeLast(lists.devices, pdev);
  if (lists.byBdf.get(pdev.bdf) === pdev) lists.byBdf.delete(pdev.bdf);
}

function removeLast<T>(list: T[], item: T): void {
  const i = list.lastIndexOf(item);
  if (i >= 0) list.splice(i, 1);
}

/**
 * @internal Shared with `sriov.ts`: remove `order` (functions of `topo`, in
 * removal order) with deviceDelMany(), unlinking each from its bus's
 * `devices` and from `topo.byBdf` right after its REMOVED_DEVICE, then
 * compacting `topo.devices` once. Afterwards (also when a notifier threw):
 * for each of `pfs` whose VFs in `order` are all gone, NumVFs and VF Enable
 * are cleared; removed bridges lose their secondary bus; SR-IOV virtual buses
 * left empty are unlinked from their parent.
 * @returns how many functions were removed.
 * Linux: pci_stop_dev() / pci_destroy_dev() (drivers/pci/remove.c), virtfn_remove_bus() (drivers/pci/iov.c).
 */
export function pciRemoveFunctions(topo: PciTopology, order: readonly PciDev[], pfs: readonly PciDev[]): number {
  const lists = pciTopologyLists(topo);
  const gone = new Set<PciDev>();
  try {
    deviceDelMany(
      order.map((p) => p.dev),
      (dev) => {
        const p = toPciDev(dev)!;
        removeLast(p.bus.devices, p); // at most 256 functions on a bus
        if (lists.byBdf.get(p.bdf) === p) lists.byBdf.delete(p.bdf);
        gone.add(p);
      },
    );
  } finally {
    if (gone.size > 0) {
      const list = lists.devices;
      let w = 0;
      for (let r = 0; r < list.length; r++) {
        const d = list[r]!;
        if (!gone.has(d)) list[w++] = d;
      }
      list.length = w;
    }
    const keptVfsOf = new Set<PciDev>();
    for (const d of order) if (d.physfn !== null && !gone.has(d)) keptVfsOf.add(d.physfn);
    for (const pf of pfs) if (!keptVfsOf.has(pf)) pciSriovClearEnable(pf);
    const emptied = new Set<PciBus>();
    for (const p of gone) {
      const sub = p.subordinate;
      if (sub) {
        removeLast(p.bus.children, sub);
        p.subordinate = null;
      }
      if (isVirtualBus(p.bus)) emptied.add(p.bus);
    }
    for (const vb of emptied) if (vb.devices.length === 0 && vb.parent) removeLast(vb.parent.children, vb);
  }
  return gone.size;
}

/**
 * @internal The VFs of every PF of `topo`, in `topo.devices` order (= VF
 * order for VFs added by pciEnableSriov()). O(n).
 */
export function pciVfsByPf(topo: PciTopology): Map<PciDev, PciDev[]> {
  const out = new Map<PciDev, PciDev[]>();
  for (const d of topo.devices) {
    if (!d.isVirtfn || d.physfn === null) continue;
    let l = out.get(d.physfn);
    if (!l) out.set(d.physfn, (l = []));
    l.push(d);
  }
  return out;
}

/**
 * @internal NumVFs as the PF's SR-IOV capability says while VF Enable is set,
 * else 0 (0 without an SR-IOV capability).
 */
export function pciSriovEnabledCount(pf: PciDev): number {
  const cap = pf.sriovCap;
  if (!cap) return 0;
  if (!(pf.config.read16(cap + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE)) return 0;
  return pf.config.read16(cap + PCI_SRIOV_NUM_VF);
}

/** @internal Clear NumVFs and VF Enable / VF MSE in `pf`'s config space (no-op without an SR-IOV capability). Linux: sriov_disable(), drivers/pci/iov.c. */
export function pciSriovClearEnable(pf: PciDev): void {
  const cap = pf.sriovCap;
  if (!cap) return;
  pciConfigWrite16(pf, cap + PCI_SRIOV_CTRL, pf.config.read16(cap + PCI_SRIOV_CTRL) & ~(PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE));
  pciConfigWrite16(pf, cap + PCI_SRIOV_NUM_VF, 0);
}

/**
 * @internal Write a little-endian 16-bit value into `pdev`'s config space
 * copy (ignored past the readable bytes, as a write the device does not
 * decode). Linux: pci_write_config_word().
 */
export function pciConfigWrite16(pdev: PciDev, off: number, value: number): void {
  const c = pdev.config;
  if (!c.readable(off, 2)) return;
  c.bytes[off] = value & 0xff;
  c.bytes[off + 1] = (value >> 8) & 0xff;
}
