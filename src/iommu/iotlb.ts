/**
 * The IOTLB of one IOMMU unit: a bounded, set-associative cache of
 * translations tagged by domain id and PASID, filled by the model's
 * translate() path after a page-table walk and emptied by the invalidation
 * commands a driver issues.
 *
 * What it models. Hardware caches each translation as (tag, input page) →
 * (output page, permissions), where the tag is the domain id (VT-d DID, AMD
 * DomainID, Arm SMMU VMID/ASID) plus the PASID (VT-d PASID, AMD PASID, SMMU
 * SubstreamID), and the input page is naturally aligned to the size of the
 * leaf that mapped it (4 KiB, 2 MiB, 1 GiB, or any power of two ≥ 4 KiB as
 * AMD v1 tables allow). The cache has a fixed number of entries organised in
 * sets of `ways` entries with LRU replacement inside a set; a translation that
 * is not cached (a miss) must be walked again. Stale entries stay until the
 * driver invalidates them — which is exactly what makes a missing
 * iommu_iotlb_sync() a bug the model can show.
 *
 * Units: domain ids and PASIDs are unsigned 32-bit integers; IOVAs, physical
 * addresses and sizes are bytes, integers in [0, 2^57] (a 57-bit, 5-level
 * address space — page-aligned values are exact as doubles); page sizes are
 * bytes, powers of two from 2^12 to 2^57.
 *
 * Storage: typed arrays only (no per-entry objects, no Map); way `w` of set
 * `s` is slot `s * ways + w`. Each slot is a record of four doubles — key,
 * domain id, PASID, delta. The key is the page base IOVA plus `64 × size
 * class` (exact: bases are multiples of 4096 below 2^57, where the spacing of
 * doubles is at most 16, and 64 × 45 < 4096), so one comparison checks both
 * the page and its size. The delta is physical page − IOVA page (exact: a
 * multiple of the page size of magnitude below 2^57), so a hit translates
 * with one addition, `iova + delta`. Index math uses division by powers of two
 * and 32-bit integer ops, never BigInt. A hit allocates nothing.
 *
 * Hashing: a page's hash is `(pfn ^ mix(domainId, pasid) ^ salt(class) ^
 * (pfn >>> indexBits)) & (indexSize - 1)`, on the low 32 bits of the page
 * number at the entry's size class; its set is the low bits of the hash
 * (`hash & (sets - 1)`). An aligned run of `sets` consecutive pages of one
 * tag never conflicts (XOR by a constant permutes an aligned block) and
 * power-of-two strides are spread by the folded-in high bits. Large pages:
 * each domain-id bucket keeps a bitmask of the size classes cached for it, so
 * a lookup probes only those classes (smallest first) — a 4K-only workload
 * probes once.
 *
 * Lookup index (an accelerator, not modelled hardware state): a direct-mapped
 * table (a power of two, at least eight times the entry count; 16 KiB for 512
 * entries) maps each hash to the one slot holding a page with that hash, to
 * "none", or to "shared" when several do (they are then all in the same set,
 * the hash's low bits). A probe checks the one slot's full tag — a hit, or
 * else a certain miss — and only searches the set for "shared" hashes. This spares the hot path the unpredictable
 * branch of a way-by-way search, and makes a miss in a size class cost one
 * load. The index is exact, so it never changes an answer, the LRU order or a
 * counter.
 *
 * Linux: the IOTLB the drivers invalidate from iommu_iotlb_sync(),
 * iommu_flush_iotlb_all() and domain/PASID teardown (drivers/iommu/iommu.c,
 * intel/cache.c, amd/iommu.c, arm/arm-smmu-v3/arm-smmu-v3.c). Hardware: VT-d
 * IOTLB (Intel VT-d spec §6.5), AMD IOMMU TLB (INVALIDATE_IOMMU_PAGES),
 * Arm SMMUv3 TLB (CMD_TLBI_*).
 */
import { IommuError } from '../base/errno.js';

/**
 * The PASID tag of a request without PASID: 0, as Linux's IOMMU_NO_PASID.
 *
 * Why 0 rather than an out-of-range sentinel such as 0xFFFFFFFF: the hardware
 * itself tags requests without PASID with a PASID value, and Linux makes that
 * value 0 on every IOMMU — VT-d scalable mode uses the context entry's
 * RID_PASID (set to IOMMU_NO_PASID = 0), SMMUv3 uses SubstreamID 0 (CD 0) and
 * AMD uses GCR3 table entry 0 — and never hands PASID 0 out to a process
 * (IOMMU_FIRST_GLOBAL_PASID is 1). So "no PASID" and "PASID 0" are the same
 * cache tag on real hardware, and the model keeps them the same. Callers with
 * a `pasid: number | null` pass `pasid ?? IOTLB_NO_PASID`.
 *
 * Linux: IOMMU_NO_PASID (include/linux/iommu.h, v6.6+; earlier PASID_RID2PASID
 * in the Intel driver).
 */
export const IOTLB_NO_PASID = 0;

/** Default number of IOTLB entries (translations) per IOMMU unit. */
export const IOTLB_DEFAULT_ENTRIES = 512;

