/**
 * Bring up a machine's IOMMU as its kernel would: the core's policy from the
 * kernel command line, the platform's IOMMU driver, and every PCI function
 * probed in scan order into groups and default domains.
 *
 * Linux: iommu_subsys_init() and the iommu.passthrough / iommu.strict /
 * iommu=pt early params (drivers/iommu/iommu.c, arch/x86/kernel/pci-dma.c),
 * intel_iommu_init() / amd_iommu_init() → bus_iommu_probe(). The platform driver
 * is built from the machine's ACPI DMAR (VT-d) or IVRS (AMD-Vi) table when the
 * source has it: one unit per DRHD / IVHD, RMRRs, IVMD unity maps, IVRS aliases.
 */
import { IommuError } from '../base/errno.js';
import { deviceBindDriver, type Device } from '../device/device.js';
import { driverByName } from '../device/driver.js';
import { enableDmaOwnership } from '../iommu/dma-owner.js';
import { createAmdIommu } from '../drivers/amd-vi/index.js';
import { createArmSmmuV3 } from '../drivers/arm-smmu-v3/index.js';
import { createArmSmmuV3FromIort } from '../drivers/arm-smmu-v3/iort-config.js';
import { parseIort, type Iort } from '../firmware/iort.js';
import { createIntelIommu } from '../drivers/intel-vt-d/index.js';
import { parseDmar, type Dmar } from '../firmware/dmar.js';
import { parseIvrs, type Ivrs } from '../firmware/ivrs.js';
import { IommuCore, type IommuCoreOptions } from '../iommu/core.js';
import type { IommuOps } from '../iommu/iommu-ops.js';
import type { IommuUnit } from '../iommu/iommu-unit.js';
import type { Machine } from './machine.js';
import { assertUnprobed } from './predict.js';

/** What the kernel command line says about the IOMMU. */
export interface IommuCmdline {
  /** `iommu=pt` / `iommu.passthrough=1` (true), `iommu.passthrough=0` (false), or unset. */
  readonly passthrough?: boolean;
  /** `iommu.strict=1` (true) / `=0` (false), or unset. */
  readonly strict?: boolean;
  /** `intel_iommu=on` / `=off`, or unset. */
  readonly intelIommu?: boolean;
  /** `amd_iommu=off`. */
  readonly amdIommuOff?: boolean;
}

function bool(v: string): boolean | undefined {
  if (/^(1|y|yes|on|true)$/i.test(v)) return true;
  if (/^(0|n|no|off|false)$/i.test(v)) return false;
  return undefined;
}

/** Parse the IOMMU options of a kernel command line. Linux: iommu_set_def_domain_type(), iommu_dma_setup(), iommu_setup(), intel_iommu_setup(). */
export function parseIommuCmdline(cmdline: string): IommuCmdline {
  const out: { -readonly [K in keyof IommuCmdline]: IommuCmdline[K] } = {};
  for (const tok of cmdline.trim().split(/\s+/)) {
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    const val = eq < 0 ? '' : tok.slice(eq + 1);
    if (key === 'iommu') {
      for (const o of val.split(',')) {
        if (o === 'pt') out.passthrough = true;
        else if (o === 'nopt') out.passthrough = false;
        else if (o === 'strict') out.strict = true;
      }
    } else if (key === 'iommu.passthrough') out.passthrough = bool(val);
    else if (key === 'iommu.strict') out.strict = bool(val);
    else if (key === 'intel_iommu') {
      for (const o of val.split(',')) {
        if (o === 'on') out.intelIommu = true;
        else if (o === 'off') out.intelIommu = false;
        else if (o === 'strict') out.strict = true;
      }
    } else if (key === 'amd_iommu') {
      for (const o of val.split(',')) {
        if (o === 'off') out.amdIommuOff = true;
        else if (o === 'fullflush') out.strict = true;
      }
    }
  }
  return out;
}

/** A booted IOMMU: the core, the driver, its units, and the devices it took. */
export interface BootedIommu {
  readonly core: IommuCore;
  readonly ops: IommuOps;
  /** The first unit (`dmar0`, `ivhd0`, …): kept for callers of one-unit machines. */
  readonly unit: IommuUnit;
  /** Every unit of the driver: one per DRHD (`dmar<i>`) or IVHD (`ivhd<i>`) of the firmware table, else one. */
  readonly units: readonly IommuUnit[];
  readonly devices: readonly Device[];
}

/** Options of {@link bootIommu}. */
export interface BootOptions {
  /** The kernel command line (its iommu options apply). */
  readonly cmdline?: string;
  /** Which driver (default: from the machine, VT-d on x86 machines of unknown kind). */
  readonly driver?: 'intel' | 'amd' | 'arm-smmu-v3';
  /** Core options beyond the command line. */
  readonly core?: IommuCoreOptions;
  /**
   * Bind each function's recorded driver (sysfs `driver` link, lspci "Kernel driver in use") after
   * the probe, through the DMA-ownership hooks, so the groups' owner counts are the machine's.
   */
  readonly bindDrivers?: boolean;
}

