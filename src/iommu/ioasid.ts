/**
 * The old IOASID allocator (spec §6.3), as an instance rather than a global,
 * with the ioasid_set / quota / notifier extensions of Jacob Pan's 2020–2021
 * series ("ioasid: Add ioasid_set APIs", "ioasid: Add notifier"), which were
 * never merged.
 *
 * Conventions:
 * - Ids are plain numbers. The id space is `1 … capacity` (default
 *   2^20 - 1 PASIDs, ids 1 … 2^20-1). {@link INVALID_IOASID} is
 *   `(ioasid_t)-1` = 0xFFFFFFFF, the unsigned C value; {@link IoasidAllocator.alloc}
 *   throws an {@link IommuError} where Linux returns INVALID_IOASID, and
 *   {@link IoasidAllocator.allocOrInvalid} returns INVALID_IOASID instead.
 * - A failed call throws and leaves no partial state.
 * - "The allocator's lock" (Linux: `ioasid_allocator_lock`, a spinlock) is
 *   held while notifier callbacks and custom allocator ops run: any call back
 *   into the same allocator from there throws `IommuError('EDEADLK')` (Linux
 *   would deadlock) before changing anything.
 *
 * Storage: a bitmap ({@link Ida}) for used ids, `Int32Array` id → set index and
 * `Uint32Array` id → refcount, private data in a sparse `Map` only for ids
 * that have some. No per-id objects.
 *
 * Linux: drivers/iommu/ioasid.c, include/linux/ioasid.h (v5.5 – v6.3;
 * ioasid_get/ioasid_put refcounts v5.11 – v5.17), read at the v5.10/v5.11
 * layout plus the set/notifier series revisions (ioasid_set_alloc with
 * `type`, ioasid_get_locked, ioasid_notify with IOASID_NOTIFY_FLAG_ALL/SET).
 */
import { IommuError } from '../base/errno.js';
import { Ida } from '../base/ida.js';
import { NOTIFY_DONE, notifierIsStop } from '../base/notifier.js';

/** `(ioasid_t)-1`, returned by Linux on allocation failure. Linux: INVALID_IOASID, include/linux/ioasid.h. */
export const INVALID_IOASID = 0xffffffff;

/** Default system capacity: 2^20 - 1 PASIDs (ids 1 … 2^20-1), the 20-bit PCIe PASID space without PASID 0. Linux: PCI_PASID_MAX (series). */
export const IOASID_DEFAULT_CAPACITY = 0xfffff;

/** Largest capacity this model accepts (ids are stored in typed arrays of capacity + 1 entries). */
export const IOASID_MAX_CAPACITY = 1 << 24;

/** Set whose token is NULL. Linux: IOASID_SET_TYPE_NULL (series, enum ioasid_set_type). */
export const IOASID_SET_TYPE_NULL = 1;
/** Set whose token is an mm (here: any non-null object); tokens are unique among MM sets. Linux: IOASID_SET_TYPE_MM (series). */
export const IOASID_SET_TYPE_MM = 2;
/** Set type. Linux: enum ioasid_set_type (series). */
export type IoasidSetType = typeof IOASID_SET_TYPE_NULL | typeof IOASID_SET_TYPE_MM;

/** An IOASID is being freed (sent by free, freeSet and put-to-zero). Linux: IOASID_NOTIFY_FREE (series, enum ioasid_notify_val). */
export const IOASID_NOTIFY_FREE = 2;
/** A guest PASID was bound (sent by publishers via notify). Linux: IOASID_NOTIFY_BIND (series). */
export const IOASID_NOTIFY_BIND = 3;
/** A guest PASID was unbound (sent by publishers via notify). Linux: IOASID_NOTIFY_UNBIND (series). */
export const IOASID_NOTIFY_UNBIND = 4;
/** A notification command. There is no ALLOC event (as the seed thread settled). Linux: enum ioasid_notify_val (series). */
export type IoasidNotifyCmd = typeof IOASID_NOTIFY_FREE | typeof IOASID_NOTIFY_BIND | typeof IOASID_NOTIFY_UNBIND;

/** Deliver on the global chain. Linux: IOASID_NOTIFY_FLAG_ALL (series). */
export const IOASID_NOTIFY_FLAG_ALL = 1;
/** Deliver on the id's set chain. Linux: IOASID_NOTIFY_FLAG_SET (series). */
export const IOASID_NOTIFY_FLAG_SET = 2;

