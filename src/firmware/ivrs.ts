/**
 * The AMD I/O Virtualization Reporting Structure (IVRS) ACPI table, parsed
 * from its binary form (/sys/firmware/acpi/tables/IVRS).
 *
 * AMD I/O Virtualization Technology (IOMMU) Specification §5 (IVRS);
 * Linux: drivers/iommu/amd/init.c (init_iommu_all(), init_iommu_from_acpi(),
 * init_memory_definitions(), ivhd_entry_length()).
 */

import { ACPI_HEADER_SIZE, AcpiReader, checkAcpiHeader, type AcpiHeader } from './acpi.js';

/**
 * Decoded IVHD device entry kinds. AMD IOMMU spec §5.2.2.2 (Table 97 ff.);
 * Linux: IVHD_DEV_* in drivers/iommu/amd/amd_iommu_types.h. START/END pairs
 * (0x03/0x43/0x47 … 0x04) are combined into one range entry.
 */
export type IvhdEntryKind =
  | 'all'
  | 'select'
  | 'range'
  | 'alias-select'
  | 'alias-range'
  | 'ext-select'
  | 'ext-range'
  | 'special'
  | 'acpi-hid';

/**
 * One IVHD device entry (a range already combined with its END entry).
 * AMD IOMMU spec §5.2.2.2; Linux: struct ivhd_entry, init_iommu_from_acpi().
 */
export interface IvhdEntry {
  kind: IvhdEntryKind;
  /** Raw type byte of the (first) entry. */
  type: number;
  /** First device id (requester id: bus << 8 | devfn) covered. */
  from: number;
  /** Last device id covered, inclusive. */
  to: number;
  /** Requester id the devices use (ALIAS entries only). */
  alias?: number;
  /** DTE setting byte (INITPass, EIntPass, NMIPass, SysMgt, Lint0/1Pass). */
  flags: number;
  /** Extended DTE setting (EXT entries only). */
  ext?: number;
  /** SPECIAL entries: the IOAPIC / HPET it describes. */
  special?: { variety: 'ioapic' | 'hpet' | number; handle: number };
  /** ACPI HID entries: hardware id, compatible id, unique id. */
  hid?: string;
  cid?: string;
  uid?: string;
  /** Byte offset of the entry in the table. */
  offset: number;
}

/** An I/O virtualization hardware definition block. AMD IOMMU spec §5.2.2; Linux: struct ivhd_header. */
export interface Ivhd {
  /** Block type: 0x10, 0x11 or 0x40. */
  type: number;
  /** Block flags byte (HtTunEn, PassPW, ResPassPW, Isoc, IotlbSup, Coherent, PreFSup, PPRSup). */
  flags: number;
  /** Device id of the IOMMU itself (bus << 8 | devfn). */
  iommuDeviceId: number;
  /** Offset of the IOMMU capability block in its config space. */
  capabilityOffset: number;
  /** IOMMU MMIO base address. */
  base: bigint;
  segment: number;
  /** IOMMU info (MSI number, UnitID). */
  info: number;
  /** IOMMU feature reporting (type 0x10) / IOMMU attributes (0x11, 0x40). */
  featureReporting: number;
  /** EFR register image (types 0x11, 0x40 only). */
  efr?: bigint;
  /** EFR2 register image (types 0x11, 0x40 only). */
  efr2?: bigint;
  entries: IvhdEntry[];
  offset: number;
}

/** An I/O virtualization memory definition block. AMD IOMMU spec §5.2.3; Linux: struct ivmd_header, init_unity_map_range(). */
export interface Ivmd {
  /** Block type: 0x20 all, 0x21 select, 0x22 range. */
  type: number;
  kind: 'all' | 'select' | 'range';
  flags: { raw: number; unity: boolean; read: boolean; write: boolean; exclusion: boolean };
  /** First / last device id the block applies to (0..0xffff for 'all'). */
  from: number;
  to: number;
  segment: number;
  start: bigint;
  length: bigint;
  offset: number;
}

/** A parsed IVRS table. AMD IOMMU spec §5.2.1; Linux: struct acpi_table_ivrs. */
export interface Ivrs {
  header: AcpiHeader;
  ivinfo: { raw: number; efrSup: boolean; gvaSize: number; paSize: number; vaSize: number };
  ivhds: Ivhd[];
  ivmds: Ivmd[];
  notes: string[];
}

const IVRS_HEADER_SIZE = 48;
const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Parses the device entries of one IVHD block in `[start, end)`.
 * Linux: init_iommu_from_acpi(), ivhd_entry_length(), drivers/iommu/amd/init.c.
 */
