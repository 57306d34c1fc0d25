/**
 * The ordered set of IOVA ranges behind {@link IovaDomain}: what Linux keeps
 * in the `iovad->rbroot` red-black tree.
 *
 * A treap (randomised balanced BST, expected depth O(log n)) keyed by
 * `pfn_lo`, with parent links. Each node is one 64-byte record in a single
 * ArrayBuffer (seen through a Float64Array and an Int32Array), so a node visit
 * touches one cache line, and node records are recycled through a free-list:
 * inserting and removing allocates nothing once the buffer has grown to the
 * high-water mark (it doubles when full). On top of the tree:
 *
 * - a doubly linked list of the nodes in address order, so Linux's
 *   rb_prev()/rb_next() are O(1);
 * - per node the free gap below it, `gap = pfn_lo - prev.pfn_hi - 1` (+∞ for
 *   the lowest node), and, stored in the parent's record, the largest gap in
 *   each child's subtree (`mgL`, `mgR`), so "the highest node at or below X
 *   with a gap of at least g pages" is one O(log n) descent that reads only
 *   the records on its path. That is what lets {@link IovaDomain} return
 *   exactly the pfns of Linux's linear top-down walk without walking. The
 *   maxima are fixed up bottom-up after each change, stopping where a value
 *   does not change (as Linux's augmented-rbtree propagate callback does).
 *
 * Costs (n nodes): find/lowerBound/gap search O(log n); insert next to known
 * neighbours and remove of a known node O(1) expected rotations plus the
 * upward fix-up (O(log n) worst case, often a few steps).
 *
 * Ranges in the tree never overlap (Linux guarantees that too), so ordering by
 * `pfn_lo` also orders `pfn_hi`. Units: pfns (integers < 2^53).
 *
 * Linux: struct iova, iovad->rbroot, iova_insert_rbtree(), rb_erase(),
 * private_find_iova(), rb_prev()/rb_next() as used in drivers/iommu/iova.c.
 */
import { IommuError } from '../base/errno.js';

/** The null node handle (Linux: a NULL `struct rb_node *`). Slot 0 is never a node. */
export const NIL = 0;

// Record layout: 64 bytes = 8 float64 = 16 int32 per node.
const F_STRIDE = 8; // float64 fields
const LO = 0;
const HI = 1;
const GAP = 2;
const MGL = 3; // largest gap in the left subtree (−1 if none)
const MGR = 4; // largest gap in the right subtree (−1 if none)
const I_STRIDE = 16; // int32 fields (indices 0..9 overlap the float64 fields)
const LEFT = 10;
const RIGHT = 11;
const PARENT = 12;
const PRIO = 13;
const PREV = 14;
const NEXT = 15;

/**
 * Ordered, augmented set of disjoint pfn ranges, one 64-byte record per node.
 * Nodes are named by small integer handles ("slots"), stable while the node
 * lives and reused after it is removed.
 * Linux: the rbtree of struct iova in struct iova_domain (include/linux/iova.h).
 */
export class IovaTree {
  private f: Float64Array;
  private i: Int32Array;
  /** Root slot, or NIL. */
  root = NIL;
  /** Lowest node in address order (Linux: rb_first()), or NIL. */
  first = NIL;
  /** Live nodes. */
  size = 0;
  private capacity: number;
  private used = 1;
  private freeHead = NIL;
  private seed = 0x2545f491;

  /** @param initialCapacity node records to preallocate (grows by doubling). */
  constructor(initialCapacity = 256) {
    const cap = Math.max(4, initialCapacity | 0);
    this.capacity = cap;
    const buf = new ArrayBuffer(cap * 64);
    this.f = new Float64Array(buf);
    this.i = new Int32Array(buf);
  }

  /** Node records currently allocated (for memory accounting; 64 bytes each). */
  get slotCapacity(): number {
    return this.capacity;
  }

  /** Lowest pfn of node `s`. Linux: iova->pfn_lo. */
  lo(s: number): number {
    return this.f[s * F_STRIDE + LO]!;
  }

  /** Highest pfn of node `s`. Linux: iova->pfn_hi. */
  hi(s: number): number {
    return this.f[s * F_STRIDE + HI]!;
  }

  /** Free pfns between node `s` and the next lower node (+∞ for the lowest node). */
  gap(s: number): number {
    return this.f[s * F_STRIDE + GAP]!;
  }

  /** Next lower node in address order, or NIL. Linux: rb_prev(). */
  prev(s: number): number {
    return this.i[s * I_STRIDE + PREV]!;
  }

  /** Next higher node in address order, or NIL. Linux: rb_next(). */
  next(s: number): number {
    return this.i[s * I_STRIDE + NEXT]!;
  }

  /** Forget every node (records are kept for reuse). */
  clear(): void {
    this.root = NIL;
    this.first = NIL;
    this.size = 0;
    this.used = 1;
    this.freeHead = NIL;
  }