/** Notifier priorities, higher first; on FREE the CPU side is torn down first. Linux: enum ioasid_notifier_prios (series). */
export const IOASID_PRIO_LAST = 0;
/** Linux: IOASID_PRIO_DEVICE (series). */
export const IOASID_PRIO_DEVICE = 1;
/** Linux: IOASID_PRIO_IOMMU (series). */
export const IOASID_PRIO_IOMMU = 2;
/** Linux: IOASID_PRIO_CPU (series). */
export const IOASID_PRIO_CPU = 3;

/**
 * What a subscriber receives: everything it needs, no lookup required.
 * Linux: struct ioasid_nb_args {id, spid, set, pdata} (series; earliest
 * revision `{id, sid, set_token, pdata}`), plus the command.
 */
export interface IoasidNotifyArgs {
  /** The IOASID. */
  readonly id: number;
  /** Id of its set ({@link IoasidSet.id}). */
  readonly setId: number;
  /** Token of its set (null for a NULL-type set). */
  readonly setToken: object | null;
  /** Private data attached to the id (null if none). */
  readonly pdata: unknown;
  /** The event. */
  readonly cmd: IoasidNotifyCmd;
}

/**
 * A subscriber. Returns a NOTIFY_* status (void = NOTIFY_DONE); a value with
 * NOTIFY_STOP_MASK ends the walk of that chain. Linux: notifier_block.notifier_call.
 */
export type IoasidNotifierCallback = (args: IoasidNotifyArgs) => number | void;

/**
 * A custom allocator. `alloc` returns an id in `[min, max]` or
 * {@link INVALID_IOASID}; `free` releases an id it returned. Both run under the
 * allocator's lock (calling back into the allocator throws EDEADLK).
 * Linux: struct ioasid_allocator_ops {alloc, free, list, pdata}, include/linux/ioasid.h.
 */
export interface IoasidAllocatorOps {
  alloc(min: number, max: number, pdata: unknown): number;
  free(id: number, pdata: unknown): void;
  readonly pdata?: unknown;
}

interface Block {
  readonly cb: IoasidNotifierCallback;
  readonly priority: number;
}

/** Custom allocators sharing the same alloc/free functions share one id space. Linux: struct ioasid_allocator_data. */
interface AllocatorData {
  readonly alloc: IoasidAllocatorOps['alloc'];
  readonly free: IoasidAllocatorOps['free'];
  /** Registered ops using these functions, in registration order (Linux: slist). */
  readonly slist: IoasidAllocatorOps[];
}

/**
 * An IOASID set: a quota of ids reserved from the system capacity, an owner
 * token and a notifier chain. Created by {@link IoasidAllocator.allocSet}.
 * Linux: struct ioasid_set {nh, xa, token, type, quota, nr_ioasids, id} (series).
 */
export class IoasidSet {
  /** @internal number of ids allocated in the set (Linux: nr_ioasids). */
  nr = 0;
  /** @internal the set's notifier chain (Linux: ioasid_set.nh). */
  readonly chain: Block[] = [];

  /** @internal use {@link IoasidAllocator.allocSet}. */
  constructor(
    /** Set id, smallest free from 0 (Linux: ioasid_set.id, xa_alloc on ioasid_sets). */
    readonly id: number,
    /** Owner token (Linux: ioasid_set.token), null for a NULL-type set. */
    readonly token: object | null,
    /** Maximum number of ids in the set (Linux: ioasid_set.quota). */
    readonly quota: number,
    /** Linux: ioasid_set.type. */
    readonly type: IoasidSetType,
  ) {}

  /** Number of ids currently allocated in the set. Linux: ioasid_set.nr_ioasids. */
  get count(): number {
    return this.nr;
  }
}

/** Options of {@link IoasidAllocator}. */
export interface IoasidAllocatorOptions {
  /** System capacity in ids (ids 1 … capacity); default {@link IOASID_DEFAULT_CAPACITY}. */
  capacity?: number;
  /**
   * Called with whatever a notifier callback throws; delivery continues with
   * the next subscriber and the operation completes (Linux notifier callbacks
   * cannot fail the caller). Default: ignore.
   */
  onNotifierError?: (err: unknown, args: IoasidNotifyArgs) => void;
}

