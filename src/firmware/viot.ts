/**
 * The ACPI Virtual I/O Translation Table (VIOT), parsed from its binary form
 * (/sys/firmware/acpi/tables/VIOT): the para-virtual IOMMUs (virtio-iommu as
 * a PCI function or an MMIO device) and the endpoints each translates (ranges
 * of PCI requester IDs, single MMIO devices), with their endpoint IDs.
 *
 * Layout (all little-endian): the 36-byte ACPI header, then node count (u16
 * at 0x24), node offset (u16 at 0x26), 8 reserved bytes (0x28–0x2f); nodes
 * start at the node offset and follow each other, each beginning with a
 * 4-byte header (type u8, reserved u8, length u16).
 *
 * ACPI 6.4 §5.2.30 (VIOT); Linux: drivers/acpi/viot.c (acpi_viot_init(),
 * viot_parse_node(), viot_check_bounds(), viot_get_iommu()),
 * include/acpi/actbl3.h (struct acpi_table_viot, acpi_viot_header,
 * acpi_viot_pci_range, acpi_viot_mmio, acpi_viot_virtio_iommu_pci,
 * acpi_viot_virtio_iommu_mmio).
 *
 * Divergences: Linux logs and drops (or stops at) malformed nodes; this parser
 * rejects the whole table with `EINVAL` for a short node, a node past the
 * table, an output node that is not an IOMMU node, and a PCI range whose
 * segment or BDF start exceeds its end (Linux: a range that matches nothing).
 */

import { ACPI_HEADER_SIZE, AcpiReader, checkAcpiHeader, type AcpiHeader } from './acpi.js';

/** Size in bytes of the fixed VIOT table header (ACPI header included). Linux: sizeof(struct acpi_table_viot). */
export const VIOT_HEADER_SIZE = 48;
/** Size in bytes of a node header. Linux: sizeof(struct acpi_viot_header). */
export const VIOT_NODE_HEADER_SIZE = 4;

/**
 * VIOT node types and their minimum lengths in bytes.
 * Linux: enum acpi_viot_node_type (ACPI_VIOT_NODE_PCI_RANGE = 1 … ACPI_VIOT_NODE_VIRTIO_IOMMU_MMIO = 4), include/acpi/actbl3.h.
 */
export const VIOT_NODE_TYPE = {
  1: 'pci-range',
  2: 'mmio',
  3: 'virtio-iommu-pci',
  4: 'virtio-iommu-mmio',
} as const;

/** Name of a known VIOT node type. */
export type ViotNodeKind = (typeof VIOT_NODE_TYPE)[keyof typeof VIOT_NODE_TYPE];

/** Minimum node length (bytes) per kind: the size of its Linux struct. */
const MIN_LENGTH: Record<ViotNodeKind, number> = {
  'pci-range': 24, // struct acpi_viot_pci_range
  mmio: 24, // struct acpi_viot_mmio
  'virtio-iommu-pci': 16, // struct acpi_viot_virtio_iommu_pci
  'virtio-iommu-mmio': 16, // struct acpi_viot_virtio_iommu_mmio
};

/** Fields every VIOT node has. Linux: struct acpi_viot_header. */
export interface ViotNodeBase {
  /** Byte offset of the node from the start of the table (how output nodes refer to it). */
  readonly offset: number;
  /** The raw type byte. */
  readonly type: number;
  /** Length of the node in bytes (≥ the minimum of its type). */
  readonly length: number;
}

/**
 * A range of PCI requester IDs over a range of segments, translated by one
 * IOMMU. The endpoint ID of (segment, BDF) is
 * `((segment − segmentStart) << 16) + BDF − bdfStart + endpointStart` (u32).
 * Linux: struct acpi_viot_pci_range.
 */
