/**
 * A user process's address space as the IOMMU user APIs (iommufd, VFIO type1)
 * see it: user virtual addresses backed page by page by physical memory.
 *
 * "User memory" in iommukit is physical memory ({@link PhysMem}); a process's
 * address space is modelled as a sparse, page-granular (4 KiB) map from user
 * virtual page to physical page, plus a writable bit per page. Pinning a user
 * page (pin_user_pages() with FOLL_LONGTERM) is looking up its physical
 * address: the model has no page reclaim or migration, so a looked-up page
 * stays where it is. {@link UserMemory.munmap} drops the virtual mapping only;
 * the physical pages stay (as pinned pages do in Linux) and are never reused
 * by {@link UserMemory.mmap}'s allocator.
 *
 * Physical pages for anonymous mappings come from a bump allocator over
 * [physBase, physLimit) (default 4 GiB … 960 GiB, below the page-table pool of
 * {@link PhysMem}); each mapping is physically contiguous and placed so that
 * its physical address is congruent to its virtual address modulo 2 MiB
 * (1 GiB for mappings of at least 1 GiB) — as transparent huge pages give —
 * so that an IOMMU can map it with large pages.
 *
 * Addresses and lengths are bytes (numbers, exact below 2^53).
 *
 * Linux: struct mm_struct / vm_area_struct as used by pin_user_pages_remote()
 * (mm/gup.c), mmap(2)/munmap(2) with MAP_FIXED_NOREPLACE; read by
 * iopt_pages_fill_xarray()/pfn_reader (drivers/iommu/iommufd/pages.c) and
 * vaddr_get_pfns() (drivers/vfio/vfio_iommu_type1.c).
 */
import { IommuError } from '../base/errno.js';
import { PAGE_SIZE, PhysMem, DEFAULT_POOL_BASE } from '../mem/phys-mem.js';

const SZ_2M = 0x20_0000;
const SZ_1G = 0x4000_0000;

/** Options of a {@link UserMemory}. */
export interface UserMemoryOptions {
  /** First physical address the allocator hands out (bytes, page-aligned; default 4 GiB). */
  readonly physBase?: number;
  /** End of the allocator's physical range (bytes, exclusive; default the table pool base, 960 GiB). */
  readonly physLimit?: number;
}

/** Options of {@link UserMemory.mmap}. */
export interface MmapOptions {
  /** Back the mapping with this physical range [pa, pa + length) instead of allocating (bytes, page-aligned): like mmap of /dev/mem or a device BAR. */
  readonly pa?: number;
  /** The mapping is writable (PROT_WRITE; default true). Pinning for write a read-only page fails with EFAULT. */
  readonly writable?: boolean;
}

function isPageAligned(x: number): boolean {
  return x % PAGE_SIZE === 0;
}

/**
 * A process address space: user VA pages → physical pages.
 * Linux: struct mm_struct (the part pin_user_pages() reads).
 */
export class UserMemory {
  /** The physical memory the pages live in (the machine's `core.mem`). */
  readonly mem: PhysMem;
  /** user VA page number → physical address of the page. */
  private readonly pages = new Map<number, number>();
  /** user VA page numbers mapped read-only. */
  private readonly readOnly = new Set<number>();
  private nextPhys: number;
  private readonly physLimit: number;

  /**
   * @param mem the machine's physical memory (`core.mem`).
   * @throws IommuError EINVAL if the physical range is not page-aligned or empty.
   */
  constructor(mem: PhysMem, opts: UserMemoryOptions = {}) {
    this.mem = mem;
    this.nextPhys = opts.physBase ?? 0x1_0000_0000;
    this.physLimit = opts.physLimit ?? Math.min(DEFAULT_POOL_BASE, mem.poolBase);
    if (!isPageAligned(this.nextPhys) || !isPageAligned(this.physLimit) || this.nextPhys >= this.physLimit) {
      throw new IommuError('EINVAL', `user memory: bad physical range [0x${this.nextPhys.toString(16)}, 0x${this.physLimit.toString(16)})`);
    }
  }

  /** Number of mapped user pages. */
  get mappedPages(): number {
    return this.pages.size;
  }