  private grow(): void {
    const cap = this.capacity * 2;
    const buf = new ArrayBuffer(cap * 64);
    new Uint8Array(buf).set(new Uint8Array(this.f.buffer)); // bytes: float and int fields alike
    this.f = new Float64Array(buf);
    this.i = new Int32Array(buf);
    this.capacity = cap;
  }

  private allocSlot(): number {
    let s = this.freeHead;
    if (s !== NIL) {
      this.freeHead = this.i[s * I_STRIDE + NEXT]!;
      return s;
    }
    if (this.used === this.capacity) this.grow();
    s = this.used++;
    return s;
  }

  private nextPrio(): number {
    // xorshift32: deterministic, so a given call sequence always builds the same tree.
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x;
    return x | 0;
  }

  /** Largest gap in `t`'s subtree: max(gap, mgL, mgR). */
  private sub(t: number): number {
    const f = this.f;
    const tf = t * F_STRIDE;
    let m = f[tf + GAP]!;
    const l = f[tf + MGL]!;
    const r = f[tf + MGR]!;
    if (l > m) m = l;
    if (r > m) m = r;
    return m;
  }

  /**
   * `t`'s subtree maximum may have changed: update the copies held by its
   * ancestors, stopping at the first that already holds the new value.
   */
  private fixUp(t: number): void {
    const f = this.f;
    const ii = this.i;
    let p = ii[t * I_STRIDE + PARENT]!;
    while (p !== NIL) {
      const m = this.sub(t);
      const slot = p * F_STRIDE + (ii[p * I_STRIDE + LEFT] === t ? MGL : MGR);
      if (f[slot] === m) return;
      f[slot] = m;
      t = p;
      p = ii[t * I_STRIDE + PARENT]!;
    }
  }

  /** Rotate `x` above its parent, keeping BST order and every maxGap correct. */
  private rotateUp(x: number): void {
    const ii = this.i;
    const xi = x * I_STRIDE;
    const p = ii[xi + PARENT]!;
    const pi = p * I_STRIDE;
    const g = ii[pi + PARENT]!;
    const f = this.f;
    // The subtree rooted here holds the same nodes as before (so the
    // grandparent's copy stays right); only p's and x's child maxima change.
    if (ii[pi + LEFT] === x) {
      const b = ii[xi + RIGHT]!;
      ii[pi + LEFT] = b;
      if (b !== NIL) ii[b * I_STRIDE + PARENT] = p;
      ii[xi + RIGHT] = p;
      f[p * F_STRIDE + MGL] = f[x * F_STRIDE + MGR]!;
      f[x * F_STRIDE + MGR] = this.sub(p);
    } else {
      const b = ii[xi + LEFT]!;
      ii[pi + RIGHT] = b;
      if (b !== NIL) ii[b * I_STRIDE + PARENT] = p;
      ii[xi + LEFT] = p;
      f[p * F_STRIDE + MGR] = f[x * F_STRIDE + MGL]!;
      f[x * F_STRIDE + MGL] = this.sub(p);
    }
    ii[pi + PARENT] = x;
    ii[xi + PARENT] = g;
    if (g === NIL) this.root = x;
    else if (ii[g * I_STRIDE + LEFT] === p) ii[g * I_STRIDE + LEFT] = x;
    else ii[g * I_STRIDE + RIGHT] = x;
  }

  /**
   * Insert [lo, hi] whose address-order neighbours are already known: `pred`
   * the next lower node and `succ` the next higher one (either may be NIL).
   * No descent from the root: a BST always has a free child link at one of
   * two in-order neighbours. Returns the new node's slot. O(1) expected.
   * Linux: iova_insert_rbtree() (with the allocator's `prev` hint), drivers/iommu/iova.c.
   */
  insertBetween(lo: number, hi: number, pred: number, succ: number): number {
    const s = this.allocSlot();
    const f = this.f;
    const ii = this.i;
    const sf = s * F_STRIDE;
    const si = s * I_STRIDE;
    f[sf + LO] = lo;
    f[sf + HI] = hi;
    const gap = pred !== NIL ? lo - f[pred * F_STRIDE + HI]! - 1 : Infinity;
    f[sf + GAP] = gap;
    f[sf + MGL] = -1;
    f[sf + MGR] = -1;
    ii[si + LEFT] = NIL;
    ii[si + RIGHT] = NIL;
    ii[si + PRIO] = this.nextPrio();
    ii[si + PREV] = pred;
    ii[si + NEXT] = succ;
    if (pred !== NIL) ii[pred * I_STRIDE + NEXT] = s;
    else this.first = s;
    if (succ !== NIL) ii[succ * I_STRIDE + PREV] = s;
    // Attach as a leaf.
    let parent: number;
    if (pred !== NIL && ii[pred * I_STRIDE + RIGHT] === NIL) {
      ii[pred * I_STRIDE + RIGHT] = s;
      parent = pred;
    } else if (succ !== NIL) {
      ii[succ * I_STRIDE + LEFT] = s;
      parent = succ;
    } else {
      parent = NIL;
      this.root = s;
    }
    ii[si + PARENT] = parent;
    this.size++;
    // 1. count the new leaf's gap above it; 2. shrink succ's gap; 3. restore
    // heap order (rotations keep the maxima). Each step leaves them exact.
    this.fixUp(s);
    if (succ !== NIL) {
      f[succ * F_STRIDE + GAP] = f[succ * F_STRIDE + LO]! - hi - 1;
      this.fixUp(succ);
    }
    const prio = ii[si + PRIO]!;
    for (let p = parent; p !== NIL && prio > ii[p * I_STRIDE + PRIO]!; p = ii[si + PARENT]!) this.rotateUp(s);
    return s;
  }