function parseIvhdEntries(r: AcpiReader, start: number, end: number, block: string, notes: string[]): IvhdEntry[] {
  const entries: IvhdEntry[] = [];
  let pending: { kind: IvhdEntryKind; type: number; from: number; flags: number; alias?: number; ext?: number; offset: number } | undefined;
  let off = start;
  while (off < end) {
    const type = r.u8(off, 'IVHD entry type');
    let len: number;
    if (type < 0x80) len = 4 << (type >> 6);
    else if (type === 0xf0) {
      r.need(off, 22, `${block}: ACPI HID entry`);
      len = 22 + r.u8(off + 21, 'UID length');
    } else {
      r.fail(`${block}: IVHD entry at offset ${hex(off)} has variable-length type ${hex(type)} whose length is unknown`);
    }
    if (off + len > end) {
      r.fail(`${block}: IVHD entry type ${hex(type)} at offset ${hex(off)} (length ${len}) runs past the end of its block at ${hex(end)}`);
    }
    const devid = r.u16(off + 1);
    const flags = r.u8(off + 3);
    const at = hex(off);
    const needNoPending = (): void => {
      if (pending) {
        notes.push(`${block}: range start at ${hex(pending.offset)} not closed by an END entry before ${at}`);
        pending = undefined;
      }
    };
    switch (type) {
      case 0x00:
        break;
      case 0x01:
        entries.push({ kind: 'all', type, from: 0, to: 0xffff, flags, offset: off });
        break;
      case 0x02:
        entries.push({ kind: 'select', type, from: devid, to: devid, flags, offset: off });
        break;
      case 0x03:
        needNoPending();
        pending = { kind: 'range', type, from: devid, flags, offset: off };
        break;
      case 0x43:
        needNoPending();
        pending = { kind: 'alias-range', type, from: devid, flags, alias: r.u16(off + 5), offset: off };
        break;
      case 0x47:
        needNoPending();
        pending = { kind: 'ext-range', type, from: devid, flags, ext: r.u32(off + 4), offset: off };
        break;
      case 0x04:
        if (!pending) {
          notes.push(`${block}: END entry at ${at} without a range start; ignored`);
        } else {
          if (devid < pending.from) {
            notes.push(`${block}: range ${hex(pending.from)}..${hex(devid)} at ${hex(pending.offset)} ends before it starts; empty`);
          }
          const e: IvhdEntry = { kind: pending.kind, type: pending.type, from: pending.from, to: devid, flags: pending.flags, offset: pending.offset };
          if (pending.alias !== undefined) e.alias = pending.alias;
          if (pending.ext !== undefined) e.ext = pending.ext;
          entries.push(e);
          pending = undefined;
        }
        break;
      case 0x42:
        entries.push({ kind: 'alias-select', type, from: devid, to: devid, alias: r.u16(off + 5), flags, offset: off });
        break;
      case 0x46:
        entries.push({ kind: 'ext-select', type, from: devid, to: devid, ext: r.u32(off + 4), flags, offset: off });
        break;
      case 0x48: {
        const v = r.u8(off + 7);
        const sdev = r.u16(off + 5);
        entries.push({
          kind: 'special',
          type,
          from: sdev,
          to: sdev,
          flags,
          special: { variety: v === 1 ? 'ioapic' : v === 2 ? 'hpet' : v, handle: r.u8(off + 4) },
          offset: off,
        });
        break;
      }
      case 0xf0: {
        const uidFormat = r.u8(off + 20);
        const uidLen = r.u8(off + 21);
        let uid = '';
        if (uidFormat === 1 && uidLen >= 8) uid = r.u64(off + 22).toString();
        else if (uidLen > 0) uid = r.cstring(off + 22, off + 22 + uidLen);
        entries.push({
          kind: 'acpi-hid',
          type,
          from: devid,
          to: devid,
          flags,
          hid: r.ascii(off + 4, 8),
          cid: r.ascii(off + 12, 8),
          uid,
          offset: off,
        });
        break;
      }
      default:
        notes.push(`${block}: skipped unknown IVHD entry type ${hex(type)} at ${at} (length ${len})`);
    }
    off += len;
  }
  if (pending) notes.push(`${block}: range start at ${hex(pending.offset)} not closed by an END entry`);
  return entries;
}

/**
 * Parses an IVRS table: checks the ACPI header, decodes IVinfo, then walks
 * the IVHD (0x10, 0x11, 0x40) and IVMD (0x20, 0x21, 0x22) blocks; other block
 * types are skipped with a note. Blocks or entries that are too short, run
 * past their container, or have zero length are `EINVAL` naming the table.
 *
 * Linux: init_iommu_all(), init_iommu_one(), init_iommu_from_acpi(),
 * init_memory_definitions(), get_ivhd_header_size(), drivers/iommu/amd/init.c;
 * AMD IOMMU spec §5.2.
 */