export interface ViotPciRange extends ViotNodeBase {
  readonly kind: 'pci-range';
  /** Endpoint ID of the first BDF of the first segment (u32, at node offset 4). */
  readonly endpointStart: number;
  /** First PCI segment (u16, node offset 8). */
  readonly segmentStart: number;
  /** Last PCI segment, inclusive (u16, node offset 10). */
  readonly segmentEnd: number;
  /** First requester ID, bus << 8 | devfn (u16, node offset 12). */
  readonly bdfStart: number;
  /** Last requester ID, inclusive (u16, node offset 14). */
  readonly bdfEnd: number;
  /** Byte offset of the IOMMU node (u16, node offset 16). */
  readonly outputNode: number;
}

/** A single MMIO endpoint, identified by its base address. Linux: struct acpi_viot_mmio. */
export interface ViotMmioEndpoint extends ViotNodeBase {
  readonly kind: 'mmio';
  /** Endpoint ID (u32, node offset 4). */
  readonly endpointId: number;
  /** Base address of the device's MMIO region (u64, node offset 8). */
  readonly baseAddress: bigint;
  /** Byte offset of the IOMMU node (u16, node offset 16). */
  readonly outputNode: number;
}

/** A virtio-iommu that is a PCI function. Linux: struct acpi_viot_virtio_iommu_pci. */
export interface ViotVirtioIommuPci extends ViotNodeBase {
  readonly kind: 'virtio-iommu-pci';
  /** PCI segment of the IOMMU function (u16, node offset 4). */
  readonly segment: number;
  /** Requester ID of the IOMMU function, bus << 8 | devfn (u16, node offset 6). */
  readonly bdf: number;
}

/** A virtio-mmio virtio-iommu. Linux: struct acpi_viot_virtio_iommu_mmio. */
export interface ViotVirtioIommuMmio extends ViotNodeBase {
  readonly kind: 'virtio-iommu-mmio';
  /** Base address of the virtio-mmio device (u64, node offset 8). */
  readonly baseAddress: bigint;
}

/** A VIOT IOMMU node. */
export type ViotIommuNode = ViotVirtioIommuPci | ViotVirtioIommuMmio;
/** A VIOT endpoint node (its output node is an IOMMU node). */
export type ViotEndpointNode = ViotPciRange | ViotMmioEndpoint;
/** A decoded VIOT node (nodes of unknown type are not kept). */
export type ViotNode = ViotEndpointNode | ViotIommuNode;

