/**
 * IOMMU groups: the smallest sets of devices an IOMMU can isolate from each
 * other, with their reference counts, member lists, names, driver cookies,
 * notifier chains (v3.5 – v5.18) and merged reserved regions.
 *
 * {@link IommuGroups} is one machine's registry of live groups (Linux's
 * `iommu_groups` kset plus `iommu_group_ida`): an instance, not a global, so
 * machines and tests are isolated. {@link IommuGroup} is one group.
 *
 * Group lock. Linux holds `group->mutex` across every callback of
 * iommu_group_for_each_dev(). The model keeps that lock as a depth counter:
 * while a callback of {@link IommuGroup.forEachDev} (or of the reserved-region
 * provider, which Linux also calls under the mutex) runs, any call that would
 * change THAT group — add/remove a device, set its name or iommudata, drop its
 * last reference, (un)register a notifier, iterate it again, read its reserved
 * regions — throws `IommuError('EDEADLK')` and changes nothing. Reading the
 * group (id, name, devices, iommudata), taking and dropping non-last
 * references, and reading or changing OTHER groups are allowed.
 *
 * Errors: the one convention of {@link IommuError}; a failed call leaves no
 * partial state. Using a group after its last reference was dropped (a
 * use-after-free in Linux) throws EINVAL; so does passing a group or device
 * that belongs to another registry.
 *
 * Linux: struct iommu_group, iommu_group_alloc(), iommu_group_get(),
 * iommu_group_ref_get(), iommu_group_put(), iommu_group_release(),
 * iommu_group_add_device(), iommu_group_remove_device(),
 * iommu_group_for_each_dev(), iommu_group_id(), iommu_group_set_name(),
 * iommu_group_{get,set}_iommudata(), iommu_group_get_by_id() (v3.5 – v6.3),
 * iommu_group_{register,unregister}_notifier() (v3.5 – v5.18),
 * iommu_get_group_resv_regions(), drivers/iommu/iommu.c.
 */
import { IommuError } from '../base/errno.js';
import { Ida } from '../base/ida.js';
import { BlockingNotifierHead, NOTIFY_DONE, type NotifierCallback } from '../base/notifier.js';
import type { BusNotifyEvent, BusType } from '../device/bus.js';
import type { Device, DeviceIommuGroupRef } from '../device/device.js';
import type { IommuDomainRef } from './domain-type.js';
import { groupNotifyFromBus, IommuGroupNotify, type IommuGroupNotifyEvent } from './group-notify.js';
import { allocResvRegion, groupResvRegions, type IommuResvRegion } from './resv-region.js';

/**
 * A member of a group: the device and the name of its link under
 * `/sys/kernel/iommu_groups/<id>/devices/` (the device name, or
 * `<name>.0`, `<name>.1`, … when that name was taken).
 * Linux: struct group_device {dev, name}, drivers/iommu/iommu.c.
 */
export interface IommuGroupDevice {
  readonly dev: Device;
  readonly name: string;
}

/**
 * A group notifier callback: called with an {@link IommuGroupNotify} event
 * and the device concerned; returns a NOTIFY_* status (ignored by the core).
 * Linux: notifier_block.notifier_call on group->notifier (≤ v5.18).
 */
export type IommuGroupNotifierCallback = NotifierCallback<IommuGroupNotifyEvent, Device>;

/**
 * Per-device reserved regions, the seam for the IOMMU driver's
 * `ops->get_resv_regions(dev, list)`: return the device's regions, `null`
 * if the device has no IOMMU ops (`dev->iommu == NULL`: the group walk stops
 * there), or `undefined` to fall back to what
 * {@link IommuGroups.setDeviceReservedRegions} stored (default `[]`).
 * Called with the group's lock held (it must not change that group).
 * Linux: iommu_get_resv_regions() → ops->get_resv_regions(), drivers/iommu/iommu.c.
 */
export type ResvRegionsProvider = (dev: Device) => readonly IommuResvRegion[] | null | undefined;

/** Options of an {@link IommuGroups} registry. */
export interface IommuGroupsOptions {
  /** The `ops->get_resv_regions` seam; see {@link ResvRegionsProvider}. */
  readonly getResvRegions?: ResvRegionsProvider;
}

/** Internal state of a group (reachable only from this module). */
interface GroupState {
  readonly registry: IommuGroups;
  readonly id: number;
  refcount: number;
  released: boolean;
  readonly devices: IommuGroupDevice[];
  name: string | null;
  iommuData: unknown;
  iommuDataRelease: ((data: unknown) => void) | null;
  lockDepth: number;
  readonly notifier: BlockingNotifierHead<IommuGroupNotifyEvent, Device>;
}

