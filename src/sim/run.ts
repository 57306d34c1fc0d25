/**
 * Run an `iommu sim` scenario: boot the IOMMU over a topology, then run each
 * step, recording a trace — every translation's result (IOTLB hit, page walk,
 * or fault, and stale hits in the lazy-invalidation window), every fault as
 * the driver would report it, and every refused call with Linux's errno.
 * A failing step is recorded and the run goes on. Hot-plug steps (`hot-add`,
 * `hot-remove`, `sriov-enable`, `sriov-disable`) change the live topology
 * through the bus notifier the booted IOMMU core watches, so later steps find
 * the new functions by BDF and the trace's groups are those at the end.
 */
import { IommuError, isIommuError } from '../base/errno.js';
import { deviceBindDriver, deviceReleaseDriver } from '../device/device.js';
import { driverByName } from '../device/driver.js';
import { iommuAllocGlobalPasid, iommuAttachDevicePasid, iommuDetachDevicePasid, iommuFreeGlobalPasid, IOMMU_PASID_INVALID } from '../iommu/pasid.js';
import { IoasidAllocator, IOASID_NOTIFY_BIND, IOASID_NOTIFY_FREE, IOASID_NOTIFY_UNBIND, type IoasidNotifierCallback, type IoasidSet } from '../iommu/ioasid.js';
import { createSubdevice, removeSubdevice, subdevAttach, subdevDetach } from '../iommu/subdev.js';
import { iommuDeviceClaimDmaOwner, iommuDeviceReleaseDmaOwner, iommuGroupClaimDmaOwner, iommuGroupReleaseDmaOwner } from '../iommu/dma-owner.js';
import type { Device } from '../device/device.js';
import { IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_PRIV, IOMMU_READ, IOMMU_WRITE } from '../io-pgtable/io-pgtable.js';
import { iommuAttachDevice, iommuAttachGroup, iommuDetachDevice, iommuDetachGroup, iommuDomainFree, iommuPagingDomainAlloc } from '../iommu/attach.js';
import { devIommu } from '../iommu/core.js';
import { iommuGroupStoreType } from '../iommu/default-domain.js';
import { dmaMapPage, dmaSetMask, dmaUnmapPage, DMA_MAPPING_ERROR } from '../iommu/dma-iommu.js';
import { iommuMap, iommuSetFaultHandler, iommuUnmap, type IommuDomain } from '../iommu/domain.js';
import type { FaultRecord } from '../iommu/iommu-unit.js';
import { IOTLB_NO_PASID } from '../iommu/iotlb.js';
import { dmaRead, dmaWrite, iommuTranslate, lastFault } from '../iommu/translate.js';
import { bootIommu, type BootedIommu } from '../machine/boot.js';
import { machineFromTopology, type Machine } from '../machine/machine.js';
import { buildConfig, type FunctionSpec } from '../pci/config-builder.js';
import { pciHotAdd, pciHotRemove } from '../pci/hotplug.js';
import { formatBdf, parseBdf, type PciDev } from '../pci/pci-dev.js';
import { pciDisableSriov, pciEnableSriov } from '../pci/sriov.js';
import { PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, PcieType } from '../pci/regs.js';
import { buildPciTopology } from '../pci/topology.js';
import type { Scenario, ScenarioStep, TopologyFunction } from './scenario-schema.js';

/** A fault in the trace. */
export interface FaultJson {
  device: string;
  iova: string;
  access: 'read' | 'write';
  reason: string;
  domain: number;
  pasid: number | null;
  handled: boolean;
  timeNs: number;
}

/** One step's record. */
export interface TraceEvent {
  /** Step index (0-based). */
  step: number;
  op: string;
  ok: boolean;
  /** A one-line account. */
  text: string;
  /** The errno of a refused call. */
  errno?: string;
  /** Translation: how it resolved. */
  via?: 'iotlb' | 'iotlb-stale' | 'walk' | 'identity' | 'fault';
  /** Translation / DMA: the physical address (hex). */
  phys?: string;
  /** DMA-map: the DMA address (hex). */
  dma?: string;
  /** Read: the bytes (hex). */
  data?: string;
  /** Bytes moved, mapped or unmapped. */
  bytes?: number;
  /** The fault this step caused. */
  fault?: FaultJson;
  /** IOASID notifications delivered during this step, in delivery order. */
  notifications?: { subscriber: string; cmd: 'free' | 'bind' | 'unbind'; id: number; set: string; pdata: unknown }[];
}

