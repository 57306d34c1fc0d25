/**
 * The iommufd selftest mock IOMMU: a private bus (`iommufd_mock`) whose
 * devices it alone probes, one group per device, paging domains with 2 KiB
 * pages over the aperture [1<<24, (1<<31)-1] whose mappings are kept in a map
 * (the selftest's xarray of `pfn | flags`), static identity and blocked
 * domains, per-PASID attach, and seeded fault injection.
 *
 * Linux: drivers/iommu/iommufd/selftest.c — iommufd_test_init(),
 * mock_dev_create(), mock_probe_device(), mock_ops (device_group =
 * generic_device_group), mock_domain_alloc_paging_flags(),
 * mock_domain_map_pages(), mock_domain_unmap_pages(),
 * mock_domain_iova_to_phys(), mock_domain_set_dev_pasid_nop(),
 * mock_blocking_domain.
 *
 * Divergences: the core model has no `ops->default_domain`, so a mock group's
 * default domain follows the global policy (DMA / DMA-FQ / identity) rather
 * than the selftest's static blocked domain. Fault injection is a model
 * addition (Linux injects failures with the generic fail_* fault attributes).
 */
import { IommuError } from '../../base/errno.js';
import { BusType } from '../../device/bus.js';
import { Device, deviceAdd, deviceDel, type FwNode } from '../../device/device.js';
import { devIommu, type IommuCore } from '../../iommu/core.js';
import { iotlbGatherAdd, IommuDomain, type IommuDomainOps } from '../../iommu/domain.js';
import type { IommuCap, IommuOps } from '../../iommu/iommu-ops.js';
import { iommuFwspecInit } from '../../iommu/fwspec.js';
import { IommuUnit } from '../../iommu/iommu-unit.js';
import { genericDeviceGroup } from '../../iommu/pci-device-group.js';

/** The mock's page size: PAGE_SIZE / 2 (2 KiB with 4 KiB pages). Linux: MOCK_IO_PAGE_SIZE. */
export const MOCK_IO_PAGE_SIZE = 2048;
/** First IOVA of a mock paging domain's aperture. Linux: MOCK_APERTURE_START. */
export const MOCK_APERTURE_START = 1 << 24;
/** Last IOVA (inclusive) of a mock paging domain's aperture. Linux: MOCK_APERTURE_LAST. */
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;
/** Flag on the entry of the first IOVA of a map_pages call. Linux: MOCK_PFN_START_IOVA. */
export const MOCK_PFN_START_IOVA = 1;
/** Flag on the entry of the last IOVA of a map_pages call. Linux: MOCK_PFN_LAST_IOVA. */
export const MOCK_PFN_LAST_IOVA = 2;
/** PASID width of a mock device created with `pasid`. Linux: MOCK_PASID_WIDTH. */
export const MOCK_PASID_WIDTH = 20;
/** The PASID whose replacement the mock fails every other time (vector 50). Linux: the `pasid == 1024` fake error of mock_domain_set_dev_pasid_nop(). */
export const MOCK_FAKE_ERROR_PASID = 1024;

/** Options of {@link createMockIommu}. */
export interface MockIommuOptions {
  /** PRNG seed of the fault injection (default 1). */
  readonly seed?: number;
  /** Probability in [0, 1] that a map_pages or a paging-domain attach fails with ENOMEM (default 0). */
  readonly faultRate?: number;
  /** Unit name (default `iommufd_selftest_iommu`, the platform device's name). */
  readonly name?: string;
}

/** Options of a mock device. Linux: the MOCK_FLAGS_DEVICE_* flags of mock_dev_create(). */
export interface MockDeviceOptions {
  /** MOCK_FLAGS_DEVICE_PASID: firmware property `pasid-num-bits = 20` (max_pasids 1 << 20). */
  readonly pasid?: boolean;
}

/** A mock paging domain's mapping store: IOVA page (iova / 2 KiB) → pa + flags. Linux: mock_iommu_domain.pfns (xarray). */
export interface MockDomainData {
  readonly pfns: Map<number, number>;
}

/** The mock driver: its ops, unit, bus and device factory. Linux: the state iommufd_test_init() sets up (mock_iommu, iommufd_mock_bus_type). */
export interface MockIommu {
  /** The driver's ops. Linux: mock_ops. */
  readonly ops: IommuOps;
  /** The registered unit. Linux: mock_iommu.iommu_dev. */
  readonly unit: IommuUnit;
  /** The private bus type. Linux: iommufd_mock_bus_type (`iommufd_mock`). */
  readonly bus: BusType;
  /** The unit's firmware node, which every mock device shares. */
  readonly fwnode: FwNode;
  /** WARN_ON()s the mock hit (map over an entry, unmap not on map boundaries, iova_to_phys of a hole), oldest first. */
  readonly warnings: string[];
  /** Fault-injection rate (mutable: set 0 to stop injecting). */
  faultRate: number;
  /**
   * Create a mock device on the mock bus and add it (the bus notifier probes it with this driver).
   * @throws IommuError from the probe (e.g. an injected ENOMEM attaching its default domain); the device is removed again.
   * Linux: mock_dev_create().
   */
  createDevice(name?: string, opts?: MockDeviceOptions): Device;
  /** Remove a mock device (the bus notifier releases it). Linux: mock_dev_destroy(). */
  destroyDevice(dev: Device): void;
}

