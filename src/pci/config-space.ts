/**
 * A PCI function's configuration space as read (from sysfs `config`, or
 * reconstructed from `lspci` text), with bounded capability-list walks.
 *
 * Reads past what could be read return all-ones, as a PCI read that the
 * device does not answer does; callers that care check {@link ConfigSpace.size}.
 *
 * Linux: pci_read_config_*() (drivers/pci/access.c), pci_find_capability(),
 * __pci_find_next_cap_ttl(), pci_find_ext_capability() (drivers/pci/pci.c).
 */
import {
  PCI_CAP_ID_EXP,
  PCI_CAPABILITY_LIST,
  PCI_CB_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_FIND_CAP_TTL,
  PCI_FIND_EXT_CAP_TTL,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_CARDBUS,
  PCI_HEADER_TYPE_MASK,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from './regs.js';

/** A problem found while walking a capability list: what and where (byte offset). */
export interface ConfigProblem {
  readonly offset: number;
  readonly message: string;
}

/** A function's config space. `bytes` may be shorter than 4096; `size` is how much was readable (bytes). */
export class ConfigSpace {
  /** The bytes that were read; index = config-space offset. */
  readonly bytes: Uint8Array;
  /** Number of readable bytes (64 without root on Linux, 256 for conventional PCI, 4096 for PCIe). */
  readonly size: number;
  /** Problems met while walking capability lists (loops, pointers into the header, lists running past `size`). */
  readonly problems: ConfigProblem[] = [];

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.size = Math.min(bytes.length, PCI_CFG_SPACE_EXP_SIZE);
  }

  /** Read a byte; 0xff past the readable size. Linux: pci_read_config_byte(). */
  read8(off: number): number {
    return off >= 0 && off < this.size ? this.bytes[off]! : 0xff;
  }

  /** Read a little-endian 16-bit word; 0xffff if any byte is past the readable size. Linux: pci_read_config_word(). */
  read16(off: number): number {
    if (off < 0 || off + 2 > this.size) return 0xffff;
    return this.bytes[off]! | (this.bytes[off + 1]! << 8);
  }

  /** Read a little-endian 32-bit dword (unsigned); 0xffffffff past the readable size. Linux: pci_read_config_dword(). */
  read32(off: number): number {
    if (off < 0 || off + 4 > this.size) return 0xffffffff;
    const b = this.bytes;
    return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
  }

  /** True if bytes [off, off+len) could be read. */
  readable(off: number, len: number): boolean {
    return off >= 0 && off + len <= this.size;
  }

  /**
   * Offset of the first standard capability with ID `capId`, or 0 if absent.
   * Walks at most {@link PCI_FIND_CAP_TTL} entries; a loop, a pointer into the
   * header or a list running past the readable bytes ends the walk and is
   * recorded in {@link problems}.
   * Linux: pci_find_capability() / __pci_find_next_cap_ttl(), drivers/pci/pci.c.
   */
  findCapability(capId: number): number {
    if (!(this.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) || this.size <= PCI_CAPABILITY_LIST) return 0;
    const hdr = this.read8(PCI_HEADER_TYPE) & PCI_HEADER_TYPE_MASK;
    let pos = this.read8(hdr === PCI_HEADER_TYPE_CARDBUS ? PCI_CB_CAPABILITY_LIST : PCI_CAPABILITY_LIST);
    let ttl = PCI_FIND_CAP_TTL;
    while (ttl-- > 0) {
      if (pos < 0x40) return 0; // end of list (0) or a pointer into the header
      pos &= ~3;
      if (pos + 2 > this.size) {
        this.noteProblem(pos, `capability list points to 0x${pos.toString(16)}, past the ${this.size} readable bytes`);
        return 0;
      }
      const ent = this.read16(pos);
      const id = ent & 0xff;
      if (id === 0xff) return 0;
      if (id === capId) return pos;
      pos = ent >> 8;
    }
    this.noteProblem(0x34, `capability list longer than ${PCI_FIND_CAP_TTL} entries (a loop?)`);
    return 0;
  }

  /**
   * Offset of the extended capability with ID `capId` (searching after
   * `start` when given), or 0 if absent or the extended space is not readable.
   * Walks at most {@link PCI_FIND_EXT_CAP_TTL} entries.
   * Linux: pci_find_next_ext_capability(), drivers/pci/pci.c.
   */
  findExtCapability(capId: number, start = 0): number {
    if (this.size <= PCI_CFG_SPACE_SIZE) return 0;
    let pos = start || PCI_CFG_SPACE_SIZE;
    let header = this.read32(pos);
    // A header of 0 means no extended capabilities; all-ones means the space is not there.
    if (header === 0 || header === 0xffffffff) return 0;
    let ttl = PCI_FIND_EXT_CAP_TTL;
    while (ttl-- > 0) {
      if ((header & 0xffff) === capId && pos !== start) return pos;
      const next = (header >>> 20) & 0xffc;
      if (next < PCI_CFG_SPACE_SIZE) return 0;
      if (next + 4 > this.size) {
        this.noteProblem(pos, `extended capability at 0x${pos.toString(16)} points past the ${this.size} readable bytes`);
        return 0;
      }
      pos = next;
      header = this.read32(pos);
      if (header === 0xffffffff) return 0;
    }
    this.noteProblem(PCI_CFG_SPACE_SIZE, `extended capability list longer than ${PCI_FIND_EXT_CAP_TTL} entries (a loop?)`);
    return 0;
  }

  /** Offset of the PCI Express capability, or 0. Linux: pci_find_capability(dev, PCI_CAP_ID_EXP). */
  findPcieCapability(): number {
    return this.findCapability(PCI_CAP_ID_EXP);
  }

  private noteProblem(offset: number, message: string): void {
    if (!this.problems.some((p) => p.message === message)) this.problems.push({ offset, message });
  }
}
