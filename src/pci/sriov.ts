/**
 * SR-IOV: a PF's driver enables VFs (new PCI functions that appear on the
 * PF's bus, or on SR-IOV virtual buses under it when their routing IDs run
 * past it) and disables them again. Each VF goes through the driver model,
 * so the `pci` bus notifier chain (the IOMMU core) sees ADD_DEVICE for each
 * on enable and DEL_DEVICE / REMOVED_DEVICE for each on disable.
 *
 * What a PF is, as Linux decides at sriov_init(): a PCIe Endpoint or RC
 * Integrated Endpoint with an SR-IOV capability whose TotalVFs is not 0,
 * whose First VF Offset is not 0 and whose VF Stride is not 0 when TotalVFs
 * > 1. Anything else is not a PF (Linux: `is_physfn` stays 0). Not modelled:
 * VF BARs and MMIO resources, Function Dependency Link, VF Migration state,
 * ARI capable hierarchy, pcibios hooks, offset/stride that change with NumVFs.
 *
 * Linux: pci_enable_sriov() / pci_disable_sriov() / pci_num_vf() /
 * pci_sriov_get_totalvfs(), sriov_enable(), sriov_add_vfs(),
 * pci_iov_add_virtfn(), sriov_del_vfs(), pci_iov_remove_virtfn(),
 * virtfn_add_bus() / virtfn_remove_bus(), drivers/pci/iov.c.
 */
import { IommuError } from '../base/errno.js';
import { ConfigSpace } from './config-space.js';
import {
  pciAddFunction,
  pciBusesOfDomain,
  pciBusNumberEnd,
  pciConfigWrite16,
  pciRemoveFunctions,
  pciSriovClearEnable,
  pciSriovEnabledCount,
} from './hotplug.js';
import { formatBdf, hex, PciBus, PciDev } from './pci-dev.js';
import {
  PCI_CAP_ID_EXP,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_REVISION_ID,
  PCI_SRIOV_CAP,
  PCI_SRIOV_CAP_VFM,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_INITIAL_VF,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_VF_DID,
  PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
  PcieType,
} from './regs.js';
import { pciTopologyLists, type PciTopology } from './topology.js';

/** Size of the PCIe capability structure copied into a VF. Linux: PCI_CAP_EXP_SIZEOF. */
const PCI_CAP_EXP_SIZEOF = 0x3c;
/** Where a VF's PCIe capability is placed. */
const VF_PCIE_CAP = 0x40;
/** Config space size of a VF (bytes). Linux: PCI_CFG_SPACE_EXP_SIZE. */
const VF_CONFIG_SIZE = 4096;

/** PFs whose VFs are being added: pci_num_vf() is still 0 for them (Linux sets num_VFs last). */
const enabling = new WeakSet<PciDev>();

/**
 * Why `pdev` is not an SR-IOV PF, or null if it is. Linux: the conditions of
 * sriov_init() / compute_max_vf_buses() under which `is_physfn` gets set.
 */
function notPhysfnReason(pdev: PciDev): string | null {
  if (pdev.isVirtfn) return 'it is an SR-IOV VF';
  const cap = pdev.sriovCap;
  if (!cap) return 'it has no SR-IOV capability';
  if (pdev.pcieType !== PcieType.ENDPOINT && pdev.pcieType !== PcieType.RC_END) {
    return 'its SR-IOV capability is ignored: it is not a PCIe Endpoint or RC Integrated Endpoint';
  }
  const total = pdev.config.read16(cap + PCI_SRIOV_TOTAL_VF);
  if (total === 0) return 'its TotalVFs is 0';
  const offset = pdev.config.read16(cap + PCI_SRIOV_VF_OFFSET);
  const stride = pdev.config.read16(cap + PCI_SRIOV_VF_STRIDE);
  if (offset === 0 || (total > 1 && stride === 0)) return `its First VF Offset (${offset}) or VF Stride (${stride}) is 0`;
  return null;
}

/**
 * TotalVFs of a PF: how many VFs it can have; 0 if `pdev` is not a PF (no
 * SR-IOV capability, a VF, not an Endpoint / RC Integrated Endpoint, or
 * First VF Offset / VF Stride of 0).
 * Linux: pci_sriov_get_totalvfs(), drivers/pci/iov.c (driver_max_VFs, which
 * is TotalVFs unless a driver lowered it: not modelled).
 */
export function pciSriovGetTotalVfs(pdev: PciDev): number {
  if (notPhysfnReason(pdev) !== null) return 0;
  return pdev.config.read16(pdev.sriovCap + PCI_SRIOV_TOTAL_VF);
}

