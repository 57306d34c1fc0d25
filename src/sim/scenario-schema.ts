/**
 * The `iommu sim` scenario format (JSON), validated with zod.
 *
 * A scenario names an IOMMU (driver and kernel command line), optionally a
 * topology of PCI functions (or the topology comes from `--sysfs`/`--lspci`),
 * and a list of steps run in order: allocate/attach/detach domains, map and
 * unmap, emulated DMA reads/writes and translations, DMA-API map/unmap,
 * IOTLB invalidations, time passing (flush-queue timers), group type writes,
 * fault handlers, and PCI hotplug: functions hot-added (described like a
 * topology function) and hot-removed, SR-IOV VFs enabled and disabled on a
 * PF (a topology function with `sriov`). Numbers may be given as JSON numbers
 * or `"0x…"` strings.
 */
import { z } from 'zod';

const num = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^(0x[0-9a-fA-F_]+|[0-9_]+)$/, 'expected a number or a "0x…" hex string').transform((s) => Number(s.replace(/_/g, ''))),
]);
const bdf = z.string().min(1);
const name = z.string().min(1);
/** A 16-bit register value (number or hex string), at least `min`. */
const u16 = (min: number) => num.pipe(z.number().min(min, `expected ${min}..65535`).max(0xffff, `expected ${min}..65535 (a 16-bit register)`));
const prot = z.string().regex(/^[rwxcmp-]*$/, 'prot letters: r (read), w (write), c (cache), x (exec allowed; omit for noexec), m (mmio), p (priv)').default('rw');

/** One PCI function of a scenario topology. */
export const TopologyFunction = z.object({
  bdf,
  /** PCIe role; `pci` for conventional PCI. */
  type: z.enum(['endpoint', 'root-port', 'upstream', 'downstream', 'pcie-to-pci', 'rciep', 'pci', 'pci-bridge']).default('endpoint'),
  vendor: num.optional(),
  device: num.optional(),
  class: num.optional(),
  multifunction: z.boolean().optional(),
  /** For bridges: secondary and subordinate bus numbers. */
  secondary: num.optional(),
  subordinate: num.optional(),
  /** ACS capability with every required flag enabled (true), present but disabled ("disabled"), or absent (false/omitted). */
  acs: z.union([z.boolean(), z.literal('disabled')]).optional(),
  /** A PCIe PASID capability with this Max PASID Width (1 << width PASIDs). */
  pasidWidth: z.number().int().min(1).max(20).optional(),
  /**
   * An SR-IOV capability, making the function a PF (when it is an `endpoint` or
   * `rciep`): TotalVFs (1..65535; InitialVFs is the same), First VF Offset
   * (default 1) and VF Stride (default 1) in routing IDs — VF n is at PF RID +
   * firstVfOffset + n × vfStride — and the VFs' Device ID (default the PF's
   * `device` + 1). VFs start disabled: see the `sriov-enable` step.
   */
  sriov: z
    .object({
      totalVfs: u16(1),
      firstVfOffset: u16(0).default(1),
      vfStride: u16(0).default(1),
      vfDevice: u16(0).optional(),
    })
    .optional(),
}).refine((f) => f.sriov === undefined || (f.type !== 'pci' && f.type !== 'pci-bridge'), {
  message: 'an SR-IOV capability needs a PCIe function (not type "pci" or "pci-bridge")',
  path: ['sriov'],
});

