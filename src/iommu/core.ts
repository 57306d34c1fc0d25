/**
 * The IOMMU core of one machine: its groups, its IOMMU units, the global
 * default-domain policy (passthrough / strict), each device's IOMMU state, and
 * the probe path that puts devices into groups and onto default domains.
 *
 * One instance per modelled machine (Linux keeps these as globals).
 *
 * Linux: iommu_subsys_init(), iommu_probe_device(), __iommu_probe_device(),
 * iommu_init_device(), iommu_deinit_device(), bus_iommu_probe(),
 * iommu_release_device(), iommu_set_dma_strict(), drivers/iommu/iommu.c.
 */
import { IommuError, isIommuError } from '../base/errno.js';
import { BusNotify, type BusNotifyEvent, type BusType } from '../device/bus.js';
import type { Device } from '../device/device.js';
import { devIommuFwspec, iommuFromFwnode } from './fwspec.js';
import { PhysMem } from '../mem/phys-mem.js';
import { toPciDev } from '../pci/pci-dev.js';
import type { IommuDomain } from './domain.js';
import { IommuGroups, type IommuGroup } from './group.js';
import type { IommuOps } from './iommu-ops.js';
import type { IommuUnit } from './iommu-unit.js';
import type { Iotlb } from './iotlb.js';
import { IommuResvType, type IommuResvRegion } from './resv-region.js';
import { createDeviceDirectMappings, groupSetDomainInternal, iommuSetupDefaultDomain } from './default-domain.js';

/**
 * Per-device IOMMU state. Linux: struct dev_iommu (device.iommu), plus the
 * device's DMA mask.
 */
export interface DevIommu {
  /** The driver that probed the device. */
  readonly ops: IommuOps;
  /** The unit translating the device. Linux: dev_iommu.iommu_dev. */
  readonly unit: IommuUnit;
  /** The device has an IOMMU_RESV_DIRECT region: it can never be blocked. Linux: dev_iommu.require_direct. */
  requireDirect: boolean;
  /** Its reserved regions, sorted by start. */
  resvRegions: IommuResvRegion[];
  /** The domain the device's requests without PASID are translated by (mirrors group.domain). */
  domain: IommuDomain | null;
  /** Fast-path copy for translation: the id of {@link domain} when it has a page table, else -1. */
  pagingDomainId: number;
  /** Fast-path copy for translation: the unit's IOTLB. */
  readonly iotlb: Iotlb;
  /** Maximum PASIDs (0: none). Linux: dev_iommu.max_pasids. */
  maxPasids: number;
  /** DMA mask (bytes: the highest addressable byte + 1, e.g. 2^32). Linux: dev->dma_mask. */
  dmaLimit: number;
  /** For a subdevice: the parent whose IOMMU it borrows, and its PASID there (null: the parent's own requests). */
  subdevOf: { parent: Device; pasid: number | null } | null;
}

/** The per-device IOMMU state of `dev`, or null if no IOMMU driver probed it. Linux: dev_iommu_get()/dev->iommu. */
export function devIommu(dev: Device): DevIommu | null {
  return dev.iommu as DevIommu | null;
}

/** Policy of an IOMMU core. Linux: CONFIG_IOMMU_DEFAULT_* and the iommu.passthrough / iommu.strict / iommu=pt parameters. */
export interface IommuCoreOptions {
  /** `iommu.passthrough=1` / `iommu=pt`: identity default domains. Default: the kconfig default. */
  readonly passthrough?: boolean;
  /** `iommu.strict=`: strict (true) or lazy (false) invalidation. Default: the kconfig default. */
  readonly strict?: boolean;
  /** CONFIG_IOMMU_DEFAULT_PASSTHROUGH (default false). */
  readonly configDefaultPassthrough?: boolean;
  /** CONFIG_IOMMU_DEFAULT_DMA_STRICT (default false: lazy, as distribution x86 kernels). */
  readonly configDefaultStrict?: boolean;
  /** The platform encrypts memory (CC_ATTR_MEM_ENCRYPT): an identity default is forced to DMA unless chosen on the command line. */
  readonly memEncrypt?: boolean;
  /** The machine's physical memory (created if not given). */
  readonly mem?: PhysMem;
}

interface Timer {
  at: number;
  fn: () => void;
}