  /**
   * Map [va, va + length) (bytes), backed by newly allocated physically
   * contiguous memory or by `opts.pa`. Refuses to replace an existing mapping.
   * @returns the physical address backing `va`.
   * @throws IommuError EINVAL (va/length/pa not page-aligned, length 0, or
   *   beyond 2^53), EEXIST (a page of the range is already mapped:
   *   MAP_FIXED_NOREPLACE), ENOMEM (the physical allocator is exhausted).
   *   Nothing is mapped on failure.
   * Linux: mmap(2) with MAP_FIXED_NOREPLACE (mm/mmap.c).
   */
  mmap(va: number, length: number, opts: MmapOptions = {}): number {
    if (!Number.isSafeInteger(va) || !Number.isSafeInteger(length) || va < 0 || length <= 0 || !isPageAligned(va) || !isPageAligned(length) || va + length > Number.MAX_SAFE_INTEGER) {
      throw new IommuError('EINVAL', `mmap: va 0x${va.toString(16)} length 0x${length.toString(16)} must be page-aligned, non-empty and below 2^53`);
    }
    const first = va / PAGE_SIZE;
    const n = length / PAGE_SIZE;
    for (let i = 0; i < n; i++) {
      if (this.pages.has(first + i)) throw new IommuError('EEXIST', `mmap: user page 0x${((first + i) * PAGE_SIZE).toString(16)} is already mapped`);
    }
    let pa: number;
    if (opts.pa !== undefined) {
      if (!Number.isSafeInteger(opts.pa) || opts.pa < 0 || !isPageAligned(opts.pa)) throw new IommuError('EINVAL', `mmap: pa 0x${opts.pa.toString(16)} is not page-aligned`);
      pa = opts.pa;
    } else {
      const align = length >= SZ_1G ? SZ_1G : length >= SZ_2M ? SZ_2M : PAGE_SIZE;
      const base = Math.ceil(this.nextPhys / align) * align;
      pa = base + (va % align);
      if (pa + length > this.physLimit) throw new IommuError('ENOMEM', `mmap: no physical memory left for 0x${length.toString(16)} bytes`);
      this.nextPhys = pa + length;
    }
    const writable = opts.writable ?? true;
    for (let i = 0; i < n; i++) {
      this.pages.set(first + i, pa + i * PAGE_SIZE);
      if (!writable) this.readOnly.add(first + i);
    }
    return pa;
  }

  /**
   * Unmap [va, va + length); pages not mapped are skipped. The physical pages
   * are not reused (pinned users keep them, as in Linux).
   * @throws IommuError EINVAL if va/length are not page-aligned or length is 0.
   * Linux: munmap(2) (mm/mmap.c).
   */
  munmap(va: number, length: number): void {
    if (!Number.isSafeInteger(va) || !Number.isSafeInteger(length) || va < 0 || length <= 0 || !isPageAligned(va) || !isPageAligned(length)) {
      throw new IommuError('EINVAL', `munmap: va 0x${va.toString(16)} length 0x${length.toString(16)} must be page-aligned and non-empty`);
    }
    const first = va / PAGE_SIZE;
    for (let i = 0; i < length / PAGE_SIZE; i++) {
      this.pages.delete(first + i);
      this.readOnly.delete(first + i);
    }
  }

  /** True if the page holding `va` is mapped. */
  isMapped(va: number): boolean {
    return this.pages.has(Math.floor(va / PAGE_SIZE));
  }

  /**
   * Physical address of user byte `va`, checking access.
   * @param write the access writes (FOLL_WRITE).
   * @throws IommuError EFAULT if the page is not mapped, or `write` on a read-only page.
   * Linux: pin_user_pages_remote() of one page (mm/gup.c) → -EFAULT.
   */
  translate(va: number, write = false): number {
    const vpn = Math.floor(va / PAGE_SIZE);
    const pa = this.pages.get(vpn);
    if (pa === undefined) throw new IommuError('EFAULT', `user address 0x${va.toString(16)} is not mapped`);
    if (write && this.readOnly.has(vpn)) throw new IommuError('EFAULT', `user address 0x${va.toString(16)} is read-only`);
    return pa + (va - vpn * PAGE_SIZE);
  }

  /**
   * Pin `npages` user pages from the page-aligned `va`: their physical
   * addresses, one per page. All or nothing.
   * @param write pin for writing (FOLL_WRITE): read-only pages fail.
   * @throws IommuError EFAULT (a page not mapped or, for `write`, read-only);
   *   EINVAL (va not page-aligned).
   * Linux: pin_user_pages_remote(mm, va, npages, FOLL_LONGTERM | (write ? FOLL_WRITE : 0)) (mm/gup.c).
   */
  pinPages(va: number, npages: number, write: boolean): Float64Array {
    if (!isPageAligned(va)) throw new IommuError('EINVAL', `pin: va 0x${va.toString(16)} is not page-aligned`);
    const out = new Float64Array(npages);
    for (let i = 0; i < npages; i++) out[i] = this.translate(va + i * PAGE_SIZE, write);
    return out;
  }

  /**
   * Copy user memory [va, va + dst.length) into `dst` (through the physical pages).
   * @throws IommuError EFAULT if a page is not mapped (checked for every page
   *   first: `dst` is untouched on failure).
   * Linux: copy_from_user().
   */
  read(va: number, dst: Uint8Array): void {
    for (let a = va - (va % PAGE_SIZE); a < va + dst.length; a += PAGE_SIZE) this.translate(a);
    for (let done = 0; done < dst.length; ) {
      const a = va + done;
      const n = Math.min(dst.length - done, PAGE_SIZE - (a % PAGE_SIZE));
      this.mem.readBytes(this.translate(a), dst.subarray(done, done + n));
      done += n;
    }
  }

  /**
   * Copy `src` into user memory at `va` (through the physical pages).
   * @throws IommuError EFAULT if a page is not mapped or read-only (checked for
   *   every page first: nothing is written on failure).
   * Linux: copy_to_user().
   */
  write(va: number, src: Uint8Array): void {
    for (let a = va - (va % PAGE_SIZE); a < va + src.length; a += PAGE_SIZE) this.translate(a, true);
    for (let done = 0; done < src.length; ) {
      const a = va + done;
      const n = Math.min(src.length - done, PAGE_SIZE - (a % PAGE_SIZE));
      this.mem.writeBytes(this.translate(a, true), src.subarray(done, done + n));
      done += n;
    }
  }
}
