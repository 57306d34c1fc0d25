/**
 * Device-specific ACS *enable* (and redirect-disable) quirks: what the kernel
 * does instead of the standard "Control |= Capability & (SV|RR|CR|UF)" for
 * Intel PCH root ports that have no ACS capability, and for Intel
 * Sunrise/Union Point root ports whose ACS registers are dword-sized.
 *
 * Linux: pci_dev_acs_ops[], pci_dev_specific_enable_acs(),
 * pci_dev_specific_disable_acs_redir(), pci_quirk_enable_intel_pch_acs(),
 * pci_quirk_enable_intel_spt_pch_acs(),
 * pci_quirk_disable_intel_spt_pch_acs_redir(), drivers/pci/quirks.c; called
 * from pci_enable_acs() / pci_disable_acs_redir(), drivers/pci/pci.c.
 *
 * Kernel revision read: the same drivers/pci/quirks.c as `acs.ts`
 * (CachyOS/linux @ 019736d77e14, newer than v6.18).
 *
 * Where the config space came from decides whether we write it:
 *
 * - `origin === 'sysfs'`: the bytes were read from a running kernel, which
 *   already ran these quirks at boot (when an IOMMU requested ACS). The
 *   Control registers therefore already hold the enabled value; writing
 *   again would only hide what the hardware really reports. Nothing is
 *   written; only the PCH dev flag is set (it is kernel memory, not config
 *   space, so sysfs cannot show it).
 * - `origin === 'lspci'` or `'synthetic'`: nobody ran the quirk on these
 *   bytes, so we do what the kernel would: write the enabled Control dword
 *   (and the MPC register for PCH ports) into `dev.config.bytes`. For lspci
 *   input this matters for SPT/UPT ports in particular: lspci decodes their
 *   ACS capability as the spec's 16-bit registers, which is meaningless for
 *   this chip; the kernel enables every supported flag in the dword Control
 *   register at ACS+8.
 */
import type { PciDev } from '../pci-dev.js';
import { PciDevFlags } from '../pci-dev.js';
import { PCI_ACS_CAP, PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_TB, PCI_ACS_UF } from '../regs.js';
import { ERRNO } from '../../base/errno.js';
import { INTEL_SPT_ACS_CTRL, PCI_ANY_ID, pciQuirkIntelPchAcsMatch, pciQuirkIntelSptPchAcsMatch } from './acs.js';

/**
 * Platform facts the enable quirks read besides the function itself. All default to the common case.
 * Linux: the state read by pci_quirk_enable_intel_pch_acs() and pci_quirk_enable_intel_spt_pch_acs(), drivers/pci/quirks.c.
 */
export interface AcsEnableOptions {
  /**
   * ATS disabled for the whole system (`pci=noats`). With it the SPT quirk
   * also enables TB. Linux: pci_ats_disabled(), drivers/pci/pci.c. Default false.
   */
  readonly atsDisabled?: boolean;
  /**
   * The function is an external-facing port (firmware says so). With it the
   * SPT quirk also enables TB. Linux: pci_dev.external_facing. Default false.
   * (`dev.untrusted` is read from the function itself.)
   */
  readonly externalFacing?: boolean;
  /**
   * Whether pci_quirk_enable_intel_lpc_acs() succeeded. It reads the LPC
   * bridge's RCBA register (00:1f.0 config 0xf0) and the chipset's BSPR/UPDCR
   * registers through MMIO, none of which we can observe; default true
   * (assumed, and recorded in `dev.assumptions`). Pass false to model a
   * BIOS that left RCBA disabled: the kernel then warns and leaves
   * ACS_ENABLED_QUIRK clear.
   */
  readonly intelLpcAcsOk?: boolean;
}

/** Names of the ACS enable/disable quirk functions. Linux: the enable_acs / disable_acs_redir hooks of pci_dev_acs_ops[], drivers/pci/quirks.c. */
export type AcsEnableQuirkName =
  | 'pci_quirk_enable_intel_pch_acs'
  | 'pci_quirk_enable_intel_spt_pch_acs'
  | 'pci_quirk_disable_intel_spt_pch_acs_redir';

/** One row of the ACS ops table. Linux: struct pci_dev_acs_ops, drivers/pci/quirks.c. */
export interface AcsOpsEntry {
  /** Vendor ID, or PCI_ANY_ID. */
  readonly vendor: number;
  /** Device ID, or PCI_ANY_ID. */
  readonly device: number;
  /** The enable_acs hook, or null. */
  readonly enableAcs: AcsEnableQuirkName | null;
  /** The disable_acs_redir hook, or null. */
  readonly disableAcsRedir: AcsEnableQuirkName | null;
  /** What the row is for. */
  readonly chip: string;
}

/**
 * The ACS ops table, complete and in the kernel's order (2 rows).
 * Linux: pci_dev_acs_ops[], drivers/pci/quirks.c.
 */