/** The IOMMU core of one machine. */
export class IommuCore {
  /** IOMMU groups. */
  readonly groups: IommuGroups;
  /** Registered IOMMU units, in registration order. Linux: iommu_device_list. */
  readonly units: IommuUnit[] = [];
  /** Buses the core probes and watches. Linux: iommu_buses[]. */
  readonly buses: BusType[] = [];
  /** The last probe error of each device a bus notifier failed to probe (cleared on removal). */
  readonly probeErrors = new Map<Device, unknown>();
  /** The device whose probe is running firmware configuration (it counts as having IOMMU state). */
  probingDevice: Device | null = null;
  private readonly firmwareConfig: ((core: IommuCore, dev: Device) => void)[] = [];
  private readonly privateBuses = new Map<IommuUnit, BusType>();
  /** The unit each removed device was translated by: its later DMA faults there. */
  private readonly removedFrom = new WeakMap<Device, IommuUnit>();
  /** Physical memory (data and page tables). */
  readonly mem: PhysMem;
  /** The global default domain type. Linux: iommu_def_domain_type. */
  defDomainType: 'identity' | 'DMA' | 'DMA-FQ';
  /** Strict invalidation. Linux: iommu_dma_strict. */
  dmaStrict: boolean;
  /** Whether the default type came from the command line. Linux: iommu_cmd_line & IOMMU_CMD_LINE_DMA_API. */
  readonly typeFromCmdline: boolean;
  /** Simulated time (ns), advanced by {@link advance}. */
  now = 0;
  /** Log of notable events (fallbacks, unhandled faults), newest last. */
  readonly log: string[] = [];
  private timers: Timer[] = [];

  constructor(opts: IommuCoreOptions = {}) {
    this.mem = opts.mem ?? new PhysMem();
    this.groups = new IommuGroups({ getResvRegions: (dev) => devIommu(dev)?.resvRegions ?? null });
    // iommu_subsys_init()
    this.typeFromCmdline = opts.passthrough !== undefined;
    let identity = opts.passthrough ?? opts.configDefaultPassthrough ?? false;
    if (identity && !this.typeFromCmdline && opts.memEncrypt) identity = false;
    this.dmaStrict = opts.strict ?? opts.configDefaultStrict ?? false;
    this.defDomainType = identity ? 'identity' : this.dmaStrict ? 'DMA' : 'DMA-FQ';
  }

  /**
   * Drivers call this to force strict invalidation (e.g. VT-d in caching mode):
   * a DMA-FQ global default becomes DMA. Linux: iommu_set_dma_strict().
   */
  setDmaStrict(): void {
    this.dmaStrict = true;
    if (this.defDomainType === 'DMA-FQ') this.defDomainType = 'DMA';
  }

  /**
   * Watch a bus: devices added to it later are probed (BUS_NOTIFY_ADD_DEVICE)
   * and released when removed (BUS_NOTIFY_REMOVED_DEVICE); registering a unit
   * probes the devices already on it. Errors of a hotplug probe are logged and
   * kept in {@link probeErrors}, never thrown into the bus (Linux ignores them).
   * @throws IommuError EEXIST if the bus is already watched.
   * Linux: iommu_subsys_init() → iommu_bus_init() (bus_register_notifier() with iommu_bus_notifier()) for each of iommu_buses[].
   */
  watchBus(bus: BusType): void {
    if (this.buses.includes(bus)) throw new IommuError('EEXIST', `bus ${bus.name} is already watched by the IOMMU core`);
    bus.notifier.register(this.busNotifier);
    this.buses.push(bus);
  }

  private readonly busNotifier = (event: BusNotifyEvent, dev: Device): number => {
    if (event === BusNotify.ADD_DEVICE) {
      try {
        const g = this.iommuProbeDevice(dev);
        if (g) this.groups.put(g);
      } catch (e) {
        this.probeErrors.set(dev, e);
        this.log.push(`iommu: probe of ${dev.name} failed: ${(e as Error).message}`);
      }
    } else if (event === BusNotify.REMOVED_DEVICE) {
      this.probeErrors.delete(dev);
      this.releaseDevice(dev, true);
    }
    return 0; // NOTIFY_DONE
  };

  /**
   * Add firmware parsing that gives devices their firmware spec (DT `iommus`,
   * ACPI IORT or VIOT): run for a device without one before it is probed.
   * It may throw (EPROBE_DEFER when the IOMMU is not registered yet): the
   * device is then probed without a spec, as in Linux.
   * Linux: the bus dma_configure path (of_iommu_configure(), acpi_iommu_configure_id()) that iommu_init_device() runs.
   */
  addFirmwareConfig(fn: (core: IommuCore, dev: Device) => void): void {
    this.firmwareConfig.push(fn);
  }