/** Default associativity (entries per set) of an IOTLB. */
export const IOTLB_DEFAULT_WAYS = 4;

/** Smallest page size an IOTLB entry can have: 4096 bytes (4 KiB, the VT-d/AMD/SMMU base page). */
export const IOTLB_MIN_PGSIZE = 4096;

/**
 * Exclusive upper bound of cached IOVAs and physical addresses, and the
 * largest page size: 2^57 bytes (a 57-bit address space, as 5-level tables give).
 */
export const IOTLB_ADDR_LIMIT = 2 ** 57;

/** Largest number of entries an {@link Iotlb} can be configured with (2^20). */
export const IOTLB_MAX_ENTRIES = 1 << 20;

/**
 * Configuration of an {@link Iotlb}.
 * Hardware: the IOTLB geometry of an IOMMU implementation (not discoverable
 * from capability registers; VT-d, AMD and SMMU parts vary).
 */
export interface IotlbOptions {
  /**
   * Total entries (translations), default {@link IOTLB_DEFAULT_ENTRIES}.
   * Must be a multiple of `ways` with `entries / ways` a power of two, and at
   * most {@link IOTLB_MAX_ENTRIES}.
   */
  readonly entries?: number;
  /** Entries per set (associativity), default {@link IOTLB_DEFAULT_WAYS}; `ways === entries` is fully associative. */
  readonly ways?: number;
}

/**
 * A snapshot of an {@link Iotlb}'s counters (all counts of events since
 * construction or the last {@link Iotlb.resetStats}).
 * Hardware: the IOTLB hit/miss performance counters of VT-d (perfmon
 * IOTLB_HIT/IOTLB_LOOKUP) and SMMUv3 PMCG (TLB miss events).
 */
export interface IotlbStats {
  /** {@link Iotlb.lookup} calls that found a translation. */
  readonly hits: number;
  /** {@link Iotlb.lookup} calls that found none. */
  readonly misses: number;
  /** {@link Iotlb.insert} calls (including ones that replaced the same tag and page). */
  readonly inserts: number;
  /** Valid entries displaced by an insert into a full set (capacity evictions). */
  readonly evictions: number;
  /** Page/range invalidation commands ({@link Iotlb.invalidateRange}). */
  readonly rangeInvalidations: number;
  /** PASID-wide invalidation commands ({@link Iotlb.invalidatePasid}). */
  readonly pasidInvalidations: number;
  /** Domain-wide invalidation commands ({@link Iotlb.invalidateDomain}). */
  readonly domainInvalidations: number;
  /** Global invalidation commands ({@link Iotlb.invalidateAll}). */
  readonly globalInvalidations: number;
  /** Entries removed by invalidation commands of any kind. */
  readonly entriesInvalidated: number;
}

// Size classes: class c is a page of 2^(c + 12) bytes, c in [0, 45].
const MIN_SHIFT = 12;
const MAX_SHIFT = 57;
const NCLS = MAX_SHIFT - MIN_SHIFT + 1;
/** Classes >= HUGE_CLS share mask bit 31 and are probed one by one. */
const HUGE_CLS = 31;
/** Page size in bytes of each class. */
const CLS_SIZE = new Float64Array(NCLS);
/** 1 / page size of each class (exact: powers of two). */
const CLS_INV = new Float64Array(NCLS);
/** Per-class hash salt, so entries of different sizes at one address spread over sets. */
const CLS_SALT = new Int32Array(NCLS);
for (let c = 0; c < NCLS; c++) {
  CLS_SIZE[c] = 2 ** (c + MIN_SHIFT);
  CLS_INV[c] = 2 ** -(c + MIN_SHIFT);
  const x = Math.imul(c, 0x27d4eb2f);
  CLS_SALT[c] = x ^ (x >>> 15);
}

/** The hash salt of the 4 KiB class (class 0), for the inlined fast path of lookup(). */
const CLS_SALT0 = CLS_SALT[0]!;

/** Key of a slot = page base + class * KEY_CLS (see the module comment: exact, unique). */
const KEY_CLS = 64;
/** Doubles per slot record, and their offsets. */
const REC = 4;
const REC_SHIFT = 2;
const R_KEY = 0;
const R_DOM = 1;
const R_PASID = 2;
const R_DELTA = 3;
/** Key of an empty slot (every real key is ≥ 0; no lookup computes -1). */
const EMPTY = -1;

/** Domain-id buckets of the per-domain size-class masks (a power of two). */
const DOM_BUCKETS = 64;
const DOM_MASK = DOM_BUCKETS - 1;

/** Lookup-index values other than a slot number: no valid entry has the hash / several do. */
const IDX_NONE = -1;
const IDX_SHARED = -2;

/** Hash of the (domain id, PASID) tag: 32 bits, low bits depending on all input bits. */
function mixTag(domainId: number, pasid: number): number {
  const x = Math.imul(domainId ^ Math.imul(pasid, 0x9e3779b1), 0x85ebca6b);
  return x ^ (x >>> 15);
}

function isU32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}

/** Size class of a page size, or -1 if it is not a power of two in [2^12, 2^57]. */
function classOf(pgsize: number): number {
  for (let c = 0; c < NCLS; c++) if (CLS_SIZE[c] === pgsize) return c;
  return -1;
}

