/**
 * Splitting lspci's `Vendor Device` name text into vendor and device names.
 *
 * With `-nn`, lspci prints `<vendor name> <device name> [vvvv:dddd]` with no
 * separator between the two names (pciutils lib/names.c, `pci_lookup_name`
 * with `PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE`). When the device is not in
 * pci.ids the text is `<vendor name> Device [vvvv:dddd]`, and when neither is,
 * just `Device [vvvv:dddd]`. We learn vendor names from those forms anywhere
 * in the same dump (header and `Subsystem:` lines), fall back to a short table
 * of common pci.ids vendor names, then to a company-suffix heuristic.
 */

/** pci.ids vendor names of common vendors (prefix-checked against the text, never trusted blindly). */
const KNOWN_VENDORS: ReadonlyMap<number, readonly string[]> = new Map([
  [0x8086, ['Intel Corporation']],
  [0x1022, ['Advanced Micro Devices, Inc. [AMD]']],
  [0x1002, ['Advanced Micro Devices, Inc. [AMD/ATI]']],
  [0x10de, ['NVIDIA Corporation']],
  [0x10ec, ['Realtek Semiconductor Co., Ltd.']],
  [0x1b36, ['Red Hat, Inc.']],
  [0x1af4, ['Red Hat, Inc.']],
  [0x144d, ['Samsung Electronics Co Ltd']],
  [0x1b21, ['ASMedia Technology Inc.']],
  [0x1043, ['ASUSTeK Computer Inc.']],
  [0x1028, ['Dell']],
  [0x14e4, ['Broadcom Inc. and subsidiaries', 'Broadcom Limited', 'Broadcom Corporation']],
  [0x1000, ['Broadcom / LSI', 'LSI Logic / Symbios Logic']],
  [0x15b3, ['Mellanox Technologies']],
  [0x1a03, ['ASPEED Technology, Inc.']],
  [0x197b, ['JMicron Technology Corp.']],
  [0x1987, ['Phison Electronics Corporation']],
  [0x126f, ['Silicon Motion, Inc.']],
  [0x1344, ['Micron Technology Inc']],
  [0x1c5c, ['SK hynix']],
  [0x1e0f, ['KIOXIA Corporation']],
  [0x15b7, ['Sandisk Corp']],
  [0x14c3, ['MEDIATEK Corp.']],
  [0x168c, ['Qualcomm Atheros']],
  [0x17cb, ['Qualcomm Technologies, Inc', 'Qualcomm']],
  [0x1d6a, ['Aquantia Corp.']],
  [0x102b, ['Matrox Electronics Systems Ltd.']],
  [0x1849, ['ASRock Incorporation']],
  [0x1462, ['Micro-Star International Co., Ltd. [MSI]']],
  [0x1458, ['Gigabyte Technology Co., Ltd']],
  [0x1179, ['Toshiba Corporation']],
  [0x10b5, ['PLX Technology, Inc.']],
  [0x1e4b, ['MAXIO Technology (Hangzhou) Ltd.']],
  [0x1912, ['Renesas Technology Corp.', 'Renesas Electronics Corp.']],
  [0x1106, ['VIA Technologies, Inc.']],
  [0x17aa, ['Lenovo']],
  [0x103c, ['Hewlett-Packard Company']],
  [0x1556, ['PLDA']],
  [0x10ee, ['Xilinx Corporation']],
  [0x9005, ['Adaptec']],
  [0x1077, ['QLogic Corp.']],
  [0x17a0, ['Genesys Logic, Inc']],
  [0x1217, ['O2 Micro, Inc.']],
  [0x15ad, ['VMware']],
  [0x1414, ['Microsoft Corporation']],
  [0x1d0f, ['Amazon.com, Inc.']],
  [0x104c, ['Texas Instruments']],
  [0x2646, ['Kingston Technology Company, Inc.']],
]);

/** Words that end a company name (the vendor name ends after the last of a run of them). */
const SUFFIX_WORDS = new Set([
  'Inc.', 'Inc', 'Corporation', 'Corp.', 'Corp', 'Ltd.', 'Ltd', 'Co.,', 'Co.', 'Co', 'Limited', 'GmbH', 'LLC', 'AG',
  'S.A.', 'Incorporation', 'Incorporated', 'PLC', 'B.V.', 'AB', 'Oy', 'SE', 'Company',
]);

/** A vendor/device name pair split out of lspci's combined text. */
export interface SplitName {
  vendor: string;
  device: string;
  /** How the split was decided; `'guess'` and `'unknown'` are worth an assumption note. */
  how: 'learned' | 'table' | 'guess' | 'unknown';
}

function isWordPrefix(prefix: string, text: string): boolean {
  return text === prefix || (text.startsWith(prefix) && text[prefix.length] === ' ');
}

/**
 * Collects `(name text, vendor id)` pairs from one dump and splits each
 * combined name into vendor and device names.
 */
export class VendorNameSplitter {
  private readonly texts = new Map<number, Set<string>>();
  private resolved: Map<number, string | null> | null = null;

  /** Record one `<vendor> <device>` text seen with vendor ID `vendorId`. */
  learn(text: string, vendorId: number): void {
    let s = this.texts.get(vendorId);
    if (s === undefined) this.texts.set(vendorId, (s = new Set()));
    s.add(text);
    this.resolved = null;
  }

  private vendorFromDump(vendorId: number): string | null {
    if (this.resolved === null) this.resolved = new Map();
    if (this.resolved.has(vendorId)) return this.resolved.get(vendorId) ?? null;
    const texts = [...(this.texts.get(vendorId) ?? [])];
    const candidates = texts
      .filter((t) => t.endsWith(' Device'))
      .map((t) => t.slice(0, -' Device'.length))
      .sort((a, b) => a.length - b.length);
    let best: string | null = null;
    for (const c of candidates) {
      if (c !== '' && texts.every((t) => isWordPrefix(c, t))) {
        best = c;
        break;
      }
    }
    this.resolved.set(vendorId, best);
    return best;
  }

  /** Split `text` (the name text before `[vvvv:dddd]`) for vendor ID `vendorId`. */
  split(text: string, vendorId: number): SplitName {
    if (text === 'Device' || text === '') return { vendor: '', device: text, how: 'learned' };
    const learned = this.vendorFromDump(vendorId);
    if (learned !== null && isWordPrefix(learned, text)) {
      return { vendor: learned, device: text.slice(learned.length).trim(), how: 'learned' };
    }
    for (const v of KNOWN_VENDORS.get(vendorId) ?? []) {
      if (isWordPrefix(v, text)) return { vendor: v, device: text.slice(v.length).trim(), how: 'table' };
    }
    const words = text.split(' ');
    let end = -1;
    for (let i = 0; i < words.length - 1; i++) {
      if (SUFFIX_WORDS.has(words[i] as string)) {
        end = i;
        while (end + 1 < words.length - 1 && (SUFFIX_WORDS.has(words[end + 1] as string) || /^\[.*\]$/.test(words[end + 1] as string))) end++;
        break;
      }
    }
    if (end >= 0) {
      return { vendor: words.slice(0, end + 1).join(' '), device: words.slice(end + 1).join(' '), how: 'guess' };
    }
    return { vendor: '', device: text, how: 'unknown' };
  }
}
