/**
 * "Can I pass this device through with VFIO, and what must change first?"
 *
 * The verdict of `iommu vfio-check`: the device's IOMMU group (the kernel's,
 * or the model's prediction when the source shows none), whether VFIO could
 * own that group now under the ownership rule of Linux 5.19 and later, which
 * members prevent it and why, the firmware direct-mapped regions that would
 * make the kernel refuse it, the device's reset methods, and the sysfs writes
 * a person would make to hand the group to vfio-pci — as a plan only: nothing
 * here writes anything, binds or unbinds a driver.
 *
 * Rule (spec §5.2, §10.1): a group is viable iff its DMA owner count is 0,
 * i.e. every device in it is unbound or bound to a `driver_managed_dma`
 * driver (vfio-pci and its variants, pci-stub, pcieport). Bridges are not
 * exempt since 5.19: a bridge on shpchp makes the group non-viable. A device
 * with an IOMMU_RESV_DIRECT region (an RMRR) makes the kernel refuse the
 * blocking domain (EINVAL), so its group can never be owned.
 *
 * Linux: vfio_group_ioctl_get_status(), vfio_container_attach_group()
 * (drivers/vfio/group.c, container.c), iommu_group_claim_dma_owner(),
 * __iommu_device_set_domain() (require_direct), drivers/iommu/iommu.c;
 * vfio_pci_probe() (drivers/vfio/pci/vfio_pci.c: header type 0 only);
 * driver_override_store(), unbind_store(), drivers_probe_store()
 * (drivers/pci/pci-sysfs.c, drivers/base/bus.c).
 */
import { IommuError } from '../base/errno.js';
import { driverByName } from '../device/driver.js';
import { createAmdIommu } from '../drivers/amd-vi/index.js';
import { createIntelIommu, type Rmrr } from '../drivers/intel-vt-d/index.js';
import { IommuCore } from '../iommu/core.js';
import type { IommuOps } from '../iommu/iommu-ops.js';
import { IOMMU_RESV_TYPE_STRING, IommuResvType, type IommuResvRegion } from '../iommu/resv-region.js';
import { formatBdf, hex, parseBdf, type PciDev } from '../pci/pci-dev.js';
import { formatClassName, formatVendorDevice, PciIds } from '../pci/pci-ids.js';
import type { Machine } from './machine.js';
import { predictGroups, type Prediction } from './predict.js';

/** The part a group member plays for the device being checked. */
export type VfioMemberRole = 'target' | 'companion' | 'bridge' | 'other';

/** One member of the device's IOMMU group. */
export interface VfioMember {
  /** `dddd:bb:dd.f`. */
  bdf: string;
  /** The bound driver, or null. */
  driver: string | null;
  /** 6 hex digits: class, subclass, prog-if. */
  class: string;
  /**
   * `target`: the device asked about; `bridge`: a PCI bridge (header type 1/2, class 0604);
   * `companion`: another function of the same device (same bus and slot), e.g. a GPU's audio function;
   * `other`: any other function the IOMMU cannot isolate from it.
   */
  role: VfioMemberRole;
  /** Vendor and device name (from the lspci text, else the system's pci.ids, else ids). */
  name: string;
  /** For companions: what it is to the target, e.g. `GPU audio function of 0000:01:00.0`; null otherwise. */
  relation: string | null;
}

/** A reason the group cannot be owned by VFIO now. */
export interface VfioBlocker {
  /** The device in the way; null for a group-wide reason that cannot be tied to one device (a `direct` line of the kernel's `reserved_regions`). */
  bdf: string | null;
  /** Its bound driver, or null. */
  driver: string | null;
  /** Why, in words. */
  why: string;
}

/** A firmware direct-mapped (identity) region of a group member. */
export interface VfioDirectRegion {
  /** The device the region belongs to; null when only the group is known (the kernel merges its members' regions). */
  bdf: string | null;
  /** `direct` (IOMMU_RESV_DIRECT: blocks assignment) or `direct-relaxable` (IOMMU_RESV_DIRECT_RELAXABLE: dropped on assignment). */
  type: 'direct' | 'direct-relaxable';
  /** First byte, `0x%016x` as in sysfs `reserved_regions`. */
  start: string;
  /** Last byte, `0x%016x`. */
  end: string;
  /** True iff the region makes the group impossible to assign (type `direct`). */
  blocks: boolean;
  /** `kernel`: the group's `reserved_regions` file as the kernel wrote it; `model`: the model IOMMU driver's regions. */
  source: 'kernel' | 'model';
}

