// One rule over every string and key of the inventory: no control characters. They end up in
// host names, paths, argv, URIs and names at the clouds, where a NUL crashes child_process and a
// line break or an escape sequence forges log lines and terminal output; bidirectional-text
// controls make a value display as something it is not. No inventory field needs any of them.

import { isRecord } from './zod-walk.ts';
import type { Draft } from './issues.ts';
import type { PathSegment } from './problems.ts';

// C0 and C1 controls and DEL (\p{Cc}), the line and paragraph separators, and the bidi controls.
const FORBIDDEN = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const FORBIDDEN_ALL = new RegExp(FORBIDDEN.source, 'gu');

const NAMES: Record<number, string> = { 0: 'NUL', 9: 'tab', 10: 'line feed', 13: 'carriage return', 27: 'escape', 127: 'DEL' };

/** Reports this many strings at most; a file full of them gets one more problem saying so. */
const MAX_REPORTED = 50;

function describe(ch: string): string {
  const code = ch.codePointAt(0)!;
  const u = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  if (NAMES[code]) return `${u} (${NAMES[code]})`;
  if (code === 0x2028 || code === 0x2029) return `${u} (a line separator)`;
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) ? `${u} (a control character)` : `${u} (a bidirectional-text control)`;
}

/** `s` with every forbidden character written as \u{...}, safe to print and to log. */
export function printable(s: string): string {
  return s.replace(FORBIDDEN_ALL, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`);
}

function problem(path: PathSegment[], s: string, isKey: boolean): Draft {
  const index = [...s].findIndex((c) => FORBIDDEN.test(c));
  const ch = [...s][index]!;
  const multiLine = ch === '\n' || ch === '\r';
  return {
    path,
    // The value itself is not shown: it may be a secret (a URL with a token), and it is what
    // cannot be printed.
    message: `this ${isKey ? 'key' : 'value'} contains ${describe(ch)} at character ${index + 1}`,
    fix: multiLine ? 'write it on one line (a YAML block scalar, | or >, keeps its line breaks)' : 'remove the character; inventory values are plain text',
  };
}

/** Every string and key of the document that holds a forbidden character. */
export function controlCharacterChecks(data: unknown): Draft[] {
  const out: Draft[] = [];
  let more = 0;
  let firstUnreported: PathSegment[] = [];
  const report = (d: Draft) => {
    if (out.length < MAX_REPORTED) out.push(d);
    else if (more++ === 0) firstUnreported = d.path;
  };
  // Iterative: aliases can make the composed data deeper than the text.
  const stack: Array<[unknown, PathSegment[]]> = [[data, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (FORBIDDEN.test(v)) report(problem(path, v, false));
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], [...path, i]]);
    } else if (isRecord(v)) {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        if (FORBIDDEN.test(key)) report(problem([...path, key], key, true));
        stack.push([child, [...path, key]]);
      }
    }
  }
  if (more > 0) {
    out.push({ path: firstUnreported, message: `this and ${more - 1} more strings after it contain control characters too`, fix: 'remove them all' });
  }
  return out;
}