/** The whole trace. */
export interface SimTrace {
  /** Driver and policy. */
  iommu: { driver: string; unit: string; defaultDomainType: string; strict: boolean };
  /** Groups at the end of the run (after the steps: hot-plug, VFs and subdevices included): id, type, devices. */
  groups: { id: number; type: string; devices: string[] }[];
  events: TraceEvent[];
  faults: FaultJson[];
  /** IOTLB counters at the end. */
  iotlb: Record<string, number>;
  /** Core log lines (fallbacks, unhandled faults). */
  log: string[];
}

const ACS_ALL = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;

const PCIE_TYPE: Record<TopologyFunction['type'], number | undefined> = {
  endpoint: PcieType.ENDPOINT,
  'root-port': PcieType.ROOT_PORT,
  upstream: PcieType.UPSTREAM,
  downstream: PcieType.DOWNSTREAM,
  'pcie-to-pci': PcieType.PCI_BRIDGE,
  rciep: PcieType.RC_END,
  pci: undefined,
  'pci-bridge': undefined,
};

/**
 * The config space of one scenario topology function (also what a `hot-add`
 * step adds): header, PCIe capability with the port type, bridge bus numbers
 * (secondary defaults to the bus below, subordinate to secondary), ACS, PASID
 * and SR-IOV capabilities (VF Device ID defaulting to the function's Device
 * ID + 1).
 * @throws IommuError EINVAL (input = the BDF) for a malformed BDF; EINVAL
 *   from buildConfig() for SR-IOV without PCIe (the schema refuses that).
 */
export function scenarioFunctionConfig(f: TopologyFunction): Uint8Array {
  const b = parseBdf(f.bdf);
  if (!b) throw new IommuError('EINVAL', 'not a PCI address', { input: f.bdf });
  const isBridge = f.type === 'root-port' || f.type === 'upstream' || f.type === 'downstream' || f.type === 'pcie-to-pci' || f.type === 'pci-bridge';
  const pcieType = PCIE_TYPE[f.type];
  const sriov = f.sriov;
  const spec: FunctionSpec = {
    ...(f.vendor !== undefined ? { vendor: f.vendor } : {}),
    ...(f.device !== undefined ? { device: f.device } : {}),
    ...(f.class !== undefined ? { classCode: f.class } : {}),
    ...(f.multifunction !== undefined ? { multifunction: f.multifunction } : {}),
    ...(pcieType !== undefined ? { pcieType } : {}),
    ...(isBridge ? { bridge: { primary: b.bus, secondary: f.secondary ?? b.bus + 1, subordinate: f.subordinate ?? f.secondary ?? b.bus + 1 } } : {}),
    ...(f.acs === true ? { acs: { cap: ACS_ALL, ctrl: ACS_ALL } } : f.acs === 'disabled' ? { acs: { cap: ACS_ALL, ctrl: 0 } } : {}),
    ...(f.pasidWidth !== undefined ? { pasidWidth: f.pasidWidth } : {}),
    ...(sriov !== undefined
      ? {
          sriov: {
            totalVfs: sriov.totalVfs,
            firstVfOffset: sriov.firstVfOffset,
            vfStride: sriov.vfStride,
            // buildConfig()'s Device ID defaults to 0x0001.
            vfDevice: sriov.vfDevice ?? (((f.device ?? 0x0001) + 1) & 0xffff),
          },
        }
      : {}),
  };
  return buildConfig(spec);
}

/** Config spaces for a scenario's own topology. */
export function scenarioTopology(fns: readonly TopologyFunction[]): Machine {
  const inputs = fns.map((f) => ({ bdf: f.bdf, config: scenarioFunctionConfig(f), origin: 'synthetic' as const }));
  return machineFromTopology(buildPciTopology(inputs, 'scenario topology'));
}

