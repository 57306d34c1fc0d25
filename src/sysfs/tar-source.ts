/**
 * In-memory sysfs trees: {@link MemorySource} (built entry by entry, for tests
 * and synthetic machines) and {@link TarSource} (loaded from a `.tar.gz` or
 * plain `.tar` snapshot whose archive root is `/sys`).
 *
 * Linux: the tree mirrors sysfs (fs/sysfs/); links are stored and resolved the
 * way the VFS does (fs/namei.c: relative targets against the link's directory,
 * at most 40 links per lookup, ELOOP beyond).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { IommuError } from '../base/errno.js';
import type { EntryKind, ReadResult, SourceIssue, SysfsSource } from './source.js';
import { decodeSysfsText, splitTreePath } from './util.js';

interface MemDir {
  kind: 'dir';
  children: Map<string, MemNode>;
  sorted: string[] | null;
}
interface MemFile {
  kind: 'file';
  data: Uint8Array;
  /** Set to simulate a file that exists but fails to read (EACCES, EIO). */
  unreadable: string | null;
}
interface MemLink {
  kind: 'link';
  target: string;
}
type MemNode = MemDir | MemFile | MemLink;

/** A found node: its real path is `dir` + `/` + `base` (or just `base` if `dir` is the root; `''` for the root itself). */
type WalkResult = { node: MemNode; dir: string; base: string } | { err: 'ENOENT' | 'ENOTDIR' | 'ELOOP' | 'EXDEV' };

function joinReal(r: { dir: string; base: string }): string {
  return r.dir === '' ? r.base : `${r.dir}/${r.base}`;
}

/** Linux MAXSYMLINKS (include/linux/namei.h). */
const MAX_SYMLINKS = 40;

function newDir(): MemDir {
  return { kind: 'dir', children: new Map(), sorted: null };
}

/**
 * A sysfs tree held in memory. Build it with {@link addFile}, {@link addLink}
 * and {@link addDir} (parents are created as directories); read it through the
 * {@link SysfsSource} methods. Lookups are map walks, so reading a 10,000-device
 * tree takes tens of milliseconds.
 *
 * Link targets are resolved inside the tree: relative to the link's directory,
 * or, when absolute, `/sys/...` relative to the root; anything else (or a `..`
 * above the root) does not resolve.
 *
 * Linux: path walk as in fs/namei.c (link_path_walk(), at most MAXSYMLINKS = 40 links).
 */
export class MemorySource implements SysfsSource {
  /** See {@link SysfsSource.issues}. */
  readonly issues: SourceIssue[] = [];
  private readonly root: MemDir = newDir();
  private readonly description: string;
  /** Resolved directories by the path they were looked up with; cleared on every change to the tree. */
  private readonly dirCache = new Map<string, { node: MemDir; path: string } | null>();
  /** The last directory looked up (lastKey is never '' here: '' means none). */
  private lastKey = '\0';
  private lastParent: { node: MemDir; path: string } | null = null;

  /** @param description what {@link describe} returns, e.g. `synthetic tree`. */
  constructor(description: string) {
    this.description = description;
  }

  /** See {@link SysfsSource.describe}. */
  describe(): string {
    return this.description;
  }

  /** The directory that will hold `comps`' last component, creating directories; null if a non-directory is in the way. */
  private parentDir(comps: readonly string[]): MemDir | null {
    let cur = this.root;
    for (let i = 0; i < comps.length - 1; i++) {
      const c = comps[i]!;
      let next = cur.children.get(c);
      if (next === undefined) {
        next = newDir();
        cur.children.set(c, next);
        cur.sorted = null;
      }
      if (next.kind !== 'dir') return null;
      cur = next;
    }
    return cur;
  }

