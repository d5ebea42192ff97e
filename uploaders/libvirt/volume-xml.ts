// Reads the few fields lookup() needs from `virsh vol-dumpxml`: capacity, physical size and path.
// libvirt writes this XML itself (attribute quotes ', sizes in bytes, the five predefined
// entities), so a small exact reader is enough; anything else is refused rather than guessed.

export interface VolumeXml {
  name: string;
  path: string;
  capacity: number;
  /** Absent before libvirt 3.0. */
  physical: number | undefined;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(s: string): string | undefined {
  // Every & must start one of the entities libvirt writes; a stray one means this is not its XML.
  const entity = /&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g;
  if (s.replace(entity, '').includes('&')) return undefined;
  return s.replace(entity, (_m, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(parseInt(e.slice(1), 10)) : ENTITIES[e]!,
  );
}

/** A size element (`<capacity unit='bytes'>N</capacity>`) directly in <volume>, in bytes. */
function size(xml: string, tag: 'capacity' | 'physical'): number | undefined | null {
  const m = new RegExp(`<${tag}(?: unit='(\\w+)')?>(\\d+)</${tag}>`).exec(xml);
  if (!m) return undefined;
  if (m[1] !== undefined && m[1] !== 'bytes') return null;
  return Number(m[2]);
}

/** The volume's fields, or undefined when the XML is not what libvirt writes for a volume. */
export function parseVolumeXml(name: string, xml: string): VolumeXml | undefined {
  if (!/^\s*<volume[\s>]/.test(xml)) return undefined;
  // <target> holds the volume's own path; <backingStore> (qcow2) has a <path> of its own after it.
  const target = /<target>([\s\S]*?)<\/target>/.exec(xml);
  const pathRaw = target && /<path>([^<]*)<\/path>/.exec(target[1]!);
  const path = pathRaw ? unescapeXml(pathRaw[1]!) : undefined;
  // Sizes come before <target> in libvirt's output; only that part is searched.
  const head = target ? xml.slice(0, target.index) : xml;
  const capacity = size(head, 'capacity');
  const physical = size(head, 'physical');
  if (path === undefined || path === '' || capacity === undefined || capacity === null || physical === null) return undefined;
  return { name, path, capacity, physical };
}