/**
 * The IOTLB of one IOMMU unit: a bounded, set-associative, LRU-replaced cache
 * of (domain id, PASID, IOVA page, page size) → (physical page, permissions).
 *
 * Hot path: {@link lookup} allocates nothing and throws nothing; a domain id
 * or PASID that is not a uint32, or an IOVA outside [0, 2^57), just misses.
 * The other methods validate their arguments and throw {@link IommuError}
 * `EINVAL` without changing anything.
 *
 * Linux: the translation cache behind iommu_iotlb_sync() /
 * iommu_flush_iotlb_all() / iommu_iotlb_gather; hardware: VT-d IOTLB, AMD
 * IOMMU TLB, Arm SMMUv3 TLB.
 */
export class Iotlb {
  /** Total entries (translations) the IOTLB holds. */
  readonly entries: number;
  /** Entries per set (associativity). */
  readonly ways: number;
  /** Number of sets (`entries / ways`, a power of two). */
  readonly sets: number;

  private readonly setMask: number;
  /** Slot records: [key, domain id, PASID, physical page − IOVA page] per slot ({@link REC} doubles). */
  private readonly rec: Float64Array;
  /** `class << 8 | perms` of each slot. */
  private readonly attr: Int32Array;
  /** Last use (insert or hit) of each slot, from {@link tick}: the LRU order. */
  private readonly stamp: Float64Array;
  /** Lookup index: hash → the one slot with that hash, {@link IDX_NONE} or {@link IDX_SHARED}. */
  private readonly index: Int32Array;
  /** Number of valid entries with each hash. */
  private readonly indexCount: Int32Array;
  private readonly indexBits: number;
  private readonly indexMask: number;
  /** Per domain-id bucket: bit c (c < 31) = class c cached; bit 31 = some class >= 31 cached. */
  private readonly domClassMask: Int32Array;
  /** Per (bucket, class): number of valid entries. */
  private readonly domClassCount: Int32Array;
  /** Per bucket: number of valid entries of classes >= 31. */
  private readonly domHugeCount: Int32Array;
  /** The LRU clock: advanced by every hit and every insert. */
  private tick = 0;
  /** Ticks taken by inserts (so hits = tick - insertTicks, with no hit counter to bump). */
  private insertTicks = 0;
  /** Hits before the last {@link resetStats}. */
  private hitsBase = 0;
  private valid = 0;

  private nMisses = 0;
  private nInserts = 0;
  private nEvictions = 0;
  private nRangeInv = 0;
  private nPasidInv = 0;
  private nDomainInv = 0;
  private nGlobalInv = 0;
  private nEntriesInv = 0;

  /**
   * An empty IOTLB.
   * @param opts geometry: `entries` (default 512) and `ways` (default 4).
   * @throws IommuError EINVAL if `ways` is not a positive integer, `entries`
   *   is not a positive multiple of `ways`, `entries / ways` is not a power of
   *   two, or `entries` exceeds {@link IOTLB_MAX_ENTRIES}.
   */
  constructor(opts: IotlbOptions = {}) {
    const entries = opts.entries ?? IOTLB_DEFAULT_ENTRIES;
    const ways = opts.ways ?? IOTLB_DEFAULT_WAYS;
    if (!Number.isInteger(ways) || ways < 1 || ways > IOTLB_MAX_ENTRIES) {
      throw new IommuError('EINVAL', `iotlb: ways must be a positive integer (got ${ways})`);
    }
    if (!Number.isInteger(entries) || entries < ways || entries > IOTLB_MAX_ENTRIES || entries % ways !== 0) {
      throw new IommuError('EINVAL', `iotlb: entries must be a multiple of ways (${ways}) in [${ways}, ${IOTLB_MAX_ENTRIES}] (got ${entries})`);
    }
    const sets = entries / ways;
    if ((sets & (sets - 1)) !== 0) {
      throw new IommuError('EINVAL', `iotlb: entries / ways must be a power of two (got ${entries} / ${ways} = ${sets})`);
    }
    this.entries = entries;
    this.ways = ways;
    this.sets = sets;
    this.setMask = sets - 1;
    this.rec = new Float64Array(entries * REC).fill(EMPTY);
    this.attr = new Int32Array(entries);
    this.stamp = new Float64Array(entries);
    let indexSize = 64;
    while (indexSize < entries * 8) indexSize *= 2;
    this.index = new Int32Array(indexSize).fill(IDX_NONE);
    this.indexCount = new Int32Array(indexSize);
    this.indexBits = 31 - Math.clz32(indexSize);
    this.indexMask = indexSize - 1;
    this.domClassMask = new Int32Array(DOM_BUCKETS);
    this.domClassCount = new Int32Array(DOM_BUCKETS * NCLS);
    this.domHugeCount = new Int32Array(DOM_BUCKETS);
  }

  /** Number of valid entries currently cached (0 … {@link entries}). */
  get used(): number {
    return this.valid;
  }

