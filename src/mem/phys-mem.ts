/**
 * Simulated physical memory: flat, sparse and byte-addressable, allocated a
 * page at a time, holding both the data devices read and write and the I/O
 * page tables themselves.
 *
 * Two kinds of backing, one address space:
 * - **data memory**: any page-aligned physical address; 2 MiB chunks of typed
 *   arrays allocated on first write (reads of never-written memory return 0);
 * - **the table pool**: a contiguous physical range (`poolBase` …) from which
 *   page-table pages are allocated ({@link allocTablePage}) and freed. The pool
 *   is one growable `Uint32Array` ({@link pool}) so page-table code can index
 *   it directly; every table is still an ordinary physical page that any
 *   walker can read through {@link read32} and friends.
 *
 * Addresses are numbers (bytes). Page-aligned addresses are exact up to 2^64;
 * byte addresses are exact below 2^53.
 *
 * Linux: the page allocator behind io-pgtable's __arm_lpae_alloc_pages() /
 * iommu_alloc_pages_node() (drivers/iommu/iommu-pages.h).
 */
import { IommuError } from '../base/errno.js';

/** Page size of the simulated memory and of page-table pages (bytes). */
export const PAGE_SIZE = 4096;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;
const CHUNK_SHIFT = 21;
const CHUNK_BYTES = 1 << CHUNK_SHIFT;
const TWO32 = 4294967296;

/** Default physical base of the table pool: 960 GiB, above the RAM of the modelled machines and below 2^48. */
export const DEFAULT_POOL_BASE = 0xf0_0000_0000;

/** Options of {@link PhysMem}. */
export interface PhysMemOptions {
  /** Physical base of the table pool (bytes, page-aligned). */
  readonly poolBase?: number;
  /** Maximum number of table pages (default 1 Mi pages = 4 GiB of tables). */
  readonly maxTablePages?: number;
}

/** Simulated physical memory. */
export class PhysMem {
  /** Physical address of the first table-pool page. */
  readonly poolBase: number;
  /** Most table pages the pool may hold. */
  readonly maxTablePages: number;
  /**
   * The table pool as 32-bit words: word `(addr - poolBase) / 4` holds bytes
   * `addr … addr+3` (little-endian). Grows (and is replaced) as tables are
   * allocated: re-read this field after any allocation.
   */
  pool: Uint32Array;
  /** Table pages currently allocated. */
  tablePagesInUse = 0;
  /** Highest number of table pages allocated at once. */
  tablePagesPeak = 0;
  private poolTop = 0; // pages handed out at least once
  private freeList = new Uint32Array(64);
  private freeCount = 0;
  private readonly chunks = new Map<number, Uint8Array>();
  private lastChunkIdx = -1;
  private lastChunk: Uint8Array | null = null;

  constructor(opts: PhysMemOptions = {}) {
    this.poolBase = opts.poolBase ?? DEFAULT_POOL_BASE;
    if (this.poolBase % PAGE_SIZE !== 0) throw new IommuError('EINVAL', `table pool base 0x${this.poolBase.toString(16)} is not page-aligned`);
    this.maxTablePages = opts.maxTablePages ?? 1 << 20;
    this.pool = new Uint32Array(64 * (PAGE_SIZE / 4));
  }

  /**
   * Allocate a zeroed table page from the pool; returns its physical address.
   * @throws IommuError ENOMEM when the pool is full.
   * Linux: iommu_alloc_pages_node() / __arm_lpae_alloc_pages().
   */
  allocTablePage(): number {
    let idx: number;
    if (this.freeCount > 0) {
      idx = this.freeList[--this.freeCount]!;
      this.pool.fill(0, idx * 1024, idx * 1024 + 1024);
    } else {
      if (this.poolTop >= this.maxTablePages) throw new IommuError('ENOMEM', `page-table pool exhausted (${this.maxTablePages} pages)`);
      idx = this.poolTop++;
      if ((idx + 1) * 1024 > this.pool.length) {
        const grown = new Uint32Array(Math.min(this.pool.length * 2, this.maxTablePages * 1024));
        grown.set(this.pool);
        this.pool = grown;
      }
    }
    if (++this.tablePagesInUse > this.tablePagesPeak) this.tablePagesPeak = this.tablePagesInUse;
    return this.poolBase + idx * PAGE_SIZE;
  }

