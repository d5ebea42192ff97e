// Maps a field path back to where it is written in the YAML source, so every problem carries a
// line:column. Entries of a mapping point at their key (that is the line a user looks for); items
// of a list point at the item. A path that is not in the file (a missing field) stops at the
// deepest part that is: the parent object.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair } from 'yaml';
import type { PathSegment } from './problems.ts';

export interface Position {
  line: number;
  column: number;
}

type Parent = Node | null | undefined;

function deref(doc: Document, node: Parent): Parent {
  // Bounded: an alias cannot point at another alias, but guard against odd documents anyway.
  for (let i = 0; i < 8 && node && isAlias(node); i++) node = node.resolve(doc) as Parent;
  return node;
}

function findPair(doc: Document, map: Node, key: string, depth = 0): Pair<unknown, unknown> | undefined {
  if (!isMap(map) || depth > 8) return undefined;
  let merged: Pair<unknown, unknown> | undefined;
  for (const pair of map.items) {
    const k = pair.key;
    const name = isScalar(k) ? String(k.value) : String(k);
    if (name === key) return pair;
    // `<<: *defaults` merges another mapping in; its fields count as this one's.
    if (name === '<<' && !merged) {
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const src of sources) {
        const found = findPair(doc, deref(doc, src as Parent) as Node, key, depth + 1);
        if (found) {
          merged = found;
          break;
        }
      }
    }
  }
  return merged;
}

const start = (n: unknown): number | undefined => (n as { range?: [number, number, number] } | null)?.range?.[0];

/** Offset of the deepest node on `path`, and whether the whole path was found. */
export function locateOffset(doc: Document, path: readonly PathSegment[]): { offset: number | undefined; found: boolean } {
  let node = deref(doc, doc.contents as Parent);
  let offset = start(node);
  for (const seg of path) {
    node = deref(doc, node);
    if (isMap(node)) {
      const pair = findPair(doc, node, String(seg));
      if (!pair) return { offset, found: false };
      offset = start(pair.key) ?? offset;
      node = pair.value as Parent;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Parent;
      if (item === undefined) return { offset, found: false };
      offset = start(item) ?? offset;
      node = item;
    } else {
      return { offset, found: false };
    }
  }
  return { offset, found: true };
}

export function locate(doc: Document, lines: LineCounter, path: readonly PathSegment[]): Position | undefined {
  const { offset } = locateOffset(doc, path);
  if (offset === undefined) return undefined;
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}