/** One sysfs write of the plan (never executed by iommukit). */
export interface VfioPlanStep {
  /** The sysfs file to write. */
  write: string;
  /** What to write into it. */
  value: string;
}

/** The report of {@link vfioCheck}, and the JSON document of `iommu vfio-check --json`. */
export interface VfioCheckReport {
  /** The device, canonical `dddd:bb:dd.f`. */
  bdf: string;
  /** Its IOMMU group id (the kernel's, or the model's allocation order), or null when it is in no group. */
  group: number | null;
  /**
   * True iff VFIO could take ownership of the group now: every member unbound or on a driver_managed_dma driver,
   * no `direct` firmware region, an active IOMMU, and the device in a group. False exactly when `blockers` is not empty.
   */
  viable: boolean;
  /** What prevents viability now. */
  blockers: VfioBlocker[];
  /** The device's `reset_method` words (sysfs); empty when unknown (lspci text) or when there is none. */
  resetMethods: string[];
  /** The sysfs writes that would hand the group to vfio-pci, in order. NOT executed. */
  plan: VfioPlanStep[];
  /** `kernel`: the running kernel's group; `model`: the model's prediction (the source shows no active IOMMU). */
  groupSource: 'kernel' | 'model';
  /** The group's members in PCI address order (just the device when it is in no group). */
  members: VfioMember[];
  /** Direct-mapped regions of the group's members (both types). */
  directMappedRegions: VfioDirectRegion[];
  /** True when the firmware's direct-mapped regions were known (the kernel's `reserved_regions`, or RMRRs given), so their absence means none. */
  directMappedChecked: boolean;
  /** True if the source shows an active IOMMU (kernel groups present). */
  iommuActive: boolean;
  /** What was read. */
  input: string;
  /** Explanations, assumptions and what could not be checked, in words. */
  notes: string[];
}

/** Options of {@link vfioCheck}. */
export interface VfioCheckOptions {
  /**
   * The kernel's `kernel/iommu_groups/<id>/reserved_regions` text per group id (null: the file was absent),
   * as a sysfs source shows it. It carries the firmware's RMRRs / unity maps as the kernel parsed them.
   */
  readonly kernelReservedRegions?: ReadonlyMap<number, string | null>;
  /** RMRRs from the firmware's DMAR table, when the caller has parsed them (the model driver reports them as regions). */
  readonly rmrrs?: readonly Rmrr[];
}

const VFIO_PCI = 'vfio-pci';
const PCI_STUB = 'pci-stub';

/** True for vfio-pci and its variant drivers (`mlx5_vfio_pci`, `nvgrace_gpu_vfio_pci`, …). */
function isVfioDriver(name: string): boolean {
  return name === VFIO_PCI || /vfio[-_]pci/.test(name);
}

/**
 * True if `driver` sets driver_managed_dma: binding it takes no DMA-API ownership of the group.
 * Linux: pcieport, pci-stub, vfio-pci and its variants.
 */
export function isDriverManagedDma(driver: string): boolean {
  return driverByName(driver).driverManagedDma || isVfioDriver(driver);
}

function isStub(driver: string): boolean {
  return driver === PCI_STUB || driver === 'pci_stub';
}

function isBridgeDev(p: PciDev): boolean {
  return p.isBridge || p.classCode >> 8 === 0x0604;
}

/** Per-machine state computed once: the model's groups (only when needed) and the model driver's regions. */
interface MachineCache {
  prediction: Prediction | null;
  ops: IommuOps | null;
  opsError: string | null;
  ids: PciIds | null | undefined;
}
const caches = new WeakMap<Machine, MachineCache>();

function cacheOf(machine: Machine): MachineCache {
  let c = caches.get(machine);
  if (!c) caches.set(machine, (c = { prediction: null, ops: null, opsError: null, ids: undefined }));
  return c;
}

/**
 * The model's group of every function, by id. predictGroups() records its groups on the devices
 * (`dev.iommuGroup`), so a machine is predicted once; a machine already grouped (by an earlier
 * prediction or boot) is read from its devices as it is.
 */
function modelGroupOf(machine: Machine, cache: MachineCache): (p: PciDev) => number | null {
  const grouped = machine.topology.devices.some((d) => d.dev.iommuGroup !== null);
  if (!grouped && !cache.prediction) cache.prediction = predictGroups(machine);
  return (p) => p.dev.iommuGroup?.id ?? null;
}