  /**
   * Translate `iova` through the cache, as the hardware does before walking
   * the page tables. Probes every page-size class cached for the domain,
   * smallest first; the first entry whose tag (domain id, PASID) matches and
   * whose page contains `iova` answers.
   *
   * On a hit: marks the entry most recently used, writes the physical address
   * of `iova` (the entry's physical page + the offset of `iova` in the page,
   * bytes) to `out[0]` and the entry's page size (bytes) to `out[1]`, and
   * returns the entry's permissions (IOMMU_READ = 1 | IOMMU_WRITE = 2 | …,
   * possibly 0). On a miss: returns -1 and leaves `out` alone.
   *
   * Never throws and never allocates. A domain id or PASID that is not a
   * uint32, or an IOVA outside [0, 2^57), misses; `iova` is expected to be an
   * integer (not checked: a fraction would carry into `out[0]`).
   *
   * @param domainId domain id tag (uint32).
   * @param pasid PASID tag (uint32; {@link IOTLB_NO_PASID} for requests without PASID).
   * @param iova the input address (bytes).
   * @param out scratch of length ≥ 2 (`[WALK_PHYS, WALK_PGSIZE]`, as io-pgtable's walk()).
   * @returns the permissions, or -1 on a miss.
   * Hardware: the IOTLB lookup of a DMA translation request.
   */
  lookup(domainId: number, pasid: number, iova: number, out: Float64Array): number {
    // Kept tiny so that V8 inlines it into the caller (a call that is not
    // inlined boxes a non-Smi `iova`, i.e. allocates): the common case — only
    // 4 KiB entries cached for this domain bucket, the page's index entry
    // unshared, a hit — is resolved here; everything else is lookupSlow().
    if (this.domClassMask[domainId & DOM_MASK] === 1) {
      const q = Math.floor(iova * 0.000244140625);
      const x = Math.imul(domainId ^ Math.imul(pasid, 0x9e3779b1), 0x85ebca6b);
      const ql = q | 0;
      const k = this.index[(ql ^ x ^ (x >>> 15) ^ CLS_SALT0 ^ (ql >>> this.indexBits)) & this.indexMask]!;
      if (k >= 0) {
        const r = k << REC_SHIFT;
        const rec = this.rec;
        if (rec[r]! === q * 4096 && rec[r | R_DOM] === domainId && rec[r | R_PASID] === pasid) {
          this.stamp[k] = ++this.tick;
          out[0] = rec[r | R_DELTA]! + iova;
          out[1] = 4096;
          return this.attr[k]! & 0xff;
        }
      }
    }
    return this.lookupSlow(domainId, pasid, iova, out);
  }

  /** The general path of {@link lookup}: any page size, shared index entries, misses. */
  private lookupSlow(domainId: number, pasid: number, iova: number, out: Float64Array): number {
    const slot = this.find(domainId, pasid, iova);
    if (slot < 0) {
      this.nMisses++;
      return -1;
    }
    this.stamp[slot] = ++this.tick;
    const a = this.attr[slot]!;
    out[0] = this.rec[(slot << REC_SHIFT) | R_DELTA]! + iova;
    out[1] = CLS_SIZE[a >> 8]!;
    return a & 0xff;
  }


  /**
   * Like {@link lookup} but without side effects: no LRU update, no
   * counters. For inspection (tests, debugging), not a hardware operation.
   * @returns the permissions, or -1 if nothing cached translates `iova`.
   */
  peek(domainId: number, pasid: number, iova: number, out: Float64Array): number {
    const slot = this.find(domainId, pasid, iova);
    if (slot < 0) return -1;
    const a = this.attr[slot]!;
    out[0] = this.rec[(slot << REC_SHIFT) | R_DELTA]! + iova;
    out[1] = CLS_SIZE[a >> 8]!;
    return a & 0xff;
  }

  /**
   * Slot caching `iova` for the tag, smallest page size first, or -1.
   * Per class: the lookup index names the one slot that can hold the page
   * (check its tag), or says none can, or says to search the page's set.
   */
  private find(domainId: number, pasid: number, iova: number): number {
    let m = this.domClassMask[domainId & DOM_MASK]!;
    if (m === 0) return -1;
    const x = Math.imul(domainId ^ Math.imul(pasid, 0x9e3779b1), 0x85ebca6b); // mixTag(), inlined by hand
    const seed = x ^ (x >>> 15);
    const rec = this.rec;
    const index = this.index;
    do {
      const c = m === 1 ? 0 : 31 - Math.clz32(m & -m);
      if (c === HUGE_CLS) return this.findHuge(domainId, pasid, iova);
      m &= m - 1;
      const q = Math.floor(iova * CLS_INV[c]!);
      const key = q * CLS_SIZE[c]! + c * KEY_CLS;
      const ql = q | 0;
      const h = (ql ^ seed ^ CLS_SALT[c]! ^ (ql >>> this.indexBits)) & this.indexMask;
      const k = index[h]!;
      if (k >= 0) {
        const r = k << REC_SHIFT;
        if (rec[r | R_KEY] === key && rec[r | R_DOM] === domainId && rec[r | R_PASID] === pasid) return k;
      } else if (k === IDX_SHARED) {
        const slot = this.searchSet(domainId, pasid, key, (h & this.setMask) * this.ways);
        if (slot >= 0) return slot;
      }
    } while (m !== 0);
    return -1;
  }

