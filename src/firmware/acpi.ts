/**
 * The common ACPI system description table header, and bounds-checked
 * little-endian reads shared by the DMAR, IVRS and IORT parsers.
 *
 * Every failure is an {@link IommuError} `EINVAL` whose message names the
 * table and the byte offsets involved; no read ever goes past the buffer.
 *
 * ACPI spec §5.2.6 (System Description Table Header); Linux:
 * include/acpi/actbl.h (struct acpi_table_header), acpi_tb_checksum().
 */

import { IommuError } from '../base/errno.js';

/** Size in bytes of the common ACPI table header. ACPI spec §5.2.6. */
export const ACPI_HEADER_SIZE = 36;

/**
 * The common header of an ACPI table.
 * ACPI spec §5.2.6, Table 5.4; Linux: struct acpi_table_header, include/acpi/actbl.h.
 */
export interface AcpiHeader {
  /** 4-character table signature, e.g. `"DMAR"`. */
  signature: string;
  /** Length of the whole table in bytes, header included. */
  length: number;
  /** Table revision. */
  revision: number;
  /** The checksum byte (all bytes of the table sum to 0 mod 256). */
  checksum: number;
  /** OEM ID (6 characters, trailing spaces/NULs trimmed). */
  oemId: string;
  /** OEM table ID (8 characters, trimmed). */
  oemTableId: string;
  /** OEM revision. */
  oemRevision: number;
  /** Creator (ASL compiler) ID, 4 characters, trimmed. */
  creatorId: string;
  /** Creator revision. */
  creatorRevision: number;
}

/**
 * Bounds-checked little-endian reader over one ACPI table. Every read checks
 * `offset + size <= limit` and throws `EINVAL` naming the table otherwise.
 * Models the length checks Linux does before touching a sub-table
 * (e.g. acpi_table_parse_entries_array(), drivers/acpi/tables.c).
 */
export class AcpiReader {
  /**
   * @param bytes the table bytes
   * @param table the table signature, used in messages ("DMAR")
   * @param input the file the table was read from, for {@link IommuError.input}
   * @param limit the number of valid bytes (the header's length field)
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly table: string,
    readonly input: string,
    readonly limit: number = bytes.length,
  ) {
    if (limit > bytes.length) this.limit = bytes.length;
  }

  /** Throws EINVAL with a message prefixed by the table name. */
  fail(message: string): never {
    throw new IommuError('EINVAL', `${this.table}: ${message}`, { input: this.input });
  }

  /** Checks that `[offset, offset + size)` lies within the table; `what` names the field. */
  need(offset: number, size: number, what: string): void {
    if (!Number.isInteger(offset) || offset < 0 || size < 0 || offset + size > this.limit) {
      this.fail(
        `${what} at offset 0x${offset.toString(16)} (${size} bytes) runs past the end of the table (length 0x${this.limit.toString(16)})`,
      );
    }
  }

  /** Unsigned 8-bit read. */
  u8(offset: number, what = 'u8'): number {
    this.need(offset, 1, what);
    return this.bytes[offset] as number;
  }

  /** Unsigned 16-bit little-endian read. */
  u16(offset: number, what = 'u16'): number {
    this.need(offset, 2, what);
    return (this.bytes[offset] as number) | ((this.bytes[offset + 1] as number) << 8);
  }

  /** Unsigned 32-bit little-endian read. */
  u32(offset: number, what = 'u32'): number {
    this.need(offset, 4, what);
    const b = this.bytes;
    return (
      ((b[offset] as number) |
        ((b[offset + 1] as number) << 8) |
        ((b[offset + 2] as number) << 16) |
        ((b[offset + 3] as number) << 24)) >>>
      0
    );
  }

  /** Unsigned 64-bit little-endian read, as a bigint. */
  u64(offset: number, what = 'u64'): bigint {
    this.need(offset, 8, what);
    return (BigInt(this.u32(offset + 4, what)) << 32n) | BigInt(this.u32(offset, what));
  }

  /** ASCII string of `size` bytes, trailing NULs and spaces trimmed. */
  ascii(offset: number, size: number, what = 'string'): string {
    this.need(offset, size, what);
    let s = '';
    for (let i = 0; i < size; i++) s += String.fromCharCode(this.bytes[offset + i] as number);
    return s.replace(/[\0 ]+$/, '');
  }