/**
 * Number of VFs currently enabled on `pdev`: NumVFs from its SR-IOV
 * capability while VF Enable is set (so also for a PF read from sysfs with
 * VFs enabled), 0 while pciEnableSriov() is still adding them, 0 if `pdev`
 * is not a PF.
 * Linux: pci_num_vf(), drivers/pci/iov.c (sriov->num_VFs).
 */
export function pciNumVf(pdev: PciDev): number {
  if (notPhysfnReason(pdev) !== null || enabling.has(pdev)) return 0;
  return pciSriovEnabledCount(pdev);
}

/**
 * Enable `numVfs` VFs on the PF `pf` of `topo`, and return them in VF order.
 *
 * VF i (0-based) has routing ID = PF RID + First VF Offset + i × VF Stride
 * (registers read from the PF's SR-IOV capability), i.e. bus = RID >> 8 and
 * devfn = RID & 0xff. A VF whose bus number is the PF's goes on the PF's bus;
 * otherwise on the bus of that number if one exists (Linux's pci_find_bus()),
 * else on a new SR-IOV virtual bus (a PciBus with `self` = null and `parent`
 * = the PF's bus, added to its `children` once and shared by the VFs on that
 * number).
 *
 * The PF's config space copy gets NumVFs = `numVfs` and VF Enable + VF MSE in
 * SR-IOV Control. Each VF gets a 4096-byte config space of its own (so 4 KiB
 * of memory per VF), built from the PF's: Vendor ID = the PF's (a real VF
 * reads 0xffff there; Linux fills pdev->vendor from the PF), Device ID = the
 * PF's VF Device ID, the PF's revision, class code and subsystem IDs, header
 * type 0 (not multifunction), and a copy of the PF's PCIe capability at 0x40
 * (the only capability; its port type is the PF's: Endpoint, or RC
 * Integrated Endpoint for an RCiEP's VFs); no extended capabilities (no ACS,
 * ARI, PASID, SR-IOV). Each VF is a PciDev with `isVirtfn` = true, `physfn` =
 * `pf`, `multifunction` = false, origin `'synthetic'`, parent device = the
 * PF's parent; the header fixups and ACS-enable quirks run on it; it is
 * appended to its bus's `devices`, `topo.devices`, `topo.byBdf`, then
 * deviceAdd()ed (ADD_DEVICE: the IOMMU core probes it) — VF 0 first.
 *
 * Linear in `numVfs` (plus one O(buses) and two O(n) walks of `topo`).
 * On failure nothing is changed: the VFs already added are deleted in
 * reverse order (DEL_DEVICE / REMOVED_DEVICE each, as sriov_add_vfs() does),
 * virtual buses created are unlinked and NumVFs / SR-IOV Control restored;
 * then the error is rethrown.
 *
 * @param topo the topology (built by buildPciTopology()).
 * @param pf a function of `topo`.
 * @param numVfs how many VFs (integer, 0 ≤ numVfs ≤ TotalVFs); 0 does
 *   nothing and returns [] (as Linux).
 * @returns the new VFs, VF 0 first.
 * @throws IommuError (input = the PF's BDF)
 *   ENODEV if `pf` is not a function of `topo`;
 *   ENOSYS if `pf` is not an SR-IOV PF (a VF, no SR-IOV capability, not an
 *   Endpoint / RC Integrated Endpoint, TotalVFs 0, First VF Offset or VF
 *   Stride 0 — Linux: pci_enable_sriov() returns -ENOSYS for !is_physfn);
 *   EINVAL if `numVfs` is not a non-negative integer, VFs are already enabled
 *   (Linux: sriov_enable() with num_VFs set; only the sysfs `sriov_numvfs`
 *   store turns that into -EBUSY), or `numVfs` > TotalVFs (or > InitialVFs
 *   without VF Migration);
 *   EIO if InitialVFs > TotalVFs, or InitialVFs ≠ TotalVFs without VF Migration;
 *   ENOMEM if the last VF's bus number is beyond the PF's bus range (its
 *   bridge's Subordinate Bus, 0xff on a root bus; RIDs past bus 0xff always are);
 *   EEXIST if a VF's address is taken by another function (Linux's
 *   device_add() would fail; checked before anything changes);
 *   EINVAL if `topo` cannot be changed; whatever a bus notifier throws from ADD_DEVICE.
 * Linux: pci_enable_sriov() → sriov_enable() → sriov_add_vfs() →
 *   pci_iov_add_virtfn() (virtfn_add_bus(), pci_setup_device(), pci_device_add(),
 *   pci_bus_add_device()), drivers/pci/iov.c.
 */
