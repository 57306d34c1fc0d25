/**
 * Read-only access to a sysfs tree: the live `/sys`, a directory that mirrors it,
 * or a `.tar.gz`/`.tar` archive of one (see {@link TarSource}).
 *
 * Every path given to a {@link SysfsSource} is relative to the sysfs root
 * (`bus/pci/devices`, not `/sys/bus/pci/devices`). Symbolic links are resolved
 * inside the tree: an absolute target `/sys/...` means the tree root, and a link
 * that leaves the tree does not resolve.
 *
 * SAFETY: nothing here ever opens a file for writing. {@link DirSource} opens
 * files with `O_RDONLY | O_NOFOLLOW` only, and only files that resolve inside its
 * root.
 *
 * Linux: sysfs itself is fs/sysfs/ (files, dirs, symlinks of kobjects); the
 * layout read here is made by drivers/base/core.c, drivers/base/bus.c and
 * drivers/pci/pci-sysfs.c.
 */
import fs from 'node:fs';
import { IommuError } from '../base/errno.js';
import { TarSource } from './tar-source.js';
import { decodeSysfsText, splitTreePath } from './util.js';

/** Path and text helpers (see ./util.ts). */
export { decodeSysfsText, splitTreePath, trimSysfsText } from './util.js';

/** What a path names, without following a final symbolic link (lstat semantics). */
export type EntryKind = 'file' | 'dir' | 'link';

/**
 * The result of {@link SysfsSource.tryReadFile}.
 *
 * - `ok: true` — the bytes, exactly as many as could be read (sysfs reports a
 *   size of 4096 for text attributes; the real length is what is returned).
 * - `ok: false, absent: true` — no such file (ENOENT, ENOTDIR, a broken link).
 * - `ok: false, absent: false` — the file exists but could not be read
 *   (EACCES, EIO, a directory, a link leaving the tree); `why` says which.
 */
export type ReadResult =
  | { readonly ok: true; readonly data: Uint8Array }
  | { readonly ok: false; readonly absent: boolean; readonly why: string };

/** Something a source could not read or had to ignore, with the tree-relative path. */
export interface SourceIssue {
  /** Tree-relative path (`devices/pci0000:00/0000:00:1f.2/config`) or archive entry name. */
  readonly path: string;
  /** What was wrong, e.g. `EACCES: permission denied`. */
  readonly why: string;
}

/**
 * A read-only view of a sysfs tree. All paths are relative to the sysfs root,
 * use `/` separators, and may name symbolic links (which are followed, except
 * for the last component in {@link readLink} and {@link entryKind}).
 *
 * No method throws for a missing or unreadable entry: they return `null` and,
 * for entries that exist but cannot be read, append to {@link issues}.
 */
export interface SysfsSource {
  /** File contents, or null if absent or unreadable (unreadable ones are added to {@link issues}). */
  readFile(path: string): Uint8Array | null;
  /** Like {@link readFile}, but says why a file could not be read. */
  tryReadFile(path: string): ReadResult;
  /** File contents as text with one trailing newline removed, or null as for {@link readFile}. */
  readText(path: string): string | null;
  /** The target of a symbolic link exactly as stored (`../../../devices/pci0000:00/...`), or null if not a link. */
  readLink(path: string): string | null;
  /** Entry names of a directory (links followed), sorted by code unit; null if not a directory. */
  readDir(path: string): string[] | null;
  /** The tree-relative path with every link resolved (`devices/pci0000:00/0000:00:1f.2`); `''` is the root; null if it does not resolve inside the tree. */
  realPath(path: string): string | null;
  /** What the path names (the last component not followed), or null if nothing. */
  entryKind(path: string): EntryKind | null;
  /** A short description for messages: `live sysfs /sys`, `directory /tmp/x`, `archive x.tar.gz`. */
  describe(): string;
  /** Entries that exist but could not be read, or archive entries that were ignored, in the order met. */
  readonly issues: readonly SourceIssue[];
}

const MAX_FILE_BYTES = 64 * 1024 * 1024;

function errCode(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : 'EIO';
}

function errText(e: unknown): string {
  const code = errCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  // Node messages look like "EACCES: permission denied, open '/sys/…'": keep the part before the comma.
  const m = /^[A-Z]+: ([^,]*)/.exec(msg);
  return `${code}: ${m?.[1] ?? msg}`;
}

const ABSENT_CODES = new Set(['ENOENT', 'ENOTDIR']);

/**
 * A sysfs tree in a directory: the live `/sys` or any directory mirroring it
 * (an extracted snapshot).
 *
 * Files are read with `O_RDONLY | O_NOFOLLOW | O_NONBLOCK` until end of file
 * (only regular files: a FIFO or device node in a mirror is refused), so the real
 * length is returned although sysfs reports 4096 for every text attribute; a
 * file that fails with EACCES/EIO (root-only ACPI tables, a config space that
 * errors) reads as null and is recorded in {@link issues}. Paths are resolved
 * with realpath(3) and must stay inside the root: a mirror whose links are
 * absolute (`/sys/...`) does not leak reads into the live `/sys` — such links
 * are treated as pointing outside the tree.
 *
 * Resolved directories are cached per instance (a live tree that changes while
 * it is read gives the view of the first lookup).
 *
 * Linux: sysfs_kf_bin_read()/sysfs_kf_read() in fs/sysfs/file.c (short reads at EOF).
 *
 * @throws IommuError (from the constructor) ENOENT if `root` does not exist, EIO if it cannot be
 *   resolved, EINVAL if it is not a directory; `input` is `root`.
 */