const CREATE = Symbol('IommuGroup.create');
let stateOf: (group: IommuGroup) => GroupState;

/** Throw EINVAL if the group was released. */
function live(s: GroupState, op: string): GroupState {
  if (s.released) throw new IommuError('EINVAL', `${op}: iommu group ${s.id} was released (use after free)`);
  return s;
}

/** Throw EDEADLK if the group's lock is held by a forEachDev / reserved-region walk in progress. */
function unlocked(s: GroupState, op: string, linuxLocks: boolean): GroupState {
  if (s.lockDepth > 0) {
    const why = linuxLocks
      ? 'Linux would deadlock on group->mutex'
      : 'Linux takes no lock here but the group must not change while it is being walked';
    throw new IommuError('EDEADLK', `${op}: iommu group ${s.id} is locked by iommu_group_for_each_dev() (${why})`);
  }
  return s;
}

/**
 * One IOMMU group. Obtained from {@link IommuGroups.alloc} (never constructed
 * directly); freed when its last reference is dropped with
 * {@link IommuGroups.put}. Also serves as the device's `dev.iommuGroup`.
 * Linux: struct iommu_group, drivers/iommu/iommu.c.
 */
export class IommuGroup implements DeviceIommuGroupRef {
  readonly #s: GroupState;

  static {
    stateOf = (g) => g.#s;
  }

  /**
   * The domain currently attached to the group's devices (requester ID), or
   * null. Written only by a domain layer — the ATTACH SEAM: Linux's
   * iommu_attach_group(domain, group) takes group->mutex, fails -EBUSY if the
   * group is not on its default domain (or is DMA-owned), attaches every
   * member (all or nothing, reverting on failure) and then sets this field;
   * iommu_detach_group() returns it to the default (or blocking) domain.
   * Write it only outside forEachDev callbacks of this group.
   * Linux: iommu_group::domain.
   */
  domain: IommuDomainRef | null = null;

  /**
   * The group's default domain (what the DMA API uses), or null before the
   * probe path set one up. Written only by a domain layer; its type is what
   * the `type` sysfs file shows. Linux: iommu_group::default_domain.
   */
  defaultDomain: IommuDomainRef | null = null;

  /**
   * The blocking domain used while the group has a DMA owner, allocated on
   * first use. Written only by a domain layer. Linux: iommu_group::blocking_domain.
   */
  blockingDomain: IommuDomainRef | null = null;

  /**
   * The DMA owner cookie (VFIO, iommufd), or null. Written only by the DMA
   * ownership layer. Linux: iommu_group::owner.
   */
  owner: unknown = null;

  /** Count of DMA-API driver bindings or same-owner claims. Linux: iommu_group::owner_cnt. */
  ownerCnt = 0;

  /** Domains attached per PASID (written by the PASID layer). Linux: iommu_group::pasid_array. */
  readonly pasidArray = new Map<number, IommuDomainRef>();