function checkCapacity(n: number, fn: string): void {
  if (!Number.isInteger(n) || n < 1 || n > IOASID_MAX_CAPACITY) {
    throw new IommuError('EINVAL', `${fn}: capacity ${n} must be an integer in [1, ${IOASID_MAX_CAPACITY}]`);
  }
}

function addBlock(chain: Block[], cb: IoasidNotifierCallback, priority: number, fn: string): void {
  if (typeof cb !== 'function') throw new IommuError('EINVAL', `${fn}: callback is not a function`);
  if (!Number.isInteger(priority)) throw new IommuError('EINVAL', `${fn}: priority ${priority} must be an integer`);
  if (chain.some((b) => b.cb === cb)) throw new IommuError('EEXIST', `${fn}: callback already registered`);
  let i = 0;
  while (i < chain.length && chain[i]!.priority >= priority) i++;
  chain.splice(i, 0, { cb, priority });
}

function removeBlock(chain: Block[], cb: IoasidNotifierCallback, fn: string): void {
  const i = chain.findIndex((b) => b.cb === cb);
  if (i < 0) throw new IommuError('ENOENT', `${fn}: callback not registered`);
  chain.splice(i, 1);
}

/**
 * An IOASID allocator instance: sets with quotas, ids, refcounts, private
 * data, custom allocators and FREE/BIND/UNBIND notifications.
 * Linux: drivers/iommu/ioasid.c (v5.5 – v6.3) + the ioasid_set/notifier series.
 */
export class IoasidAllocator {
  private cap: number;
  private capAvail: number;
  private capacityInstalled = false;
  /** Used ids of the active allocator (default or custom). */
  private readonly ids = new Ida();
  /** id → set id + 1 (0: free). */
  private setOfId: Int32Array;
  /** id → refcount. */
  private refs: Uint32Array;
  private readonly pdata = new Map<number, unknown>();
  private readonly sets = new Map<number, IoasidSet>();
  private readonly setIds = new Ida();
  private readonly globalChain: Block[] = [];
  /** Registered custom allocators, in registration order; the first is active. */
  private readonly allocators: AllocatorData[] = [];
  private locked = false;
  private readonly onNotifierError: (err: unknown, args: IoasidNotifyArgs) => void;

  /**
   * @param opts.capacity system capacity in ids (default 2^20 - 1: ids 1 … 2^20-1).
   * @throws IommuError EINVAL for a capacity that is not an integer in [1, 2^24].
   * Linux: the static ioasid_capacity / ioasid_capacity_avail (series; default PCI_PASID_MAX).
   */
  constructor(opts: IoasidAllocatorOptions = {}) {
    const cap = opts.capacity ?? IOASID_DEFAULT_CAPACITY;
    checkCapacity(cap, 'IoasidAllocator');
    this.cap = cap;
    this.capAvail = cap;
    this.setOfId = new Int32Array(cap + 1);
    this.refs = new Uint32Array(cap + 1);
    this.onNotifierError = opts.onNotifierError ?? (() => {});
  }

  // ---------------------------------------------------------------- capacity

  /**
   * Set the system capacity (ids 1 … total), once, before any set exists.
   * @param total number of ids.
   * @throws IommuError EINVAL for a total that is not an integer in [1, 2^24];
   *   EBUSY if a capacity was already installed (Linux pr_warn "IOASID
   *   capacity is already set." and ignores the call) or if any set exists
   *   (quota has been reserved from the old capacity).
   * Linux: ioasid_install_capacity() (series).
   */
  installCapacity(total: number): void {
    this.enter('ioasid_install_capacity');
    checkCapacity(total, 'ioasid_install_capacity');
    if (this.capacityInstalled) throw new IommuError('EBUSY', 'ioasid_install_capacity: IOASID capacity is already set');
    if (this.sets.size > 0 || this.ids.count > 0) throw new IommuError('EBUSY', 'ioasid_install_capacity: IOASID sets exist');
    this.setOfId = new Int32Array(total + 1);
    this.refs = new Uint32Array(total + 1);
    this.cap = total;
    this.capAvail = total;
    this.capacityInstalled = true;
  }

  /** System capacity in ids. Linux: ioasid_get_capacity() (series). */
  get capacity(): number {
    return this.cap;
  }

