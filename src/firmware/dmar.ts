/**
 * The Intel DMA Remapping Reporting (DMAR) ACPI table, parsed from its binary
 * form (/sys/firmware/acpi/tables/DMAR).
 *
 * Intel VT-d spec §8 (BIOS Considerations); Linux: drivers/iommu/intel/dmar.c
 * (parse_dmar_table(), dmar_walk_remapping_entries()), include/acpi/actbl1.h.
 */

import { IommuError } from '../base/errno.js';
import { ACPI_HEADER_SIZE, AcpiReader, checkAcpiHeader, type AcpiHeader } from './acpi.js';

/** DMAR header flag bit 0: interrupt remapping supported. VT-d spec §8.1; Linux: DMAR_INTR_REMAP. */
export const DMAR_INTR_REMAP = 0x1;
/** DMAR header flag bit 1: x2APIC opt-out. VT-d spec §8.1; Linux: DMAR_X2APIC_OPT_OUT. */
export const DMAR_X2APIC_OPT_OUT = 0x2;
/** DMAR header flag bit 2: DMA control platform opt-in. VT-d spec §8.1; Linux: DMA_CTRL_PLATFORM_OPT_IN_FLAG. */
export const DMAR_DMA_CTRL_PLATFORM_OPT_IN = 0x4;

/**
 * Device scope entry types. VT-d spec §8.3.1, Table 8-4; Linux: enum acpi_dmar_scope_type
 * (ACPI_DMAR_SCOPE_TYPE_ENDPOINT … ACPI_DMAR_SCOPE_TYPE_NAMESPACE), include/acpi/actbl1.h.
 */
export const DMAR_SCOPE_TYPE = {
  1: 'pci-endpoint',
  2: 'pci-bridge',
  3: 'ioapic',
  4: 'hpet',
  5: 'acpi-namespace',
} as const;

/** Name of a device scope type; `"unknown"` for reserved types. VT-d spec §8.3.1. */
export type DmarScopeKind = (typeof DMAR_SCOPE_TYPE)[keyof typeof DMAR_SCOPE_TYPE] | 'unknown';

/** One (device, function) element of a device scope path. VT-d spec §8.3.1. */
export interface DmarPathElement {
  device: number;
  function: number;
}

/**
 * A device scope entry. VT-d spec §8.3.1; Linux: struct acpi_dmar_device_scope,
 * dmar_alloc_dev_scope(), drivers/iommu/intel/dmar.c.
 */
export interface DmarDeviceScope {
  /** Raw entry type (1–5). */
  type: number;
  /** Decoded entry type. */
  kind: DmarScopeKind;
  /** Enumeration ID (IOAPIC id, HPET number, ACPI device number). */
  enumerationId: number;
  /** Start bus number of the path. */
  startBus: number;
  /** Hierarchical path from the start bus to the device. */
  path: DmarPathElement[];
  /** Byte offset of the entry in the table. */
  offset: number;
}

/** DRHD: a DMA remapping hardware unit. VT-d spec §8.3; Linux: dmar_parse_one_drhd(). */
export interface DmarDrhd {
  /** Index among the DRHDs of the table (order of appearance). */
  index: number;
  /** Flag bit 0: INCLUDE_PCI_ALL. */
  includePciAll: boolean;
  /** Raw flags byte. */
  flags: number;
  /** Register set size (2^(4 + n) pages), from the byte at offset 5 (DMAR rev ≥ 1 / VT-d 4.0). */
  size: number;
  /** PCI segment number. */
  segment: number;
  /** Register base address. */
  registerBase: bigint;
  scopes: DmarDeviceScope[];
  offset: number;
}

/** RMRR: reserved memory region. VT-d spec §8.4; Linux: dmar_parse_one_rmrr(). */
export interface DmarRmrr {
  segment: number;
  /** Base address (4 KiB aligned). */
  base: bigint;
  /** Limit address, inclusive. */
  limit: bigint;
  scopes: DmarDeviceScope[];
  offset: number;
}

/** ATSR: root port ATS capability reporting. VT-d spec §8.5; Linux: dmar_parse_one_atsr(). */
export interface DmarAtsr {
  /** Flag bit 0: ALL_PORTS. */
  allPorts: boolean;
  flags: number;
  segment: number;
  scopes: DmarDeviceScope[];
  offset: number;
}

/** RHSA: remapping hardware static affinity. VT-d spec §8.6; Linux: dmar_parse_one_rhsa(). */
export interface DmarRhsa {
  registerBase: bigint;
  proximityDomain: number;
  offset: number;
}

/** ANDD: ACPI name-space device declaration. VT-d spec §8.7; Linux: dmar_parse_one_andd(). */
export interface DmarAndd {
  /** ACPI device number (matches a namespace device scope's enumeration id). */
  deviceNumber: number;
  /** ACPI object name, e.g. `"\\_SB.PCI0.UAR0"`. */
  objectName: string;
  offset: number;
}