export class DirSource implements SysfsSource {
  /** The root directory as given. */
  readonly root: string;
  /** The root with links resolved (what tree paths are relative to). */
  readonly realRoot: string;
  /** See {@link SysfsSource.issues}. */
  readonly issues: SourceIssue[] = [];
  private readonly dirCache = new Map<string, string | null>();
  /** Entry kinds of each resolved directory, listed once (avoids a failing syscall, and its exception, per absent file). */
  private readonly listings = new Map<string, Map<string, EntryKind> | null>();
  private readonly buf = Buffer.allocUnsafe(65536);

  /** @param root the sysfs root directory (`/sys`, or a mirror). @throws IommuError as described on the class. */
  constructor(root: string) {
    this.root = root;
    let st: fs.Stats;
    try {
      this.realRoot = fs.realpathSync.native(root);
      st = fs.statSync(this.realRoot);
    } catch (e) {
      throw new IommuError(errCode(e) === 'ENOENT' ? 'ENOENT' : 'EIO', `cannot open sysfs directory: ${errText(e)}`, {
        input: root,
        cause: e,
      });
    }
    if (!st.isDirectory()) throw new IommuError('EINVAL', 'not a directory', { input: root });
  }

  /** See {@link SysfsSource.describe}. */
  describe(): string {
    return this.realRoot === '/sys' ? 'live sysfs /sys' : `directory ${this.root}`;
  }

  private abs(rel: string): string {
    return rel === '' ? this.realRoot : `${this.realRoot}/${rel}`;
  }

  /** The entries of resolved directory `rel` with their kinds (links not followed), listed once; null if unreadable. */
  private listing(rel: string): Map<string, EntryKind> | null {
    let l = this.listings.get(rel);
    if (l !== undefined) return l;
    try {
      l = new Map();
      for (const e of fs.readdirSync(this.abs(rel), { withFileTypes: true })) {
        l.set(e.name, e.isSymbolicLink() ? 'link' : e.isDirectory() ? 'dir' : 'file');
      }
    } catch {
      l = null;
    }
    this.listings.set(rel, l);
    return l;
  }

  /** Kind of entry `base` in resolved directory `dir` from its listing; undefined if the listing is unavailable. */
  private kindIn(dir: string, base: string): EntryKind | null | undefined {
    const l = this.listing(dir);
    if (l === null) return undefined;
    return l.get(base) ?? null;
  }

  /** Tree-relative real path of a path whose components are given, or null. */
  private resolve(comps: readonly string[]): string | null {
    const key = comps.join('/');
    if (key === '') return '';
    const cached = this.dirCache.get(key);
    if (cached !== undefined) return cached;
    let out: string | null;
    try {
      const real = fs.realpathSync.native(this.abs(key));
      if (real === this.realRoot) out = '';
      else if (real.startsWith(this.realRoot === '/' ? '/' : `${this.realRoot}/`)) {
        out = real.slice(this.realRoot === '/' ? 1 : this.realRoot.length + 1);
      } else {
        this.issues.push({ path: key, why: `resolves outside the tree (${real})` });
        out = null;
      }
    } catch (e) {
      const code = errCode(e);
      if (!ABSENT_CODES.has(code)) this.issues.push({ path: key, why: errText(e) });
      out = null;
    }
    this.dirCache.set(key, out);
    return out;
  }

  /** Resolve the parent of a path; returns [resolvedParent, basename] or null. */
  private resolveParent(p: string): [string, string] | null {
    const comps = splitTreePath(p);
    const base = comps.pop();
    if (base === undefined) return null;
    if (base === '..') {
      const r = this.resolve([...comps, base]);
      if (r === null || r === '') return null;
      const i = r.lastIndexOf('/');
      return i < 0 ? ['', r] : [r.slice(0, i), r.slice(i + 1)];
    }
    const parent = this.resolve(comps);
    return parent === null ? null : [parent, base];
  }

  /** See {@link SysfsSource.realPath}. */
  realPath(p: string): string | null {
    return this.resolve(splitTreePath(p));
  }