/**
 * The model IOMMU driver's ops, for its reserved regions only. A separate core: the machine's devices are
 * not probed (probing would put them into groups, which the machine's other users do themselves).
 */
function modelOps(machine: Machine, cache: MachineCache, rmrrs: readonly Rmrr[] | undefined): IommuOps | null {
  if (rmrrs) return createIntelIommu(new IommuCore(), { rmrrs }).ops;
  if (cache.ops || cache.opsError) return cache.ops;
  try {
    cache.ops = machine.iommuKind === 'amd' ? createAmdIommu(new IommuCore()).ops : createIntelIommu(new IommuCore()).ops;
  } catch (e) {
    cache.opsError = (e as Error).message;
  }
  return cache.ops;
}

function pciIds(cache: MachineCache): PciIds | null {
  if (cache.ids === undefined) {
    try {
      cache.ids = PciIds.system();
    } catch {
      cache.ids = null;
    }
  }
  return cache.ids;
}

function hex16(n: number): string {
  return `0x${n.toString(16).padStart(16, '0')}`;
}

interface ParsedRegion {
  start: number;
  end: number;
  type: string;
  startText: string;
  endText: string;
}

function parseReservedRegions(text: string): ParsedRegion[] {
  const out: ParsedRegion[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    out.push({ start: Number.parseInt(m[1]!, 16), end: Number.parseInt(m[2]!, 16), type: m[3]!, startText: hex16norm(m[1]!), endText: hex16norm(m[2]!) });
  }
  return out;
}

function hex16norm(s: string): string {
  return `0x${s.slice(2).toLowerCase().padStart(16, '0')}`;
}

/** How a companion function relates to the target, in words. */
function companionRelation(machine: Machine, cache: MachineCache, target: PciDev, p: PciDev): string {
  const cls = p.classCode >> 8;
  const gpu = target.classCode >> 16 === 0x03;
  if (gpu) {
    if (cls === 0x0403) return `GPU audio function of ${target.bdf}`;
    if (cls === 0x0c03) return `GPU USB controller of ${target.bdf}`;
    if (cls === 0x0c80) return `GPU USB-C UCSI controller of ${target.bdf}`;
    return `function ${p.func} (${className(machine, cache, p)}) of the GPU ${target.bdf}`;
  }
  return `function ${p.func} (${className(machine, cache, p)}) of the same device as ${target.bdf}`;
}

function className(machine: Machine, cache: MachineCache, p: PciDev): string {
  const n = machine.facts.get(p.bdf)?.names;
  if (n) return n.className;
  return formatClassName(pciIds(cache), p.classCode, 'name');
}

function deviceName(machine: Machine, cache: MachineCache, p: PciDev): string {
  const n = machine.facts.get(p.bdf)?.names;
  if (n) return `${n.vendor} ${n.device}`;
  return formatVendorDevice(pciIds(cache), p.vendor, p.device, 'name');
}

function comparePci(a: PciDev, b: PciDev): number {
  return a.bus.domain - b.bus.domain || a.bus.number - b.bus.number || a.devfn - b.devfn;
}

/**
 * Check whether the PCI function `bdfText` can be passed through with VFIO on `machine`, and what must change.
 * Reads the machine only: the plan is a list of writes for a person to make.
 * @throws IommuError EINVAL for a malformed BDF, ENODEV for a function not on the machine (both name the input).
 */
