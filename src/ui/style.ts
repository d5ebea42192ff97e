// ANSI styles for terminal text, all off when the stream gets no colour (src/ui/color.js decides).

export interface Style {
  bold(text: string): string;
  underline(text: string): string;
  dim(text: string): string;
  cyan(text: string): string;
}

const sgr = (on: number, off: number) => (text: string) => `\x1b[${on}m${text}\x1b[${off}m`;
const plain = (text: string) => text;

export const COLOR: Style = { bold: sgr(1, 22), underline: sgr(4, 24), dim: sgr(90, 39), cyan: sgr(36, 39) };
export const PLAIN: Style = { bold: plain, underline: plain, dim: plain, cyan: plain };

export function styleFor(color: boolean): Style {
  return color ? COLOR : PLAIN;
}