  /** Insert [lo, hi] (must not overlap any node); returns its slot. O(log n) expected. */
  insert(lo: number, hi: number): number {
    const f = this.f;
    const ii = this.i;
    let t = this.root;
    let pred = NIL;
    let succ = NIL;
    while (t !== NIL) {
      if (lo < f[t * F_STRIDE + LO]!) {
        succ = t;
        t = ii[t * I_STRIDE + LEFT]!;
      } else {
        pred = t;
        t = ii[t * I_STRIDE + RIGHT]!;
      }
    }
    return this.insertBetween(lo, hi, pred, succ);
  }

  /**
   * Remove node `s` and recycle its record. O(1) expected rotations.
   * Linux: rb_erase() in remove_iova(), drivers/iommu/iova.c.
   */
  remove(s: number): void {
    const f = this.f;
    const ii = this.i;
    const si = s * I_STRIDE;
    const pred = ii[si + PREV]!;
    const succ = ii[si + NEXT]!;
    if (pred !== NIL) ii[pred * I_STRIDE + NEXT] = succ;
    else this.first = succ;
    if (succ !== NIL) {
      ii[succ * I_STRIDE + PREV] = pred;
      f[succ * F_STRIDE + GAP] = pred !== NIL ? f[succ * F_STRIDE + LO]! - f[pred * F_STRIDE + HI]! - 1 : Infinity;
      this.fixUp(succ);
    }
    // Rotate s down until it has at most one child, then splice it out.
    for (;;) {
      const l = ii[si + LEFT]!;
      const r = ii[si + RIGHT]!;
      if (l === NIL || r === NIL) {
        const c = l !== NIL ? l : r;
        const m = c !== NIL ? this.sub(c) : -1;
        const p = ii[si + PARENT]!;
        if (c !== NIL) ii[c * I_STRIDE + PARENT] = p;
        if (p === NIL) {
          this.root = c;
        } else {
          if (ii[p * I_STRIDE + LEFT] === s) {
            ii[p * I_STRIDE + LEFT] = c;
            f[p * F_STRIDE + MGL] = m;
          } else {
            ii[p * I_STRIDE + RIGHT] = c;
            f[p * F_STRIDE + MGR] = m;
          }
          this.fixUp(p);
        }
        break;
      }
      this.rotateUp(ii[l * I_STRIDE + PRIO]! > ii[r * I_STRIDE + PRIO]! ? l : r);
    }
    ii[si + NEXT] = this.freeHead;
    this.freeHead = s;
    this.size--;
  }

  /**
   * Lower node `s`'s `pfn_lo` in place to `lo` (which must stay above the
   * next lower node's `pfn_hi`, so the order is unchanged).
   * Linux: `iova->pfn_lo = *pfn_lo` in __adjust_overlap_range(), drivers/iommu/iova.c.
   */
  setLo(s: number, lo: number): void {
    const f = this.f;
    const sf = s * F_STRIDE;
    f[sf + LO] = lo;
    const p = this.i[s * I_STRIDE + PREV]!;
    f[sf + GAP] = p !== NIL ? lo - f[p * F_STRIDE + HI]! - 1 : Infinity;
    this.fixUp(s);
  }

  /**
   * The node whose range contains `pfn`, or NIL. O(log n).
   * Linux: private_find_iova(), drivers/iommu/iova.c.
   */
  find(pfn: number): number {
    const f = this.f;
    const ii = this.i;
    let t = this.root;
    while (t !== NIL) {
      const tf = t * F_STRIDE;
      if (pfn < f[tf + LO]!) t = ii[t * I_STRIDE + LEFT]!;
      else if (pfn > f[tf + HI]!) t = ii[t * I_STRIDE + RIGHT]!;
      else return t;
    }
    return NIL;
  }