  /**
   * Register a unit, then probe the devices of every watched bus that are not
   * probed yet (each by the driver of its firmware spec's node, or without a
   * spec by the unit registered without a node). On an error of that probe the
   * unit is unregistered again (its devices released) and the error thrown.
   * @throws IommuError EEXIST if the unit (or one of its name) is registered; a probe error.
   * Linux: iommu_device_register(), drivers/iommu/iommu.c.
   */
  iommuDeviceRegister(unit: IommuUnit): void {
    this.addUnit(unit);
    try {
      for (const bus of this.buses) this.busIommuProbe(bus);
    } catch (e) {
      this.iommuDeviceUnregister(unit);
      throw e;
    }
    unit.ready = true;
  }

  /**
   * Register a unit that serves one private bus only (the iommufd selftest
   * mock): hook that bus's notifier and probe its devices.
   * @throws IommuError EEXIST as {@link iommuDeviceRegister}; a probe error (the unit is unregistered again).
   * Linux: iommu_device_register_bus(), drivers/iommu/iommu.c.
   */
  iommuDeviceRegisterBus(unit: IommuUnit, bus: BusType): void {
    this.addUnit(unit);
    bus.notifier.register(this.busNotifier);
    this.privateBuses.set(unit, bus);
    try {
      this.busIommuProbe(bus);
    } catch (e) {
      this.iommuDeviceUnregister(unit);
      throw e;
    }
    unit.ready = true;
  }

  private addUnit(unit: IommuUnit): void {
    if (this.units.includes(unit)) throw new IommuError('EEXIST', `IOMMU ${unit.name} is already registered`);
    if (this.units.some((u) => u.name === unit.name)) throw new IommuError('EEXIST', `an IOMMU named ${unit.name} is already registered`);
    this.units.push(unit);
  }

  /**
   * Unregister a unit: release exactly the devices it translates (each leaves
   * its group; a group goes with its last member), then drop it from the list.
   * @throws IommuError ENODEV if the unit is not registered.
   * Linux: iommu_device_unregister() → remove_iommu_group() → iommu_release_device(), iommu_device_unregister_bus().
   */
  iommuDeviceUnregister(unit: IommuUnit): void {
    const i = this.units.indexOf(unit);
    if (i < 0) throw new IommuError('ENODEV', `IOMMU ${unit.name} is not registered`);
    for (const dev of [...unit.devices]) this.releaseDevice(dev);
    this.units.splice(i, 1);
    unit.ready = false;
    const bus = this.privateBuses.get(unit);
    if (bus) {
      bus.notifier.unregister(this.busNotifier);
      this.privateBuses.delete(unit);
    }
  }

  /**
   * The ops that probe `dev`: those of the unit its firmware spec names, or
   * without a spec those of the first unit registered without a firmware node
   * (only one of VT-d, AMD-Vi, s390, PAMU or legacy SMMUv2 can be present),
   * or null. Never "every driver, asked in turn".
   * Linux: iommu_fwspec_ops(), drivers/iommu/iommu.c.
   */
  opsForDevice(dev: Device): IommuOps | null {
    const spec = devIommuFwspec(dev);
    return iommuFromFwnode(this, spec ? spec.iommuFwnode : null)?.ops ?? null;
  }

  /**
   * Probe one device by construction: firmware parsing gives it a spec if it
   * has none, then the ops of {@link opsForDevice} probe it ({@link probeDevice}).
   * @returns the group with a reference for the caller, or null when no driver takes the device (ENODEV).
   * @throws IommuError as {@link probeDevice}.
   * Linux: iommu_probe_device(), __iommu_probe_device(), iommu_init_device().
   */
  iommuProbeDevice(dev: Device, setupNow = true): IommuGroup | null {
    if (dev.iommuGroup) return this.groups.get(dev)!;
    this.firmwareConfigure(dev);
    const ops = this.opsForDevice(dev);
    if (!ops) return null;
    return this.probeDevice(dev, ops, setupNow);
  }

  private firmwareConfigure(dev: Device): void {
    if (devIommuFwspec(dev) || dev.driver) return;
    this.probingDevice = dev;
    try {
      for (const fn of this.firmwareConfig) {
        try {
          fn(this, dev);
        } catch (e) {
          this.log.push(`iommu: firmware configuration of ${dev.name}: ${(e as Error).message}`);
        }
        if (devIommuFwspec(dev)) return;
      }
    } finally {
      this.probingDevice = null;
    }
  }

