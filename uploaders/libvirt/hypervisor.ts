// One hypervisor's storage pool, reached with virsh over qemu+ssh: every call of one client goes
// through one virsh session (one libvirt connection, see virsh-session.ts), started again if it
// ended (an aborted upload ends it); errors name the hypervisor by its URI without parameters
// or password.

import { FarmError } from '../../src/core/errors.ts';
import { retry } from '../../src/core/retry.ts';
import { connectUri, displayUri, uriLocation } from './uri.ts';
import { volumeNameProblem } from './names.ts';
import { createSshWrapper, type HypervisorSsh, type SshWrapper, type WrapperOptions } from './ssh-wrapper.ts';
import { classify, isNotFound, virshError, VIRSH_PASS, type VirshResult } from './virsh.ts';
import { VirshSession } from './virsh-session.ts';
import { VirshProbe, type UploadSample } from './progress.ts';
import { parseVolumeXml } from './volume-xml.ts';

export interface HypervisorOptions extends WrapperOptions {
  virsh?: string;
  /** Limit for every virsh call except the upload itself. */
  commandTimeoutMs?: number;
}

export interface Volume {
  name: string;
  path: string;
  /** Virtual size. */
  capacity: number;
  /** File size on the hypervisor (a sparse raw's full size; a qcow2's file size). */
  physical: number;
}

export type PoolState = 'running' | 'inactive' | 'missing';

export interface UploadWatch {
  onSample?: (s: UploadSample) => void;
  sampleMs?: number;
  /** The upload is killed when its file offset does not move for this long. */
  stallMs?: number;
}

/** Volume names: what the naming templates produce; never a path, never an option (names.ts). */
export function checkVolumeName(name: string): void {
  const problem = volumeNameProblem(name);
  if (problem) throw new FarmError('UPLOAD', problem, { hint: 'set `naming` on the libvirt target to a template that gives such names' });
}

export class HypervisorClient {
  readonly display: string;
  readonly location: string;
  private session: VirshSession | undefined;

  private constructor(
    private readonly uri: string,
    readonly pool: string,
    private readonly wrapper: SshWrapper,
    private readonly opts: HypervisorOptions,
    source: string,
  ) {
    this.display = displayUri(source);
    this.location = uriLocation(source);
  }