  /** The slot of the set starting at slot `start` holding exactly (tag, `key`), or -1. */
  private searchSet(domainId: number, pasid: number, key: number, start: number): number {
    const rec = this.rec;
    const end = start + this.ways;
    for (let i = start; i < end; i++) {
      const r = i << REC_SHIFT;
      if (rec[r | R_KEY] === key && rec[r | R_DOM] === domainId && rec[r | R_PASID] === pasid) return i;
    }
    return -1;
  }

  /** {@link find} for the classes >= 31 (pages of 2 GiB and more): rare, probes each cached class. */
  private findHuge(domainId: number, pasid: number, iova: number): number {
    const b = (domainId & DOM_MASK) * NCLS;
    for (let c = HUGE_CLS; c < NCLS; c++) {
      if (this.domClassCount[b + c] === 0) continue;
      const slot = this.findExact(domainId, pasid, Math.floor(iova * CLS_INV[c]!) * CLS_SIZE[c]!, c);
      if (slot >= 0) return slot;
    }
    return -1;
  }

  /** Slot holding exactly (tag, class `c`, page `base` (bytes, aligned)), or -1. */
  private findExact(domainId: number, pasid: number, base: number, c: number): number {
    const h = this.hashOf(domainId, pasid, base, c);
    const k = this.index[h]!;
    const key = base + c * KEY_CLS;
    if (k >= 0) {
      const r = k << REC_SHIFT;
      return this.rec[r | R_KEY] === key && this.rec[r | R_DOM] === domainId && this.rec[r | R_PASID] === pasid ? k : -1;
    }
    return k === IDX_SHARED ? this.searchSet(domainId, pasid, key, (h & this.setMask) * this.ways) : -1;
  }

  /** Hash of page `base` (bytes, aligned) of class `c` for the tag, as {@link find} computes it; its low bits are the set. */
  private hashOf(domainId: number, pasid: number, base: number, c: number): number {
    const ql = (base * CLS_INV[c]!) | 0; // the low 32 bits of the page number, as find() takes them
    return (ql ^ mixTag(domainId, pasid) ^ CLS_SALT[c]! ^ (ql >>> this.indexBits)) & this.indexMask;
  }

  /** Hash of the page in valid slot `i`. */
  private hashOfSlot(i: number): number {
    const r = i << REC_SHIFT;
    const c = this.attr[i]! >> 8;
    return this.hashOf(this.rec[r | R_DOM]!, this.rec[r | R_PASID]!, this.rec[r | R_KEY]! - c * KEY_CLS, c);
  }

  /**
   * The set a page maps to (0 … {@link sets} - 1): model introspection, so
   * tests and tools can build conflicting working sets. `iova` need not be
   * aligned; its page of `pgsize` is used.
   * @throws IommuError EINVAL on a bad domain id, PASID, IOVA or page size (as {@link insert}).
   */
  setIndexOf(domainId: number, pasid: number, iova: number, pgsize: number): number {
    const c = checkTag('setIndexOf', domainId, pasid, pgsize);
    if (!Number.isInteger(iova) || iova < 0 || iova >= IOTLB_ADDR_LIMIT) {
      throw new IommuError('EINVAL', `iotlb setIndexOf: iova ${iova} is not an integer in [0, 2^57)`);
    }
    return this.hashOf(domainId, pasid, Math.floor(iova * CLS_INV[c]!) * CLS_SIZE[c]!, c) & this.setMask;
  }