  /**
   * Return a table page to the pool.
   * @throws IommuError EINVAL if `addr` is not an allocated pool page.
   * Linux: iommu_free_pages().
   */
  freeTablePage(addr: number): void {
    const off = addr - this.poolBase;
    if (off < 0 || off % PAGE_SIZE !== 0 || off / PAGE_SIZE >= this.poolTop) {
      throw new IommuError('EINVAL', `0x${addr.toString(16)} is not a page-table page`);
    }
    if (this.freeCount === this.freeList.length) {
      const g = new Uint32Array(this.freeList.length * 2);
      g.set(this.freeList);
      this.freeList = g;
    }
    this.freeList[this.freeCount++] = off / PAGE_SIZE;
    this.tablePagesInUse--;
  }

  /** True if `addr` lies in the table pool's allocated range. */
  inPool(addr: number): boolean {
    const off = addr - this.poolBase;
    return off >= 0 && off < this.poolTop * PAGE_SIZE;
  }

  /** Bytes of data memory backed so far (2 MiB chunks). */
  get dataBytes(): number {
    return this.chunks.size * CHUNK_BYTES;
  }

  private chunk(addr: number, create: boolean): Uint8Array | null {
    const ci = Math.floor(addr / CHUNK_BYTES);
    if (ci === this.lastChunkIdx) return this.lastChunk;
    let c = this.chunks.get(ci);
    if (!c) {
      if (!create) return null;
      c = new Uint8Array(CHUNK_BYTES);
      this.chunks.set(ci, c);
    }
    this.lastChunkIdx = ci;
    this.lastChunk = c;
    return c;
  }

  /** Read a byte (0 for never-written memory). */
  read8(addr: number): number {
    if (this.inPool(addr)) {
      const off = addr - this.poolBase;
      return (this.pool[off >>> 2]! >>> ((off & 3) * 8)) & 0xff;
    }
    const c = this.chunk(addr, false);
    return c ? c[addr % CHUNK_BYTES]! : 0;
  }

  /** Write a byte. */
  write8(addr: number, v: number): void {
    if (this.inPool(addr)) {
      const off = addr - this.poolBase;
      const sh = (off & 3) * 8;
      const w = off >>> 2;
      this.pool[w] = (this.pool[w]! & ~(0xff << sh)) | ((v & 0xff) << sh);
      return;
    }
    this.chunk(addr, true)![addr % CHUNK_BYTES] = v;
  }

  /** Read a little-endian 32-bit word at a 4-byte-aligned address (unsigned). */
  read32(addr: number): number {
    if (this.inPool(addr)) return this.pool[(addr - this.poolBase) >>> 2]!;
    const c = this.chunk(addr, false);
    if (!c) return 0;
    const o = addr % CHUNK_BYTES;
    return (c[o]! | (c[o + 1]! << 8) | (c[o + 2]! << 16) | (c[o + 3]! << 24)) >>> 0;
  }

  /** Write a little-endian 32-bit word at a 4-byte-aligned address. */
  write32(addr: number, v: number): void {
    if (this.inPool(addr)) {
      this.pool[(addr - this.poolBase) >>> 2] = v;
      return;
    }
    const c = this.chunk(addr, true)!;
    const o = addr % CHUNK_BYTES;
    c[o] = v & 0xff;
    c[o + 1] = (v >>> 8) & 0xff;
    c[o + 2] = (v >>> 16) & 0xff;
    c[o + 3] = (v >>> 24) & 0xff;
  }

  /** Read a 64-bit little-endian word as a number (exact for values below 2^53; PTE high bits above that are lost: use read32 pairs for PTEs). */
  read64(addr: number): number {
    return this.read32(addr + 4) * TWO32 + this.read32(addr);
  }

  /** Copy `dst.length` bytes from physical `addr` into `dst`. */
  readBytes(addr: number, dst: Uint8Array): void {
    for (let i = 0; i < dst.length; ) {
      const a = addr + i;
      if (this.inPool(a)) {
        dst[i++] = this.read8(a);
        continue;
      }
      const o = a % CHUNK_BYTES;
      const n = Math.min(dst.length - i, CHUNK_BYTES - o);
      const c = this.chunk(a, false);
      if (c) dst.set(c.subarray(o, o + n), i);
      else dst.fill(0, i, i + n);
      i += n;
    }
  }

  /** Copy `src` into physical memory at `addr`. */
  writeBytes(addr: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; ) {
      const a = addr + i;
      if (this.inPool(a)) {
        this.write8(a, src[i++]!);
        continue;
      }
      const o = a % CHUNK_BYTES;
      const n = Math.min(src.length - i, CHUNK_BYTES - o);
      this.chunk(a, true)!.set(src.subarray(i, i + n), o);
      i += n;
    }
  }
}