  static async open(hv: HypervisorSsh, pool: string, opts: HypervisorOptions, signal: AbortSignal): Promise<HypervisorClient> {
    const wrapper = await createSshWrapper(hv, signal, opts);
    try {
      const uri = connectUri(hv.uri, { command: wrapper.command, identityFile: hv.identity_file });
      return new HypervisorClient(uri, pool, wrapper, opts, hv.uri);
    } catch (err) {
      await wrapper.dispose();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.session?.close();
    await this.wrapper.dispose();
  }

  private virsh(): VirshSession {
    if (!this.session?.alive) this.session = VirshSession.start({ virsh: this.opts.virsh ?? 'virsh', uri: this.uri, pass: VIRSH_PASS });
    return this.session;
  }

  private fail(action: string, res: VirshResult): FarmError {
    const detail = virshError(res.stderr.split(this.uri).join(this.display));
    const { code, hint } = classify(res.stderr);
    return new FarmError(code, `${action} on hypervisor ${this.display} failed: ${detail}`, hint ? { hint } : {});
  }

  private async run(args: string[], signal: AbortSignal, timeoutMs = this.opts.commandTimeoutMs ?? 120_000): Promise<VirshResult> {
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    const res = await this.virsh().run(args, { signal, timeoutMs });
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    return res;
  }

  async poolState(signal: AbortSignal): Promise<PoolState> {
    const res = await this.run(['pool-info', '--pool', this.pool], signal);
    if (res.code !== 0) {
      if (isNotFound(res.stderr, 'pool')) return 'missing';
      throw this.fail(`reading storage pool '${this.pool}'`, res);
    }
    return /^State:\s+running\s*$/m.test(res.stdout) ? 'running' : 'inactive';
  }

  /** The volume called `name` in the pool, or undefined. One call: its XML has sizes and path. */
  async lookup(name: string, signal: AbortSignal): Promise<Volume | undefined> {
    const res = await this.run(['vol-dumpxml', '--pool', this.pool, '--vol', name], signal);
    if (res.code !== 0) {
      if (isNotFound(res.stderr, 'volume')) return undefined;
      throw this.fail(`looking up volume ${name} in pool '${this.pool}'`, res);
    }
    // The session's output around the document is its shell's echo (virsh-session.ts).
    const vol = parseVolumeXml(name, /<volume[\s>][\s\S]*<\/volume>/.exec(res.stdout)?.[0] ?? res.stdout);
    if (!vol) throw new FarmError('UPLOAD', `unexpected vol-dumpxml output for ${name} on hypervisor ${this.display}: ${res.stdout.trim().slice(0, 500)}`);
    if (vol.physical !== undefined) return { ...vol, physical: vol.physical };
    // libvirt before 3.0 has no <physical> in the XML; vol-info --physical asks it separately.
    const info = await this.run(['vol-info', '--pool', this.pool, '--vol', name, '--bytes', '--physical'], signal);
    if (info.code !== 0) {
      if (isNotFound(info.stderr, 'volume')) return undefined; // deleted in between
      throw this.fail(`looking up volume ${name} in pool '${this.pool}'`, info);
    }
    const physical = /^Physical:\s+(\d+) bytes$/m.exec(info.stdout);
    if (!physical) throw new FarmError('UPLOAD', `unexpected vol-info output for ${name} on hypervisor ${this.display}: ${info.stdout.trim()}`);
    return { ...vol, physical: Number(physical[1]) };
  }

  /**
   * An empty volume of the format; the upload then writes it from offset 0 and sets its size
   * (capacity 0 and allocation 0: nothing is preallocated, and a volume whose file is shorter
   * than the image is recognisably incomplete).
   */
  async create(name: string, format: 'raw' | 'qcow2', signal: AbortSignal): Promise<void> {
    checkVolumeName(name);
    const res = await this.run(['vol-create-as', '--pool', this.pool, '--name', name, '--capacity', '0', '--allocation', '0', '--format', format], signal);
    if (res.code !== 0) throw this.fail(`creating volume ${name} in pool '${this.pool}'`, res);
  }

  /**
   * `vol-upload --sparse`: libvirt's stream protocol sends only the data and tells the daemon
   * where the holes are, which it leaves unallocated. No overall timeout (the size decides);
   * a dead link ends through SSH and libvirt keepalives, a stuck reader through `stallMs`.
   */
  async upload(name: string, file: string, realFile: string, size: number, signal: AbortSignal, watch: UploadWatch = {}): Promise<void> {
    checkVolumeName(name);
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const session = this.virsh();
    const probe = new VirshProbe(session.pid, realFile);
    // The session's write counter goes on across calls: this upload's bytes count from here.
    await probe.mark();
    const done = session.run(['vol-upload', '--sparse', '--pool', this.pool, '--vol', name, '--file', file], { signal: stop.signal });
    let stalled = false;
    let lastPos = -1;
    let lastMove = Date.now();
    const stallMs = watch.stallMs ?? 300_000;
    const timer = setInterval(() => {
      void probe.sample().then((s) => {
        if (s.position !== undefined && s.position !== lastPos) {
          lastPos = s.position;
          lastMove = Date.now();
        } else if (s.position !== undefined && s.position < size && Date.now() - lastMove > stallMs) {
          stalled = true;
          stop.abort();
        }
        watch.onSample?.(s);
      });
    }, watch.sampleMs ?? 1000);
    let res: VirshResult;
    try {
      res = await done;
    } finally {
      clearInterval(timer);
      signal.removeEventListener('abort', onAbort);
    }
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    if (stalled) {
      throw new FarmError('UPLOAD', `upload of ${name} to hypervisor ${this.display} stalled: no progress for ${Math.round(stallMs / 1000)} s`, {
        hint: 'check the network to the hypervisor and its disk space, then run again',
      });
    }
    if (res.code !== 0) throw this.fail(`uploading ${name} to pool '${this.pool}'`, res);
  }

  /** The names of the pool's volumes (vol-list: a header, a rule, then one `name path` a line). */
  async volumeNames(signal: AbortSignal): Promise<string[]> {
    const res = await this.run(['vol-list', '--pool', this.pool], signal);
    if (res.code !== 0) throw this.fail(`listing volumes of pool '${this.pool}'`, res);
    const lines = res.stdout.split('\n');
    const rule = lines.findIndex((l) => /^-{3,}/.test(l.trim()));
    return lines
      .slice(rule + 1)
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n !== '');
  }

  /** vol-download of a small volume into `file` (the farm's metadata volumes). */
  async download(name: string, file: string, signal: AbortSignal): Promise<boolean> {
    checkVolumeName(name);
    const res = await this.run(['vol-download', '--pool', this.pool, '--vol', name, '--file', file], signal);
    if (res.code === 0) return true;
    if (isNotFound(res.stderr, 'volume')) return false;
    throw this.fail(`reading volume ${name} of pool '${this.pool}'`, res);
  }

  /** vol-upload of a small file into an existing volume, from offset 0 (not sparse). */
  async uploadSmall(name: string, file: string, signal: AbortSignal): Promise<void> {
    checkVolumeName(name);
    const res = await this.run(['vol-upload', '--pool', this.pool, '--vol', name, '--file', file], signal);
    if (res.code !== 0) throw this.fail(`writing volume ${name} of pool '${this.pool}'`, res);
  }

  /**
   * Deletes the volume; absent is fine. Retried a few times: right after an aborted upload the
   * daemon may still hold the volume's stream open for a moment.
   */
  async delete(name: string, signal: AbortSignal, expectPath?: string): Promise<boolean> {
    const busy = new WeakSet<Error>();
    return retry(
      async () => {
        if (expectPath !== undefined) {
          const vol = await this.lookup(name, signal);
          if (!vol) return false;
          if (vol.path !== expectPath) {
            throw new FarmError('UPLOAD', `volume ${name} on hypervisor ${this.display} is ${vol.path}, not ${expectPath}: not deleting it`);
          }
        }
        const res = await this.run(['vol-delete', '--pool', this.pool, '--vol', name], signal);
        if (res.code === 0) return true;
        if (isNotFound(res.stderr, 'volume')) return false;
        const err = this.fail(`deleting volume ${name} from pool '${this.pool}'`, res);
        if (/in use|being built|Requested operation is not valid/i.test(res.stderr)) busy.add(err);
        throw err;
      },
      // Ten attempts half a second apart: the daemon lets go of a stream within a few seconds.
      { what: `deleting volume ${name}`, retries: 9, minTimeoutMs: 500, factor: 1, signal, retryable: (err) => busy.has(err) },
    );
  }
}