  /**
   * Cache a translation: the page of `pgsize` bytes at `iovaPage` maps to
   * `physPage` with `perms`, for the tag (domain id, PASID). If that exact
   * (tag, page, page size) is cached it is replaced in place; otherwise the
   * entry goes to the first free way of its set, or replaces the least
   * recently used one (an eviction). The new entry is the most recently used.
   *
   * Entries of different page sizes may overlap (as in hardware, which does
   * not check); {@link lookup} answers from the smallest page size.
   *
   * @param domainId domain id tag (uint32).
   * @param pasid PASID tag (uint32; {@link IOTLB_NO_PASID} for requests without PASID).
   * @param iovaPage page base IOVA (bytes), aligned to `pgsize`, with `iovaPage + pgsize ≤ 2^57`.
   * @param pgsize page size (bytes), a power of two in [2^12, 2^57].
   * @param physPage physical page address (bytes), aligned to `pgsize`, with `physPage + pgsize ≤ 2^57`.
   * @param perms IOMMU_READ (1) | IOMMU_WRITE (2), plus any other IOMMU_* bits: an integer in [0, 0xff], returned as is by {@link lookup}.
   * @throws IommuError EINVAL on any bad argument; the cache is unchanged.
   * Hardware: the IOTLB fill after a successful page-table walk.
   */
  insert(domainId: number, pasid: number, iovaPage: number, pgsize: number, physPage: number, perms: number): void {
    const c = checkTag('insert', domainId, pasid, pgsize);
    checkPage('iova', iovaPage, pgsize);
    checkPage('phys', physPage, pgsize);
    if (!Number.isInteger(perms) || perms < 0 || perms > 0xff) {
      throw new IommuError('EINVAL', `iotlb insert: perms ${perms} is not an integer in [0, 0xff]`);
    }
    this.nInserts++;
    this.insertTicks++;
    const rec = this.rec;
    const key = iovaPage + c * KEY_CLS;
    const h = this.hashOf(domainId, pasid, iovaPage, c);
    const start = (h & this.setMask) * this.ways;
    const end = start + this.ways;
    let free = -1;
    let lru = -1;
    for (let i = start; i < end; i++) {
      const r = i << REC_SHIFT;
      if (rec[r | R_KEY] === EMPTY) {
        if (free < 0) free = i;
      } else if (rec[r | R_KEY] === key && rec[r | R_DOM] === domainId && rec[r | R_PASID] === pasid) {
        rec[r | R_DELTA] = physPage - iovaPage;
        this.attr[i] = (c << 8) | perms;
        this.stamp[i] = ++this.tick;
        return;
      } else if (lru < 0 || this.stamp[i]! < this.stamp[lru]!) {
        lru = i;
      }
    }
    let slot = free;
    if (slot < 0) {
      slot = lru;
      this.nEvictions++;
      this.drop(slot);
    }
    const r = slot << REC_SHIFT;
    rec[r | R_KEY] = key;
    rec[r | R_DOM] = domainId;
    rec[r | R_PASID] = pasid;
    rec[r | R_DELTA] = physPage - iovaPage;
    this.attr[slot] = (c << 8) | perms;
    this.stamp[slot] = ++this.tick;
    this.index[h] = ++this.indexCount[h]! === 1 ? slot : IDX_SHARED;
    this.valid++;
    const b = domainId & DOM_MASK;
    if (this.domClassCount[b * NCLS + c]!++ === 0 && c < HUGE_CLS) this.domClassMask[b] = this.domClassMask[b]! | (1 << c);
    if (c >= HUGE_CLS && this.domHugeCount[b]!++ === 0) this.domClassMask[b] = this.domClassMask[b]! | (1 << HUGE_CLS);
  }

  /**
   * Page-selective invalidation: remove every entry of the tag (domain id,
   * PASID) whose page overlaps `[iova, iova + size)`, whatever its page size
   * (a 4 KiB range inside a cached 2 MiB page removes the 2 MiB entry).
   * Exactly those entries go: the range is not rounded to a power of two as
   * some hardware commands do.
   *
   * @param domainId domain id tag (uint32).
   * @param pasid PASID tag (uint32; {@link IOTLB_NO_PASID} for requests without PASID).
   * @param iova start of the range (bytes), an integer in [0, 2^64).
   * @param size length of the range (bytes), an integer in [1, 2^64] (the end may pass 2^57, e.g. a flush up to ULONG_MAX).
   * @returns the number of entries removed.
   * @throws IommuError EINVAL on a bad argument; the cache is unchanged.
   * Linux: the invalidation a driver issues from iommu_iotlb_sync() for a
   * gathered range; hardware: VT-d page-selective-within-domain invalidation
   * (PSI) and PASID-based-IOTLB PSI, AMD INVALIDATE_IOMMU_PAGES with an
   * address range, SMMUv3 CMD_TLBI_NH_VA / CMD_TLBI_S2_IPA.
   */
  invalidateRange(domainId: number, pasid: number, iova: number, size: number): number {
    // Kept small so V8 inlines it (see lookup); every other case is invalidateRangeSlow().
    if (this.domClassMask[domainId & DOM_MASK] === 0 && domainId >>> 0 === domainId && pasid >>> 0 === pasid && Number.isInteger(size) && size >= 1 && size <= 2 ** 64 && Number.isInteger(iova) && iova >= 0 && iova < 2 ** 64) {
      this.nRangeInv++;
      return 0;
    }
    // Fast path: one 4 KiB page, only 4 KiB entries cached for the domain bucket, the index entry unshared.
    if (size === 4096 && this.domClassMask[domainId & DOM_MASK] === 1 && domainId >>> 0 === domainId && pasid >>> 0 === pasid) {
      const q = Math.floor(iova * 0.000244140625);
      if (q * 4096 === iova && iova < IOTLB_ADDR_LIMIT) {
        this.nRangeInv++;
        const x = Math.imul(domainId ^ Math.imul(pasid, 0x9e3779b1), 0x85ebca6b);
        const ql = q | 0;
        const k = this.index[(ql ^ x ^ (x >>> 15) ^ CLS_SALT0 ^ (ql >>> this.indexBits)) & this.indexMask]!;
        if (k === IDX_NONE) return 0;
        const slot = k >= 0 ? (this.rec[k << REC_SHIFT] === iova && this.rec[(k << REC_SHIFT) | R_DOM] === domainId && this.rec[(k << REC_SHIFT) | R_PASID] === pasid ? k : -1) : this.findExact(domainId, pasid, iova, 0);
        if (slot < 0) return 0;
        this.drop(slot);
        this.nEntriesInv++;
        return 1;
      }
    }
    return this.invalidateRangeSlow(domainId, pasid, iova, size);
  }