  /** Capacity not yet reserved by a set's quota. Linux: ioasid_capacity_avail (series). */
  get capacityAvailable(): number {
    return this.capAvail;
  }

  /** Number of ids currently allocated (all sets). */
  get count(): number {
    return this.ids.count;
  }

  // -------------------------------------------------------------------- sets

  /**
   * Create a set and reserve `quota` ids of the system capacity for it.
   * @param token owner token; null only with type NULL. Defaults the type to
   *   MM for an object token, NULL for null.
   * @param quota ids reserved (0: everything still available, as the series).
   * @throws IommuError EINVAL for a quota that is not an integer in
   *   [0, 2^32-1], an unknown type, a null token with type MM or a token with
   *   type NULL; ENOSPC if quota exceeds the available capacity (or nothing is
   *   available for quota 0); EEXIST if an MM set with the same token exists.
   * Linux: ioasid_set_alloc(token, quota, type) (series; earlier
   * ioasid_alloc_set(token, quota, &sid)).
   */
  allocSet(token: object | null, quota: number, type?: IoasidSetType): IoasidSet {
    this.enter('ioasid_set_alloc');
    const t = type ?? (token === null ? IOASID_SET_TYPE_NULL : IOASID_SET_TYPE_MM);
    if (!Number.isInteger(quota) || quota < 0 || quota > 0xffffffff) {
      throw new IommuError('EINVAL', `ioasid_set_alloc: bad quota ${quota}`);
    }
    if (t !== IOASID_SET_TYPE_NULL && t !== IOASID_SET_TYPE_MM) throw new IommuError('EINVAL', `ioasid_set_alloc: bad set type ${String(type)}`);
    if (token !== null && typeof token !== 'object' && typeof token !== 'function') {
      throw new IommuError('EINVAL', 'ioasid_set_alloc: token must be an object or null');
    }
    const q = quota === 0 ? this.capAvail : quota;
    if (q === 0 || q > this.capAvail) {
      throw new IommuError('ENOSPC', `ioasid_set_alloc: out of IOASID capacity, ask ${q}, avail ${this.capAvail}`);
    }
    if (t === IOASID_SET_TYPE_MM) {
      if (token === null) throw new IommuError('EINVAL', 'ioasid_set_alloc: an MM set needs a token');
      for (const s of this.sets.values()) {
        if (s.type === IOASID_SET_TYPE_MM && s.token === token) throw new IommuError('EEXIST', 'ioasid_set_alloc: IOASID set exists for this token');
      }
    } else if (token !== null) {
      throw new IommuError('EINVAL', 'ioasid_set_alloc: invalid token and IOASID type');
    }
    const id = this.setIds.alloc(0);
    const set = new IoasidSet(id, token, q, t);
    this.sets.set(id, set);
    this.capAvail -= q;
    return set;
  }

  /**
   * Free every id of the set (each one sends FREE to the global subscribers
   * and the set's subscribers, in ascending id order), then the set; its
   * quota returns to the system and its subscribers are dropped.
   * @throws IommuError EINVAL if `set` is not a live set of this allocator.
   * Linux: ioasid_set_free() / ioasid_free_all_in_set() (series; earlier ioasid_free_set(sid, destroy)).
   */
  freeSet(set: IoasidSet): void {
    this.enter('ioasid_set_free');
    this.checkSet(set, 'ioasid_set_free');
    const tag = set.id + 1;
    const setOfId = this.setOfId;
    for (let id = 1; id <= this.cap && set.nr > 0; id++) {
      if (setOfId[id] === tag) this.freeLocked(set, id);
    }
    this.sets.delete(set.id);
    this.setIds.free(set.id);
    set.chain.length = 0;
    this.capAvail += set.quota;
  }

  /** The live set with this set id, or undefined. Linux: xa_load(&ioasid_sets, id). */
  getSet(setId: number): IoasidSet | undefined {
    return this.sets.get(setId);
  }

  // --------------------------------------------------------------------- ids

