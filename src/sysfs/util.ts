/**
 * Small helpers shared by the sysfs sources: tree-path splitting and sysfs text decoding.
 *
 * Linux: sysfs text attributes end in one `\n` (sysfs_emit() in fs/sysfs/file.c).
 */

/**
 * Split a tree-relative path into components: drops leading `/` and `./`,
 * empty and `.` components. `..` components are kept (resolution handles them).
 *
 * @example splitTreePath('./bus//pci/devices/') → ['bus', 'pci', 'devices']
 */
export function splitTreePath(p: string): string[] {
  if (p === '') return [];
  // Fast path: already clean (no leading/trailing/double slash, no `.` component).
  if (p[0] !== '/' && p[p.length - 1] !== '/' && !p.includes('//') && !p.startsWith('./') && !p.includes('/./') && p !== '.' && !p.endsWith('/.')) {
    return p.split('/');
  }
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    out.push(c);
  }
  return out;
}

/** Strip one trailing newline from sysfs text (`"0x8086\n"` → `"0x8086"`). */
export function trimSysfsText(s: string): string {
  return s.endsWith('\n') ? s.slice(0, -1) : s;
}

/** Decode bytes as sysfs text (ASCII/UTF-8) with one trailing newline removed. */
export function decodeSysfsText(data: Uint8Array): string {
  return trimSysfsText(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
}
