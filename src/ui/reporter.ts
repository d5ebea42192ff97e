// One place that renders what happens. Lines are tagged with their scope (an arch, a worker, a
// target) on the terminal (stderr, so stdout stays for results) and, per arch, in a log file.
// Both see each line through src/core/redact.ts.

import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { redact } from '../core/redact.ts';
import { wantColor } from './color.js';

export type Level = 'info' | 'warn' | 'error' | 'output';

export interface ReporterOptions {
  /** Where human-readable progress goes (default process.stderr). */
  stream?: NodeJS.WritableStream;
  /** Print builder/podman output lines too (default true). */
  verbose?: boolean;
  /** ANSI colour on the terminal lines (default: src/ui/color.js decides for the stream). */
  color?: boolean;
}

const COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m', '\x1b[34m', '\x1b[96m'];

export class Reporter {
  private readonly stream: NodeJS.WritableStream;
  private readonly verbose: boolean;
  private readonly color: boolean;
  private readonly files = new Map<string, WriteStream>();
  private readonly scopeColor = new Map<string, string>();
  private width = 8;

  constructor(opts: ReporterOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.verbose = opts.verbose ?? true;
    this.color = opts.color ?? wantColor(this.stream as { isTTY?: boolean }, process.env);
  }

  /** Also write a scope's lines to a log file. */
  logTo(scope: string, path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    this.files.set(scope, createWriteStream(path, { flags: 'a' }));
    this.width = Math.max(this.width, scope.length);
  }

  scoped(scope: string): ScopedReporter {
    this.width = Math.max(this.width, scope.length);
    return new ScopedReporter(this, scope);
  }

  emit(scope: string, level: Level, raw: string): void {
    // Every line reaches the terminal and the build log masked: builder output and cloud errors
    // may echo a credential.
    const text = redact(raw);
    const stamp = new Date().toISOString();
    this.files.get(scope)?.write(`${stamp} ${level === 'output' ? '|' : level} ${text}\n`);
    if (level === 'output' && !this.verbose) return;
    let tag = `[${scope}]`.padEnd(this.width + 2);
    if (this.color) {
      if (!this.scopeColor.has(scope)) this.scopeColor.set(scope, COLORS[this.scopeColor.size % COLORS.length]!);
      tag = `${this.scopeColor.get(scope)}${tag}\x1b[0m`;
    }
    const prefix = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : level === 'output' ? '  ' : '';
    this.stream.write(`${tag} ${prefix}${text}\n`);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => new Promise<void>((r) => f.end(r))));
    this.files.clear();
  }
}

export class ScopedReporter {
  constructor(
    private readonly parent: Reporter,
    readonly scope: string,
  ) {}
  info(text: string): void {
    this.parent.emit(this.scope, 'info', text);
  }
  warn(text: string): void {
    this.parent.emit(this.scope, 'warn', text);
  }
  error(text: string): void {
    this.parent.emit(this.scope, 'error', text);
  }
  output(text: string): void {
    this.parent.emit(this.scope, 'output', text);
  }
}