  /**
   * Allocate an id in `[min, max]` ∩ `[1, capacity]` for `set`: the lowest
   * free one with the default allocator, whatever the active custom
   * allocator returns otherwise. The id starts with refcount 1.
   * @param pdata private data (kept only if not undefined/null).
   * @returns the id.
   * @throws IommuError EINVAL for a bad set or non-integer / reversed range;
   *   ENOSPC when the set's quota is used up, when no id is free in the range
   *   (system capacity exhausted), or when a custom allocator returns
   *   INVALID_IOASID / an id outside the range / an id already in use (it is
   *   then freed back to that allocator); EDEADLK from a callback.
   * Linux: ioasid_alloc(set, min, max, private), drivers/iommu/ioasid.c.
   */
  alloc(set: IoasidSet, min: number, max: number, pdata?: unknown): number {
    this.enter('ioasid_alloc');
    this.checkSet(set, 'ioasid_alloc');
    if (!Number.isInteger(min) || !Number.isInteger(max) || min > max) {
      throw new IommuError('EINVAL', `ioasid_alloc: bad range [${min}, ${max}]`);
    }
    if (set.nr >= set.quota) throw new IommuError('ENOSPC', `ioasid_alloc: IOASID set ${set.id} out of quota ${set.quota}`);
    const lo = min < 1 ? 1 : min;
    const hi = max > this.cap ? this.cap : max;
    if (lo > hi) throw new IommuError('ENOSPC', `ioasid_alloc: no IOASID in [${min}, ${max}] (capacity ${this.cap})`);
    let id: number;
    const a = this.allocators[0];
    if (a === undefined) {
      id = this.ids.alloc(lo, hi); // ENOSPC when full
    } else {
      id = this.customAlloc(a, lo, hi);
    }
    this.setOfId[id] = set.id + 1;
    this.refs[id] = 1;
    if (pdata !== undefined && pdata !== null) this.pdata.set(id, pdata);
    set.nr++;
    return id;
  }

  /**
   * As {@link alloc}, but returns {@link INVALID_IOASID} (0xFFFFFFFF) where
   * alloc throws ENOSPC/EINVAL, like the C function. EDEADLK still throws.
   * Linux: ioasid_alloc().
   */
  allocOrInvalid(set: IoasidSet, min: number, max: number, pdata?: unknown): number {
    try {
      return this.alloc(set, min, max, pdata);
    } catch (e) {
      if (e instanceof IommuError && e.errno !== 'EDEADLK') return INVALID_IOASID;
      throw e;
    }
  }

  /**
   * Free an id now, whatever its refcount (the v5.5–v5.10 / v5.18–v6.3 shape),
   * after sending FREE to the global subscribers and the set's subscribers.
   * @param set owner check if non-null.
   * @throws IommuError EINVAL for an unknown id (Linux pr_err "Trying to free
   *   unknown IOASID"); EACCES if `set` is non-null and the id belongs to
   *   another set; EDEADLK from a callback.
   * Linux: ioasid_free(set, ioasid) (series), ioasid_free(ioasid) (mainline).
   */
  free(set: IoasidSet | null, id: number): void {
    this.enter('ioasid_free');
    const owner = this.lookup(set, id, 'ioasid_free', 'EINVAL');
    this.freeLocked(owner, id);
  }

  /**
   * Take a reference on an id.
   * @throws IommuError EINVAL for an unknown id; EACCES if `set` is non-null
   *   and the id belongs to another set; EOVERFLOW at 2^32-1 references; EDEADLK.
   * Linux: ioasid_get(set, ioasid) / ioasid_get_locked() (series; v5.11–v5.17 mainline ioasid_get(ioasid)).
   */
  get(set: IoasidSet | null, id: number): void {
    this.enter('ioasid_get');
    this.lookup(set, id, 'ioasid_get', 'EINVAL');
    if (this.refs[id] === 0xffffffff) throw new IommuError('EOVERFLOW', `ioasid_get: refcount of IOASID ${id} saturated`);
    this.refs[id] = this.refs[id]! + 1;
  }

  /**
   * Drop a reference; at zero the id is freed (FREE sent first).
   * @returns true if the id was freed.
   * @throws IommuError EINVAL for an unknown id (Linux pr_err and returns
   *   false); EACCES if `set` is non-null and the id belongs to another set; EDEADLK.
   * Linux: ioasid_put(set, ioasid) → bool (series; v5.11–v5.17 mainline ioasid_put(ioasid)).
   */
  put(set: IoasidSet | null, id: number): boolean {
    this.enter('ioasid_put');
    const owner = this.lookup(set, id, 'ioasid_put', 'EINVAL');
    const r = this.refs[id]! - 1;
    if (r > 0) {
      this.refs[id] = r;
      return false;
    }
    this.freeLocked(owner, id);
    return true;
  }

