// Watches a guest's serial console: it is ready when the configured pattern appears, and it has
// failed, at once, on a kernel panic, an emergency shell, UEFI's shell or GRUB's rescue prompt
// (nothing bootable). The last lines say what led there.

const FATAL: Array<[RegExp, string]> = [
  [/Kernel panic - not syncing.*/, 'kernel panic'],
  [/.*emergency shell.*|.*Entering emergency mode.*/i, 'emergency shell'],
  // UEFI found nothing to boot on the disk and falls back to its built-in shell.
  [/BdsDxe: starting Boot\w+ "EFI Internal Shell".*/, 'no bootloader the firmware could start'],
  [/grub rescue>.*/, 'GRUB rescue shell'],
];
const LAST_LINES = 15;
// Only the tail is searched again on each chunk: a pattern spans at most a few lines.
const WINDOW = 4096;

export type ConsoleEvent = { kind: 'ready'; line: string } | { kind: 'fatal'; reason: string };

export class ConsoleWatcher {
  private text = '';
  private searched = 0;
  private readonly ready: RegExp;
  /** Where the fatal line ended: the lines up to it say what led to it; the rest is its trace. */
  private fatalAt: number | undefined;

  constructor(pattern: string) {
    this.ready = new RegExp(pattern, 'im');
  }

  /** Feeds console output; returns what it reached, if anything (each event once). */
  feed(chunk: string): ConsoleEvent | undefined {
    const from = Math.max(0, this.searched - WINDOW);
    this.text += chunk;
    const tail = this.text.slice(from);
    this.searched = this.text.length;
    for (const [re, what] of FATAL) {
      const m = re.exec(tail);
      if (m) {
        this.fatalAt = from + m.index + m[0].length;
        return { kind: 'fatal', reason: `${what}: ${m[0].trim()}` };
      }
    }
    const m = this.ready.exec(tail);
    if (m) return { kind: 'ready', line: m[0].trim() };
    return undefined;
  }

  /** The console's last non-empty lines (up to a fatal line, when one was seen). */
  lastLines(n = LAST_LINES): string[] {
    return lastLines(this.text.slice(0, this.fatalAt ?? this.text.length), n);
  }

  /** The kernel's banner, when it printed one. */
  banner(): string | undefined {
    return /Linux version \S+/.exec(this.text)?.[0];
  }
}

export function lastLines(text: string, n = LAST_LINES): string[] {
  return text
    .replace(/\r/g, '')
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n);
}