/** SATC: SoC integrated address translation cache. VT-d spec §8.8; Linux: dmar_parse_one_satc(). */
export interface DmarSatc {
  /** Flag bit 0: ATC_REQUIRED. */
  atcRequired: boolean;
  flags: number;
  segment: number;
  scopes: DmarDeviceScope[];
  offset: number;
}

/** A parsed DMAR table. VT-d spec §8.1; Linux: struct acpi_table_dmar. */
export interface Dmar {
  header: AcpiHeader;
  /** Host address width: the byte at offset 36 plus one. */
  hostAddressWidth: number;
  flags: { raw: number; intrRemap: boolean; x2apicOptOut: boolean; dmaCtrlPlatformOptIn: boolean };
  drhds: DmarDrhd[];
  rmrrs: DmarRmrr[];
  atsrs: DmarAtsr[];
  rhsas: DmarRhsa[];
  andds: DmarAndd[];
  satcs: DmarSatc[];
  /** Things skipped or oddities noticed (unknown structure types, …). */
  notes: string[];
}

const DMAR_HEADER_SIZE = 48;

/**
 * Parses the device scope entries in `[start, end)`. Each entry must be at
 * least 6 bytes, have an even-length path and lie within its parent structure.
 * VT-d spec §8.3.1; Linux: dmar_alloc_dev_scope(), dmar_validate_one_drhd().
 */
function parseScopes(r: AcpiReader, start: number, end: number, parent: string, notes: string[]): DmarDeviceScope[] {
  const scopes: DmarDeviceScope[] = [];
  let off = start;
  while (off < end) {
    if (end - off < 2) r.fail(`${parent}: ${end - off} stray byte(s) at offset 0x${off.toString(16)} where a device scope header is expected`);
    const type = r.u8(off, 'device scope type');
    const length = r.u8(off + 1, 'device scope length');
    if (length < 6) {
      r.fail(`${parent}: device scope at offset 0x${off.toString(16)} has length ${length}, less than the 6-byte minimum`);
    }
    if (off + length > end) {
      r.fail(`${parent}: device scope at offset 0x${off.toString(16)} (length ${length}) runs past the end of its structure at 0x${end.toString(16)}`);
    }
    if ((length - 6) % 2 !== 0) {
      r.fail(`${parent}: device scope at offset 0x${off.toString(16)} has length ${length}: path is not a whole number of (device, function) pairs`);
    }
    const path: DmarPathElement[] = [];
    for (let p = off + 6; p < off + length; p += 2) {
      path.push({ device: r.u8(p, 'path device'), function: r.u8(p + 1, 'path function') });
    }
    if (path.length === 0) notes.push(`${parent}: device scope at offset 0x${off.toString(16)} has an empty path`);
    const kind: DmarScopeKind = (DMAR_SCOPE_TYPE as Record<number, DmarScopeKind>)[type] ?? 'unknown';
    if (kind === 'unknown') notes.push(`${parent}: device scope at offset 0x${off.toString(16)} has unknown type ${type}`);
    scopes.push({ type, kind, enumerationId: r.u8(off + 4), startBus: r.u8(off + 5), path, offset: off });
    off += length;
  }
  return scopes;
}

/**
 * Parses a DMAR table: checks the ACPI header, decodes the host address width
 * and flags, then walks the remapping structures (DRHD, RMRR, ATSR, RHSA,
 * ANDD, SATC); unknown types are skipped with a note. A structure shorter
 * than its fixed part or running past the table, or a zero-length one, is an
 * `EINVAL` naming the table and the offset.
 *
 * Linux: parse_dmar_table(), dmar_walk_remapping_entries(), dmar_parse_one_drhd(),
 * dmar_parse_one_rmrr(), dmar_parse_one_atsr(), dmar_parse_one_rhsa(),
 * dmar_parse_one_andd(), dmar_parse_one_satc(), drivers/iommu/intel/dmar.c;
 * VT-d spec §8.1–§8.8.
 */