  /**
   * Look up an id's private data.
   * @param set owner check if non-null.
   * @param getter validates the private data; returning false makes the result null.
   * @returns the private data, or null (none, or rejected by getter).
   * @throws IommuError ENOENT for an unknown id; EACCES if `set` is non-null
   *   and the id belongs to another set; EDEADLK from a callback.
   * Linux: ioasid_find(set, ioasid, getter) → ERR_PTR(-ENOENT / -EACCES).
   */
  find(set: IoasidSet | null, id: number, getter?: (pdata: unknown) => boolean): unknown {
    this.enter('ioasid_find');
    this.lookup(set, id, 'ioasid_find', 'ENOENT');
    const p = this.pdata.get(id) ?? null;
    if (getter !== undefined && !getter(p)) return null;
    return p;
  }

  /**
   * Attach (replace) the private data of an id; undefined/null detaches it.
   * @throws IommuError ENOENT for an unknown id; EDEADLK from a callback.
   * Linux: ioasid_attach_data() (v5.10+; ioasid_set_data() before), ioasid_detach_data().
   */
  attachData(id: number, data: unknown): void {
    this.enter('ioasid_attach_data');
    if (!this.ids.has(id) || id > this.cap) throw new IommuError('ENOENT', `ioasid_attach_data: IOASID ${id} not allocated`);
    if (data === undefined || data === null) this.pdata.delete(id);
    else this.pdata.set(id, data);
  }

  /** True if `id` is allocated. Pure query (no lock). */
  has(id: number): boolean {
    return id >= 1 && id <= this.cap && this.ids.has(id);
  }

  /** The set an allocated id belongs to, or undefined. Pure query. Linux: ioasid_find_set() (series). */
  setOf(id: number): IoasidSet | undefined {
    if (!this.has(id)) return undefined;
    return this.sets.get(this.setOfId[id]! - 1);
  }

  /** Refcount of an id (0 if not allocated). Pure query. */
  refcount(id: number): number {
    return this.has(id) ? this.refs[id]! : 0;
  }

  // ------------------------------------------------------- custom allocators

  /**
   * Register a custom allocator. The first one becomes active only if the
   * default allocator holds no ids; ops with the same alloc/free functions as
   * a registered one share its id space; other ones wait in registration order.
   * @throws IommuError EAGAIN if this would be the first custom allocator and
   *   the default allocator holds ids; EEXIST if `ops` is already registered;
   *   EINVAL if alloc/free are not functions; EDEADLK from a callback.
   * Linux: ioasid_register_allocator() (v5.5+).
   */
  registerAllocator(ops: IoasidAllocatorOps): void {
    this.enter('ioasid_register_allocator');
    if (typeof ops?.alloc !== 'function' || typeof ops.free !== 'function') {
      throw new IommuError('EINVAL', 'ioasid_register_allocator: ops need alloc and free functions');
    }
    if (this.allocators.length === 0) {
      if (this.ids.count > 0) throw new IommuError('EAGAIN', 'ioasid_register_allocator: default allocator active with outstanding IOASID');
      this.allocators.push({ alloc: ops.alloc, free: ops.free, slist: [ops] });
      return;
    }
    for (const a of this.allocators) {
      if (a.slist.includes(ops)) throw new IommuError('EEXIST', 'ioasid_register_allocator: IOASID allocator already registered');
    }
    const shared = this.allocators.find((a) => a.alloc === ops.alloc && a.free === ops.free);
    if (shared !== undefined) shared.slist.push(ops);
    else this.allocators.push({ alloc: ops.alloc, free: ops.free, slist: [ops] });
  }

