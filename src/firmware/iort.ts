/**
 * The Arm IO Remapping Table (IORT), parsed from its binary form
 * (/sys/firmware/acpi/tables/IORT).
 *
 * Arm DEN 0049 (IORT spec) §3; Linux: drivers/acpi/arm64/iort.c,
 * include/acpi/actbl2.h (struct acpi_iort_node, struct acpi_iort_id_mapping).
 */

import { IommuError } from '../base/errno.js';
import { ACPI_HEADER_SIZE, AcpiReader, checkAcpiHeader, type AcpiHeader } from './acpi.js';

/** IORT node types. IORT spec §3.1, Table 3; Linux: enum acpi_iort_node_type. */
export const IORT_NODE_TYPE = {
  0: 'its-group',
  1: 'named-component',
  2: 'root-complex',
  3: 'smmu',
  4: 'smmu-v3',
  5: 'pmcg',
  6: 'rmr',
} as const;

/** Name of an IORT node type; `"unknown"` for reserved types. IORT spec §3.1. */
export type IortNodeKind = (typeof IORT_NODE_TYPE)[keyof typeof IORT_NODE_TYPE] | 'unknown';

/** An ID mapping. IORT spec §3.4, Table 4; Linux: struct acpi_iort_id_mapping. */
export interface IortIdMapping {
  inputBase: number;
  /** Number of IDs in the range minus one (as in the table). */
  idCount: number;
  outputBase: number;
  /** Byte offset (from the start of the table) of the output node. */
  outputReference: number;
  /** Flag bit 0: single mapping (the input is ignored). */
  singleMapping: boolean;
  flags: number;
}

/** An IORT node. IORT spec §3.1; Linux: struct acpi_iort_node. */
export interface IortNode {
  /** Byte offset of the node in the table (how ID mappings refer to it). */
  offset: number;
  type: number;
  kind: IortNodeKind;
  length: number;
  revision: number;
  identifier: number;
  mappings: IortIdMapping[];
  /** Root complex: PCI segment; named component: object name; SMMU: base address; ITS group: ITS ids. */
  segment?: number;
  atsAttribute?: number;
  deviceName?: string;
  base?: bigint;
  model?: number;
  itsIds?: number[];
}