export function vfioCheck(machine: Machine, bdfText: string, opts: VfioCheckOptions = {}): VfioCheckReport {
  const b = parseBdf(bdfText);
  if (!b) throw new IommuError('EINVAL', 'not a PCI address (expected [dddd:]bb:dd.f, e.g. 0000:01:00.0)', { input: bdfText });
  const bdf = formatBdf(b.domain, b.bus, b.devfn);
  const target = machine.topology.byBdf.get(bdf);
  if (!target) throw new IommuError('ENODEV', `no PCI function ${bdf} on ${machine.source}`, { input: bdfText });
  const cache = cacheOf(machine);
  const notes: string[] = [];
  const blockers: VfioBlocker[] = [];
  const iommuActive = machine.kernelGroups !== null;
  const driverOf = (p: PciDev): string | null => machine.facts.get(p.bdf)?.driver ?? null;

  // The group.
  let group: number | null;
  let memberDevs: PciDev[];
  let groupOf: (p: PciDev) => number | null;
  if (iommuActive) {
    group = machine.facts.get(bdf)?.kernelGroup ?? null;
    const bdfs = group === null ? [] : (machine.kernelGroups!.get(group) ?? []);
    memberDevs = bdfs.map((x) => machine.topology.byBdf.get(x)).filter((p): p is PciDev => p !== undefined);
    groupOf = (p) => machine.facts.get(p.bdf)?.kernelGroup ?? null;
  } else {
    groupOf = modelGroupOf(machine, cache);
    group = groupOf(target);
    memberDevs = group === null ? [] : machine.topology.devices.filter((p) => groupOf(p) === group);
    notes.push(
      `no active IOMMU on ${machine.source} (the source shows no IOMMU groups): VFIO cannot be used until the IOMMU is enabled ` +
        `(${machine.iommuKind === 'amd' ? 'AMD-Vi: enabled by default unless amd_iommu=off; check the firmware setting' : 'intel_iommu=on on the kernel command line, and VT-d enabled in the firmware'}); ` +
        `the group shown is the model's prediction of the group the device would be in (with ACS enabled as the kernel would enable it)`,
    );
  }
  if (!memberDevs.includes(target)) memberDevs.push(target);
  memberDevs.sort(comparePci);

  // Roles and names.
  const members: VfioMember[] = memberDevs.map((p) => {
    const role: VfioMemberRole =
      p === target ? 'target' : isBridgeDev(p) ? 'bridge' : p.bus === target.bus && p.slot === target.slot ? 'companion' : 'other';
    return {
      bdf: p.bdf,
      driver: driverOf(p),
      class: hex(p.classCode, 6),
      role,
      name: deviceName(machine, cache, p),
      relation: role === 'companion' ? companionRelation(machine, cache, target, p) : null,
    };
  });

  // Machine-level reasons first: no IOMMU, no group.
  const targetDriver = driverOf(target);
  if (!iommuActive) {
    blockers.push({
      bdf,
      driver: targetDriver,
      why: 'no active IOMMU: there are no IOMMU groups, so VFIO has no group to take (enable the IOMMU and reboot first)',
    });
  } else if (group === null) {
    const unprobed = whyUngrouped(machine, target);
    blockers.push({ bdf, driver: targetDriver, why: `in no IOMMU group (${unprobed}): VFIO can only assign a device the IOMMU translates` });
  }

  // The v5.19+ ownership rule, member by member.
  if (group !== null) {
    for (const m of members) {
      if (m.driver === null || isDriverManagedDma(m.driver)) continue;
      const rule = 'a kernel DMA driver: the group cannot be owned for user DMA while it is bound';
      let why: string;
      if (isBridgeDev(machine.topology.byBdf.get(m.bdf)!)) {
        why =
          `bridge bound to ${m.driver}, ${rule} (since Linux 5.19 bridges are not exempt; only pcieport, pci-stub and vfio-pci leave the group free)` +
          (m.role === 'target' ? '; the device asked about is itself this bridge' : '');
      } else if (m.role === 'target') {
        why = `bound to ${m.driver}, ${rule} (the device itself: it has to move to vfio-pci)`;
      } else if (m.role === 'companion') {
        why = `bound to ${m.driver}, ${rule} (the ${m.relation})`;
      } else {
        why = `bound to ${m.driver}, ${rule} (another device the IOMMU cannot isolate from ${bdf})`;
      }
      blockers.push({ bdf: m.bdf, driver: m.driver, why });
    }
  }

  // Direct-mapped regions.
  const direct = directRegions(machine, cache, memberDevs, group, iommuActive, opts, notes);
  for (const r of direct.regions) {
    if (!r.blocks) continue;
    const whyDirect =
      `firmware direct-mapped region ${r.start}–${r.end} (IOMMU_RESV_DIRECT, e.g. an RMRR)` +
      (r.bdf === null ? ` on a device of group ${group}` : '') +
      ': the IOMMU core refuses the blocking domain for it (EINVAL), so the group can never be owned for user DMA, whatever its drivers';
    const existing = r.bdf === null ? undefined : blockers.find((x) => x.bdf === r.bdf);
    if (existing) existing.why += `; ${whyDirect}`;
    else blockers.push({ bdf: r.bdf, driver: r.bdf === null ? null : driverOf(machine.topology.byBdf.get(r.bdf)!), why: whyDirect });
  }
  const relaxable = direct.regions.filter((r) => !r.blocks);
  if (relaxable.length) {
    notes.push(
      `direct-relaxable region(s) ${relaxable.map((r) => `${r.start}–${r.end}${r.bdf ? ` (${r.bdf})` : ''}`).join(', ')}: ` +
        'IOMMU_RESV_DIRECT_RELAXABLE (USB/GPU RMRRs, the ISA bridge\'s floppy range) do not block assignment — they are identity-mapped for the kernel\'s DMA API only and dropped when VFIO takes the group',
    );
  }

  // Reset methods.
  const resetMethods = [...(machine.facts.get(bdf)?.resetMethods ?? [])];
  if (machine.sourceKind === 'lspci') {
    notes.push('reset methods unknown: lspci text does not show sysfs reset_method (read /sys or a snapshot for them)');
  } else if (resetMethods.length === 0) {
    notes.push(
      `no reset method for ${bdf} in sysfs (reset_method empty or absent; the file exists since Linux 5.15): VFIO can assign the device but cannot reset it between users`,
    );
  }

  // The plan.
  const plan: VfioPlanStep[] = [];
  let stubUsed = false;
  let vfioUsed = false;
  if (!(iommuActive && group === null)) {
    for (const m of members) {
      const p = machine.topology.byBdf.get(m.bdf)!;
      let want: string | null = null;
      if (m.role === 'target') {
        if (isBridgeDev(p)) {
          notes.push(`${bdf} is a PCI bridge: vfio-pci binds only normal (header type 0) functions, so a bridge itself cannot be passed through; the verdict is about its group`);
          if (m.driver !== null && !isDriverManagedDma(m.driver)) want = PCI_STUB;
        } else if (m.driver === null || !isVfioDriver(m.driver)) want = VFIO_PCI;
      } else if (m.role === 'bridge') {
        // vfio-pci refuses bridges: park one that is on a kernel DMA driver on pci-stub (driver_managed_dma) instead.
        if (m.driver !== null && !isDriverManagedDma(m.driver)) want = PCI_STUB;
      } else if (m.driver === null || !(isVfioDriver(m.driver) || isStub(m.driver))) {
        // pcieport on a non-bridge function (a root complex event collector) keeps the group free: leave it.
        if (!(m.driver === 'pcieport')) want = VFIO_PCI;
      }
      if (want === null) continue;
      if (want === PCI_STUB) stubUsed = true;
      else vfioUsed = true;
      const dir = `/sys/bus/pci/devices/${m.bdf}`;
      plan.push({ write: `${dir}/driver_override`, value: want });
      if (m.driver !== null) plan.push({ write: `${dir}/driver/unbind`, value: m.bdf });
      plan.push({ write: '/sys/bus/pci/drivers_probe', value: m.bdf });
    }
  } else {
    notes.push('no plan: a device in no IOMMU group cannot be given to vfio-pci');
  }
  if (plan.length) {
    const mods = [vfioUsed ? 'vfio-pci' : null, stubUsed ? 'pci-stub' : null].filter((x) => x !== null);
    notes.push(
      `the plan is a dry run: iommukit wrote nothing. Before it, load ${mods.join(' and ')} (modprobe ${mods.length > 1 ? '-a ' : ''}${mods.join(' ')}) as root; ` +
        'driver_override lasts until the device is removed or the machine reboots',
    );
    if (stubUsed) notes.push('bridges on a kernel DMA driver are parked on pci-stub, not vfio-pci: vfio-pci refuses bridges, pci-stub binds them and leaves the group free (driver_managed_dma)');
    if (!iommuActive) notes.push('the plan applies once the IOMMU is on and the kernel has formed its groups');
  } else if (group !== null && iommuActive) {
    notes.push('nothing to change: the group is already in the hands of vfio-pci / pci-stub, with bridges on pcieport');
  }

  // Companions outside the group (functions the IOMMU isolates): the guest may need them too.
  for (const p of target.bus.devices) {
    if (p === target || p.slot !== target.slot || memberDevs.includes(p) || isBridgeDev(p)) continue;
    const g = groupOf(p);
    notes.push(
      `${p.bdf} (${companionRelation(machine, cache, target, p)}) is in ${g === null ? 'no IOMMU group' : `another IOMMU group (${g})`}: ` +
        'not needed for this group\'s viability; pass it through separately if the guest needs it',
    );
  }
  if (!iommuActive) notes.push(...machine.notes.filter((n) => !n.startsWith('no active IOMMU') && !n.includes('no "IOMMU group:" lines')), ...(cache.prediction?.assumptions ?? []));

  return {
    bdf,
    group,
    viable: blockers.length === 0,
    blockers,
    resetMethods,
    plan,
    groupSource: iommuActive ? 'kernel' : 'model',
    members,
    directMappedRegions: direct.regions,
    directMappedChecked: direct.checked,
    iommuActive,
    input: machine.source,
    notes,
  };
}

