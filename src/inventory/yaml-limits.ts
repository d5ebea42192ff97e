// Limits on the YAML itself, checked before it is composed: a huge file, nesting deep enough to
// exhaust the stack (yaml composes recursively) and aliases that expand exponentially ("billion
// laughs") each get one clear problem with the line and the limit, instead of a stack overflow or
// minutes of CPU. The limits are far above what an inventory needs: inventory/farm.yaml is 5 KiB,
// 7 levels deep and has no aliases.

import { Lexer, Parser, isAlias, visit, type Document } from 'yaml';

/** Largest inventory file read (50 times the production example). */
export const MAX_INVENTORY_BYTES = 256 * 1024;
/** Deepest nesting of mappings and lists (the schema's deepest field is at 7). */
export const MAX_DEPTH = 32;
/** yaml's maxAliasCount: alias uses, weighted by the aliases inside what they point at. */
export const MAX_ALIAS_EXPANSIONS = 100;

export interface Limit {
  /** Offset in the text where the limit is passed. */
  offset: number;
  message: string;
  fix: string;
}

export function sizeLimit(bytes: number, text?: string): Limit | undefined {
  if (bytes <= MAX_INVENTORY_BYTES) return undefined;
  // The first character past the limit, for the line number: as many characters as the first
  // MAX_INVENTORY_BYTES bytes hold (a character is at least one byte).
  const head = text === undefined ? '' : Buffer.from(text.slice(0, MAX_INVENTORY_BYTES)).subarray(0, MAX_INVENTORY_BYTES);
  const offset = head.toString().length;
  return {
    offset,
    message: `the inventory is ${formatSize(bytes)}; the farm reads inventories of at most ${formatSize(MAX_INVENTORY_BYTES)}${text === undefined ? '' : ' (this line passes the limit)'}`,
    fix: 'an inventory this large is not one written by hand: check that this is the right file',
  };
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : bytes >= 1024 ? `${Math.round(bytes / 1024)} KiB` : `${bytes} bytes`;
}

const tooDeep = (offset: number): Limit => ({
  offset,
  message: `YAML nesting deeper than ${MAX_DEPTH} levels of mappings and lists`,
  fix: `an inventory nests at most 7 levels: check the brackets and indentation here`,
});

type CstNode = { type?: string; offset?: number; value?: unknown; key?: unknown; items?: Array<{ key?: unknown; value?: unknown }> } | null | undefined;

/** Where the text first nests deeper than MAX_DEPTH, without composing it. */
export function depthLimit(text: string): Limit | undefined {
  // Flow collections first, from the lexer alone: yaml's parser slows down badly on thousands of
  // nested brackets, and the lexer stops at the first one past the limit.
  let flow = 0;
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') {
      if (++flow > MAX_DEPTH) return tooDeep(offset);
    } else if (token === ']' || token === '}') flow--;
    offset += token.length;
  }
  // Then block and flow nesting together, from the concrete syntax tree, walked without recursion.
  let deepest: number | undefined;
  for (const doc of new Parser().parse(text)) {
    const stack: Array<[CstNode, number]> = [[doc as CstNode, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (!node || typeof node !== 'object') continue;
      const collection = node.type === 'block-map' || node.type === 'block-seq' || node.type === 'flow-collection';
      const d = collection ? depth + 1 : depth;
      if (d > MAX_DEPTH) {
        if (deepest === undefined || (node.offset ?? 0) < deepest) deepest = node.offset ?? 0;
        continue;
      }
      if (node.type === 'document') stack.push([node.value as CstNode, d]);
      if (collection) for (const item of node.items ?? []) stack.push([item.key as CstNode, d], [item.value as CstNode, d]);
    }
  }
  return deepest === undefined ? undefined : tooDeep(deepest);
}

/** The problem for yaml's "Excessive alias count" refusal, at the document's first alias. */
export function aliasLimit(doc: Document): Limit {
  let offset = 0;
  visit(doc, {
    Alias(_, node) {
      if (isAlias(node)) offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return {
    offset,
    message: `YAML aliases expand to more than ${MAX_ALIAS_EXPANSIONS} copies (aliases of aliases multiply): this is how a "billion laughs" file exhausts memory`,
    fix: 'write the repeated values out, or use fewer aliases; a merge key per worker (<<: *defaults) is fine',
  };
}