const step = z.discriminatedUnion('op', [
  z.object({ op: z.literal('domain-alloc'), name, device: bdf }),
  z.object({ op: z.literal('domain-free'), domain: name }),
  z.object({ op: z.literal('attach'), domain: name, device: bdf.optional(), group: num.optional() }),
  z.object({ op: z.literal('detach'), domain: name, device: bdf.optional(), group: num.optional() }),
  z.object({ op: z.literal('map'), domain: name, iova: num, phys: num, size: num, prot }),
  z.object({ op: z.literal('unmap'), domain: name, iova: num, size: num }),
  z.object({ op: z.literal('translate'), device: bdf, iova: num, access: z.enum(['read', 'write']).default('read'), pasid: z.union([num, name]).optional() }),
  z.object({ op: z.literal('write'), device: bdf, iova: num, data: z.string().regex(/^([0-9a-fA-F]{2})*$/, 'hex bytes'), pasid: z.union([num, name]).optional() }),
  z.object({ op: z.literal('read'), device: bdf, iova: num, length: num, pasid: z.union([num, name]).optional() }),
  z.object({ op: z.literal('dma-map'), device: bdf, phys: num, size: num, dir: z.enum(['bidirectional', 'to-device', 'from-device']).default('bidirectional'), as: name }),
  z.object({ op: z.literal('dma-unmap'), device: bdf, handle: name }),
  z.object({ op: z.literal('dma-mask'), device: bdf, bits: num }),
  z.object({
    op: z.literal('invalidate'),
    scope: z.enum(['range', 'domain', 'all']),
    domain: name.optional(),
    iova: num.optional(),
    size: num.optional(),
  }),
  z.object({ op: z.literal('advance'), ns: num }),
  z.object({ op: z.literal('set-type'), group: num, type: z.string() }),
  z.object({ op: z.literal('fault-handler'), domain: name, handled: z.boolean().default(true) }),
  z.object({ op: z.literal('write-mem'), phys: num, data: z.string().regex(/^([0-9a-fA-F]{2})*$/, 'hex bytes') }),
  z.object({ op: z.literal('bind'), device: bdf, driver: z.string().min(1) }),
  z.object({ op: z.literal('unbind'), device: bdf }),
  z.object({ op: z.literal('claim'), owner: name, device: bdf.optional(), group: num.optional() }),
  z.object({ op: z.literal('release'), device: bdf.optional(), group: num.optional() }),
  z.object({ op: z.literal('pasid-alloc'), device: bdf, as: name }),
  z.object({ op: z.literal('pasid-free'), pasid: z.union([num, name]) }),
  z.object({ op: z.literal('pasid-attach'), domain: name, device: bdf, pasid: z.union([num, name]) }),
  z.object({ op: z.literal('pasid-detach'), domain: name, device: bdf, pasid: z.union([num, name]) }),
  z.object({ op: z.literal('subdev-create'), parent: bdf, name }),
  z.object({ op: z.literal('subdev-attach'), domain: name, device: name }),
  z.object({ op: z.literal('subdev-detach'), domain: name, device: name }),
  z.object({ op: z.literal('subdev-remove'), device: name }),
  z.object({ op: z.literal('ioasid-set'), name, quota: num }),
  z.object({ op: z.literal('ioasid-set-free'), set: name }),
  z.object({ op: z.literal('ioasid-alloc'), set: name, min: num.default(1), max: num.default(0xfffff), as: name }),
  z.object({ op: z.literal('ioasid-free'), set: name, ioasid: name }),
  z.object({ op: z.literal('ioasid-subscribe'), name, set: name.optional() }),
  z.object({ op: z.literal('ioasid-unsubscribe'), name }),
  z.object({ op: z.literal('ioasid-notify'), ioasid: name, cmd: z.enum(['bind', 'unbind']) }),
  /** Hot-add one function (described as in `topology`) on an existing bus; the IOMMU core probes it. */
  z.object({ op: z.literal('hot-add'), function: TopologyFunction }),
  /** Hot-remove a function and everything below it (a PF's VFs first); the IOMMU core releases them. */
  z.object({ op: z.literal('hot-remove'), device: bdf }),
  /** Enable `vfs` VFs on a PF (pci_enable_sriov()); each is probed into a group. */
  z.object({ op: z.literal('sriov-enable'), device: bdf, vfs: num }),
  /** Remove all VFs of a PF (pci_disable_sriov()). */
  z.object({ op: z.literal('sriov-disable'), device: bdf }),
]);

/** A scenario. */
export const Scenario = z.object({
  description: z.string().optional(),
  iommu: z
    .object({
      driver: z.enum(['intel', 'amd', 'arm-smmu-v3']).optional(),
      cmdline: z.string().default(''),
    })
    .default({ cmdline: '' }),
  topology: z.array(TopologyFunction).optional(),
  steps: z.array(step),
});

/** A validated scenario. */
export type Scenario = z.infer<typeof Scenario>;
/** A validated step. */
export type ScenarioStep = Scenario['steps'][number];
/** A validated topology function. */
export type TopologyFunction = z.infer<typeof TopologyFunction>;