/** Why the kernel left a function out of every group, as far as can be told. */
function whyUngrouped(machine: Machine, p: PciDev): string {
  if ((p.classCode >> 8) === 0x0806 && (p.vendor === 0x1022 || p.vendor === 0x1002)) return 'the AMD IOMMU itself, which it does not translate';
  if (machine.iommuKind === 'amd' && p.devfn === 0 && p.bus.isRoot && (p.classCode >> 8) === 0x0600) return 'an AMD root complex, outside the IOMMU\'s device scope';
  if (p.vendor === 0x1af4 && p.device === 0x1057) return 'the virtio-iommu device itself';
  return 'the kernel put it in none';
}

/**
 * The group's direct-mapped regions: from the kernel's `reserved_regions` when the source has it (attributed to a
 * device where the model driver reports the same range), else the model driver's per-device regions, which lack
 * the firmware's RMRRs / unity maps unless `opts.rmrrs` gives them.
 */
function directRegions(
  machine: Machine,
  cache: MachineCache,
  members: readonly PciDev[],
  group: number | null,
  iommuActive: boolean,
  opts: VfioCheckOptions,
  notes: string[],
): { regions: VfioDirectRegion[]; checked: boolean } {
  const ops = modelOps(machine, cache, opts.rmrrs);
  const model: { bdf: string; r: IommuResvRegion }[] = [];
  if (ops?.getResvRegions) {
    for (const p of members) {
      for (const r of ops.getResvRegions(p.dev)) {
        if (r.type === IommuResvType.DIRECT || r.type === IommuResvType.DIRECT_RELAXABLE) model.push({ bdf: p.bdf, r });
      }
    }
  } else if (cache.opsError) {
    notes.push(`the model IOMMU driver could not be set up (${cache.opsError}): no per-device regions`);
  }
  const kernelText = iommuActive && group !== null ? opts.kernelReservedRegions?.get(group) : undefined;
  if (typeof kernelText === 'string') {
    const regions: VfioDirectRegion[] = [];
    for (const k of parseReservedRegions(kernelText)) {
      if (k.type !== 'direct' && k.type !== 'direct-relaxable') continue;
      const type = k.type;
      const owners = [
        ...new Set(
          model
            .filter((m) => IOMMU_RESV_TYPE_STRING[m.r.type] === type && m.r.start >= k.start && m.r.start + m.r.length - 1 <= k.end)
            .map((m) => m.bdf),
        ),
      ];
      regions.push({ bdf: owners.length === 1 ? owners[0]! : null, type, start: k.startText, end: k.endText, blocks: type === 'direct', source: 'kernel' });
    }
    return { regions, checked: true };
  }
  const regions: VfioDirectRegion[] = model.map(({ bdf, r }) => {
    const type = r.type === IommuResvType.DIRECT ? 'direct' : 'direct-relaxable';
    return { bdf, type, start: hex16(r.start), end: hex16(r.start + r.length - 1), blocks: type === 'direct', source: 'model' as const };
  });
  if (opts.rmrrs) return { regions, checked: true };
  const why =
    machine.sourceKind === 'lspci'
      ? 'lspci text does not show the firmware tables'
      : !iommuActive
        ? 'the source shows no IOMMU groups (so no kernel reserved_regions) and iommukit does not parse the ACPI DMAR/IVRS tables yet'
        : group === null
          ? 'the device is in no group'
          : `the source has no reserved_regions file for group ${group} and iommukit does not parse the ACPI DMAR/IVRS tables yet`;
  notes.push(
    `direct-mapped regions not checked: this needs the firmware tables (RMRRs in the ACPI DMAR table, unity maps in IVRS), and ${why}. ` +
      'A device with an RMRR (IOMMU_RESV_DIRECT) can never be assigned: the kernel refuses the blocking domain (EINVAL). ' +
      `On the machine, look for a "direct" line in /sys/kernel/iommu_groups/${iommuActive && group !== null ? group : "<group>"}/reserved_regions`,
  );
  return { regions, checked: false };
}