  private put(p: string, node: MemNode): boolean {
    this.dirCache.clear();
    this.lastKey = '\0';
    this.lastParent = null;
    const comps = splitTreePath(p);
    if (comps.length === 0 || comps.includes('..')) {
      this.issues.push({ path: p, why: 'invalid entry name (empty or with ..): ignored' });
      return false;
    }
    const dir = this.parentDir(comps);
    if (dir === null) {
      this.issues.push({ path: p, why: 'a parent is a file or link, not a directory: ignored' });
      return false;
    }
    const name = comps[comps.length - 1]!;
    const old = dir.children.get(name);
    if (node.kind === 'dir' && old?.kind === 'dir') return true; // keep existing children
    if (old === undefined) dir.sorted = null;
    dir.children.set(name, node);
    return true;
  }

  /**
   * Add (or replace) a regular file; missing parent directories are created.
   * @param data the bytes, or a string stored as UTF-8.
   * @param options.unreadable if set (e.g. `EACCES: permission denied`), the file
   *   exists but every read fails with this reason — to model root-only files.
   * @returns false (and an {@link issues} entry) if the path is invalid or blocked by a non-directory.
   */
  addFile(p: string, data: Uint8Array | string, options?: { unreadable?: string }): boolean {
    const bytes = typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'utf8')) : data;
    return this.put(p, { kind: 'file', data: bytes, unreadable: options?.unreadable ?? null });
  }

  /** Add (or replace) a symbolic link with `target` stored verbatim. @returns as {@link addFile}. */
  addLink(p: string, target: string): boolean {
    return this.put(p, { kind: 'link', target });
  }

  /** Add a directory (a no-op if it exists). @returns as {@link addFile}. */
  addDir(p: string): boolean {
    return this.put(p, newDir());
  }

  /**
   * Walk a path, following links (the last one only if `followLast`). The
   * directory part is looked up once and cached, so reading many attributes of
   * one device costs one map lookup each.
   */
  private walk(p: string, followLast: boolean, links = 0): WalkResult {
    const i = p.lastIndexOf('/');
    const base = i < 0 ? p : p.slice(i + 1);
    if (base === '' || base === '.' || base === '..' || (i >= 0 && i === p.length - 1)) return this.slowWalk(p, followLast, links);
    let parent: { node: MemDir; path: string } | null;
    if (i < 0) parent = { node: this.root, path: '' };
    else if (i === this.lastKey.length && p.startsWith(this.lastKey)) {
      // Same directory as the previous lookup (the usual case: attribute after attribute of one device).
      parent = this.lastParent;
    } else {
      const key = p.slice(0, i);
      const hit = this.dirCache.get(key);
      if (hit !== undefined) parent = hit;
      else {
        const r = this.slowWalk(key, true, 0);
        parent = 'err' in r || r.node.kind !== 'dir' ? null : { node: r.node, path: joinReal(r) };
        this.dirCache.set(key, parent);
      }
      this.lastKey = key;
      this.lastParent = parent;
    }
    if (parent === null) return this.slowWalk(p, followLast, links); // for the precise error
    const child = parent.node.children.get(base);
    if (child === undefined) return { err: 'ENOENT' };
    if (child.kind === 'link' && followLast) {
      if (++links > MAX_SYMLINKS) return { err: 'ELOOP' };
      // parent.path is a real path (no links), so leading `..` of the target can be applied lexically.
      const tc = splitTreePath(child.target);
      let k = 0;
      let dir: string[];
      if (child.target.startsWith('/')) {
        if (tc[0] !== 'sys') return { err: 'EXDEV' };
        dir = [];
        k = 1;
      } else {
        dir = parent.path === '' ? [] : parent.path.split('/');
        while (k < tc.length && tc[k] === '..') {
          if (dir.length === 0) return { err: 'EXDEV' };
          dir.pop();
          k++;
        }
      }
      const rest = tc.slice(k);
      if (rest.length === 0) return { node: this.dirAt(dir), dir: dir.slice(0, -1).join('/'), base: dir[dir.length - 1] ?? '' };
      return this.walk(dir.concat(rest).join('/'), true, links);
    }
    return { node: child, dir: parent.path, base };
  }

  /** The directory at a real (link-free, existing) path. */
  private dirAt(comps: readonly string[]): MemNode {
    let cur: MemNode = this.root;
    for (const c of comps) cur = (cur as MemDir).children.get(c)!;
    return cur;
  }

  /** Walk a path component by component (see {@link walk}). */
  private slowWalk(p: string, followLast: boolean, links: number): WalkResult {
    let todo = splitTreePath(p);
    const stack: MemDir[] = [this.root];
    const names: string[] = [];
    let i = 0;
    while (i < todo.length) {
      const c = todo[i++]!;
      const cur = stack[stack.length - 1]!;
      if (c === '..') {
        if (names.length === 0) return { err: 'EXDEV' };
        stack.pop();
        names.pop();
        continue;
      }
      const child = cur.children.get(c);
      if (child === undefined) return { err: 'ENOENT' };
      const last = i === todo.length;
      if (child.kind === 'link' && (!last || followLast)) {
        if (++links > MAX_SYMLINKS) return { err: 'ELOOP' };
        let tcomps = splitTreePath(child.target);
        if (child.target.startsWith('/')) {
          if (tcomps[0] !== 'sys') return { err: 'EXDEV' };
          tcomps = tcomps.slice(1);
          stack.length = 1;
          names.length = 0;
        }
        todo = tcomps.concat(todo.slice(i));
        i = 0;
        continue;
      }
      if (last) return { node: child, dir: names.join('/'), base: c };
      if (child.kind !== 'dir') return { err: 'ENOTDIR' };
      stack.push(child);
      names.push(c);
    }
    const base = names.pop() ?? '';
    return { node: stack[stack.length - 1]!, dir: names.join('/'), base };
  }

  /** See {@link SysfsSource.tryReadFile}. */
  tryReadFile(p: string): ReadResult {
    const r = this.walk(p, true);
    if ('err' in r) {
      if (r.err === 'EXDEV') return { ok: false, absent: true, why: 'EXDEV: link points outside the tree' };
      if (r.err === 'ELOOP') return { ok: false, absent: true, why: 'ELOOP: too many levels of symbolic links' };
      return { ok: false, absent: true, why: `${r.err}: no such file` };
    }
    if (r.node.kind === 'dir') {
      const why = 'EISDIR: is a directory';
      this.issues.push({ path: joinReal(r), why });
      return { ok: false, absent: false, why };
    }
    if (r.node.kind === 'link') return { ok: false, absent: true, why: 'ENOENT: no such file' }; // unreachable: links are followed
    if (r.node.unreadable !== null) {
      this.issues.push({ path: joinReal(r), why: r.node.unreadable });
      return { ok: false, absent: false, why: r.node.unreadable };
    }
    return { ok: true, data: r.node.data };
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
    const r = this.walk(p, false);
    return 'err' in r || r.node.kind !== 'link' ? null : r.node.target;
  }

  /** See {@link SysfsSource.readDir}. */
  readDir(p: string): string[] | null {
    const r = this.walk(p, true);
    if ('err' in r || r.node.kind !== 'dir') return null;
    const d = r.node;
    if (d.sorted === null) d.sorted = [...d.children.keys()].sort();
    return d.sorted.slice();
  }

  /** See {@link SysfsSource.realPath}. */
  realPath(p: string): string | null {
    const r = this.walk(p, true);
    return 'err' in r ? null : joinReal(r);
  }

  /** See {@link SysfsSource.entryKind}. */
  entryKind(p: string): EntryKind | null {
    const r = this.walk(p, false);
    return 'err' in r ? null : r.node.kind;
  }
}

