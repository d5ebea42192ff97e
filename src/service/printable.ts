// Request data (paths, headers, branch names, commit messages) ends up in the service log, the
// status page and `farm build --server`'s output. A control character there could forge a log
// line, rewrite a terminal or hide text (bidi overrides), so it is shown escaped instead.

// C0, DEL, C1, the line/paragraph separators and the bidi formatting characters.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escape(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/** The text with every control character escaped (`\n`, `\x1b`, `\u202e`), cut to `max` characters. */
export function printable(text: string, max = Infinity): string {
  const shown = text.replace(UNPRINTABLE, escape);
  return shown.length > max ? `${shown.slice(0, max)}…` : shown;
}