/** A parsed IORT. IORT spec §3; Linux: struct acpi_table_iort. */
export interface Iort {
  header: AcpiHeader;
  nodes: IortNode[];
  notes: string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Parses an IORT: checks the ACPI header, walks `num_nodes` nodes from the
 * node array offset, and decodes each node's ID mappings. Nodes or mapping
 * arrays that are too short or run past the table, and zero-length nodes,
 * are `EINVAL` naming the table. Linux: iort_scan_node() and
 * iort_init_platform_devices(), drivers/acpi/arm64/iort.c; IORT spec §3.
 */
export function parseIort(bytes: Uint8Array, input: string): Iort {
  const header = checkAcpiHeader(bytes, 'IORT', input);
  const r = new AcpiReader(bytes, 'IORT', input, header.length);
  r.need(ACPI_HEADER_SIZE, 12, 'IORT header (node count, node offset)');
  const count = r.u32(36, 'node count');
  let off = r.u32(40, 'node array offset');
  const iort: Iort = { header, nodes: [], notes: [] };
  for (let i = 0; i < count; i++) {
    const at = hex(off);
    r.need(off, 16, `node ${i} header`);
    const type = r.u8(off);
    const length = r.u16(off + 1);
    if (length < 16) r.fail(`node ${i} at offset ${at} has invalid length ${length}`);
    if (off + length > header.length) {
      r.fail(`node ${i} at offset ${at} (length ${length}) runs past the end of the table (length ${hex(header.length)})`);
    }
    const nEnd = off + length;
    const mapCount = r.u32(off + 8);
    const mapOff = r.u32(off + 12);
    const kind: IortNodeKind = (IORT_NODE_TYPE as Record<number, IortNodeKind>)[type] ?? 'unknown';
    const node: IortNode = { offset: off, type, kind, length, revision: r.u8(off + 3), identifier: r.u32(off + 4), mappings: [] };
    if (mapCount > 0) {
      if (mapOff < 16 || mapOff + mapCount * 20 > length) {
        r.fail(`node ${i} at offset ${at}: ${mapCount} ID mappings at node offset ${hex(mapOff)} run past the node (length ${length})`);
      }
      for (let m = 0; m < mapCount; m++) {
        const p = off + mapOff + m * 20;
        const flags = r.u32(p + 16);
        node.mappings.push({ inputBase: r.u32(p), idCount: r.u32(p + 4), outputBase: r.u32(p + 8), outputReference: r.u32(p + 12), flags, singleMapping: (flags & 1) !== 0 });
      }
    }
    const nr = new AcpiReader(bytes, 'IORT', input, nEnd);
    const fieldsFail = (what: string, n: number): void => {
      if (length < n) r.fail(`${kind} node ${i} at offset ${at} has length ${length}, too short for ${what} (${n} bytes)`);
    };
    switch (kind) {
      case 'its-group': {
        fieldsFail('the ITS count', 20);
        const n = nr.u32(off + 16);
        if (20 + n * 4 > length) r.fail(`its-group node ${i} at offset ${at}: ${n} ITS ids run past the node (length ${length})`);
        node.itsIds = [];
        for (let k = 0; k < n; k++) node.itsIds.push(nr.u32(off + 20 + k * 4));
        break;
      }
      case 'named-component':
        fieldsFail('the device name', 29);
        node.deviceName = nr.cstring(off + 29, mapCount > 0 ? Math.min(nEnd, off + mapOff) : nEnd);
        break;
      case 'root-complex':
        fieldsFail('the PCI segment', 32);
        node.atsAttribute = nr.u32(off + 24);
        node.segment = nr.u32(off + 28);
        break;
      case 'smmu':
        fieldsFail('the base address and model', 36);
        node.base = nr.u64(off + 16);
        node.model = nr.u32(off + 32);
        break;
      case 'smmu-v3':
        fieldsFail('the base address and model', 44);
        node.base = nr.u64(off + 16);
        node.model = nr.u32(off + 40);
        break;
      case 'pmcg':
        fieldsFail('the page 0 base', 24);
        node.base = nr.u64(off + 16);
        break;
      case 'rmr':
        break;
      default:
        iort.notes.push(`node ${i} at offset ${at} has unknown type ${type}`);
    }
    iort.nodes.push(node);
    off = nEnd;
  }
  if (off < header.length && count > 0) iort.notes.push(`${header.length - off} byte(s) after the last node at ${hex(off)}`);
  return iort;
}

/** Result of {@link iortMapId}: the node reached and the ID it sees. */
export interface IortMapResult {
  node: IortNode;
  id: number;
}

/** Maximum translation depth, as in Linux's iort_node_map_id() (`level < 32` loop guard / "exceeds depth"). */
const IORT_MAX_DEPTH = 32;

/**
 * Follows ID mappings from the node at `startOffset` (typically a root
 * complex, with `id` a PCI requester ID) until a node whose type is in
 * `targetKinds` (default: SMMUv3 and SMMUv1/v2) is reached, returning it and
 * the translated ID: output = outputBase + (id − inputBase) for the first
 * mapping with inputBase ≤ id ≤ inputBase + idCount. Returns `undefined` if no
 * mapping covers the ID. Throws `EINVAL` if `startOffset` or a mapping's
 * output reference is not a node, `ELOOP` if the chain is too deep (a cycle).
 *
 * Linux: iort_node_map_id(), iort_id_map(), iort_get_iort_node(),
 * drivers/acpi/arm64/iort.c; IORT spec §3.4.
 */
export function iortMapId(
  iort: Iort,
  startOffset: number,
  id: number,
  targetKinds: readonly IortNodeKind[] = ['smmu-v3', 'smmu'],
): IortMapResult | undefined {
  const byOffset = new Map(iort.nodes.map((n) => [n.offset, n]));
  let node = byOffset.get(startOffset);
  if (!node) throw new IommuError('EINVAL', `IORT: no node at offset ${hex(startOffset)}`);
  let cur = id >>> 0;
  for (let depth = 0; depth < IORT_MAX_DEPTH; depth++) {
    if (targetKinds.includes(node.kind)) return { node, id: cur };
    const m = node.mappings.find((mp): boolean => {
      // Single mappings name the node's own ID; they do not translate input IDs.
      if (mp.singleMapping) return false;
      return cur >= mp.inputBase && cur <= mp.inputBase + mp.idCount;
    });
    if (!m) return undefined;
    cur = (m.outputBase + (cur - m.inputBase)) >>> 0;
    const next = byOffset.get(m.outputReference);
    if (!next) throw new IommuError('EINVAL', `IORT: ID mapping of node at ${hex(node.offset)} references ${hex(m.outputReference)}, which is not a node`);
    node = next;
  }
  throw new IommuError('ELOOP', `IORT: ID mapping from node at ${hex(startOffset)} exceeds depth ${IORT_MAX_DEPTH}`);
}