/** A small deterministic PRNG (mulberry32) for the fault injection. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The mapping store of a mock paging domain. */
export function mockDomainData(domain: IommuDomain): MockDomainData {
  const d = domain.driverData as MockDomainData | null;
  if (!d || !(d.pfns instanceof Map)) throw new IommuError('EINVAL', `domain ${domain.id} is not a mock paging domain`);
  return d;
}

/**
 * Create the mock IOMMU, register its unit on `core`, and hook its bus's
 * notifier (ADD_DEVICE → probe, REMOVED_DEVICE → release).
 * Linux: iommufd_test_init() → bus_register(), iommu_device_register_bus(&mock_iommu.iommu_dev, &mock_ops, &iommufd_mock_bus_type, nb);
 * mock_dev_create() → iommu_fwspec_init(&mdev->dev, &mock_fwnode) before device_add().
 */
export function createMockIommu(core: IommuCore, opts: MockIommuOptions = {}): MockIommu {
  const rand = prng(opts.seed ?? 1);
  const bus = new BusType('iommufd_mock');
  const fwnode: FwNode = { name: 'iommufd_selftest_iommu' };
  const warnings: string[] = [];
  const devState = new Map<Device, { pasid: boolean; pasid1024FakeError: boolean }>();
  let nextDevId = 0;

  const warn = (msg: string): void => {
    warnings.push(msg);
    core.log.push(`WARN: iommufd_mock: ${msg}`);
  };
  const inject = (): boolean => mock.faultRate > 0 && rand() < mock.faultRate;

  const pagingOps: IommuDomainOps = {
    attachDev(domain: IommuDomain, dev: Device): void {
      if (inject()) throw new IommuError('ENOMEM', `injected fault attaching ${dev.name} to mock domain ${domain.id}`);
    },
    mapPages(domain, iova, paddr, pgsize, count, _prot): number {
      const { pfns } = mockDomainData(domain);
      domain.mapError = null;
      if (inject()) {
        domain.mapError = 'ENOMEM';
        return 0;
      }
      const total = pgsize * count;
      let mapped = 0;
      for (let off = 0; off < total; off += MOCK_IO_PAGE_SIZE) {
        let flags = 0;
        if (off === 0) flags |= MOCK_PFN_START_IOVA;
        if (off + MOCK_IO_PAGE_SIZE === total) flags |= MOCK_PFN_LAST_IOVA;
        const key = (iova + off) / MOCK_IO_PAGE_SIZE;
        // The selftest's xa_store() overwrites and WARNs on a previous entry.
        if (pfns.has(key)) warn(`map over an existing entry at IOVA 0x${(iova + off).toString(16)}`);
        pfns.set(key, paddr + off + flags);
        mapped += MOCK_IO_PAGE_SIZE;
      }
      return mapped;
    },
    unmapPages(domain, iova, pgsize, count, gather): number {
      const { pfns } = mockDomainData(domain);
      let ret = 0;
      for (let i = 0; i < count; i++) {
        for (let cur = 0; cur < pgsize; cur += MOCK_IO_PAGE_SIZE) {
          const key = (iova + ret) / MOCK_IO_PAGE_SIZE;
          const ent = pfns.get(key);
          pfns.delete(key);
          // iommufd unmaps strict supersets of maps: the first/last IOVA must be a map's first/last.
          if (ret === 0 && ent !== undefined && !(ent % MOCK_IO_PAGE_SIZE & MOCK_PFN_START_IOVA)) warn(`unmap starts inside a map at IOVA 0x${(iova + ret).toString(16)}`);
          if (i === count - 1 && cur + MOCK_IO_PAGE_SIZE === pgsize && ent !== undefined && !(ent % MOCK_IO_PAGE_SIZE & MOCK_PFN_LAST_IOVA)) {
            warn(`unmap ends inside a map at IOVA 0x${(iova + ret).toString(16)}`);
          }
          ret += MOCK_IO_PAGE_SIZE; // the full requested count, holes included (vector 36)
        }
      }
      iotlbGatherAdd(gather, iova, ret);
      return ret;
    },
    iovaToPhys(domain, iova): number {
      const ent = mockDomainData(domain).pfns.get(Math.floor(iova / MOCK_IO_PAGE_SIZE));
      if (ent === undefined) {
        warn(`iova_to_phys of unmapped IOVA 0x${iova.toString(16)}`);
        return 0;
      }
      const pa = ent - (ent % MOCK_IO_PAGE_SIZE);
      return pa + (iova % MOCK_IO_PAGE_SIZE);
    },
    iotlbSync(): void {
      // The mock has no IOTLB.
    },
    flushIotlbAll(): void {
      // The mock has no IOTLB.
    },
    free(domain): void {
      mockDomainData(domain).pfns.clear();
    },
    setDevPasid(domain: IommuDomain, dev: Device, pasid: number): void {
      pasidNop(domain, dev, pasid);
    },
  };

  /** mock_domain_set_dev_pasid_nop(): PASID 1024 fails every second replacement with ENOMEM. */
  function pasidNop(domain: IommuDomain, dev: Device, pasid: number): void {
    const st = devState.get(dev);
    if (pasid !== MOCK_FAKE_ERROR_PASID || !st) return;
    if (domain.type === 'blocked') st.pasid1024FakeError = false;
    else if (st.pasid1024FakeError) {
      st.pasid1024FakeError = false;
      throw new IommuError('ENOMEM', `mock: fake error replacing PASID ${pasid} of ${dev.name}`);
    } else st.pasid1024FakeError = true;
  }

  const staticOps = (): IommuDomainOps => ({
    attachDev: () => undefined,
    setDevPasid: (domain, dev, pasid) => pasidNop(domain, dev, pasid),
  });

  const ops: IommuOps = {
    name: 'iommufd_mock',
    probeDevice(dev: Device): IommuUnit {
      if (dev.bus !== bus) throw new IommuError('ENODEV', `${dev.name} is not on the iommufd_mock bus`);
      return unit;
    },
    releaseDevice(dev: Device): void {
      devState.delete(dev);
    },
    deviceGroup(c: IommuCore) {
      return genericDeviceGroup(c.groups);
    },
    domainAllocPaging(dev: Device | null): IommuDomain {
      if (dev && dev.bus !== bus) throw new IommuError('EINVAL', `${dev.name} is not a mock device`);
      const d = new IommuDomain({
        type: 'unmanaged',
        owner: ops,
        ops: pagingOps,
        pgsizes: [MOCK_IO_PAGE_SIZE],
        geometry: { apertureStart: MOCK_APERTURE_START, apertureEnd: MOCK_APERTURE_LAST, forceAperture: true },
      });
      const data: MockDomainData = { pfns: new Map() };
      d.driverData = data;
      return d;
    },
    capable(_dev: Device, cap: IommuCap): boolean {
      return cap === 'CACHE_COHERENCY' || cap === 'DIRTY_TRACKING';
    },
  };
  const identity = new IommuDomain({ type: 'identity', owner: ops, ops: staticOps() });
  const blocked = new IommuDomain({ type: 'blocked', owner: ops, ops: staticOps() });
  Object.assign(ops, { identityDomain: identity, blockedDomain: blocked });

  const unit = new IommuUnit(opts.name ?? 'iommufd_selftest_iommu', ops, { fwnode, maxPasids: 1 << MOCK_PASID_WIDTH });
  // Its own bus, hooked by the core's bus notifier (probe on add, release on removal).
  core.iommuDeviceRegisterBus(unit, bus);

  const mock: MockIommu = {
    ops,
    unit,
    bus,
    fwnode,
    warnings,
    faultRate: opts.faultRate ?? 0,
    createDevice(name?: string, dopts: MockDeviceOptions = {}): Device {
      const dev = new Device(name ?? `iommufd_mock${nextDevId}`, bus, null, fwnode);
      nextDevId++;
      devState.set(dev, { pasid: dopts.pasid ?? false, pasid1024FakeError: false });
      // The seed's fix: the device names the mock's fwnode, so the core probes it with the mock's ops
      // and never with the ops of a unit registered without a node (VT-d, AMD-Vi).
      iommuFwspecInit(core, dev, fwnode);
      deviceAdd(dev);
      const err = core.probeErrors.get(dev);
      if (err !== undefined) {
        deviceDel(dev);
        devState.delete(dev);
        throw err;
      }
      const di = devIommu(dev);
      // iommu_init_device(): max_pasids from the firmware property pasid-num-bits.
      if (di) di.maxPasids = dopts.pasid ? Math.min(1 << MOCK_PASID_WIDTH, unit.maxPasids) : 0;
      return dev;
    },
    destroyDevice(dev: Device): void {
      deviceDel(dev);
    },
  };
  return mock;
}