export function parseIvrs(bytes: Uint8Array, input: string): Ivrs {
  const header = checkAcpiHeader(bytes, 'IVRS', input);
  const r = new AcpiReader(bytes, 'IVRS', input, header.length);
  r.need(ACPI_HEADER_SIZE, IVRS_HEADER_SIZE - ACPI_HEADER_SIZE, 'IVRS header (IVinfo)');
  const iv = r.u32(36, 'IVinfo');
  const ivrs: Ivrs = {
    header,
    ivinfo: { raw: iv, efrSup: (iv & 1) !== 0, gvaSize: (iv >>> 5) & 0x7, paSize: (iv >>> 8) & 0x7f, vaSize: (iv >>> 15) & 0x7f },
    ivhds: [],
    ivmds: [],
    notes: [],
  };
  const end = header.length;
  let off = IVRS_HEADER_SIZE;
  while (off < end) {
    if (end - off < 4) r.fail(`${end - off} stray byte(s) at offset ${hex(off)} where a block header is expected`);
    const type = r.u8(off, 'block type');
    const flags = r.u8(off + 1, 'block flags');
    const length = r.u16(off + 2, 'block length');
    const at = hex(off);
    if (length < 4) r.fail(`block type ${hex(type)} at offset ${at} has invalid length ${length}`);
    if (off + length > end) {
      r.fail(`block type ${hex(type)} at offset ${at} (length ${length}) runs past the end of the table (length ${hex(end)})`);
    }
    const bEnd = off + length;
    if (type === 0x10 || type === 0x11 || type === 0x40) {
      const hsize = type === 0x10 ? 24 : 40;
      const name = `IVHD type ${hex(type)} at ${at}`;
      if (length < hsize) r.fail(`${name} has length ${length}, shorter than its ${hsize}-byte header`);
      const ivhd: Ivhd = {
        type,
        flags,
        iommuDeviceId: r.u16(off + 4),
        capabilityOffset: r.u16(off + 6),
        base: r.u64(off + 8),
        segment: r.u16(off + 16),
        info: r.u16(off + 18),
        featureReporting: r.u32(off + 20),
        entries: [],
        offset: off,
      };
      if (hsize === 40) {
        ivhd.efr = r.u64(off + 24);
        ivhd.efr2 = r.u64(off + 32);
      }
      ivhd.entries = parseIvhdEntries(r, off + hsize, bEnd, name, ivrs.notes);
      ivrs.ivhds.push(ivhd);
    } else if (type === 0x20 || type === 0x21 || type === 0x22) {
      const name = `IVMD type ${hex(type)} at ${at}`;
      if (length < 32) r.fail(`${name} has length ${length}, shorter than its 32-byte size`);
      const devid = r.u16(off + 4);
      const aux = r.u16(off + 6);
      const kind = type === 0x20 ? 'all' : type === 0x21 ? 'select' : 'range';
      ivrs.ivmds.push({
        type,
        kind,
        flags: { raw: flags, unity: (flags & 1) !== 0, read: (flags & 2) !== 0, write: (flags & 4) !== 0, exclusion: (flags & 8) !== 0 },
        from: kind === 'all' ? 0 : devid,
        to: kind === 'all' ? 0xffff : kind === 'range' ? aux : devid,
        segment: r.u16(off + 8),
        start: r.u64(off + 16),
        length: r.u64(off + 24),
        offset: off,
      });
    } else {
      ivrs.notes.push(`skipped unknown block type ${hex(type)} at offset ${at} (length ${length})`);
    }
    off = bEnd;
  }
  return ivrs;
}

/** How an IVHD covers one device id. */
export interface IvhdCoverage {
  /** Requester id the IOMMU sees for the device (itself unless an ALIAS entry says otherwise). */
  alias: number;
  /** DTE setting byte. */
  flags: number;
}

/**
 * The device ids an IVHD block covers, each with the requester id the IOMMU
 * sees for it: ALIAS entries make the devices (typically those behind a
 * PCIe-to-PCI bridge) use the alias id, and the alias id itself is covered
 * too. Later entries override earlier ones, as Linux's table writes do.
 *
 * Linux: init_iommu_from_acpi() (amd_iommu_alias_table / pci_seg->alias_table,
 * set_dev_entry_from_acpi()), drivers/iommu/amd/init.c; AMD IOMMU spec §5.2.2.2.
 */
export function ivhdCoverage(ivhd: Pick<Ivhd, 'entries'>): Map<number, IvhdCoverage> {
  const cov = new Map<number, IvhdCoverage>();
  for (const e of ivhd.entries) {
    const from = Math.max(0, e.from);
    const to = Math.min(0xffff, e.to);
    for (let d = from; d <= to; d++) cov.set(d, { alias: e.alias ?? d, flags: e.flags });
    if (e.alias !== undefined && from <= to && !cov.has(e.alias)) cov.set(e.alias, { alias: e.alias, flags: e.flags });
  }
  return cov;
}