  /** The lowest node with `pfn_lo >= key`, or NIL. O(log n). */
  lowerBound(key: number): number {
    const f = this.f;
    const ii = this.i;
    let t = this.root;
    let res = NIL;
    while (t !== NIL) {
      if (f[t * F_STRIDE + LO]! >= key) {
        res = t;
        t = ii[t * I_STRIDE + LEFT]!;
      } else t = ii[t * I_STRIDE + RIGHT]!;
    }
    return res;
  }

  /** The lowest node with `pfn_hi >= key` (the first that can overlap [key, …]), or NIL. O(log n). */
  firstHiAtLeast(key: number): number {
    const f = this.f;
    const ii = this.i;
    let t = this.root;
    let res = NIL;
    while (t !== NIL) {
      if (f[t * F_STRIDE + HI]! >= key) {
        res = t;
        t = ii[t * I_STRIDE + LEFT]!;
      } else t = ii[t * I_STRIDE + RIGHT]!;
    }
    return res;
  }

  /**
   * The highest node with `pfn_lo <= bound` whose gap below it is at least
   * `g` pfns, or NIL. O(log n): the subtrees left of the search path are
   * pruned by the maxima their parents hold.
   */
  rightmostGapAtLeast(bound: number, g: number): number {
    const f = this.f;
    const ii = this.i;
    let t = this.root;
    let best = NIL;
    let bestSub = NIL;
    while (t !== NIL) {
      const tf = t * F_STRIDE;
      const ti = t * I_STRIDE;
      if (f[tf + LO]! <= bound) {
        // t and its left subtree are all <= bound; anything further right is higher.
        if (f[tf + GAP]! >= g) {
          best = t;
          bestSub = NIL;
        } else if (f[tf + MGL]! >= g) {
          best = NIL;
          bestSub = ii[ti + LEFT]!;
        }
        t = ii[ti + RIGHT]!;
      } else t = ii[ti + LEFT]!;
    }
    if (best !== NIL || bestSub === NIL) return best;
    t = bestSub;
    for (;;) {
      const tf = t * F_STRIDE;
      if (f[tf + MGR]! >= g) t = ii[t * I_STRIDE + RIGHT]!;
      else if (f[tf + GAP]! >= g) return t;
      else t = ii[t * I_STRIDE + LEFT]!;
    }
  }

  /**
   * Check every structural invariant (BST order, heap order, parent links,
   * disjoint ranges, linked list, gaps, subtree maxima, size); throws
   * IommuError EINVAL naming the first violation. O(n); for tests.
   */
  validate(): void {
    const bad = (m: string): never => {
      throw new IommuError('EINVAL', `IovaTree corrupt: ${m}`);
    };
    const ii = this.i;
    const order: number[] = [];
    const walk = (t: number, parent: number, lo: number, hi: number): number => {
      if (t === NIL) return -1;
      const k = this.lo(t);
      if (!(k > lo && k < hi)) bad(`slot ${t} key ${k} outside (${lo}, ${hi})`);
      if (ii[t * I_STRIDE + PARENT] !== parent) bad(`parent of slot ${t}`);
      const l = ii[t * I_STRIDE + LEFT]!;
      const r = ii[t * I_STRIDE + RIGHT]!;
      for (const c of [l, r]) {
        if (c !== NIL && ii[c * I_STRIDE + PRIO]! > ii[t * I_STRIDE + PRIO]!) bad(`heap order at slot ${t}`);
      }
      const ml = walk(l, t, lo, k);
      order.push(t);
      const mr = walk(r, t, k, hi);
      if (this.f[t * F_STRIDE + MGL] !== ml) bad(`mgL of slot ${t} is ${this.f[t * F_STRIDE + MGL]}, want ${ml}`);
      if (this.f[t * F_STRIDE + MGR] !== mr) bad(`mgR of slot ${t} is ${this.f[t * F_STRIDE + MGR]}, want ${mr}`);
      return Math.max(this.gap(t), ml, mr);
    };
    walk(this.root, NIL, -Infinity, Infinity);
    if (order.length !== this.size) bad(`size ${this.size} but ${order.length} nodes`);
    if (this.first !== (order[0] ?? NIL)) bad('first');
    for (let k = 0; k < order.length; k++) {
      const s = order[k]!;
      const p = order[k - 1] ?? NIL;
      const n = order[k + 1] ?? NIL;
      if (this.prev(s) !== p || this.next(s) !== n) bad(`links of slot ${s}`);
      if (this.hi(s) < this.lo(s)) bad(`slot ${s} has pfn_hi < pfn_lo`);
      const g = p === NIL ? Infinity : this.lo(s) - this.hi(p) - 1;
      if (p !== NIL && g < 0) bad(`slot ${s} overlaps slot ${p}`);
      if (this.gap(s) !== g) bad(`gap of slot ${s} is ${this.gap(s)}, want ${g}`);
    }
  }
}
