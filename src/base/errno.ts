/**
 * Linux errno names and numbers, and the one error type of iommukit.
 *
 * Convention (one for the whole codebase): a call that Linux would fail with
 * `-E…` throws an {@link IommuError} carrying that errno name. A failed call
 * leaves no partial state. Bad input (a truncated config space, a malformed
 * snapshot, an unknown BDF) also throws an `IommuError`, with `input` naming
 * what was read and `message` saying what is wrong with it.
 *
 * Linux: include/uapi/asm-generic/errno-base.h, include/uapi/asm-generic/errno.h,
 * include/linux/errno.h (EPROBE_DEFER).
 */

/** errno numbers as on Linux x86/generic. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  ELOOP: 40,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  EPROBE_DEFER: 517,
} as const;

/** The name of a Linux errno, e.g. `"EBUSY"`. */
export type ErrnoName = keyof typeof ERRNO;

/**
 * The error every iommukit API throws.
 *
 * - `errno`: the errno name Linux would return (`"EBUSY"`, `"EINVAL"`, …).
 * - `code`: the negative errno number, as a kernel function returns it (`-16`).
 * - `input`: for bad input, the file, path or argument that was being read.
 */
export class IommuError extends Error {
  /** The errno name Linux would return. */
  readonly errno: ErrnoName;
  /** The input that was bad (a file path, a BDF, a CLI argument), if any. */
  readonly input: string | undefined;

  constructor(errno: ErrnoName, message: string, options?: { input?: string; cause?: unknown }) {
    super(options?.input !== undefined ? `${options.input}: ${message}` : message, { cause: options?.cause });
    this.name = 'IommuError';
    this.errno = errno;
    this.input = options?.input;
  }

  /** The negative errno number, as returned by a kernel function (e.g. -16 for EBUSY). */
  get code(): number {
    return -ERRNO[this.errno];
  }
}

/** True if `e` is an {@link IommuError}, optionally with the given errno name. */
export function isIommuError(e: unknown, errno?: ErrnoName): e is IommuError {
  return e instanceof IommuError && (errno === undefined || e.errno === errno);
}