  /**
   * Probe every device of `bus` not probed yet, each by its own driver, then
   * set up each new group's default domain once all its devices are in.
   * @returns the devices probed now.
   * @throws IommuError a probe error other than ENODEV (devices probed before it stay probed).
   * Linux: bus_iommu_probe(), drivers/iommu/iommu.c.
   */
  busIommuProbe(bus: BusType): Device[] {
    return this.probeBatch(bus.devices, (dev) => {
      if (dev.iommuGroup) return null;
      this.firmwareConfigure(dev);
      return this.opsForDevice(dev);
    });
  }

  /**
   * Probe one device with `ops` and put it into a group; when `setupNow`
   * (hotplug), set up the group's default domain or attach the device to the
   * group's current domain. A driver that returns ENODEV leaves no trace.
   * @returns the group, or null when the driver does not handle the device.
   * @throws IommuError from device_group or the default-domain setup (the device is released again).
   * Linux: __iommu_probe_device(), iommu_init_device(), drivers/iommu/iommu.c.
   */
  probeDevice(dev: Device, ops: IommuOps, setupNow = true): IommuGroup | null {
    if (dev.iommuGroup) return this.groups.get(dev)!; // already probed: a ref for the caller
    let unit: IommuUnit;
    try {
      unit = ops.probeDevice(dev);
    } catch (e) {
      if (isIommuError(e, 'ENODEV')) return null;
      throw e;
    }
    const regions = [...(ops.getResvRegions?.(dev) ?? [])].sort((a, b) => a.start - b.start || a.type - b.type);
    const di: DevIommu = {
      ops,
      unit,
      requireDirect: regions.some((r) => r.type === IommuResvType.DIRECT),
      resvRegions: regions,
      domain: null,
      pagingDomainId: -1,
      iotlb: unit.iotlb,
      subdevOf: null,
      maxPasids: Math.min(pciMaxPasids(dev), unit.maxPasids),
      dmaLimit: 2 ** 32,
    };
    dev.iommu = di;
    let group: IommuGroup;
    try {
      group = ops.deviceGroup(this, dev);
    } catch (e) {
      dev.iommu = null;
      ops.releaseDevice?.(dev);
      throw e;
    }
    try {
      this.groups.addDevice(group, dev);
    } catch (e) {
      this.groups.put(group);
      dev.iommu = null;
      ops.releaseDevice?.(dev);
      throw e;
    }
    this.groups.put(group); // the member holds its reference now
    unit.devices.add(dev);
    if (setupNow && !ops.noDefaultDomain) {
      try {
        if (!group.defaultDomain) iommuSetupDefaultDomain(this, group, 0);
        else this.attachNewMember(group, dev);
      } catch (e) {
        this.releaseDevice(dev);
        throw e;
      }
    }
    // A ref for the caller, as iommu_group_get().
    return this.groups.refGet(group);
  }

  /** A device joining a group that already has a domain: give it the group's domain and its direct mappings. */
  private attachNewMember(group: IommuGroup, dev: Device): void {
    const def = group.defaultDomain as IommuDomain | null;
    if (def) createDeviceDirectMappings(this, def, dev);
    const dom = group.domain as IommuDomain | null;
    if (dom) {
      const di = devIommu(dev)!;
      dom.ops.attachDev(dom, dev);
      trackAttach(dom, dev, di);
    }
  }

  /**
   * Probe every device of a bus with `ops` (in bus order), then set up each
   * new group's default domain once all its devices are in.
   * @returns the devices the driver took.
   * Linux: bus_iommu_probe(), drivers/iommu/iommu.c.
   */
  probeDevices(devices: readonly Device[], ops: IommuOps): Device[] {
    return this.probeBatch(devices, () => ops);
  }

  private probeBatch(devices: readonly Device[], opsFor: (dev: Device) => IommuOps | null): Device[] {
    const taken: Device[] = [];
    const fresh = new Set<IommuGroup>(); // insertion order = the order groups were first seen
    const list = [...devices]; // a probe may add devices to the bus
    for (const dev of list) {
      const ops = opsFor(dev);
      if (!ops) continue;
      const had = dev.iommuGroup !== null;
      const g = this.probeDevice(dev, ops, false);
      if (!g) continue;
      taken.push(dev);
      if (ops.noDefaultDomain) {
        this.groups.put(g);
        continue;
      }
      if (!had && !g.defaultDomain) fresh.add(g);
      else if (!had && g.defaultDomain) this.attachNewMember(g, dev);
      this.groups.put(g);
    }
    for (const g of fresh) {
      if (g.released || g.defaultDomain) continue;
      iommuSetupDefaultDomain(this, g, 0);
    }
    return taken;
  }