export function parseDmar(bytes: Uint8Array, input: string): Dmar {
  const header = checkAcpiHeader(bytes, 'DMAR', input);
  const r = new AcpiReader(bytes, 'DMAR', input, header.length);
  r.need(ACPI_HEADER_SIZE, DMAR_HEADER_SIZE - ACPI_HEADER_SIZE, 'DMAR header (host address width, flags)');
  const haw = r.u8(36, 'host address width');
  const rawFlags = r.u8(37, 'flags');
  const dmar: Dmar = {
    header,
    hostAddressWidth: haw + 1,
    flags: {
      raw: rawFlags,
      intrRemap: (rawFlags & DMAR_INTR_REMAP) !== 0,
      x2apicOptOut: (rawFlags & DMAR_X2APIC_OPT_OUT) !== 0,
      dmaCtrlPlatformOptIn: (rawFlags & DMAR_DMA_CTRL_PLATFORM_OPT_IN) !== 0,
    },
    drhds: [],
    rmrrs: [],
    atsrs: [],
    rhsas: [],
    andds: [],
    satcs: [],
    notes: [],
  };
  const notes = dmar.notes;
  let off = DMAR_HEADER_SIZE;
  const end = header.length;
  while (off < end) {
    if (end - off < 4) r.fail(`${end - off} stray byte(s) at offset 0x${off.toString(16)} where a remapping structure header is expected`);
    const type = r.u16(off, 'remapping structure type');
    const length = r.u16(off + 2, 'remapping structure length');
    const at = `0x${off.toString(16)}`;
    if (length < 4) r.fail(`remapping structure type ${type} at offset ${at} has invalid length ${length}`);
    if (off + length > end) {
      r.fail(`remapping structure type ${type} at offset ${at} (length ${length}) runs past the end of the table (length 0x${end.toString(16)})`);
    }
    const minLen = (name: string, n: number): void => {
      if (length < n) r.fail(`${name} at offset ${at} has length ${length}, shorter than its ${n}-byte fixed part`);
    };
    const sEnd = off + length;
    switch (type) {
      case 0: {
        minLen('DRHD', 16);
        const name = `DRHD at ${at}`;
        const flags = r.u8(off + 4);
        dmar.drhds.push({
          index: dmar.drhds.length,
          includePciAll: (flags & 1) !== 0,
          flags,
          size: r.u8(off + 5),
          segment: r.u16(off + 6),
          registerBase: r.u64(off + 8),
          scopes: parseScopes(r, off + 16, sEnd, name, notes),
          offset: off,
        });
        break;
      }
      case 1: {
        minLen('RMRR', 24);
        const base = r.u64(off + 8);
        const limit = r.u64(off + 16);
        if (limit < base) notes.push(`RMRR at ${at}: limit 0x${limit.toString(16)} below base 0x${base.toString(16)}`);
        dmar.rmrrs.push({ segment: r.u16(off + 6), base, limit, scopes: parseScopes(r, off + 24, sEnd, `RMRR at ${at}`, notes), offset: off });
        break;
      }
      case 2: {
        minLen('ATSR', 8);
        const flags = r.u8(off + 4);
        dmar.atsrs.push({ allPorts: (flags & 1) !== 0, flags, segment: r.u16(off + 6), scopes: parseScopes(r, off + 8, sEnd, `ATSR at ${at}`, notes), offset: off });
        break;
      }
      case 3:
        minLen('RHSA', 20);
        dmar.rhsas.push({ registerBase: r.u64(off + 8), proximityDomain: r.u32(off + 16), offset: off });
        break;
      case 4:
        minLen('ANDD', 8);
        dmar.andds.push({ deviceNumber: r.u8(off + 7), objectName: r.cstring(off + 8, sEnd), offset: off });
        break;
      case 5: {
        minLen('SATC', 8);
        const flags = r.u8(off + 4);
        dmar.satcs.push({ atcRequired: (flags & 1) !== 0, flags, segment: r.u16(off + 6), scopes: parseScopes(r, off + 8, sEnd, `SATC at ${at}`, notes), offset: off });
        break;
      }
      default:
        notes.push(`skipped unknown remapping structure type ${type} at offset ${at} (length ${length})`);
    }
    off = sEnd;
  }
  return dmar;
}

/** A device resolved from a DMAR device scope. */
export interface DmarResolvedDevice {
  bus: number;
  device: number;
  function: number;
  /** devfn = device << 3 | function. */
  devfn: number;
  /** PCI requester ID = bus << 8 | devfn. */
  rid: number;
}

/**
 * Resolves a device scope's start bus and path to the bus/device/function it
 * names: every path element but the last names a bridge, and the next element
 * is on that bridge's secondary bus, which `lookupSecondaryBus(bus, dev, fn)`
 * returns (`undefined` if there is no such bridge). Returns `undefined` when
 * a bridge along the path is missing (Linux warns and skips the scope).
 * Throws `EINVAL` for an empty path or out-of-range path elements.
 *
 * Linux: dmar_insert_dev_scope() / dmar_pci_device_match() and the older
 * dmar_parse_one_dev_scope() walk, drivers/iommu/intel/dmar.c; VT-d spec §8.3.2.
 */
export function resolveDmarScope(
  scope: Pick<DmarDeviceScope, 'startBus' | 'path'>,
  lookupSecondaryBus: (bus: number, device: number, fn: number) => number | undefined,
): DmarResolvedDevice | undefined {
  if (scope.path.length === 0) throw new IommuError('EINVAL', 'DMAR: device scope has an empty path');
  let bus = scope.startBus;
  for (let i = 0; i < scope.path.length; i++) {
    const el = scope.path[i] as DmarPathElement;
    if (el.device > 31 || el.function > 7 || bus > 255) {
      throw new IommuError('EINVAL', `DMAR: device scope path element ${i} (${bus}:${el.device}.${el.function}) is out of range`);
    }
    if (i === scope.path.length - 1) {
      const devfn = (el.device << 3) | el.function;
      return { bus, device: el.device, function: el.function, devfn, rid: (bus << 8) | devfn };
    }
    const next = lookupSecondaryBus(bus, el.device, el.function);
    if (next === undefined) return undefined;
    bus = next;
  }
  return undefined;
}