/** One archive entry after name normalisation. */
interface RawEntry {
  comps: string[];
  type: 'file' | 'dir' | 'link' | 'hardlink';
  linkpath: string;
  chunks: Buffer[];
  size: number;
  got: number;
}

function concat(chunks: Buffer[], total: number): Uint8Array {
  if (chunks.length === 1) {
    const c = chunks[0]!;
    return new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

function sniffCompression(b: Uint8Array): string | null {
  if (b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a) return 'xz';
  if (b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'bzip2';
  if (b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) return 'zip';
  return null;
}

/**
 * A sysfs snapshot archive (`.tar.gz`, or a plain `.tar`) loaded fully into
 * memory: regular files, symbolic links (targets verbatim), directories and
 * hard links (as copies). The archive root is `/sys` itself (`bus/pci/devices/…`);
 * a leading `./`, `/` or a `sys/` component shared by every entry is tolerated
 * and stripped. Other entry types (devices, FIFOs) are ignored and listed in
 * {@link issues}, as are the parser's warnings.
 *
 * Loading is synchronous (node-tar's Parser fed the decompressed bytes).
 *
 * Linux: the layout is that of sysfs (fs/sysfs/), see ../../test/fixtures/oracle/README.md.
 *
 * @throws IommuError with `input` = the archive name: ENOENT if the file does not
 *   exist; EACCES/EIO if it cannot be read; EINVAL if it is empty, compressed
 *   with something other than gzip, corrupt or truncated gzip data, not a tar
 *   archive, a tar archive cut short (no end-of-archive marker, short last
 *   entry), a corrupt tar header (checksum failure), or holds no entries.
 */
export class TarSource extends MemorySource {
  /** The archive path (or name given to {@link fromBuffer}). */
  readonly archive: string;
  /** Number of archive entries loaded. */
  readonly entryCount: number;

  /**
   * Load an archive file, or `data` if given (then `archive` is only its name for messages).
   * @throws IommuError as described on the class.
   */
  constructor(archive: string, data?: Uint8Array) {
    super(`archive ${archive}`);
    this.archive = archive;
    let bytes: Uint8Array;
    if (data !== undefined) bytes = data;
    else {
      try {
        bytes = fs.readFileSync(archive);
      } catch (e) {
        const code = (e as { code?: string }).code;
        throw new IommuError(code === 'ENOENT' ? 'ENOENT' : code === 'EACCES' ? 'EACCES' : 'EIO',
          code === 'ENOENT' ? 'no such file' : `cannot read archive: ${(e as Error).message}`, { input: archive, cause: e });
      }
    }
    const entries = TarSource.parse(archive, bytes, this.issues);
    this.entryCount = entries.length;
    this.build(entries);
  }

  /** Load an archive file. @throws IommuError as described on the class. */
  static fromFile(file: string): TarSource {
    return new TarSource(file);
  }

  /** Load an archive from bytes; `name` is used in messages. @throws IommuError as described on the class. */
  static fromBuffer(data: Uint8Array, name: string): TarSource {
    return new TarSource(name, data);
  }

  private static parse(input: string, bytes: Uint8Array, issues: SourceIssue[]): RawEntry[] {
    const bad = (msg: string, cause?: unknown): IommuError => new IommuError('EINVAL', msg, { input, cause });
    if (bytes.length === 0) throw bad('empty file, not a sysfs archive');
    let tarBytes: Buffer;
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
      try {
        tarBytes = zlib.gunzipSync(bytes);
      } catch (e) {
        const m = (e as Error).message;
        throw bad(
          m.includes('unexpected end') ? 'truncated gzip data (the archive was cut short)' : `corrupt gzip data (${m})`,
          e,
        );
      }
    } else {
      const other = sniffCompression(bytes);
      if (other !== null) throw bad(`${other} data: only .tar.gz (gzip) and plain .tar archives are supported`);
      tarBytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }

    const raw: RawEntry[] = [];
    const warnings: string[] = [];
    const parser = new Parser({
      strict: false,
      onwarn: (code: string, message: string) => {
        warnings.push(`${code}: ${message}`);
      },
      onReadEntry: (entry: ReadEntry) => {
        const comps = splitTreePath(entry.path);
        let type: RawEntry['type'] | null = null;
        switch (entry.type) {
          case 'File':
          case 'OldFile':
          case 'ContiguousFile':
            type = 'file';
            break;
          case 'Directory':
            type = 'dir';
            break;
          case 'SymbolicLink':
            type = 'link';
            break;
          case 'Link':
            type = 'hardlink';
            break;
          default:
            issues.push({ path: entry.path, why: `entry type ${entry.type} ignored` });
        }
        if (type === null) {
          entry.resume();
          return;
        }
        const rec: RawEntry = { comps, type, linkpath: entry.linkpath ?? '', chunks: [], size: 0, got: 0 };
        raw.push(rec);
        if (type === 'file') {
          rec.size = entry.size;
          entry.on('data', (c: Buffer) => {
            rec.chunks.push(c);
            rec.got += c.byteLength;
          });
        } else entry.resume();
      },
    });
    parser.on('error', (e: Error) => warnings.push(`error: ${e.message}`));
    parser.end(tarBytes);
    const shortEntry = raw.find((r) => r.type === 'file' && r.got < r.size);
    const short = shortEntry === undefined ? null : `entry ${shortEntry.comps.join('/')} has ${shortEntry.got} of ${shortEntry.size} bytes`;

    if (raw.length === 0) {
      if (warnings.some((w) => w.startsWith('TAR_BAD_ARCHIVE') || w.startsWith('TAR_ENTRY_INVALID'))) {
        throw bad(`not a gzip or tar archive (${warnings[warnings.length - 1]})`);
      }
      throw bad('the archive holds no entries');
    }
    if (short !== null) throw bad(`truncated tar data: ${short}`);
    const fatal = warnings.find((w) => /^(TAR_ENTRY_INVALID|TAR_BAD_ARCHIVE|TAR_ABORT|TAR_ENTRY_ERROR|error)/.test(w));
    if (fatal !== undefined) throw bad(`corrupt tar data (${fatal})`);
    if (tarBytes.length % 512 !== 0) throw bad(`truncated tar data: ${tarBytes.length} bytes is not a whole number of 512-byte blocks`);
    let zeroTail = tarBytes.length >= 512;
    for (let i = tarBytes.length - 512; zeroTail && i < tarBytes.length; i++) if (tarBytes[i] !== 0) zeroTail = false;
    if (!zeroTail) throw bad('truncated tar data: no end-of-archive marker (the archive was cut short)');
    for (const w of warnings) issues.push({ path: input, why: w });

    // A `sys/` component shared by every entry is the archive's view of /sys: strip it.
    const named = raw.filter((r) => r.comps.length > 0);
    if (named.length > 0 && named.every((r) => r.comps[0] === 'sys')) {
      for (const r of named) {
        r.comps = r.comps.slice(1);
        if (r.type === 'hardlink') {
          const lc = splitTreePath(r.linkpath);
          if (lc[0] === 'sys') r.linkpath = lc.slice(1).join('/');
        }
      }
    }
    return raw.filter((r) => r.comps.length > 0);
  }

  private build(entries: RawEntry[]): void {
    const files = new Map<string, Uint8Array>();
    for (const e of entries) {
      const p = e.comps.join('/');
      switch (e.type) {
        case 'file': {
          const data = concat(e.chunks, e.got);
          e.chunks = [];
          this.addFile(p, data);
          files.set(p, data);
          break;
        }
        case 'dir':
          this.addDir(p);
          break;
        case 'link':
          this.addLink(p, e.linkpath);
          break;
        case 'hardlink': {
          const target = files.get(splitTreePath(e.linkpath).join('/'));
          if (target === undefined) this.issues.push({ path: p, why: `hard link to ${e.linkpath}, which is not an earlier file: ignored` });
          else {
            this.addFile(p, target);
            files.set(p, target);
          }
          break;
        }
      }
    }
  }
}