export const PCI_DEV_ACS_OPS: readonly AcsOpsEntry[] = Object.freeze([
  {
    vendor: 0x8086,
    device: PCI_ANY_ID,
    enableAcs: 'pci_quirk_enable_intel_pch_acs',
    disableAcsRedir: null,
    chip: 'Intel PCH root ports without ACS (listed IDs)',
  },
  {
    vendor: 0x8086,
    device: PCI_ANY_ID,
    enableAcs: 'pci_quirk_enable_intel_spt_pch_acs',
    disableAcsRedir: 'pci_quirk_disable_intel_spt_pch_acs_redir',
    chip: 'Intel Sunrise/Union Point root ports (dword ACS registers)',
  },
]);

/** Intel root port Miscellaneous Port Configuration register. Linux: INTEL_MPC_REG, drivers/pci/quirks.c. */
export const INTEL_MPC_REG = 0xd8;
/** MPC: Invalid Receive Bus Number Check Enable (the equivalent of ACS SV). Linux: INTEL_MPC_REG_IRBNCE. */
export const INTEL_MPC_REG_IRBNCE = 1 << 26;

const ENOTTY = -ERRNO.ENOTTY;

function write32(dev: PciDev, off: number, value: number): boolean {
  if (!dev.config.readable(off, 4)) return false;
  const b = dev.config.bytes;
  b[off] = value & 0xff;
  b[off + 1] = (value >>> 8) & 0xff;
  b[off + 2] = (value >>> 16) & 0xff;
  b[off + 3] = (value >>> 24) & 0xff;
  return true;
}

/**
 * Intel PCH root ports without ACS: disable peer decodes through the LPC's
 * RCBA registers (not observable: assumed to succeed unless
 * `opts.intelLpcAcsOk === false`, and recorded in `dev.assumptions`), enable
 * MPC.IRBNCE (written to the config bytes unless they came from sysfs), and
 * set `PciDevFlags.ACS_ENABLED_QUIRK`. Returns 0 (handled) for listed ports,
 * also when the RCBA step failed (then without the flag); -ENOTTY otherwise.
 * Linux: pci_quirk_enable_intel_pch_acs(), pci_quirk_enable_intel_lpc_acs(),
 * pci_quirk_enable_intel_rp_mpc_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkEnableIntelPchAcs(dev: PciDev, opts: AcsEnableOptions = {}): number {
  if (!pciQuirkIntelPchAcsMatch(dev)) return ENOTTY;
  if (opts.intelLpcAcsOk === false) {
    dev.quirkNotes.push(
      'pci_quirk_enable_intel_pch_acs: enabling the PCH ACS workaround failed (LPC RCBA disabled): ACS_ENABLED_QUIRK not set, the port is not isolated',
    );
    return 0;
  }
  dev.assumptions.push(
    'Intel PCH root port ACS workaround: the LPC RCBA / BSPR / UPDCR step (pci_quirk_enable_intel_lpc_acs) reads chipset registers through MMIO that cannot be observed here; assumed it succeeded, as it does unless the BIOS left RCBA disabled',
  );
  if (dev.origin !== 'sysfs') {
    const mpc = dev.config.read32(INTEL_MPC_REG);
    if (dev.config.readable(INTEL_MPC_REG, 4) && !(mpc & INTEL_MPC_REG_IRBNCE)) {
      write32(dev, INTEL_MPC_REG, (mpc | INTEL_MPC_REG_IRBNCE) >>> 0);
    }
  }
  dev.devFlags |= PciDevFlags.ACS_ENABLED_QUIRK;
  dev.quirkNotes.push(
    'pci_quirk_enable_intel_pch_acs: Intel PCH root port ACS workaround enabled (ACS_ENABLED_QUIRK set): the port counts as providing SV, RR, CR and UF',
  );
  return 0;
}

/**
 * Intel Sunrise/Union Point root ports with dword ACS registers: Control
 * dword (ACS+8) |= Capability dword (ACS+4) & (SV|RR|CR|UF), plus TB when ATS
 * is disabled or the port is external-facing or untrusted. Written into the
 * config bytes unless they came from sysfs (where the kernel already did it).
 * Returns 0 (handled) for listed ports with an ACS capability, else -ENOTTY.
 * Linux: pci_quirk_enable_intel_spt_pch_acs(), drivers/pci/quirks.c.
 */
