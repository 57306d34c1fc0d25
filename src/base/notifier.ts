/**
 * A blocking notifier chain.
 *
 * Callbacks are called in priority order (higher first; equal priorities in
 * registration order), each with the event and its data. A callback's return
 * value is a notifier status: {@link NOTIFY_DONE}, {@link NOTIFY_OK},
 * {@link NOTIFY_BAD}, optionally or-ed with {@link NOTIFY_STOP_MASK}; a value
 * with the stop bit ends the walk and is returned.
 *
 * Linux: struct blocking_notifier_head, blocking_notifier_chain_register(),
 * blocking_notifier_chain_unregister(), blocking_notifier_call_chain(),
 * include/linux/notifier.h, kernel/notifier.c.
 */
import { IommuError } from './errno.js';

/** Don't care. Linux: NOTIFY_DONE. */
export const NOTIFY_DONE = 0x0000;
/** Suits me. Linux: NOTIFY_OK. */
export const NOTIFY_OK = 0x0001;
/** Don't call further. Linux: NOTIFY_STOP_MASK. */
export const NOTIFY_STOP_MASK = 0x8000;
/** Bad/veto action. Linux: NOTIFY_BAD (= NOTIFY_STOP_MASK | 0x0002). */
export const NOTIFY_BAD = NOTIFY_STOP_MASK | 0x0002;
/** Clean way to return from the notifier and stop further calls. Linux: NOTIFY_STOP. */
export const NOTIFY_STOP = NOTIFY_OK | NOTIFY_STOP_MASK;

/** A notifier callback: returns a NOTIFY_* status (a void return counts as NOTIFY_DONE). */
export type NotifierCallback<E, D> = (event: E, data: D) => number | void;

/** A registered callback, as `struct notifier_block`. */
export interface NotifierBlock<E, D> {
  readonly call: NotifierCallback<E, D>;
  /** Higher runs first. Linux: notifier_block.priority. */
  readonly priority: number;
}

/** Convert a NOTIFY_* value to an errno-style result. Linux: notifier_to_errno(). */
export function notifierIsStop(ret: number): boolean {
  return (ret & NOTIFY_STOP_MASK) !== 0;
}

/**
 * A blocking notifier chain head.
 *
 * Re-entrancy: a callback may not register or unregister on the chain that is
 * calling it (Linux would deadlock on the chain's rwsem); doing so throws
 * `IommuError('EBUSY')` and leaves the chain unchanged.
 */
export class BlockingNotifierHead<E, D> {
  private blocks: NotifierBlock<E, D>[] = [];
  private calling = 0;

  /**
   * Add `call` to the chain. Registering the same callback twice is a kernel
   * bug that Linux WARNs about and refuses (-EEXIST); so do we.
   * @throws IommuError EEXIST if already registered, EBUSY if called from a callback of this chain.
   * Linux: blocking_notifier_chain_register().
   */
  register(call: NotifierCallback<E, D>, priority = 0): void {
    if (this.calling > 0) throw new IommuError('EBUSY', 'notifier chain: register from within a callback of the same chain');
    if (this.blocks.some((b) => b.call === call)) throw new IommuError('EEXIST', 'notifier chain: callback already registered');
    let i = 0;
    while (i < this.blocks.length && this.blocks[i]!.priority >= priority) i++;
    this.blocks.splice(i, 0, { call, priority });
  }

  /**
   * Remove `call` from the chain.
   * @throws IommuError ENOENT if not registered, EBUSY if called from a callback of this chain.
   * Linux: blocking_notifier_chain_unregister().
   */
  unregister(call: NotifierCallback<E, D>): void {
    if (this.calling > 0) throw new IommuError('EBUSY', 'notifier chain: unregister from within a callback of the same chain');
    const i = this.blocks.findIndex((b) => b.call === call);
    if (i < 0) throw new IommuError('ENOENT', 'notifier chain: callback not registered');
    this.blocks.splice(i, 1);
  }

  /**
   * Call every callback in order with (event, data) until one returns a value
   * with {@link NOTIFY_STOP_MASK}; returns the last value returned (NOTIFY_DONE
   * for an empty chain).
   * Linux: blocking_notifier_call_chain().
   */
  callChain(event: E, data: D): number {
    let ret = NOTIFY_DONE;
    this.calling++;
    try {
      for (const b of this.blocks) {
        ret = b.call(event, data) ?? NOTIFY_DONE;
        if (notifierIsStop(ret)) break;
      }
    } finally {
      this.calling--;
    }
    return ret;
  }

  /** Number of registered callbacks. */
  get size(): number {
    return this.blocks.length;
  }
}