  /** NUL-terminated ASCII string starting at `offset`, not going past `end`. */
  cstring(offset: number, end: number, what = 'string'): string {
    this.need(offset, Math.max(0, end - offset), what);
    let s = '';
    for (let i = offset; i < end; i++) {
      const c = this.bytes[i] as number;
      if (c === 0) break;
      s += String.fromCharCode(c);
    }
    return s;
  }
}

/**
 * The ACPI checksum of `bytes[0, length)`: the sum of all bytes mod 256
 * (0 for a valid table). ACPI spec §5.2.6; Linux: acpi_tb_checksum(),
 * drivers/acpi/acpica/utcksum.c.
 */
export function acpiChecksum(bytes: Uint8Array, length = bytes.length): number {
  let sum = 0;
  const n = Math.min(length, bytes.length);
  for (let i = 0; i < n; i++) sum = (sum + (bytes[i] as number)) & 0xff;
  return sum;
}

/**
 * Writes the length field (bytes 4–7) and fixes the checksum byte (byte 9) of
 * a table in place so that it validates; returns the same array. Used to
 * build tables (tests, simulators). ACPI spec §5.2.6.
 */
export function finalizeAcpiTable(bytes: Uint8Array): Uint8Array {
  if (bytes.length < ACPI_HEADER_SIZE) {
    throw new IommuError('EINVAL', `table of ${bytes.length} bytes is shorter than the ACPI header (${ACPI_HEADER_SIZE})`);
  }
  const n = bytes.length;
  bytes[4] = n & 0xff;
  bytes[5] = (n >>> 8) & 0xff;
  bytes[6] = (n >>> 16) & 0xff;
  bytes[7] = (n >>> 24) & 0xff;
  bytes[9] = 0;
  bytes[9] = (256 - acpiChecksum(bytes)) & 0xff;
  return bytes;
}

/**
 * Validates and decodes the common header of an ACPI table: the buffer must
 * hold at least the 36-byte header and the number of bytes its length field
 * says, the signature must be `expectedSignature`, and all bytes of the table
 * must sum to 0 mod 256. Throws `IommuError('EINVAL', …, { input })` naming
 * the table and the offsets otherwise. Bytes after `length` are ignored.
 *
 * ACPI spec §5.2.6; Linux: acpi_tb_verify_temp_table() / acpi_tb_verify_checksum(),
 * drivers/acpi/acpica/tbdata.c, tbprint.c.
 */
export function checkAcpiHeader(bytes: Uint8Array, expectedSignature: string, input: string): AcpiHeader {
  const fail = (m: string): never => {
    throw new IommuError('EINVAL', `${expectedSignature}: ${m}`, { input });
  };
  if (!(bytes instanceof Uint8Array)) fail('table is not a byte array');
  if (bytes.length < ACPI_HEADER_SIZE) {
    fail(`truncated table: ${bytes.length} bytes, shorter than the ${ACPI_HEADER_SIZE}-byte ACPI header`);
  }
  const r = new AcpiReader(bytes, expectedSignature, input);
  const signature = r.ascii(0, 4, 'signature');
  const rawSig = String.fromCharCode(...bytes.subarray(0, 4));
  if (rawSig !== expectedSignature) {
    fail(`wrong signature ${JSON.stringify(rawSig)} at offset 0x0, expected ${JSON.stringify(expectedSignature)}`);
  }
  const length = r.u32(4, 'length');
  if (length < ACPI_HEADER_SIZE) {
    fail(`length field 0x${length.toString(16)} at offset 0x4 is shorter than the ${ACPI_HEADER_SIZE}-byte ACPI header`);
  }
  if (length > bytes.length) {
    fail(`truncated table: length field at offset 0x4 says 0x${length.toString(16)} bytes but only 0x${bytes.length.toString(16)} are present`);
  }
  const sum = acpiChecksum(bytes, length);
  if (sum !== 0) {
    fail(`bad checksum: bytes 0x0..0x${(length - 1).toString(16)} sum to 0x${sum.toString(16)} mod 256, expected 0 (checksum byte at offset 0x9 is 0x${(bytes[9] as number).toString(16)})`);
  }
  return {
    signature,
    length,
    revision: r.u8(8),
    checksum: r.u8(9),
    oemId: r.ascii(10, 6),
    oemTableId: r.ascii(16, 8),
    oemRevision: r.u32(24),
    creatorId: r.ascii(28, 4),
    creatorRevision: r.u32(32),
  };
}