  /** See {@link SysfsSource.tryReadFile}. */
  tryReadFile(p: string): ReadResult {
    const pb = this.resolveParent(p);
    if (pb === null) return { ok: false, absent: true, why: 'ENOENT: no such file or directory' };
    if (pb[1] !== '..' && this.kindIn(pb[0], pb[1]) === null) return { ok: false, absent: true, why: 'ENOENT: no such file or directory' };
    let rel = pb[0] === '' ? pb[1] : `${pb[0]}/${pb[1]}`;
    for (let hop = 0; hop < 2; hop++) {
      let fd: number;
      try {
        // O_NONBLOCK: a FIFO in a mirror directory must not hang the reader (no effect on sysfs/regular files).
        fd = fs.openSync(this.abs(rel), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch (e) {
        const code = errCode(e);
        if (code === 'ELOOP' && hop === 0) {
          // The last component is a symbolic link: resolve it inside the tree and open the target.
          const r = this.resolve(splitTreePath(rel));
          if (r === null) return { ok: false, absent: true, why: 'ENOENT: broken or escaping link' };
          rel = r;
          continue;
        }
        if (ABSENT_CODES.has(code)) return { ok: false, absent: true, why: errText(e) };
        const why = errText(e);
        this.issues.push({ path: rel, why });
        return { ok: false, absent: false, why };
      }
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) {
          const why = st.isDirectory() ? 'EISDIR: is a directory' : 'EINVAL: not a regular file';
          this.issues.push({ path: rel, why });
          return { ok: false, absent: false, why };
        }
        return { ok: true, data: this.readAll(fd) };
      } catch (e) {
        const why = errCode(e) === 'EFBIG' ? 'EFBIG: file too large' : errText(e);
        this.issues.push({ path: rel, why });
        return { ok: false, absent: false, why };
      } finally {
        fs.closeSync(fd);
      }
    }
    return { ok: false, absent: true, why: 'ELOOP: too many links' };
  }

  private readAll(fd: number): Uint8Array {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const n = fs.readSync(fd, this.buf, 0, this.buf.length, null);
      if (n === 0) break;
      chunks.push(Buffer.from(this.buf.subarray(0, n)));
      total += n;
      if (total > MAX_FILE_BYTES) throw Object.assign(new Error('file too large'), { code: 'EFBIG' });
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  /** See {@link SysfsSource.readFile}. */
  readFile(p: string): Uint8Array | null {
    const r = this.tryReadFile(p);
    return r.ok ? r.data : null;
  }

  /** See {@link SysfsSource.readText}. */
  readText(p: string): string | null {
    const d = this.readFile(p);
    return d === null ? null : decodeSysfsText(d);
  }

  /** See {@link SysfsSource.readLink}. */
  readLink(p: string): string | null {
    const pb = this.resolveParent(p);
    if (pb === null) return null;
    const kind = this.kindIn(pb[0], pb[1]);
    if (kind === null || kind === 'dir' || kind === 'file') return null;
    const rel = pb[0] === '' ? pb[1] : `${pb[0]}/${pb[1]}`;
    try {
      return fs.readlinkSync(this.abs(rel));
    } catch (e) {
      const code = errCode(e);
      if (code !== 'EINVAL' && !ABSENT_CODES.has(code)) this.issues.push({ path: rel, why: errText(e) });
      return null;
    }
  }

  /** See {@link SysfsSource.readDir}. */
  readDir(p: string): string[] | null {
    const r = this.resolve(splitTreePath(p));
    if (r === null) return null;
    try {
      return fs.readdirSync(this.abs(r)).sort();
    } catch (e) {
      const code = errCode(e);
      if (!ABSENT_CODES.has(code)) this.issues.push({ path: r, why: errText(e) });
      return null;
    }
  }

  /** See {@link SysfsSource.entryKind}. */
  entryKind(p: string): EntryKind | null {
    const comps = splitTreePath(p);
    if (comps.length === 0) return 'dir';
    const pb = this.resolveParent(p);
    if (pb === null) return null;
    const known = this.kindIn(pb[0], pb[1]);
    if (known !== undefined) return known;
    const rel = pb[0] === '' ? pb[1] : `${pb[0]}/${pb[1]}`;
    try {
      const st = fs.lstatSync(this.abs(rel));
      return st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file';
    } catch {
      return null;
    }
  }
}

/**
 * Open a sysfs tree: a directory (the live `/sys`, or a mirror of it) is read
 * in place with {@link DirSource}; a file is loaded as a `.tar.gz` or plain
 * `.tar` archive with {@link TarSource} (archive root = `/sys`).
 *
 * @param pathOrArchive a directory or an archive file.
 * @throws IommuError ENOENT if the path does not exist; EINVAL if it is neither
 *   a directory nor a regular file, or the archive is corrupt, truncated, not
 *   gzip/tar, or empty; EIO/EACCES if it cannot be read. The error's `input` is
 *   `pathOrArchive`.
 */
export function openSysfs(pathOrArchive: string): SysfsSource {
  let st: fs.Stats;
  try {
    st = fs.statSync(pathOrArchive);
  } catch (e) {
    const code = errCode(e);
    throw new IommuError(code === 'ENOENT' || code === 'ENOTDIR' ? 'ENOENT' : code === 'EACCES' ? 'EACCES' : 'EIO',
      code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file or directory' : `cannot open: ${errText(e)}`,
      { input: pathOrArchive, cause: e });
  }
  if (st.isDirectory()) return new DirSource(pathOrArchive);
  if (st.isFile()) return TarSource.fromFile(pathOrArchive);
  throw new IommuError('EINVAL', 'neither a directory nor an archive file', { input: pathOrArchive });
}

/** The in-memory sources (see ./tar-source.ts). */
export { TarSource, MemorySource } from './tar-source.js';