/** A parsed VIOT. Linux: struct acpi_table_viot and the lists drivers/acpi/viot.c builds from it. */
export interface Viot {
  readonly header: AcpiHeader;
  /** The node count field (u16 at 0x24), unknown-type nodes included. */
  readonly nodeCount: number;
  /** The node offset field (u16 at 0x26): byte offset of the first node. */
  readonly nodeOffset: number;
  /** Nodes of known type, in table order. */
  readonly nodes: readonly ViotNode[];
  /** PCI range nodes, in table order. Linux: viot_pci_ranges. */
  readonly pciRanges: readonly ViotPciRange[];
  /** MMIO endpoint nodes, in table order. Linux: viot_mmio_endpoints. */
  readonly mmioEndpoints: readonly ViotMmioEndpoint[];
  /** IOMMU nodes, in table order. Linux: viot_iommus. */
  readonly iommus: readonly ViotIommuNode[];
  /** Things skipped, such as nodes of unknown type or bytes after the last node. */
  readonly notes: readonly string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Parses a VIOT: checks the ACPI header (signature `VIOT`, length, checksum),
 * walks `node count` nodes from `node offset`, decodes each node of a known
 * type and checks that every endpoint node's output node is an IOMMU node.
 * Nodes of unknown type are skipped with a note, as Linux does
 * ("Unsupported node"); so are trailing bytes after the last node.
 * @param bytes the table, header included (bytes past its length field are ignored)
 * @param input the file it was read from, for {@link IommuError.input}
 * @throws IommuError EINVAL, with a message naming `VIOT` and the byte
 *   offset, for a bad ACPI header, a table too short for the 48-byte VIOT
 *   header, a node offset into that header (with a non-zero node count), a
 *   node header or node running past the table (fewer nodes than the count
 *   says), a node shorter than 4 bytes or than its type's structure, a PCI
 *   range whose segment or BDF start exceeds its end, or an output node that is
 *   not the offset of an IOMMU node.
 * Linux: acpi_viot_init(), viot_parse_node(), viot_check_bounds(), viot_get_iommu(), drivers/acpi/viot.c.
 */
export function parseViot(bytes: Uint8Array, input: string): Viot {
  const header = checkAcpiHeader(bytes, 'VIOT', input);
  const r = new AcpiReader(bytes, 'VIOT', input, header.length);
  r.need(ACPI_HEADER_SIZE, VIOT_HEADER_SIZE - ACPI_HEADER_SIZE, 'VIOT header (node count, node offset, reserved)');
  const nodeCount = r.u16(0x24, 'node count');
  const nodeOffset = r.u16(0x26, 'node offset');
  const nodes: ViotNode[] = [];
  const notes: string[] = [];
  if (nodeCount > 0 && nodeOffset < VIOT_HEADER_SIZE) {
    // viot_check_bounds(): nodes start no earlier than sizeof(struct acpi_table_viot).
    r.fail(`node offset ${hex(nodeOffset)} at offset 0x26 points into the ${VIOT_HEADER_SIZE}-byte VIOT header`);
  }
  let off = nodeOffset;
  for (let i = 0; i < nodeCount; i++) {
    const at = hex(off);
    if (off + VIOT_NODE_HEADER_SIZE > header.length) {
      r.fail(`node count ${nodeCount} at offset 0x24, but node ${i} header at offset ${at} runs past the end of the table (length ${hex(header.length)})`);
    }
    const type = r.u8(off, `node ${i} type`);
    const length = r.u16(off + 2, `node ${i} length`);
    if (length < VIOT_NODE_HEADER_SIZE) r.fail(`node ${i} at offset ${at} has invalid length ${length} (less than ${VIOT_NODE_HEADER_SIZE})`);
    if (off + length > header.length) {
      r.fail(`node ${i} at offset ${at} (length ${length}) runs past the end of the table (length ${hex(header.length)})`);
    }
    const kind = (VIOT_NODE_TYPE as Record<number, ViotNodeKind | undefined>)[type];
    if (kind === undefined) {
      notes.push(`node ${i} at offset ${at} has unsupported type ${type}, skipped`);
    } else {
      if (length < MIN_LENGTH[kind]) {
        r.fail(`${kind} node ${i} at offset ${at} has length ${length}, shorter than its ${MIN_LENGTH[kind]}-byte structure`);
      }
      const base = { offset: off, type, length };
      switch (kind) {
        case 'pci-range': {
          const n: ViotPciRange = {
            ...base,
            kind,
            endpointStart: r.u32(off + 4),
            segmentStart: r.u16(off + 8),
            segmentEnd: r.u16(off + 10),
            bdfStart: r.u16(off + 12),
            bdfEnd: r.u16(off + 14),
            outputNode: r.u16(off + 16),
          };
          if (n.segmentStart > n.segmentEnd) {
            r.fail(`pci-range node ${i} at offset ${at}: segment start ${hex(n.segmentStart)} (offset ${hex(off + 8)}) is past segment end ${hex(n.segmentEnd)}`);
          }
          if (n.bdfStart > n.bdfEnd) {
            r.fail(`pci-range node ${i} at offset ${at}: BDF start ${hex(n.bdfStart)} (offset ${hex(off + 12)}) is past BDF end ${hex(n.bdfEnd)}`);
          }
          nodes.push(n);
          break;
        }
        case 'mmio':
          nodes.push({ ...base, kind, endpointId: r.u32(off + 4), baseAddress: r.u64(off + 8), outputNode: r.u16(off + 16) });
          break;
        case 'virtio-iommu-pci':
          nodes.push({ ...base, kind, segment: r.u16(off + 4), bdf: r.u16(off + 6) });
          break;
        case 'virtio-iommu-mmio':
          nodes.push({ ...base, kind, baseAddress: r.u64(off + 8) });
          break;
      }
    }
    off += length;
  }
  if (nodeCount > 0 && off < header.length) notes.push(`${header.length - off} byte(s) after the last node at ${hex(off)}`);
  const iommus = nodes.filter((n): n is ViotIommuNode => n.kind === 'virtio-iommu-pci' || n.kind === 'virtio-iommu-mmio');
  const iommuAt = new Set(iommus.map((n) => n.offset));
  for (const n of nodes) {
    if ((n.kind === 'pci-range' || n.kind === 'mmio') && !iommuAt.has(n.outputNode)) {
      // viot_get_iommu() finds no IOMMU node there ("No IOMMU node found").
      r.fail(`${n.kind} node at offset ${hex(n.offset)}: output node ${hex(n.outputNode)} (offset ${hex(n.offset + 16)}) is not an IOMMU node`);
    }
  }
  return {
    header,
    nodeCount,
    nodeOffset,
    nodes,
    pciRanges: nodes.filter((n): n is ViotPciRange => n.kind === 'pci-range'),
    mmioEndpoints: nodes.filter((n): n is ViotMmioEndpoint => n.kind === 'mmio'),
    iommus,
    notes,
  };
}

/** The result of {@link viotPciEndpoint}: the range matched, its IOMMU node and the endpoint ID. */
export interface ViotEndpointMatch {
  /** The endpoint node that matched. */
  readonly node: ViotEndpointNode;
  /** Its output IOMMU node. */
  readonly iommu: ViotIommuNode;
  /** The endpoint ID (u32) the IOMMU knows the requester by. */
  readonly endpointId: number;
}

/** The IOMMU node at byte offset `offset`, or null. Linux: viot_get_iommu() (its table lookup). */
export function viotIommuAt(viot: Viot, offset: number): ViotIommuNode | null {
  return viot.iommus.find((n) => n.offset === offset) ?? null;
}

/**
 * The first PCI range covering requester ID `rid` (bus << 8 | devfn) on PCI
 * segment `segment`, with its endpoint ID
 * `((segment − segmentStart) << 16) + rid − bdfStart + endpointStart`
 * (wrapping at 2^32 as Linux's u32), or null if no range covers it.
 * Linux: viot_pci_dev_iommu_init(), drivers/acpi/viot.c.
 */
export function viotPciEndpoint(viot: Viot, segment: number, rid: number): ViotEndpointMatch | null {
  for (const n of viot.pciRanges) {
    if (segment >= n.segmentStart && segment <= n.segmentEnd && rid >= n.bdfStart && rid <= n.bdfEnd) {
      const iommu = viotIommuAt(viot, n.outputNode);
      if (!iommu) return null; // parseViot() rejects this; a hand-made Viot may not
      const endpointId = ((segment - n.segmentStart) * 0x10000 + rid - n.bdfStart + n.endpointStart) % 2 ** 32;
      return { node: n, iommu, endpointId };
    }
  }
  return null;
}

/**
 * The MMIO endpoint node whose base address is `base`, with its IOMMU and
 * endpoint ID, or null. Linux: viot_mmio_dev_iommu_init(), drivers/acpi/viot.c.
 */
export function viotMmioEndpoint(viot: Viot, base: bigint): ViotEndpointMatch | null {
  const n = viot.mmioEndpoints.find((e) => e.baseAddress === base);
  if (!n) return null;
  const iommu = viotIommuAt(viot, n.outputNode);
  return iommu ? { node: n, iommu, endpointId: n.endpointId } : null;
}