export function pciEnableSriov(topo: PciTopology, pf: PciDev, numVfs: number): PciDev[] {
  const lists = pciTopologyLists(topo);
  if (!(pf instanceof PciDev) || lists.byBdf.get(pf.bdf) !== pf || !pf.dev.registered) {
    throw new IommuError('ENODEV', 'not a function of this topology', { input: pf instanceof PciDev ? pf.bdf : String(pf) });
  }
  const input = pf.bdf;
  const why = notPhysfnReason(pf);
  if (why !== null) throw new IommuError('ENOSYS', `cannot enable SR-IOV: ${why}`, { input });
  if (typeof numVfs !== 'number' || !Number.isInteger(numVfs) || numVfs < 0) {
    throw new IommuError('EINVAL', `number of VFs ${String(numVfs)} is not a non-negative integer`, { input });
  }
  if (numVfs === 0) return [];
  const cap = pf.sriovCap;
  const cfg = pf.config;
  const already = Math.max(pciSriovEnabledCount(pf), lists.devices.reduce((n, d) => (d.physfn === pf ? n + 1 : n), 0));
  if (already > 0) throw new IommuError('EINVAL', `${already} VFs are already enabled (disable them first)`, { input });
  const total = cfg.read16(cap + PCI_SRIOV_TOTAL_VF);
  const initial = cfg.read16(cap + PCI_SRIOV_INITIAL_VF);
  const vfm = (cfg.read32(cap + PCI_SRIOV_CAP) & PCI_SRIOV_CAP_VFM) !== 0;
  if (initial > total || (!vfm && initial !== total)) {
    throw new IommuError('EIO', `InitialVFs ${initial} does not fit TotalVFs ${total}${vfm ? '' : ' (no VF Migration: they must be equal)'}`, { input });
  }
  if (numVfs > total || (!vfm && numVfs > initial)) {
    throw new IommuError('EINVAL', `cannot enable ${numVfs} VFs: TotalVFs is ${total}`, { input });
  }
  const offset = cfg.read16(cap + PCI_SRIOV_VF_OFFSET);
  const stride = cfg.read16(cap + PCI_SRIOV_VF_STRIDE);
  const domain = pf.bus.domain;
  // PF RID + First VF Offset; VF i's RID is base + i * stride (may run past 0xffff: then its bus is > 0xff).
  const base = pf.bus.number * 256 + pf.devfn + offset;
  const lastBus = Math.floor((base + stride * (numVfs - 1)) / 256);
  const end = pciBusNumberEnd(pf.bus);
  if (lastBus > end) {
    throw new IommuError(
      'ENOMEM',
      `cannot enable ${numVfs} VFs: VF ${numVfs - 1} would be on bus ${hex(lastBus, 2)}, out of the range ${hex(pf.bus.number, 2)}-${hex(end, 2)} of bus ${pf.bus.name}`,
      { input },
    );
  }
  for (let i = 0; i < numVfs; i++) {
    const rid = base + stride * i;
    const bdf = formatBdf(domain, rid >> 8, rid & 0xff);
    if (lists.byBdf.has(bdf)) throw new IommuError('EEXIST', `VF ${i} would be at ${bdf}, where a function already is`, { input });
  }

  const buses = pciBusesOfDomain(topo, domain);
  const created: PciBus[] = [];
  const busFor = (number: number): PciBus => {
    if (number === pf.bus.number) return pf.bus;
    let bus = buses.get(number);
    if (!bus) {
      // virtfn_add_bus(): a bus with no bridge above it, under the PF's bus.
      bus = new PciBus(domain, number, pf.bus, null, pf.bus.hostBridge);
      pf.bus.children.push(bus);
      buses.set(number, bus);
      created.push(bus);
    }
    return bus;
  };
  const savedCtrl = cfg.read16(cap + PCI_SRIOV_CTRL);
  const savedNum = cfg.read16(cap + PCI_SRIOV_NUM_VF);
  pciConfigWrite16(pf, cap + PCI_SRIOV_NUM_VF, numVfs);
  pciConfigWrite16(pf, cap + PCI_SRIOV_CTRL, savedCtrl | PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
  const template = vfConfigTemplate(pf, cfg.read16(cap + PCI_SRIOV_VF_DID));
  const added: PciDev[] = [];
  enabling.add(pf);
  try {
    for (let i = 0; i < numVfs; i++) {
      const rid = base + stride * i;
      const vf = new PciDev(topo.pciBus, busFor(rid >> 8), rid & 0xff, new ConfigSpace(template.slice()), 'synthetic', pf.dev.parent);
      vf.multifunction = false;
      vf.isVirtfn = true;
      vf.physfn = pf;
      pciAddFunction(topo, vf);
      added.push(vf);
    }
  } catch (e) {
    try {
      // sriov_add_vfs() failure path: while (i--) pci_iov_remove_virtfn(dev, i).
      pciRemoveFunctions(topo, added.slice().reverse(), []);
    } finally {
      for (const bus of created) {
        if (bus.devices.length === 0) {
          const j = pf.bus.children.lastIndexOf(bus);
          if (j >= 0) pf.bus.children.splice(j, 1);
        }
      }
      pciConfigWrite16(pf, cap + PCI_SRIOV_CTRL, savedCtrl);
      pciConfigWrite16(pf, cap + PCI_SRIOV_NUM_VF, savedNum);
    }
    throw e;
  } finally {
    enabling.delete(pf);
  }
  return added;
}

/**
 * Disable SR-IOV on `pf`: remove all its VFs in `topo` — VF 0 first, as
 * Linux's sriov_del_vfs() does — each deleted (driver unbound, DEL_DEVICE,
 * REMOVED_DEVICE: the IOMMU core releases it) and unlinked from its bus,
 * `topo.byBdf` and `topo.devices`; unlink SR-IOV virtual buses left empty;
 * clear NumVFs and VF Enable / VF MSE in the PF's config space copy.
 *
 * The VFs are found by `physfn`, so this also removes VFs read from sysfs
 * under a PF whose SR-IOV capability could not be read. O(n + k) for k VFs in
 * a topology of n functions (the lists are compacted once: see
 * deviceDelMany()). If a bus notifier throws, the VFs before it stay removed,
 * the rest stay (NumVFs / VF Enable then stay set), and the error propagates.
 *
 * @param topo the topology (built by buildPciTopology()).
 * @param pf a function of `topo`.
 * @returns how many VFs were removed; 0 (a no-op, as Linux) when `pf` has none.
 * @throws IommuError ENODEV (input = the BDF) if `pf` is not a function of
 *   `topo`; EINVAL if `topo` cannot be changed; whatever a bus notifier throws.
 * Linux: pci_disable_sriov() → sriov_disable() → sriov_del_vfs() →
 *   pci_iov_remove_virtfn() (pci_stop_and_remove_bus_device(),
 *   virtfn_remove_bus()), drivers/pci/iov.c.
 */
export function pciDisableSriov(topo: PciTopology, pf: PciDev): number {
  const lists = pciTopologyLists(topo);
  if (!(pf instanceof PciDev) || lists.byBdf.get(pf.bdf) !== pf) {
    throw new IommuError('ENODEV', 'not a function of this topology', { input: pf instanceof PciDev ? pf.bdf : String(pf) });
  }
  const vfs = lists.devices.filter((d) => d.isVirtfn && d.physfn === pf);
  if (vfs.length === 0) {
    // VFs removed one by one (hot-remove): sriov_disable() still clears the registers.
    pciSriovClearEnable(pf);
    return 0;
  }
  return pciRemoveFunctions(topo, vfs, [pf]);
}

/**
 * The config space every VF of `pf` starts from (see {@link pciEnableSriov}):
 * 4096 bytes with the PF's IDs (Device ID = `vfDevice`), class, revision,
 * subsystem IDs and PCIe capability.
 */
function vfConfigTemplate(pf: PciDev, vfDevice: number): Uint8Array {
  const t = new Uint8Array(VF_CONFIG_SIZE);
  const w16 = (off: number, v: number): void => {
    t[off] = v & 0xff;
    t[off + 1] = (v >> 8) & 0xff;
  };
  w16(PCI_VENDOR_ID, pf.vendor);
  w16(PCI_DEVICE_ID, vfDevice);
  t[PCI_REVISION_ID] = pf.revision;
  t[PCI_CLASS_PROG] = pf.classCode & 0xff;
  w16(PCI_CLASS_PROG + 1, pf.classCode >> 8);
  t[PCI_HEADER_TYPE] = 0;
  w16(PCI_SUBSYSTEM_VENDOR_ID, pf.subsystemVendor);
  w16(PCI_SUBSYSTEM_ID, pf.subsystemDevice);
  if (pf.pcieCap) {
    w16(PCI_STATUS, PCI_STATUS_CAP_LIST);
    t[PCI_CAPABILITY_LIST] = VF_PCIE_CAP;
    for (let k = 0; k < PCI_CAP_EXP_SIZEOF; k++) t[VF_PCIE_CAP + k] = pf.config.read8(pf.pcieCap + k) & 0xff;
    t[VF_PCIE_CAP] = PCI_CAP_ID_EXP;
    t[VF_PCIE_CAP + 1] = 0; // the only capability
  }
  return t;
}