  /**
   * Release a device: detach it, leave its group (the group goes with its last
   * member and its domains with it), forget its IOMMU state. `removed` (the
   * device left its bus): its DMA from now on faults at the unit that translated it.
   * Linux: iommu_release_device(), __iommu_group_remove_device(), iommu_deinit_device().
   */
  releaseDevice(dev: Device, removed = false): void {
    const di = devIommu(dev);
    if (!di) return;
    if (removed) this.removedFrom.set(dev, di.unit);
    const group = dev.iommuGroup ? this.groups.get(dev) : null;
    if (di.domain) untrackAttach(di.domain, dev, di);
    di.unit.devices.delete(dev);
    di.unit.iotlb.invalidateAll();
    if (group) {
      const last = group.devices.length === 1;
      this.groups.removeDevice(dev);
      if (last) {
        const def = group.defaultDomain as IommuDomain | null;
        const cur = group.domain as IommuDomain | null;
        group.domain = null;
        group.defaultDomain = null;
        if (cur && cur !== def) freeIfDynamic(cur, di.ops);
        if (def) freeIfDynamic(def, di.ops);
      }
      this.groups.put(group);
    }
    di.ops.releaseDevice?.(dev);
    dev.iommu = null;
  }

  /**
   * The unit that translated `dev` before it was removed from its bus and is
   * not probed again since, or null. Requests such a device still issues hit a
   * cleared context entry there and fault.
   */
  removedDeviceUnit(dev: Device): IommuUnit | null {
    if (dev.iommu !== null || dev.registered) return null;
    return this.removedFrom.get(dev) ?? null;
  }

  /** Run `fn` at simulated time `at` (ns). Linux: a timer_list (the flush-queue timer). */
  schedule(at: number, fn: () => void): void {
    this.timers.push({ at, fn });
    this.timers.sort((a, b) => a.at - b.at);
  }

  /** Advance simulated time by `ns`, running timers that come due, in order. */
  advance(ns: number): void {
    const end = this.now + ns;
    while (this.timers.length && this.timers[0]!.at <= end) {
      const t = this.timers.shift()!;
      this.now = Math.max(this.now, t.at);
      t.fn();
    }
    this.now = end;
  }

  /** Re-apply a group's domain to its devices (used after the group's domain changes). Internal to the core. */
  setGroupDomain(group: IommuGroup, domain: IommuDomain, mustSucceed = false): void {
    groupSetDomainInternal(this, group, domain, mustSucceed);
  }
}

/** Note that `dev` is now attached to `domain` (for IOTLB invalidation and translation). Core-internal. */
export function trackAttach(domain: IommuDomain, dev: Device, di: DevIommu): void {
  if (di.domain === domain) return;
  if (di.domain) untrackAttach(di.domain, dev, di);
  di.domain = domain;
  di.pagingDomainId = domain.pgtable !== null ? domain.id : -1;
  domain.devices.add(dev);
  domain.units.set(di.unit, (domain.units.get(di.unit) ?? 0) + 1);
  domain.unitList = [...domain.units.keys()];
  // A switch of domain makes every cached translation of the device's old domain stale for it: hardware
  // switches the context entry and the driver flushes the context cache; model that by dropping the old tag.
}

/** Note that `dev` left `domain`. Core-internal. */
export function untrackAttach(domain: IommuDomain, dev: Device, di: DevIommu): void {
  domain.devices.delete(dev);
  const n = (domain.units.get(di.unit) ?? 1) - 1;
  if (n <= 0) domain.units.delete(di.unit);
  else domain.units.set(di.unit, n);
  domain.unitList = [...domain.units.keys()];
  if (di.domain === domain) {
    di.domain = null;
    di.pagingDomainId = -1;
  }
}

function freeIfDynamic(domain: IommuDomain, ops: IommuOps): void {
  if (domain === ops.identityDomain || domain === ops.blockedDomain || domain.freed) return;
  domain.ops.free?.(domain);
  domain.freed = true;
}

/**
 * PASIDs a PCI function can issue: 1 << "Max PASID Width" of its PASID
 * capability (0 without one, or for non-PCI devices).
 * Linux: pci_max_pasids(), drivers/pci/ats.c.
 */
export function pciMaxPasids(dev: Device): number {
  const pdev = toPciDev(dev);
  if (!pdev || !pdev.pasidCap) return 0;
  const cap = pdev.config.read16(pdev.pasidCap + 4);
  if (cap === 0xffff) return 0;
  return 1 << ((cap >> 8) & 0x1f);
}
