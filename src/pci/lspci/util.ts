/**
 * Small helpers shared by the lspci text parser: bounds-checked little-endian
 * writes into a config-space buffer, and the `Name+` / `Name-` flag syntax
 * pciutils prints with its `FLAG()` macro.
 *
 * pciutils: lspci.h (`FLAG(x, y) ((x & y) ? '+' : '-')`).
 */

/** Size of a PCIe extended configuration space in bytes. */
export const CONFIG_SPACE_SIZE = 4096;

/**
 * Write `width` bytes (1, 2 or 4) of `value` little-endian at `off`.
 * Writes that would fall outside the 4096-byte buffer are silently dropped,
 * so malformed offsets in the text can never throw.
 */
export function put(cfg: Uint8Array, off: number, width: 1 | 2 | 4, value: number): void {
  if (!Number.isInteger(off) || off < 0 || off + width > cfg.length) return;
  for (let i = 0; i < width; i++) cfg[off + i] = (value >>> (8 * i)) & 0xff;
}

/** OR `mask` (up to 32 bits) into the `width`-byte little-endian register at `off`. */
export function setBits(cfg: Uint8Array, off: number, width: 1 | 2 | 4, mask: number): void {
  put(cfg, off, width, (get(cfg, off, width) | mask) >>> 0);
}

/** Clear `mask` in the `width`-byte little-endian register at `off`. */
export function clearBits(cfg: Uint8Array, off: number, width: 1 | 2 | 4, mask: number): void {
  put(cfg, off, width, (get(cfg, off, width) & ~mask) >>> 0);
}

/** Read `width` bytes little-endian at `off` (0 when out of range). */
export function get(cfg: Uint8Array, off: number, width: 1 | 2 | 4): number {
  if (!Number.isInteger(off) || off < 0 || off + width > cfg.length) return 0;
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = (v * 256 + (cfg[off + i] ?? 0)) >>> 0;
  return v;
}

function isFlagLeft(c: string | undefined): boolean {
  return c === undefined || c === ' ' || c === '\t' || c === ',' || c === '(' || c === ':' || c === ';';
}

function isFlagRight(c: string | undefined): boolean {
  return c === undefined || c === ' ' || c === '\t' || c === ',' || c === ')' || c === ';';
}

/**
 * Value of a pciutils flag `name+` / `name-` in `text`: true, false, or null
 * when the flag is not there. The name must stand alone (preceded by start,
 * blank, `,`, `(`, `:` or `;` and the sign followed by end, blank, `,`, `)` or
 * `;`), so `PME` does not match inside `PME-Enable-`.
 */
export function flag(text: string, name: string): boolean | null {
  let from = 0;
  for (;;) {
    const i = text.indexOf(name, from);
    if (i < 0) return null;
    const sign = text[i + name.length];
    if ((sign === '+' || sign === '-') && isFlagLeft(text[i - 1]) && isFlagRight(text[i + name.length + 1])) {
      return sign === '+';
    }
    from = i + 1;
  }
}

/**
 * Apply a list of `[flagName, bitMask]` pairs found in `text` to the register
 * at `off`: `+` sets the bits, `-` clears them, absent leaves them alone.
 * Returns how many of the flags were present.
 */
export function applyFlags(
  cfg: Uint8Array,
  off: number,
  width: 1 | 2 | 4,
  text: string,
  flags: ReadonlyArray<readonly [string, number]>,
): number {
  let seen = 0;
  for (const [name, mask] of flags) {
    const v = flag(text, name);
    if (v === null) continue;
    seen++;
    if (v) setBits(cfg, off, width, mask);
    else clearBits(cfg, off, width, mask);
  }
  return seen;
}

/** Parse an unsigned hex string (no prefix); NaN if it is not one. */
export function hex(s: string | undefined): number {
  if (s === undefined || !/^[0-9a-fA-F]{1,8}$/.test(s)) return NaN;
  return parseInt(s, 16);
}

/** The number after `label` in `text` (e.g. `numberAfter("Total VFs: 8,", "Total VFs:")` → 8), decimal or hex by `radix`. */
export function numberAfter(text: string, label: string, radix: 10 | 16 = 10): number {
  const i = text.indexOf(label);
  if (i < 0) return NaN;
  let j = i + label.length;
  while (text[j] === ' ' || text[j] === '\t') j++;
  let k = j;
  const ok = radix === 16 ? /[0-9a-fA-F]/ : /[0-9]/;
  while (k < text.length && k - j < 16 && ok.test(text[k] as string)) k++;
  if (k === j) return NaN;
  return parseInt(text.slice(j, k), radix);
}

/** log2 of a power of two (`n` ≥ 1), or NaN. */
export function log2Exact(n: number): number {
  if (!Number.isInteger(n) || n < 1) return NaN;
  const l = Math.log2(n);
  return Number.isInteger(l) ? l : NaN;
}