  /** The general path of {@link invalidateRange}. */
  private invalidateRangeSlow(domainId: number, pasid: number, iova: number, size: number): number {
    checkU32('invalidateRange', 'domainId', domainId);
    checkU32('invalidateRange', 'pasid', pasid);
    if (!Number.isInteger(iova) || iova < 0 || iova >= 2 ** 64) {
      throw new IommuError('EINVAL', `iotlb invalidateRange: iova ${iova} is not an integer in [0, 2^64)`);
    }
    if (!Number.isInteger(size) || size < 1 || size > 2 ** 64) {
      throw new IommuError('EINVAL', `iotlb invalidateRange: size ${size} is not an integer in [1, 2^64]`);
    }
    this.nRangeInv++;
    // The range in 4 KiB frames, exactly: [first, last]. Frame numbers are
    // below 2^52, so sums of them are exact where iova + size might not be.
    const iovaFrame = Math.floor(iova / IOTLB_MIN_PGSIZE);
    const sizeFrames = Math.floor(size / IOTLB_MIN_PGSIZE);
    const offSum = iova - iovaFrame * IOTLB_MIN_PGSIZE + (size - sizeFrames * IOTLB_MIN_PGSIZE);
    const first = iovaFrame;
    const last = iovaFrame + sizeFrames + Math.ceil(offSum / IOTLB_MIN_PGSIZE) - 1;
    const mask = this.domClassMask[domainId & DOM_MASK]!;
    if (mask === 0) return 0;
    // Fast path: a range of at most a few pages per cached class, no huge classes cached — probe
    // exactly the pages of the classes present (bits of the domain bucket's mask), not all NCLS.
    if ((mask & (1 << HUGE_CLS)) === 0 && last - first < 16) {
      let removed = 0;
      let m = mask;
      do {
        const c = 31 - Math.clz32(m & -m);
        m &= m - 1;
        const inv = 2 ** -c;
        const qEnd = Math.floor(last * inv);
        for (let q = Math.floor(first * inv); q <= qEnd; q++) {
          const slot = this.findExact(domainId, pasid, q * CLS_SIZE[c]!, c);
          if (slot >= 0) {
            this.drop(slot);
            removed++;
          }
        }
      } while (m !== 0);
      this.nEntriesInv += removed;
      return removed;
    }
    const b = (domainId & DOM_MASK) * NCLS;
    // Probing the pages of each cached class costs `ways` per page; a scan costs `entries`.
    let probes = 0;
    for (let c = 0; c < NCLS && probes <= this.sets; c++) {
      if (this.domClassCount[b + c] === 0) continue;
      probes += Math.floor(last / 2 ** c) - Math.floor(first / 2 ** c) + 1;
    }
    let removed = 0;
    if (probes > this.sets) {
      const rec = this.rec;
      for (let i = 0; i < this.entries; i++) {
        const r = i << REC_SHIFT;
        const key = rec[r | R_KEY]!;
        if (key === EMPTY || rec[r | R_DOM] !== domainId || rec[r | R_PASID] !== pasid) continue;
        const c = this.attr[i]! >> 8;
        const f = (key - c * KEY_CLS) / IOTLB_MIN_PGSIZE;
        if (f <= last && f + 2 ** c > first) {
          this.drop(i);
          removed++;
        }
      }
    } else {
      for (let c = 0; c < NCLS; c++) {
        if (this.domClassCount[b + c] === 0) continue;
        const qEnd = Math.floor(last / 2 ** c);
        for (let q = Math.floor(first / 2 ** c); q <= qEnd; q++) {
          const slot = this.findExact(domainId, pasid, q * CLS_SIZE[c]!, c);
          if (slot >= 0) {
            this.drop(slot);
            removed++;
          }
        }
      }
    }
    this.nEntriesInv += removed;
    return removed;
  }

  /**
   * PASID-selective invalidation: remove every entry of domain `domainId`
   * tagged with `pasid`, at any address and page size.
   * @param domainId domain id tag (uint32).
   * @param pasid PASID tag (uint32; {@link IOTLB_NO_PASID} removes the domain's requests-without-PASID entries).
   * @returns the number of entries removed.
   * @throws IommuError EINVAL on a bad argument; the cache is unchanged.
   * Linux: flushing a PASID attachment (intel cache_tag_flush_all() for a
   * PASID tag, PASID detach); hardware: VT-d PASID-based-IOTLB invalidation,
   * PASID-selective-within-domain granularity; AMD INVALIDATE_IOMMU_PAGES with
   * PASID over the whole address space; SMMUv3 CMD_TLBI_NH_ASID.
   */
  invalidatePasid(domainId: number, pasid: number): number {
    checkU32('invalidatePasid', 'domainId', domainId);
    checkU32('invalidatePasid', 'pasid', pasid);
    this.nPasidInv++;
    const removed = this.dropWhere(domainId, pasid);
    this.nEntriesInv += removed;
    return removed;
  }