  /**
   * Unregister a custom allocator. When it was the last user of its
   * functions, that allocator goes and the next registered one (or the
   * default) becomes active.
   * @throws IommuError ENOENT if `ops` is not registered (Linux pr_warn);
   *   EBUSY if it is the last user of the active allocator while ids are
   *   outstanding (Linux WARNs and orphans them; we refuse); EDEADLK from a callback.
   * Linux: ioasid_unregister_allocator() (v5.5+).
   */
  unregisterAllocator(ops: IoasidAllocatorOps): void {
    this.enter('ioasid_unregister_allocator');
    const ai = this.allocators.findIndex((a) => a.slist.includes(ops));
    if (ai < 0) throw new IommuError('ENOENT', 'ioasid_unregister_allocator: allocator not registered');
    const a = this.allocators[ai]!;
    if (a.slist.length === 1) {
      if (ai === 0 && this.ids.count > 0) {
        throw new IommuError('EBUSY', `ioasid_unregister_allocator: ${this.ids.count} IOASIDs outstanding in the active allocator`);
      }
      this.allocators.splice(ai, 1);
    } else {
      a.slist.splice(a.slist.indexOf(ops), 1);
    }
  }

  /** The ops whose functions are active now (first registered user), or null for the default allocator. */
  get activeAllocator(): IoasidAllocatorOps | null {
    return this.allocators[0]?.slist[0] ?? null;
  }

  // ---------------------------------------------------------------- notifiers

  /**
   * Subscribe to every set's events (FREE, BIND, UNBIND).
   * @param priority higher first (IOASID_PRIO_*); equal priorities in registration order.
   * @throws IommuError EEXIST if already subscribed; EINVAL for a non-function
   *   or non-integer priority; EDEADLK from a callback.
   * Linux: ioasid_register_notifier(NULL, nb) (series).
   */
  registerNotifier(cb: IoasidNotifierCallback, priority = 0): void {
    this.enter('ioasid_register_notifier');
    addBlock(this.globalChain, cb, priority, 'ioasid_register_notifier');
  }

  /**
   * Unsubscribe a global subscriber; it is never called again.
   * @throws IommuError ENOENT if not subscribed; EDEADLK from a callback.
   * Linux: ioasid_unregister_notifier(NULL, nb) (series).
   */
  unregisterNotifier(cb: IoasidNotifierCallback): void {
    this.enter('ioasid_unregister_notifier');
    removeBlock(this.globalChain, cb, 'ioasid_unregister_notifier');
  }

  /**
   * Subscribe to one set's events only. Dropped when the set is freed.
   * @throws IommuError EINVAL for a set that is not live; EEXIST if already
   *   subscribed to that set; EDEADLK from a callback.
   * Linux: ioasid_register_notifier(set, nb) / ioasid_register_notifier_mm(mm, nb) (series).
   */
  registerSetNotifier(set: IoasidSet, cb: IoasidNotifierCallback, priority = 0): void {
    this.enter('ioasid_register_notifier');
    this.checkSet(set, 'ioasid_register_notifier');
    addBlock(set.chain, cb, priority, 'ioasid_register_notifier');
  }

  /**
   * Unsubscribe from a set.
   * @throws IommuError EINVAL for a set that is not live; ENOENT if not
   *   subscribed; EDEADLK from a callback.
   * Linux: ioasid_unregister_notifier(set, nb) / ioasid_unregister_notifier_mm() (series).
   */
  unregisterSetNotifier(set: IoasidSet, cb: IoasidNotifierCallback): void {
    this.enter('ioasid_unregister_notifier');
    this.checkSet(set, 'ioasid_unregister_notifier');
    removeBlock(set.chain, cb, 'ioasid_unregister_notifier');
  }

  /**
   * Publish an event for an allocated id: global subscribers first, then the
   * id's set subscribers (per `flags`), each with {id, setId, setToken, pdata, cmd}.
   * @param flags IOASID_NOTIFY_FLAG_ALL | IOASID_NOTIFY_FLAG_SET (default both).
   * @returns the last NOTIFY_* status returned.
   * @throws IommuError EINVAL for an unknown id, an unknown cmd or bad flags;
   *   EDEADLK from a callback.
   * Linux: ioasid_notify(ioasid, cmd, flags) (series).
   */
  notify(id: number, cmd: IoasidNotifyCmd, flags = IOASID_NOTIFY_FLAG_ALL | IOASID_NOTIFY_FLAG_SET): number {
    this.enter('ioasid_notify');
    if (cmd !== IOASID_NOTIFY_FREE && cmd !== IOASID_NOTIFY_BIND && cmd !== IOASID_NOTIFY_UNBIND) {
      throw new IommuError('EINVAL', `ioasid_notify: unknown command ${String(cmd)} (FREE=2, BIND=3, UNBIND=4)`);
    }
    if (!Number.isInteger(flags) || flags <= 0 || (flags & ~3) !== 0) throw new IommuError('EINVAL', `ioasid_notify: bad flags ${flags}`);
    if (!this.has(id)) throw new IommuError('EINVAL', `ioasid_notify: IOASID ${id} is not allocated, nothing to notify`);
    const set = this.sets.get(this.setOfId[id]! - 1)!;
    return this.deliver(set, id, cmd, flags);
  }