function protOf(s: string): number {
  let p = 0;
  if (s.includes('r')) p |= IOMMU_READ;
  if (s.includes('w')) p |= IOMMU_WRITE;
  if (s.includes('c')) p |= IOMMU_CACHE;
  if (!s.includes('x')) p |= IOMMU_NOEXEC;
  if (s.includes('m')) p |= IOMMU_MMIO;
  if (s.includes('p')) p |= IOMMU_PRIV;
  return p;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

function faultJson(f: FaultRecord): FaultJson {
  return { device: f.dev.name, iova: hex(f.iova), access: f.access, reason: f.reason, domain: f.domainId, pasid: f.pasid, handled: f.handled, timeNs: f.time };
}

function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Run `scenario` on `machine` (or on the scenario's own topology when
 * `machine` is null).
 * @throws IommuError EINVAL when there is no topology, or both are given.
 */
export function runScenario(scenario: Scenario, machine: Machine | null): SimTrace {
  if (machine && scenario.topology) throw new IommuError('EINVAL', 'the scenario has its own topology: do not also give --sysfs or --lspci');
  const m = machine ?? (scenario.topology ? scenarioTopology(scenario.topology) : null);
  if (!m) throw new IommuError('EINVAL', 'no topology: give --sysfs or --lspci, or a "topology" in the scenario');
  /** The live topology: hot-plug steps change it, lookups by BDF see the change. */
  const topo = m.topology;
  const booted: BootedIommu = bootIommu(m, { cmdline: scenario.iommu.cmdline, ...(scenario.iommu.driver ? { driver: scenario.iommu.driver } : {}) });
  const { core, unit } = booted;
  const domains = new Map<string, IommuDomain>();
  const handles = new Map<string, { dma: number; size: number }>();
  const owners = new Map<string, object>();
  // IOASIDs (the 2020 allocator): sets, ids by name, subscribers whose deliveries land in the current step.
  const ioasid = new IoasidAllocator();
  const sets = new Map<string, IoasidSet>();
  const setNames = new Map<number, string>();
  const ioasids = new Map<string, number>();
  const subscribers = new Map<string, { cb: IoasidNotifierCallback; set: IoasidSet | null }>();
  let delivered: NonNullable<TraceEvent['notifications']> = [];
  const setOf = (n: string): IoasidSet => {
    const x = sets.get(n);
    if (!x) throw new IommuError('EINVAL', `no IOASID set named ${n}`, { input: n });
    return x;
  };
  const ioasidOf = (n: string): number => {
    const v = ioasids.get(n);
    if (v === undefined) throw new IommuError('EINVAL', `no IOASID named ${n}`, { input: n });
    return v;
  };
  const events: TraceEvent[] = [];
  const faults: FaultJson[] = [];
  const subdevs = new Map<string, Device>();
  const pasids = new Map<string, number>();
  const pasidOf = (p: number | string | undefined): number | null => {
    if (p === undefined) return null;
    if (typeof p === 'number') return p;
    const v = pasids.get(p);
    if (v === undefined) throw new IommuError('EINVAL', `no PASID named ${p}`, { input: p });
    return v;
  };
  /** Functions hot-removed (or VFs disabled) during the run, by BDF, until a new function takes the address. */
  const removed = new Map<string, PciDev>();
  /** Remember the functions of `before` that are no longer in the topology. */
  const noteRemoved = (before: readonly PciDev[]): PciDev[] => {
    const gone = before.filter((p) => topo.byBdf.get(p.bdf) !== p);
    for (const p of gone) removed.set(p.bdf, p);
    return gone;
  };
  const wasRemoved = (text: string): string => {
    const b = parseBdf(text);
    const key = b ? formatBdf(b.domain, b.bus, b.devfn) : text;
    return !topo.byBdf.has(key) && removed.has(key) ? ` — ${key} was hot-removed` : '';
  };
  const devOf = (text: string): Device => {
    const sd = subdevs.get(text);
    if (sd) return sd;
    const b = parseBdf(text);
    const key = b ? formatBdf(b.domain, b.bus, b.devfn) : text;
    // A hot-removed function can still be named: its requests (a stale driver, a surprise removal) reach the IOMMU and fault.
    if (!topo.byBdf.has(key)) {
      const gone = removed.get(key);
      if (gone) return gone.dev;
    }
    return pdevOf(text).dev;
  };
  const domOf = (n: string): IommuDomain => {
    const d = domains.get(n);
    if (!d) throw new IommuError('EINVAL', `no domain named ${n}`, { input: n });
    return d;
  };
  /** The PCI function at `text` in the live topology (hot-added functions and VFs included). */
  const pdevOf = (text: string): PciDev => {
    const b = parseBdf(text);
    const pdev = b ? topo.byBdf.get(formatBdf(b.domain, b.bus, b.devfn)) : undefined;
    if (!pdev) throw new IommuError('ENODEV', `no PCI function ${text}`, { input: text });
    return pdev;
  };
  const groupIds = (): Set<number> => new Set([...core.groups].map((g) => g.id));
  const groupIdOf = (p: PciDev): number | null => (p.dev.iommuGroup as { id: number } | null)?.id ?? null;
  const groupOf = (id: number) => {
    const g = core.groups.getById(id);
    if (!g) throw new IommuError('ENODEV', `no IOMMU group ${id}`);
    return g;
  };
  scenario.steps.forEach((s: ScenarioStep, i) => {
    const ev: TraceEvent = { step: i, op: s.op, ok: true, text: '' };
    const faultsBefore = unit.faultCount;
    delivered = [];
    try {
      run(s, ev);
    } catch (e) {
      ev.ok = false;
      if (isIommuError(e)) {
        ev.errno = e.errno;
        ev.text = `${s.op}: ${e.errno}: ${e.message}`;
      } else throw e;
    }
    if (delivered.length) ev.notifications = delivered;
    if (unit.faultCount > faultsBefore && lastFault) {
      ev.fault = faultJson(lastFault);
      faults.push(ev.fault);
    }
    events.push(ev);
  });

  function run(s: ScenarioStep, ev: TraceEvent): void {
    switch (s.op) {
      case 'domain-alloc': {
        const d = iommuPagingDomainAlloc(devOf(s.device));
        domains.set(s.name, d);
        ev.text = `domain ${s.name} (id ${d.id}, ${d.pgtable?.format ?? 'no page table'}) allocated`;
        return;
      }
      case 'domain-free':
        iommuDomainFree(domOf(s.domain));
        ev.text = `domain ${s.domain} freed`;
        return;
      case 'attach': {
        const d = domOf(s.domain);
        if (s.device !== undefined) iommuAttachDevice(core, d, devOf(s.device));
        else if (s.group !== undefined) {
          const g = groupOf(s.group);
          try {
            iommuAttachGroup(core, d, g);
          } finally {
            core.groups.put(g);
          }
        } else throw new IommuError('EINVAL', 'attach needs a device or a group');
        ev.text = `domain ${s.domain} attached to ${s.device ?? `group ${s.group}`}`;
        return;
      }
      case 'detach': {
        const d = domOf(s.domain);
        if (s.device !== undefined) {
          if (!iommuDetachDevice(core, d, devOf(s.device))) throw new IommuError('EINVAL', `domain ${s.domain} is not attached to ${s.device} alone`);
        } else if (s.group !== undefined) {
          const g = groupOf(s.group);
          try {
            iommuDetachGroup(core, d, g);
          } finally {
            core.groups.put(g);
          }
        }
        const owned = s.device !== undefined ? (devOf(s.device).iommuGroup as { owner?: unknown } | null)?.owner : groupOf(s.group!).owner;
        if (s.device === undefined) core.groups.put(groupOf(s.group!));
        ev.text = `detached ${s.device ?? `group ${s.group}`}: back on its ${owned ? 'blocking domain (the group is owned)' : 'default domain'}`;
        return;
      }
      case 'map':
        iommuMap(domOf(s.domain), s.iova, s.phys, s.size, protOf(s.prot));
        ev.bytes = s.size;
        ev.text = `map ${s.domain} ${hex(s.iova)}+${hex(s.size)} → ${hex(s.phys)} ${s.prot}`;
        return;
      case 'unmap': {
        const n = iommuUnmap(domOf(s.domain), s.iova, s.size);
        ev.bytes = n;
        ev.text = `unmap ${s.domain} ${hex(s.iova)}+${hex(s.size)}: ${hex(n)} bytes unmapped`;
        return;
      }
      case 'translate': {
        const dev = devOf(s.device);
        const before = unit.iotlb.stats().hits;
        const access = s.access === 'write' ? IOMMU_WRITE : IOMMU_READ;
        const phys = iommuTranslate(core, dev, s.iova, access, pasidOf(s.pasid));
        const hit = unit.iotlb.stats().hits > before;
        const dom = devIommu(dev)?.domain ?? null;
        if (phys < 0) {
          ev.via = 'fault';
          ev.ok = false;
          ev.text = `translate ${s.device} ${s.access} ${hex(s.iova)}: FAULT (${lastFault?.reason})${lastFault?.handled ? ', handled' : ''}${wasRemoved(s.device)}`;
          return;
        }
        ev.phys = hex(phys);
        if (hit) ev.via = dom?.pgtable && dom.pgtable.iovaToPhys(s.iova) === 0 ? 'iotlb-stale' : 'iotlb';
        else ev.via = dom?.pgtable ? 'walk' : 'identity';
        const how = { iotlb: 'IOTLB hit', 'iotlb-stale': 'IOTLB hit on a STALE entry (unmapped, invalidation still queued)', walk: 'page walk', identity: 'identity', fault: '' }[ev.via];
        ev.text = `translate ${s.device}${s.pasid !== undefined ? ` PASID ${pasidOf(s.pasid)}` : ''} ${s.access} ${hex(s.iova)} → ${hex(phys)} (${how})`;
        return;
      }
      case 'write': {
        const r = dmaWrite(core, devOf(s.device), s.iova, hexBytes(s.data), pasidOf(s.pasid));
        ev.bytes = r.bytes;
        ev.ok = r.fault === null;
        ev.text = `DMA write ${s.device} ${hex(s.iova)} ${r.bytes} bytes${r.fault ? `, then FAULT (${r.fault.reason})${wasRemoved(s.device)}` : ''}`;
        return;
      }
      case 'read': {
        const buf = new Uint8Array(s.length);
        const r = dmaRead(core, devOf(s.device), s.iova, buf, pasidOf(s.pasid));
        ev.bytes = r.bytes;
        ev.ok = r.fault === null;
        ev.data = Buffer.from(buf.subarray(0, r.bytes)).toString('hex');
        ev.text = `DMA read ${s.device} ${hex(s.iova)} ${r.bytes} bytes: ${ev.data}${r.fault ? `, then FAULT (${r.fault.reason})${wasRemoved(s.device)}` : ''}`;
        return;
      }
      case 'dma-map': {
        const dev = devOf(s.device);
        const dma = dmaMapPage(core, dev, s.phys, s.size, s.dir);
        if (dma === DMA_MAPPING_ERROR) throw new IommuError('ENOMEM', `dma_map_page of ${hex(s.phys)}+${hex(s.size)} failed (DMA_MAPPING_ERROR)`);
        handles.set(s.as, { dma, size: s.size });
        ev.dma = hex(dma);
        ev.text = `dma_map ${s.device} phys ${hex(s.phys)}+${hex(s.size)} → dma ${hex(dma)} (${s.as})`;
        return;
      }
      case 'dma-unmap': {
        const h = handles.get(s.handle);
        if (!h) throw new IommuError('EINVAL', `no DMA mapping named ${s.handle}`, { input: s.handle });
        const n = dmaUnmapPage(core, devOf(s.device), h.dma, h.size);
        handles.delete(s.handle);
        ev.bytes = n;
        ev.text = `dma_unmap ${s.device} ${hex(h.dma)} (${s.handle}): ${core.dmaStrict ? 'IOTLB invalidated' : 'invalidation queued'}`;
        return;
      }
      case 'dma-mask':
        dmaSetMask(devOf(s.device), s.bits);
        ev.text = `${s.device}: DMA mask ${s.bits} bits`;
        return;
      case 'invalidate': {
        if (s.scope === 'all') unit.iotlb.invalidateAll();
        else {
          const d = domOf(s.domain ?? '');
          if (s.scope === 'domain') unit.iotlb.invalidateDomain(d.id);
          else unit.iotlb.invalidateRange(d.id, IOTLB_NO_PASID, s.iova ?? 0, s.size ?? 4096);
        }
        ev.text = `IOTLB invalidation: ${s.scope}${s.domain ? ` of ${s.domain}` : ''}`;
        return;
      }
      case 'advance':
        core.advance(s.ns);
        ev.text = `time +${s.ns} ns (now ${core.now} ns)`;
        return;
      case 'set-type': {
        const g = groupOf(s.group);
        try {
          iommuGroupStoreType(core, g, s.type);
        } finally {
          core.groups.put(g);
        }
        ev.text = `group ${s.group} type ← ${s.type}`;
        return;
      }
      case 'fault-handler':
        iommuSetFaultHandler(domOf(s.domain), () => (s.handled ? 0 : -38));
        ev.text = `fault handler on ${s.domain} (${s.handled ? 'handles' : 'declines'} faults)`;
        return;
      case 'write-mem':
        core.mem.writeBytes(s.phys, hexBytes(s.data));
        ev.text = `memory ${hex(s.phys)} ← ${s.data.length / 2} bytes`;
        return;
      case 'pasid-alloc': {
        const p = iommuAllocGlobalPasid(core, devOf(s.device));
        if (p === IOMMU_PASID_INVALID) throw new IommuError('ENOSPC', `no global PASID for ${s.device} (IOMMU_PASID_INVALID)`);
        pasids.set(s.as, p);
        ev.text = `global PASID ${p} allocated for ${s.device} (${s.as})`;
        return;
      }
      case 'pasid-free': {
        const p = pasidOf(s.pasid)!;
        iommuFreeGlobalPasid(core, p);
        if (typeof s.pasid === 'string') pasids.delete(s.pasid);
        ev.text = `global PASID ${p} freed`;
        return;
      }
      case 'pasid-attach': {
        const p = pasidOf(s.pasid)!;
        iommuAttachDevicePasid(core, domOf(s.domain), devOf(s.device), p);
        ev.text = `domain ${s.domain} attached to ${s.device} at PASID ${p}`;
        return;
      }
      case 'pasid-detach': {
        const p = pasidOf(s.pasid)!;
        iommuDetachDevicePasid(core, domOf(s.domain), devOf(s.device), p);
        ev.text = `PASID ${p} of ${s.device} detached (blocked)`;
        return;
      }
      case 'subdev-create': {
        if (subdevs.has(s.name)) throw new IommuError('EEXIST', `a subdevice named ${s.name} exists`);
        const sd = createSubdevice(core, devOf(s.parent), s.name);
        subdevs.set(s.name, sd);
        const gid = (sd.iommuGroup as { id: number }).id;
        ev.text = `subdevice ${s.name} of ${s.parent} created in IOMMU group ${gid}`;
        return;
      }
      case 'subdev-attach': {
        const p = subdevAttach(core, domOf(s.domain), devOf(s.device));
        ev.text = `domain ${s.domain} attached to subdevice ${s.device} ${p === null ? 'as its parent\'s primary domain (no PASID support)' : `at PASID ${p} of its parent`}`;
        return;
      }
      case 'subdev-detach':
        subdevDetach(core, domOf(s.domain), devOf(s.device));
        ev.text = `subdevice ${s.device} detached from ${s.domain}`;
        return;
      case 'subdev-remove':
        removeSubdevice(core, devOf(s.device));
        subdevs.delete(s.device);
        ev.text = `subdevice ${s.device} removed`;
        return;
      case 'ioasid-set': {
        if (sets.has(s.name)) throw new IommuError('EEXIST', `an IOASID set named ${s.name} exists`);
        const set = ioasid.allocSet({ name: s.name }, s.quota);
        sets.set(s.name, set);
        setNames.set(set.id, s.name);
        ev.text = `IOASID set ${s.name} (id ${set.id}, quota ${set.quota})`;
        return;
      }
      case 'ioasid-set-free': {
        const set = setOf(s.set);
        ioasid.freeSet(set);
        sets.delete(s.set);
        for (const [k, v] of ioasids) if (!ioasid.has(v)) ioasids.delete(k);
        ev.text = `IOASID set ${s.set} freed with all its ids`;
        return;
      }
      case 'ioasid-alloc': {
        const id = ioasid.alloc(setOf(s.set), s.min, s.max, { name: s.as });
        ioasids.set(s.as, id);
        ev.text = `IOASID ${id} allocated in set ${s.set} (${s.as})`;
        return;
      }
      case 'ioasid-free': {
        const id = ioasidOf(s.ioasid);
        ioasid.free(setOf(s.set), id);
        ioasids.delete(s.ioasid);
        ev.text = `IOASID ${id} freed`;
        return;
      }
      case 'ioasid-subscribe': {
        if (subscribers.has(s.name)) throw new IommuError('EEXIST', `a subscriber named ${s.name} exists`);
        const who = s.name;
        const cb: IoasidNotifierCallback = (a) => {
          delivered.push({ subscriber: who, cmd: a.cmd === IOASID_NOTIFY_FREE ? 'free' : a.cmd === IOASID_NOTIFY_BIND ? 'bind' : 'unbind', id: a.id, set: setNames.get(a.setId) ?? String(a.setId), pdata: a.pdata ?? null });
        };
        const set = s.set !== undefined ? setOf(s.set) : null;
        if (set) ioasid.registerSetNotifier(set, cb);
        else ioasid.registerNotifier(cb);
        subscribers.set(s.name, { cb, set });
        ev.text = `${s.name} subscribed to IOASID notifications${set ? ` of set ${s.set}` : ''}`;
        return;
      }
      case 'ioasid-unsubscribe': {
        const sub = subscribers.get(s.name);
        if (!sub) throw new IommuError('ENOENT', `no subscriber named ${s.name}`, { input: s.name });
        if (sub.set) ioasid.unregisterSetNotifier(sub.set, sub.cb);
        else ioasid.unregisterNotifier(sub.cb);
        subscribers.delete(s.name);
        ev.text = `${s.name} unsubscribed`;
        return;
      }
      case 'ioasid-notify': {
        const id = ioasidOf(s.ioasid);
        ioasid.notify(id, s.cmd === 'bind' ? IOASID_NOTIFY_BIND : IOASID_NOTIFY_UNBIND);
        ev.text = `IOASID ${id}: ${s.cmd.toUpperCase()} published`;
        return;
      }
      case 'bind': {
        const dev = devOf(s.device);
        const drv = driverByName(s.driver);
        deviceBindDriver(dev, drv);
        ev.text = `${s.device} bound to ${s.driver}${drv.driverManagedDma ? ' (driver_managed_dma)' : ' (kernel DMA API: uses the default domain)'}`;
        return;
      }
      case 'unbind':
        deviceReleaseDriver(devOf(s.device));
        ev.text = `${s.device} unbound`;
        return;
      case 'claim': {
        let cookie = owners.get(s.owner);
        if (!cookie) owners.set(s.owner, (cookie = { owner: s.owner }));
        if (s.device !== undefined) iommuDeviceClaimDmaOwner(core, devOf(s.device), cookie);
        else if (s.group !== undefined) {
          const g = groupOf(s.group);
          try {
            iommuGroupClaimDmaOwner(core, g, cookie);
          } finally {
            core.groups.put(g);
          }
        } else throw new IommuError('EINVAL', 'claim needs a device or a group');
        ev.text = `DMA ownership of ${s.device ?? `group ${s.group}`} claimed by ${s.owner}: blocking domain`;
        return;
      }
      case 'hot-add': {
        const before = groupIds();
        const pdev = pciHotAdd(topo, s.function.bdf, scenarioFunctionConfig(s.function));
        const gid = groupIdOf(pdev);
        if (gid === null) {
          ev.text = `hot-added ${pdev.bdf} (${s.function.type}): no IOMMU took it`;
          return;
        }
        const g = core.groups.getById(gid);
        const others = g ? g.devices.map((d) => d.dev.name).filter((n) => n !== pdev.bdf) : [];
        if (g) core.groups.put(g);
        ev.text = `hot-added ${pdev.bdf} (${s.function.type}): ${before.has(gid) ? `joined IOMMU group ${gid}${others.length ? ` (with ${others.join(', ')})` : ''}` : `new IOMMU group ${gid}`}`;
        return;
      }
      case 'hot-remove': {
        const pdev = pdevOf(s.device);
        const gid = groupIdOf(pdev);
        const before = groupIds();
        const all = [...topo.devices];
        try {
          pciHotRemove(topo, pdev);
        } finally {
          noteRemoved(all);
        }
        const count = all.length - topo.devices.length;
        const after = groupIds();
        const freed = [...before].filter((id) => !after.has(id));
        const below = count > 1 ? ` and ${count - 1} function${count > 2 ? 's' : ''} below it` : '';
        const groups = freed.length
          ? `, IOMMU group${freed.length > 1 ? 's' : ''} ${freed.join(', ')} freed`
          : gid !== null
            ? `, left IOMMU group ${gid}`
            : '';
        ev.text = `hot-removed ${pdev.bdf}${below}${groups}`;
        return;
      }
      case 'sriov-enable': {
        const pf = pdevOf(s.device);
        const before = groupIds();
        const vfs = pciEnableSriov(topo, pf, s.vfs);
        if (vfs.length === 0) {
          ev.text = `${pf.bdf}: 0 VFs requested, nothing enabled`;
          return;
        }
        const fresh = [...groupIds()].filter((id) => !before.has(id));
        const range = vfs.length === 1 ? vfs[0]!.bdf : `${vfs[0]!.bdf}–${vfs[vfs.length - 1]!.bdf}`;
        const untaken = vfs.filter((v) => groupIdOf(v) === null).length;
        ev.text =
          `enabled ${vfs.length} VF${vfs.length > 1 ? 's' : ''} ${range} on ${pf.bdf} (VF device ${hex(vfs[0]!.device)}), ` +
          `${fresh.length} new IOMMU group${fresh.length === 1 ? '' : 's'}${fresh.length ? ` (${fresh.join(', ')})` : ''}` +
          (untaken ? `; ${untaken} not taken by any IOMMU` : '');
        return;
      }
      case 'sriov-disable': {
        const pf = pdevOf(s.device);
        const before = groupIds();
        const all = [...topo.devices];
        let n: number;
        try {
          n = pciDisableSriov(topo, pf);
        } finally {
          noteRemoved(all);
        }
        const after = groupIds();
        const freed = [...before].filter((id) => !after.has(id));
        ev.text = `SR-IOV disabled on ${pf.bdf}: ${n} VF${n === 1 ? '' : 's'} removed, ${freed.length} IOMMU group${freed.length === 1 ? '' : 's'} freed`;
        return;
      }
      case 'release': {
        if (s.device !== undefined) iommuDeviceReleaseDmaOwner(core, devOf(s.device));
        else if (s.group !== undefined) {
          const g = groupOf(s.group);
          try {
            iommuGroupReleaseDmaOwner(core, g);
          } finally {
            core.groups.put(g);
          }
        }
        ev.text = `DMA ownership of ${s.device ?? `group ${s.group}`} released`;
        return;
      }
    }
  }

  const groups = [...core.groups].map((g) => ({
    id: g.id,
    type: ((g.defaultDomain as IommuDomain | null)?.type ?? 'unknown') as string,
    devices: g.devices.map((d) => d.dev.name),
  }));
  return {
    iommu: { driver: booted.ops.name, unit: unit.name, defaultDomainType: core.defDomainType, strict: core.dmaStrict },
    groups,
    events,
    faults,
    iotlb: { ...unit.iotlb.stats() },
    log: [...core.log],
  };
}