  /** @internal Use {@link IommuGroups.alloc}. @throws IommuError EINVAL when called directly. */
  constructor(token: symbol, registry: IommuGroups, id: number) {
    if (token !== CREATE) throw new IommuError('EINVAL', 'IommuGroup: allocate groups with IommuGroups.alloc()');
    this.#s = {
      registry,
      id,
      refcount: 1,
      released: false,
      devices: [],
      name: null,
      iommuData: undefined,
      iommuDataRelease: null,
      lockDepth: 0,
      notifier: new BlockingNotifierHead<IommuGroupNotifyEvent, Device>(),
    };
  }

  /** The group id: its sysfs directory name, unique among live groups. Linux: iommu_group_id(). */
  get id(): number {
    return this.#s.id;
  }

  /** The name set by {@link setName}, or null (always null once released). Linux: iommu_group::name. */
  get name(): string | null {
    return this.#s.name;
  }

  /** Current reference count (the allocation reference, one per member, and every get/refGet). Linux: the devices_kobj kref. */
  get refcount(): number {
    return this.#s.refcount;
  }

  /** True once the last reference was dropped and the group released. */
  get released(): boolean {
    return this.#s.released;
  }

  /** A snapshot of the members in insertion order, with their link names. Linux: iommu_group::devices. */
  get devices(): readonly IommuGroupDevice[] {
    return [...this.#s.devices];
  }

  /** The registry the group belongs to. */
  get registry(): IommuGroups {
    return this.#s.registry;
  }

  /**
   * Set or clear the group's name, shown in a `name` sysfs file (`"<name>\n"`)
   * while set. Linux's exact behaviour:
   * - a name is set: it is removed; if `name` is null, that is all (success);
   * - otherwise `name` is duplicated — a null `name` duplicates to NULL, so
   *   clearing a group that has NO name fails with ENOMEM (test vector 23).
   * @throws IommuError ENOMEM for `null` on an unnamed group; EINVAL if the
   *   group was released; EDEADLK from a forEachDev callback of this group
   *   (Linux takes no lock in iommu_group_set_name(); the model refuses the
   *   unlocked write). The name is unchanged on failure.
   * Linux: iommu_group_set_name(), drivers/iommu/iommu.c.
   */
  setName(name: string | null): void {
    const s = unlocked(live(this.#s, 'iommu_group_set_name'), 'iommu_group_set_name', false);
    if (s.name !== null) {
      s.name = null;
      if (name === null) return;
    }
    if (name === null) throw new IommuError('ENOMEM', `iommu_group_set_name: group ${s.id} has no name to clear (kstrdup(NULL) returns NULL)`);
    s.name = name;
  }

  /**
   * Store an IOMMU-driver cookie and its destructor. `release(data)` is
   * called exactly once, when the group is released, with the data current
   * at that time. Replacing the data does NOT call the old release function
   * (Linux simply overwrites both pointers).
   * @throws IommuError EINVAL if the group was released; EDEADLK from a
   *   forEachDev callback of this group (Linux takes no lock here; the model
   *   refuses the unlocked write).
   * Linux: iommu_group_set_iommudata(), drivers/iommu/iommu.c.
   */
  setIommudata<T>(data: T, release: ((data: T) => void) | null): void {
    const s = unlocked(live(this.#s, 'iommu_group_set_iommudata'), 'iommu_group_set_iommudata', false);
    s.iommuData = data;
    s.iommuDataRelease = release as ((data: unknown) => void) | null;
  }

  /**
   * The cookie stored by {@link setIommudata} (undefined if none).
   * @throws IommuError EINVAL if the group was released.
   * Linux: iommu_group_get_iommudata(), drivers/iommu/iommu.c.
   */
  getIommudata(): unknown {
    return live(this.#s, 'iommu_group_get_iommudata').iommuData;
  }

  /**
   * Call `fn(dev)` for each member in insertion order with the group lock
   * held; the first non-zero return value stops the walk and is returned
   * (0 if every call returned 0/undefined or the group is empty). See the
   * module comment for what a callback may not do (EDEADLK). An exception
   * thrown by `fn` releases the lock and propagates.
   * @throws IommuError EINVAL if the group was released; EDEADLK if called
   *   from a callback walking this same group (Linux: recursive mutex_lock).
   * Linux: iommu_group_for_each_dev(), drivers/iommu/iommu.c.
   */
  forEachDev(fn: (dev: Device) => number | void): number {
    const s = unlocked(live(this.#s, 'iommu_group_for_each_dev'), 'iommu_group_for_each_dev', true);
    s.lockDepth++;
    try {
      for (const d of s.devices) {
        const ret = fn(d.dev) ?? 0;
        if (ret !== 0) return ret;
      }
      return 0;
    } finally {
      s.lockDepth--;
    }
  }

  /**
   * Register a callback on the group's notifier chain ({@link IommuGroupNotify}
   * events; higher `priority` first).
   * @throws IommuError EEXIST if already registered; EBUSY from a callback of
   *   this chain; EINVAL if the group was released; EDEADLK from a forEachDev
   *   callback of this group (Linux uses the chain's own rwsem, not
   *   group->mutex; the model refuses changes to a group being walked).
   * Linux: iommu_group_register_notifier(), drivers/iommu/iommu.c (v3.5 – v5.18).
   */
  registerNotifier(cb: IommuGroupNotifierCallback, priority = 0): void {
    const s = unlocked(live(this.#s, 'iommu_group_register_notifier'), 'iommu_group_register_notifier', false);
    s.notifier.register(cb, priority);
  }

  /**
   * Remove a callback from the group's notifier chain.
   * @throws IommuError ENOENT if not registered; EBUSY from a callback of this
   *   chain; EINVAL if the group was released; EDEADLK from a forEachDev
   *   callback of this group (model choice, as for registerNotifier).
   * Linux: iommu_group_unregister_notifier(), drivers/iommu/iommu.c (v3.5 – v5.18).
   */
  unregisterNotifier(cb: IommuGroupNotifierCallback): void {
    const s = unlocked(live(this.#s, 'iommu_group_unregister_notifier'), 'iommu_group_unregister_notifier', false);
    s.notifier.unregister(cb);
  }
}

/**
 * One machine's IOMMU groups: allocation of ids, reference counting,
 * membership, reserved regions and the v3.5 – v5.18 bus-event relay.
 * Iterating yields the live groups in id order.
 * Linux: the `iommu_groups` kset (/sys/kernel/iommu_groups) and
 * `iommu_group_ida`, drivers/iommu/iommu.c.
 */
export class IommuGroups implements Iterable<IommuGroup> {
  readonly #ida = new Ida();
  readonly #groups = new Map<number, IommuGroup>();
  readonly #resv = new WeakMap<Device, readonly IommuResvRegion[] | null>();
  readonly #provider: ResvRegionsProvider | undefined;
  readonly #busNotifier: NotifierCallback<BusNotifyEvent, Device>;

  /** @param options see {@link IommuGroupsOptions}. */
  constructor(options: IommuGroupsOptions = {}) {
    this.#provider = options.getResvRegions;
    this.#busNotifier = (event, dev) => this.#relay(event, dev);
  }

  /**
   * Allocate a group with the smallest free id (ids are reused after a group
   * is released). The caller holds the one reference it starts with; drop it
   * with {@link put} once devices hold their own. The group gets its sysfs
   * directory with `devices/`, `reserved_regions` and `type` (no `name`).
   * Linux: iommu_group_alloc(), drivers/iommu/iommu.c.
   */
  alloc(): IommuGroup {
    const id = this.#ida.alloc();
    const group = new IommuGroup(CREATE, this, id);
    this.#groups.set(id, group);
    return group;
  }

  /**
   * The device's group with one more reference (drop it with {@link put}),
   * or null if the device is in no group.
   * @throws IommuError EINVAL if the device's group belongs to another registry.
   * Linux: iommu_group_get(), drivers/iommu/iommu.c.
   */
  get(dev: Device): IommuGroup | null {
    const group = this.#groupOf(dev, 'iommu_group_get');
    if (group === null) return null;
    stateOf(group).refcount++;
    return group;
  }

  /**
   * Take one more reference on a group the caller already holds; returns it.
   * @throws IommuError EINVAL if the group was released or belongs to another registry.
   * Linux: iommu_group_ref_get(), drivers/iommu/iommu.c.
   */
  refGet(group: IommuGroup): IommuGroup {
    this.#own(group, 'iommu_group_ref_get').refcount++;
    return group;
  }

  /**
   * Drop one reference (null is a no-op). At zero the group is released:
   * it leaves the registry (and its sysfs view), then its iommudata release
   * function is called (exactly once), then its id is freed, and its name
   * and notifier chain are dropped. If the release function throws, the
   * release still completes and the error propagates.
   * @throws IommuError EINVAL if the group was already released (refcount
   *   underflow) or belongs to another registry; EDEADLK if this would drop
   *   the last reference from a forEachDev callback of the group (it is not
   *   dropped then).
   * Linux: iommu_group_put() → kobject_put() → iommu_group_release(), drivers/iommu/iommu.c.
   */
  put(group: IommuGroup | null): void {
    if (group === null) return;
    const s = this.#own(group, 'iommu_group_put');
    if (s.refcount === 1) unlocked(s, 'iommu_group_put (last reference)', true);
    s.refcount--;
    if (s.refcount > 0) return;
    s.released = true;
    this.#groups.delete(s.id);
    const release = s.iommuDataRelease;
    const data = s.iommuData;
    s.iommuDataRelease = null;
    s.iommuData = undefined;
    s.name = null;
    try {
      if (release) release(data);
    } finally {
      this.#ida.free(s.id);
    }
  }

  /**
   * Add a device to a group. The member holds its own reference (the caller
   * keeps its own and still has to {@link put} it); `dev.iommuGroup` is set;
   * the link `devices/<name>` is named after the device, or `<name>.0`,
   * `<name>.1`, … if that link name is taken in this group; the device gets
   * its `iommu_group` link. Then IOMMU_GROUP_NOTIFY_ADD_DEVICE is sent on the
   * group's chain (v3.5 – v5.18), the device already on the list.
   *
   * A device that is already in a group (this one or another) fails with
   * EEXIST, which is what Linux returns: iommu_group_add_device() has no
   * explicit check, but its first step (iommu_group_alloc_device() in
   * mainline, inline before v6.4) is sysfs_create_link(&dev->kobj,
   * &group->kobj, "iommu_group"), which fails -EEXIST (with a "cannot create
   * duplicate filename" WARN) because the device already has that link; the
   * function unwinds and returns it. (The probe path never gets there:
   * mainline __iommu_probe_device() returns 0 early — success, not an error —
   * for a device whose dev->iommu_group is set: "Device is probed already if
   * in a group".) Linux would also fail -EFAULT for a device not yet in sysfs
   * (not device_add()ed); the model does not require `dev.registered`.
   *
   * @throws IommuError EINVAL if the group was released (a use-after-free in
   *   Linux) or belongs to another registry; EEXIST if the device is already
   *   in a group; EDEADLK from a forEachDev callback of this group (Linux
   *   blocks on group->mutex). Nothing changes on failure. An exception from a
   *   notifier callback propagates after the device was added.
   * Linux: iommu_group_add_device(), iommu_group_alloc_device(), drivers/iommu/iommu.c.
   */
  addDevice(group: IommuGroup, dev: Device): void {
    const s = this.#own(group, 'iommu_group_add_device');
    if (dev.iommuGroup !== null) {
      throw new IommuError(
        'EEXIST',
        `iommu_group_add_device: device ${dev.name} is already in iommu group ${dev.iommuGroup.id} (sysfs_create_link "iommu_group": -EEXIST)`,
      );
    }
    unlocked(s, 'iommu_group_add_device', true);
    let name = dev.name;
    for (let i = 0; s.devices.some((d) => d.name === name); i++) name = `${dev.name}.${i}`;
    s.refcount++;
    dev.iommuGroup = group;
    s.devices.push({ dev, name });
    // ATTACH SEAM (≤ v6.3): here Linux attached group->domain to the new device
    // (unless ops->is_attach_deferred) and unwound the add on failure. Recent
    // kernels attach in the probe path instead. Domains are not modelled here.
    s.notifier.callChain(IommuGroupNotify.ADD_DEVICE, dev);
  }

  /**
   * Remove a device from its group (no-op if it has none): send
   * IOMMU_GROUP_NOTIFY_DEL_DEVICE while it is still on the list (v3.5 –
   * v5.18), take it off the list, remove both sysfs links, clear
   * `dev.iommuGroup` and drop the member's reference (which may release the
   * group). If a DEL_DEVICE callback already removed the device, nothing more
   * happens.
   * @throws IommuError EINVAL if the device's group belongs to another
   *   registry; EDEADLK from a forEachDev callback of the device's group
   *   (nothing is sent or changed).
   * Linux: iommu_group_remove_device(), __iommu_group_remove_device(), drivers/iommu/iommu.c.
   */
  removeDevice(dev: Device): void {
    const group = this.#groupOf(dev, 'iommu_group_remove_device');
    if (group === null) return;
    const s = unlocked(stateOf(group), 'iommu_group_remove_device', true);
    s.notifier.callChain(IommuGroupNotify.DEL_DEVICE, dev);
    const i = s.devices.findIndex((d) => d.dev === dev);
    if (i < 0) return;
    s.devices.splice(i, 1);
    dev.iommuGroup = null;
    this.put(group);
  }

  /**
   * The live group with this id, with one more reference (drop it with
   * {@link put}), or null if there is none.
   * Linux: iommu_group_get_by_id(), drivers/iommu/iommu.c (v3.5 – v6.3; removed in v6.4).
   */
  getById(id: number): IommuGroup | null {
    const group = this.#groups.get(id);
    if (group === undefined) return null;
    stateOf(group).refcount++;
    return group;
  }

  /** Number of live groups (directories under /sys/kernel/iommu_groups). */
  get count(): number {
    return this.#groups.size;
  }

  /** The live groups in increasing id order (no references taken). */
  *[Symbol.iterator](): Iterator<IommuGroup> {
    const ids = [...this.#groups.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const group = this.#groups.get(id);
      if (group !== undefined) yield group;
    }
  }

  /**
   * Record what the IOMMU driver's `ops->get_resv_regions(dev)` returns for a
   * device: its regions (validated and copied), or null for a device without
   * IOMMU ops (`dev->iommu == NULL`), at which the group walk stops. A device
   * never recorded has no regions. A {@link ResvRegionsProvider} given to the
   * constructor takes precedence when it returns non-undefined.
   * @throws IommuError EINVAL for an invalid region (nothing is recorded).
   * Linux: the seam for ops->get_resv_regions(), drivers/iommu/iommu.c.
   */
  setDeviceReservedRegions(dev: Device, regions: readonly IommuResvRegion[] | null): void {
    const copy = regions === null ? null : Object.freeze(regions.map((r) => allocResvRegion(r.start, r.length, r.prot, r.type)));
    this.#resv.set(dev, copy);
  }

  /**
   * The group's merged reserved regions: every member's regions in device
   * order inserted with Linux's sort-and-merge (see groupResvRegions in
   * resv-region.ts), stopping at the first member without IOMMU ops. The
   * provider is called with the group lock held.
   * @returns a new list, sorted by (start, type).
   * @throws IommuError EINVAL if the group was released, belongs to another
   *   registry, or a region is invalid; EDEADLK from a forEachDev callback of
   *   this group (Linux takes group->mutex).
   * Linux: iommu_get_group_resv_regions(), drivers/iommu/iommu.c.
   */
  getGroupResvRegions(group: IommuGroup): IommuResvRegion[] {
    const s = unlocked(this.#own(group, 'iommu_get_group_resv_regions'), 'iommu_get_group_resv_regions', true);
    const lists: (readonly IommuResvRegion[] | null)[] = [];
    s.lockDepth++;
    try {
      for (const { dev } of s.devices) {
        let regions = this.#provider?.(dev);
        if (regions === undefined) regions = this.#resv.has(dev) ? this.#resv.get(dev)! : [];
        lists.push(regions);
        if (regions === null) break;
      }
    } finally {
      s.lockDepth--;
    }
    return groupResvRegions(lists);
  }

  /**
   * Relay a bus's driver-binding events to group notifier chains: on the
   * bus's BIND_DRIVER, BOUND_DRIVER, UNBIND_DRIVER and UNBOUND_DRIVER, if the
   * device is in one of this registry's groups, the group is referenced, the
   * matching IOMMU_GROUP_NOTIFY_* event is sent on its chain with the device,
   * and the reference is dropped. Group callbacks' return values are ignored
   * (they cannot veto a bind; the relay returns NOTIFY_DONE). Other bus events
   * are not relayed (device add/remove belongs to the IOMMU probe path).
   * @throws IommuError EEXIST if this registry already relays `bus`.
   * Linux: iommu_bus_notifier() registered by bus_set_iommu() /
   * iommu_subsys_init(), drivers/iommu/iommu.c (relay part: v3.5 – v5.18).
   */
  relayBusEvents(bus: BusType): void {
    bus.notifier.register(this.#busNotifier);
  }

  /**
   * Stop relaying a bus's events.
   * @throws IommuError ENOENT if this registry does not relay `bus`.
   * Linux: bus_unregister_notifier(), drivers/base/bus.c.
   */
  unrelayBusEvents(bus: BusType): void {
    bus.notifier.unregister(this.#busNotifier);
  }

  #relay(event: BusNotifyEvent, dev: Device): number {
    const groupEvent = groupNotifyFromBus(event);
    if (groupEvent === null) return NOTIFY_DONE;
    const ref = dev.iommuGroup;
    if (!(ref instanceof IommuGroup) || stateOf(ref).registry !== this) return NOTIFY_DONE;
    const group = this.refGet(ref);
    try {
      stateOf(group).notifier.callChain(groupEvent, dev);
    } finally {
      this.put(group);
    }
    return NOTIFY_DONE;
  }

  /** The group's state if it is live and ours. */
  #own(group: IommuGroup, op: string): GroupState {
    const s = stateOf(group);
    if (s.registry !== this) throw new IommuError('EINVAL', `${op}: iommu group ${s.id} belongs to another registry`);
    return live(s, op);
  }

  /** The device's group (no reference taken), null if none. */
  #groupOf(dev: Device, op: string): IommuGroup | null {
    const ref = dev.iommuGroup;
    if (ref === null) return null;
    if (!(ref instanceof IommuGroup) || stateOf(ref).registry !== this) {
      throw new IommuError('EINVAL', `${op}: device ${dev.name} is in iommu group ${ref.id} of another registry`);
    }
    return ref;
  }
}