  // ----------------------------------------------------------------- private

  /** Refuse calls made while the lock is held (from a callback). */
  private enter(fn: string): void {
    if (this.locked) throw new IommuError('EDEADLK', `${fn}: called with ioasid_allocator_lock held (from a notifier or allocator callback)`);
  }

  private checkSet(set: IoasidSet, fn: string): void {
    if (!(set instanceof IoasidSet) || this.sets.get(set.id) !== set) {
      throw new IommuError('EINVAL', `${fn}: not a live IOASID set of this allocator`);
    }
  }

  /** The owner of an allocated id, with the set ownership check. */
  private lookup(set: IoasidSet | null, id: number, fn: string, unknown: 'EINVAL' | 'ENOENT'): IoasidSet {
    if (!this.has(id)) throw new IommuError(unknown, `${fn}: unknown IOASID ${id}`);
    const owner = this.sets.get(this.setOfId[id]! - 1)!;
    if (set !== null && set !== owner) throw new IommuError('EACCES', `${fn}: IOASID ${id} does not belong to the set`);
    return owner;
  }

  private customAlloc(a: AllocatorData, lo: number, hi: number): number {
    const ops = a.slist[0]!;
    let id: number;
    this.locked = true;
    try {
      id = a.alloc.call(ops, lo, hi, ops.pdata);
    } finally {
      this.locked = false;
    }
    if (id === INVALID_IOASID || !Number.isInteger(id)) {
      throw new IommuError('ENOSPC', `ioasid_alloc: custom allocator failed in [${lo}, ${hi}]`);
    }
    if (id < lo || id > hi || this.ids.has(id)) {
      this.locked = true;
      try {
        a.free.call(ops, id, ops.pdata);
      } finally {
        this.locked = false;
      }
      throw new IommuError('ENOSPC', `ioasid_alloc: custom allocator returned unusable IOASID ${id}`);
    }
    return this.ids.alloc(id, id);
  }

  /** FREE to subscribers, then release the id. */
  private freeLocked(set: IoasidSet, id: number): void {
    if (this.globalChain.length > 0 || set.chain.length > 0) {
      this.deliver(set, id, IOASID_NOTIFY_FREE, IOASID_NOTIFY_FLAG_ALL | IOASID_NOTIFY_FLAG_SET);
    }
    const a = this.allocators[0];
    if (a !== undefined) {
      const ops = a.slist[0]!;
      this.locked = true;
      try {
        a.free.call(ops, id, ops.pdata);
      } catch {
        // Linux's free op returns void; a throwing op cannot stop the free.
      } finally {
        this.locked = false;
      }
    }
    this.ids.free(id);
    this.setOfId[id] = 0;
    this.refs[id] = 0;
    if (this.pdata.size > 0) this.pdata.delete(id);
    set.nr--;
  }

  private deliver(set: IoasidSet, id: number, cmd: IoasidNotifyCmd, flags: number): number {
    const args: IoasidNotifyArgs = { id, setId: set.id, setToken: set.token, pdata: this.pdata.get(id) ?? null, cmd };
    let ret = NOTIFY_DONE;
    this.locked = true;
    try {
      if (flags & IOASID_NOTIFY_FLAG_ALL) ret = this.walk(this.globalChain, args);
      if (flags & IOASID_NOTIFY_FLAG_SET) ret = this.walk(set.chain, args);
    } finally {
      this.locked = false;
    }
    return ret;
  }

  private walk(chain: readonly Block[], args: IoasidNotifyArgs): number {
    let ret = NOTIFY_DONE;
    for (const b of chain) {
      try {
        ret = b.cb(args) ?? NOTIFY_DONE;
      } catch (e) {
        ret = NOTIFY_DONE;
        try {
          this.onNotifierError(e, args);
        } catch {
          // ignore
        }
      }
      if (notifierIsStop(ret)) break;
    }
    return ret;
  }
}