  /**
   * Domain-selective invalidation: remove every entry of domain `domainId`,
   * all PASIDs, all addresses and page sizes.
   * @param domainId domain id tag (uint32).
   * @returns the number of entries removed.
   * @throws IommuError EINVAL on a bad domain id; the cache is unchanged.
   * Linux: iommu_flush_iotlb_all() / domain teardown; hardware: VT-d
   * domain-selective IOTLB invalidation (DSI), AMD INVALIDATE_IOMMU_PAGES for
   * the whole domain (amd_iommu_domain_flush_all()), SMMUv3 CMD_TLBI_S12_VMALL.
   */
  invalidateDomain(domainId: number): number {
    checkU32('invalidateDomain', 'domainId', domainId);
    this.nDomainInv++;
    const removed = this.dropWhere(domainId, -1);
    this.nEntriesInv += removed;
    return removed;
  }

  /**
   * Global invalidation: remove every entry of every domain and PASID.
   * @returns the number of entries removed.
   * Linux: the flush when translation is enabled or resumed and on
   * translation-table changes; hardware: VT-d global IOTLB invalidation, AMD
   * INVALIDATE_IOMMU_ALL, SMMUv3 CMD_TLBI_NSNH_ALL.
   */
  invalidateAll(): number {
    this.nGlobalInv++;
    const removed = this.valid;
    this.rec.fill(EMPTY);
    this.index.fill(IDX_NONE);
    this.indexCount.fill(0);
    this.domClassMask.fill(0);
    this.domClassCount.fill(0);
    this.domHugeCount.fill(0);
    this.valid = 0;
    this.nEntriesInv += removed;
    return removed;
  }

  /**
   * The counters since construction or the last {@link resetStats}, as a new
   * object (allocates: not for the hot path).
   */
  stats(): IotlbStats {
    return {
      hits: this.tick - this.insertTicks - this.hitsBase,
      misses: this.nMisses,
      inserts: this.nInserts,
      evictions: this.nEvictions,
      rangeInvalidations: this.nRangeInv,
      pasidInvalidations: this.nPasidInv,
      domainInvalidations: this.nDomainInv,
      globalInvalidations: this.nGlobalInv,
      entriesInvalidated: this.nEntriesInv,
    };
  }

  /** Zero every counter of {@link stats}; the cached entries and their LRU order are kept. */
  resetStats(): void {
    this.hitsBase = this.tick - this.insertTicks;
    this.nMisses = 0;
    this.nInserts = 0;
    this.nEvictions = 0;
    this.nRangeInv = 0;
    this.nPasidInv = 0;
    this.nDomainInv = 0;
    this.nGlobalInv = 0;
    this.nEntriesInv = 0;
  }

  /** Remove every valid entry of `domainId` with PASID `pasid` (any PASID if `pasid` < 0). */
  private dropWhere(domainId: number, pasid: number): number {
    if (this.domClassMask[domainId & DOM_MASK] === 0) return 0;
    const rec = this.rec;
    let removed = 0;
    for (let i = 0; i < this.entries; i++) {
      const r = i << REC_SHIFT;
      if (rec[r | R_KEY] === EMPTY || rec[r | R_DOM] !== domainId) continue;
      if (pasid >= 0 && rec[r | R_PASID] !== pasid) continue;
      this.drop(i);
      removed++;
    }
    return removed;
  }

  /** Free a valid slot and update the lookup index and the per-domain class bookkeeping. */
  private drop(i: number): void {
    const c = this.attr[i]! >> 8;
    const b = this.rec[(i << REC_SHIFT) | R_DOM]! & DOM_MASK;
    const h = this.hashOfSlot(i);
    this.rec[(i << REC_SHIFT) | R_KEY] = EMPTY;
    this.valid--;
    const left = --this.indexCount[h]!;
    if (left === 0) {
      this.index[h] = IDX_NONE;
    } else if (left === 1) {
      // The one other entry with this hash is in the same set.
      const start = (h & this.setMask) * this.ways;
      for (let j = start; j < start + this.ways; j++) {
        if (this.rec[(j << REC_SHIFT) | R_KEY] !== EMPTY && this.hashOfSlot(j) === h) this.index[h] = j;
      }
    }
    if (--this.domClassCount[b * NCLS + c]! === 0 && c < HUGE_CLS) this.domClassMask[b] = this.domClassMask[b]! & ~(1 << c);
    if (c >= HUGE_CLS && --this.domHugeCount[b]! === 0) this.domClassMask[b] = this.domClassMask[b]! & ~(1 << HUGE_CLS);
  }
}

function checkU32(what: string, name: string, x: number): void {
  if (!isU32(x)) throw new IommuError('EINVAL', `iotlb ${what}: ${name} ${x} is not a uint32`);
}

/** Validate a domain id, PASID and page size; returns the size class. */
function checkTag(what: string, domainId: number, pasid: number, pgsize: number): number {
  checkU32(what, 'domainId', domainId);
  checkU32(what, 'pasid', pasid);
  const c = classOf(pgsize);
  if (c < 0) throw new IommuError('EINVAL', `iotlb ${what}: page size ${pgsize} is not a power of two in [2^12, 2^57]`);
  return c;
}

function checkPage(name: string, page: number, pgsize: number): void {
  if (!Number.isInteger(page) || page < 0 || page > IOTLB_ADDR_LIMIT - pgsize || !Number.isInteger(page / pgsize)) {
    throw new IommuError('EINVAL', `iotlb insert: ${name} page ${page} is not aligned to ${pgsize} below 2^57`);
  }
}