export function pciQuirkEnableIntelSptPchAcs(dev: PciDev, opts: AcsEnableOptions = {}): number {
  if (!pciQuirkIntelSptPchAcsMatch(dev)) return ENOTTY;
  const pos = dev.acsCap;
  if (!pos) return ENOTTY;
  const cap = dev.config.read32(pos + PCI_ACS_CAP);
  const old = dev.config.read32(pos + INTEL_SPT_ACS_CTRL);
  let ctrl = old;
  ctrl |= cap & PCI_ACS_SV;
  ctrl |= cap & PCI_ACS_RR;
  ctrl |= cap & PCI_ACS_CR;
  ctrl |= cap & PCI_ACS_UF;
  if (opts.atsDisabled || opts.externalFacing || dev.untrusted) ctrl |= cap & PCI_ACS_TB;
  ctrl >>>= 0;
  const at = `0x${(pos + INTEL_SPT_ACS_CTRL).toString(16)}`;
  if (dev.origin === 'sysfs') {
    dev.quirkNotes.push(
      `pci_quirk_enable_intel_spt_pch_acs: Intel SPT/UPT root port with dword ACS registers; the Control dword at ${at} was read from the running kernel, which already enabled ACS in it (0x${old.toString(16)})`,
    );
    return 0;
  }
  if (write32(dev, pos + INTEL_SPT_ACS_CTRL, ctrl)) {
    dev.quirkNotes.push(
      `pci_quirk_enable_intel_spt_pch_acs: Intel SPT/UPT root port with dword ACS registers: Control dword at ${at} set to 0x${ctrl.toString(16)} (Capability 0x${cap.toString(16)})`,
    );
    if (dev.origin === 'lspci') {
      dev.assumptions.push(
        `Intel SPT/UPT root port: lspci decodes its ACS registers as 16-bit (wrong for this chip, whose Control is the dword at ${at}); modelled the kernel's enable quirk, which sets every supported SV/RR/CR/UF bit there`,
      );
    }
  } else {
    dev.assumptions.push(
      `Intel SPT/UPT root port: the ACS Control dword at ${at} is not in the config bytes read; could not model the kernel's ACS enable quirk`,
    );
  }
  return 0;
}

/**
 * Intel Sunrise/Union Point root ports: clear RR, CR and EC in the Control
 * dword at ACS+8 (for `pci=disable_acs_redir=`). Written into the config
 * bytes unless they came from sysfs. Returns 0 for listed ports with an ACS
 * capability, else -ENOTTY.
 * Linux: pci_quirk_disable_intel_spt_pch_acs_redir(), drivers/pci/quirks.c.
 */
export function pciQuirkDisableIntelSptPchAcsRedir(dev: PciDev): number {
  if (!pciQuirkIntelSptPchAcsMatch(dev)) return ENOTTY;
  const pos = dev.acsCap;
  if (!pos) return ENOTTY;
  const ctrl = (dev.config.read32(pos + INTEL_SPT_ACS_CTRL) & ~(PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)) >>> 0;
  if (dev.origin !== 'sysfs') write32(dev, pos + INTEL_SPT_ACS_CTRL, ctrl);
  dev.quirkNotes.push('pci_quirk_disable_intel_spt_pch_acs_redir: Intel SPT/UPT root port: ACS redirect (RR, CR, EC) disabled');
  return 0;
}

function rowMatches(row: AcsOpsEntry, dev: PciDev): boolean {
  return (
    (row.vendor === dev.vendor || row.vendor === PCI_ANY_ID) && (row.device === dev.device || row.device === PCI_ANY_ID)
  );
}

/**
 * Run the device-specific ACS enable quirks: for each row of
 * {@link PCI_DEV_ACS_OPS} that matches and has an enable hook, call it; the
 * first that returns >= 0 handled the function. Returns that quirk's Linux
 * name, or null when none applies (the kernel then uses the standard enable,
 * pci_std_enable_acs()). See the module comment for when config bytes are
 * written. Linux: pci_dev_specific_enable_acs(), drivers/pci/quirks.c.
 */
export function pciDevSpecificEnableAcs(dev: PciDev, opts: AcsEnableOptions = {}): AcsEnableQuirkName | null {
  for (const row of PCI_DEV_ACS_OPS) {
    if (!rowMatches(row, dev) || !row.enableAcs) continue;
    const ret =
      row.enableAcs === 'pci_quirk_enable_intel_pch_acs'
        ? pciQuirkEnableIntelPchAcs(dev, opts)
        : pciQuirkEnableIntelSptPchAcs(dev, opts);
    if (ret >= 0) return row.enableAcs;
  }
  return null;
}

/**
 * Run the device-specific ACS redirect-disable quirks, as
 * {@link pciDevSpecificEnableAcs} does the enable ones. Returns the quirk's
 * Linux name, or null when none applies.
 * Linux: pci_dev_specific_disable_acs_redir(), drivers/pci/quirks.c.
 */
export function pciDevSpecificDisableAcsRedir(dev: PciDev): AcsEnableQuirkName | null {
  for (const row of PCI_DEV_ACS_OPS) {
    if (!rowMatches(row, dev) || !row.disableAcsRedir) continue;
    if (pciQuirkDisableIntelSptPchAcsRedir(dev) >= 0) return row.disableAcsRedir;
  }
  return null;
}