/**
 * Boot the machine's IOMMU and probe its PCI functions.
 * Emulated IOMMUs force strict mode as the kernel does: VT-d in caching mode
 * (cap bit 7), AMD-Vi with NpCache (cap bit 26), read from sysfs when present;
 * QEMU's AMD IOMMU function (1022:0008) has NpCache.
 * VT-d uses the machine's DMAR table and AMD-Vi its IVRS table when the
 * source has them (`machine.acpiTables`); otherwise one unit covering every
 * PCI function (the IOMMU's own excepted). SMMUv3 uses the IORT table (one
 * unit per SMMUv3 node, stream IDs from its ID mappings), else one SMMU with
 * stream ID = requester ID.
 * @throws IommuError EBUSY if the machine was already predicted or booted (read the source again);
 *   EINVAL for a malformed DMAR/IVRS/IORT table, ENODEV for one without DRHD/IVHD/SMMUv3 node (checked before anything is probed).
 */
export function bootIommu(machine: Machine, opts: BootOptions = {}): BootedIommu {
  assertUnprobed(machine);
  const cl = parseIommuCmdline(opts.cmdline ?? '');
  const core = new IommuCore({
    ...opts.core,
    ...(cl.passthrough !== undefined ? { passthrough: cl.passthrough } : {}),
    ...(cl.strict !== undefined ? { strict: cl.strict } : {}),
  });
  const kind = opts.driver ?? (machine.iommuKind === 'amd' ? 'amd' : 'intel');
  const attrs = Object.values(machine.iommuUnitAttrs)[0] ?? {};
  const capBit = (bit: number): boolean => {
    const cap = attrs['cap'];
    if (cap === undefined) return false;
    const v = parseInt(cap.slice(-8), 16);
    return Number.isFinite(v) && Math.floor(v / 2 ** bit) % 2 === 1;
  };
  // The firmware tables are parsed (and refused) before the core touches the bus.
  const dmarBytes = machine.acpiTables['DMAR'];
  const ivrsBytes = machine.acpiTables['IVRS'];
  const dmar: Dmar | undefined = kind === 'intel' && dmarBytes ? parseDmar(dmarBytes, `${machine.source}: DMAR`) : undefined;
  const ivrs: Ivrs | undefined = kind === 'amd' && ivrsBytes ? parseIvrs(ivrsBytes, `${machine.source}: IVRS`) : undefined;
  if (dmar && dmar.drhds.length === 0) throw new IommuError('ENODEV', `${machine.source}: the DMAR table has no DRHD: no VT-d unit`);
  const iortBytes = machine.acpiTables['IORT'];
  const iort: Iort | undefined = kind === 'arm-smmu-v3' && iortBytes ? parseIort(iortBytes, `${machine.source}: IORT`) : undefined;
  if (iort && !iort.nodes.some((n) => n.kind === 'smmu-v3')) throw new IommuError('ENODEV', `${machine.source}: the IORT table has no SMMUv3 node`);
  if (ivrs && ivrs.ivhds.length === 0) throw new IommuError('ENODEV', `${machine.source}: the IVRS table has no IVHD: no AMD IOMMU`);
  // iommu_subsys_init(): the core watches the PCI bus; each unit's registration probes its devices.
  core.watchBus(machine.topology.pciBus);
  let driver: { ops: IommuOps; unit: IommuUnit; units?: readonly IommuUnit[] };
  if (kind === 'amd') {
    const qemu = machine.topology.devices.some((d) => d.vendor === 0x1022 && d.device === 0x0008);
    driver = createAmdIommu(core, { npCache: capBit(26) || qemu, ...(ivrs ? { ivrs } : {}) });
  } else if (kind === 'arm-smmu-v3') {
    const fromIort = iort ? createArmSmmuV3FromIort(core, iort) : null;
    const units = fromIort ? [...fromIort.smmus.values()].map((x) => x.unit) : [];
    driver = fromIort ? { ops: units[0]!.ops, unit: units[0]!, units } : createArmSmmuV3(core);
  } else {
    driver = createIntelIommu(core, { cachingMode: capBit(7), ...(dmar ? { dmar } : {}) });
  }
  const devices = machine.topology.pciBus.devices.filter((d) => d.iommu !== null);
  enableDmaOwnership(core, machine.topology.pciBus);
  if (opts.bindDrivers) {
    for (const pdev of machine.topology.devices) {
      const name = machine.facts.get(pdev.bdf)?.driver;
      if (name && !pdev.dev.driver) deviceBindDriver(pdev.dev, driverByName(name));
    }
  }
  return { core, ops: driver.ops, unit: driver.unit, units: driver.units ?? [driver.unit], devices };
}
