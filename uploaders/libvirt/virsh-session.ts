// One virsh, one qemu+ssh connection, for all of an upload's calls to a hypervisor. A virsh per
// call costs a libvirt connection each (~0.7 s over SSH here, most of a small upload's time);
// virsh's own shell on a pipe keeps one. Each command is followed by two `echo` sentinels, one
// to stderr and one to stdout, which mark where its output ends in each stream: virsh flushes
// both at every prompt, and reports a failed command only as "error: ..." lines on stderr (in
// its shell the exit status is the last command's). Its shell echoes each line after a prompt;
// callers read their output by pattern (XML element, "Key: value" lines), which that text never
// matches. The sentinel `FARM,END-...` is printed from `FARM,,END-...` (--split), so the echo
// of the command line itself never contains it.

import { randomBytes } from 'node:crypto';
import { FarmError } from '../../src/core/errors.ts';
import { start, type Started } from '../../src/core/process.ts';
import { deadline } from '../../src/core/sleep.ts';
import type { VirshResult } from './virsh.ts';

export interface SessionStart {
  virsh: string;
  uri: string;
  pass: readonly string[];
}

export interface SessionCommand {
  signal: AbortSignal;
  /** Ends the session (and so the command) after this long; none for uploads. */
  timeoutMs?: number;
}

/** One argument for virsh's shell: plain when safe, else single-quoted ('\'' for a quote). */
export function virshShellWord(arg: string): string {
  if (/[\x00-\x1f\x7f]/.test(arg)) {
    throw new FarmError('UPLOAD', `virsh argument ${JSON.stringify(arg)} contains a control character`, { hint: 'use names and paths without control characters' });
  }
  if (/^[A-Za-z0-9_./:=@+,%-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export class VirshSession {
  readonly pid: number;
  private out = '';
  private err = '';
  private seq = 0;
  private readonly token = randomBytes(4).toString('hex');
  private queue: Promise<unknown> = Promise.resolve();
  private ended: VirshResult | undefined;
  private wake: (() => void) | undefined;

  private constructor(private readonly child: Started) {
    this.pid = child.pid ?? -1;
    void child.done.then(
      (r) => this.end({ code: r.code, signal: r.signal, stdout: '', stderr: '' }),
      (err: unknown) => this.end({ code: null, signal: null, stdout: '', stderr: err instanceof Error ? err.message : String(err) }),
    );
  }

  static start(spec: SessionStart): VirshSession {
    let session: VirshSession | undefined;
    const pending: Array<['out' | 'err', string]> = [];
    const feed = (stream: 'out' | 'err', d: Buffer) => {
      if (session) session.feed(stream, d.toString());
      else pending.push([stream, d.toString()]);
    };
    // C locale: the messages are matched. The runner gives virsh its own process group, so
    // ending it ends the ssh it spawned too.
    const child = start([spec.virsh, '-q', '-c', spec.uri], {
      pass: spec.pass,
      env: { LC_ALL: 'C', LANG: 'C' },
      keepStdin: true,
      onStdout: (d) => feed('out', d),
      onStderr: (d) => feed('err', d),
      code: 'UPLOAD',
      hint: 'install libvirt-clients (Debian/Ubuntu) or libvirt-client (Fedora)',
    });
    session = new VirshSession(child);
    for (const [stream, text] of pending) session.feed(stream, text);
    return session;
  }

  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Runs one command; never rejects for a failed command (see VirshResult), only for a dead session's start. */
  run(args: readonly string[], opts: SessionCommand): Promise<VirshResult> {
    const line = args.map(virshShellWord).join(' ');
    const next = this.queue.then(() => this.exchange(line, opts));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Lets virsh finish (end of input), or ends it after `graceMs`. */
  async close(graceMs = 5000): Promise<void> {
    if (this.ended) return;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill(), graceMs);
    await this.child.done.catch(() => undefined);
    clearTimeout(timer);
  }

  private feed(stream: 'out' | 'err', text: string): void {
    if (stream === 'out') this.out += text;
    else this.err += text;
    this.wake?.();
  }

  private end(r: VirshResult): void {
    this.ended ??= r;
    this.wake?.();
  }

  private async exchange(line: string, opts: SessionCommand): Promise<VirshResult> {
    if (this.ended) return this.deadResult('');
    const n = ++this.seq;
    const mark = `FARM,END-${this.token}-${n}`;
    const echo = `FARM,,END-${this.token}-${n}`;
    const errMark = `error: ${mark}\n`;
    const outMark = `${mark}\n`;
    const kill = () => this.child.kill();
    opts.signal.addEventListener('abort', kill, { once: true });
    const timer = deadline(opts.timeoutMs, kill);
    try {
      if (opts.signal.aborted) kill();
      this.child.stdin?.write(`${line}\necho --err --split ${echo}\necho --split ${echo}\n`);
      for (;;) {
        const e = this.err.indexOf(errMark);
        const o = this.out.indexOf(outMark);
        if (e >= 0 && o >= 0) {
          const stderr = this.err.slice(0, e);
          const stdout = this.out.slice(0, o);
          this.err = this.err.slice(e + errMark.length);
          this.out = this.out.slice(o + outMark.length);
          return { code: /^error: /m.test(stderr) ? 1 : 0, signal: null, stdout, stderr };
        }
        if (this.ended) {
          const note = timer.expired ? `\nfarm: virsh timed out after ${Math.round((opts.timeoutMs ?? 0) / 1000)} s` : '';
          return this.deadResult(note);
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      timer.clear();
      opts.signal.removeEventListener('abort', kill);
    }
  }

  /** What a command gets from a session that ended: all output so far, and how it ended. */
  private deadResult(note: string): VirshResult {
    const r = this.ended!;
    const stderr = `${this.err}${r.stderr}${note}`;
    const stdout = this.out;
    this.err = '';
    this.out = '';
    return { code: r.code === 0 ? 1 : r.code, signal: r.signal, stdout, stderr: stderr.trim() ? stderr : 'virsh ended unexpectedly' };
  }
}
