// The SSH worker transport: one ssh2 connection per worker, reused for every command and socket.
// The host key is verified before authentication (src/core/hostkeys.ts, connect.ts); commands are
// argv arrays quoted for the remote login shell (src/core/quote.ts); a command's channel, exit and
// process group are remote.ts, the only place that touches ssh2's internals.

import type { Duplex } from 'node:stream';
import type { Client, ClientChannel } from 'ssh2';
import { FarmError, errorMessage, throwIfAborted } from '../../src/core/errors.ts';
import { commandLine } from '../../src/core/quote.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';
import { streamBulk, type BulkSpawnOptions, type BulkTransfer } from '../bulk.ts';
import type { ExecOptions, ExecResult, RemoteProcess, SpawnOptions, WorkerTransport } from '../transport.ts';
import { CappedBuffer, TailBuffer } from './buffers.ts';
import { bulkProgram, bulkSetup, openConnection, type ConnectOptions } from './connect.ts';
import { lostConnectionError, shown, who } from './errors.ts';
import type { OpenSshBulk } from './openssh.ts';
import { PGID_PREFIX, RemoteCommand, dropSocket, feedStdin, signalExitCode, type Exit } from './remote.ts';
import { ChannelSlots } from './slots.ts';

export type { ConnectOptions } from './connect.ts';

const DEFAULT_MAX_BUFFER = 1024 * 1024;
// Enough of stderr to explain a failure in an error message.
const STDERR_TAIL_BYTES = 4096;
// Closing waits this long for the worker to answer our disconnect, then drops the socket: a dead
// link must never hold the farm (or a `farm serve` queue) for the kernel's minutes of FIN retries.
export const CLOSE_GRACE_MS = 2_000;
const OPEN_ATTEMPTS = 6;

export class SshTransport implements WorkerTransport {
  private closedReason: string | undefined;
  /** Set when the connection ended without the farm closing it. */
  private lostError: FarmError | undefined;
  private readonly slots: ChannelSlots;
  private openssh: Promise<OpenSshBulk> | undefined;
  /** Bulk streams: through OpenSSH's client when it was set up, else over this connection. */
  readonly bulk: BulkTransfer;
  private readonly connectedAt = Date.now();

  /** @internal use connectWorker */
  constructor(
    readonly worker: Worker,
    private readonly client: Client,
    /** Negotiated algorithms (cipher, kex, host key), for logs and benchmarks. */
    readonly negotiated: { cipher: string; serverHostKey: string },
    maxChannels: number,
    /** Sets up the OpenSSH client for bulk streams on first use; undefined: bulk uses ssh2. */
    private readonly bulkSetup: (() => Promise<OpenSshBulk>) | undefined = undefined,
    /** The keepalive period, to say how long a dead link went unanswered. */
    private readonly keepaliveIntervalMs = 15_000,
  ) {
    this.slots = new ChannelSlots(maxChannels);
    this.bulk = bulkSetup ? { prepare: (signal) => this.prepareOpenSsh(signal), spawn: (argv, o) => this.spawnOpenSsh(argv, o) } : streamBulk((argv, o) => this.spawn(argv, o));
    client.on('error', (err: Error & { level?: string }) => {
      if (this.closedReason === undefined) {
        const keepalive = err.level === 'client-timeout' && /keepalive/i.test(err.message);
        this.lose(keepalive ? { keepalive: true, intervalMs: this.keepaliveIntervalMs } : { keepalive: false, message: err.message });
      }
      this.closedReason ??= err.message;
    });
    client.on('close', () => {
      if (this.closedReason === undefined) this.lose({ keepalive: false, message: 'the worker closed the connection' });
      this.closedReason ??= 'connection closed';
    });
  }

  private lose(cause: Parameters<typeof lostConnectionError>[2]): void {
    this.lostError ??= lostConnectionError(this.worker, Date.now() - this.connectedAt, cause);
  }

  /** Why the connection was lost (the farm did not close it), if it was. */
  connectionLost(): FarmError | undefined {
    return this.lostError;
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  private assertOpen(): void {
    if (this.lostError) throw this.lostError;
    if (this.closedReason !== undefined) {
      throw new FarmError('SSH', `connection to ${who(this.worker)} is closed (${this.closedReason})`, {
        hint: 'reconnect to the worker',
      });
    }
  }

  /** Opens an exec channel running `cmd` (its slot is released when the channel closes). The
   *  remote shell first reports its pid on stderr: sshd made it a session leader, so that pid is
   *  the command's process group, which terminate() can kill as a whole. */
  private async start(cmd: string, signal: AbortSignal | undefined, onStderr: (chunk: Buffer) => void): Promise<RemoteCommand> {
    this.assertOpen();
    await this.slots.acquire(signal);
    let channel: ClientChannel | undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          channel = await new Promise<ClientChannel>((resolve, reject) => {
            this.client.exec(`${PGID_PREFIX}${cmd}`, (err, ch) => (err ? reject(err) : resolve(ch)));
          });
          break;
        } catch (err) {
          // sshd frees a finished session a moment after its channel closes, so an open right
          // after a close can be refused; nothing ran yet, so trying again is safe.
          if (attempt >= OPEN_ATTEMPTS || !/open failed/i.test(errorMessage(err)) || this.closed) throw err;
          await new Promise((r) => setTimeout(r, Math.min(25 * 2 ** attempt, 400)));
          throwIfAborted(signal);
        }
      }
    } catch (err) {
      this.slots.release();
      if (err instanceof FarmError) throw err;
      throw new FarmError('SSH', `cannot start \`${shown(cmd)}\` on ${who(this.worker)}: ${errorMessage(err)}`, { cause: err });
    }
    channel.once('close', () => this.slots.release());
    return new RemoteCommand(channel, cmd, onStderr, (pgid) => this.killGroup(pgid));
  }

  /** Kills a remote process group from a separate channel (sshd refuses `signal` requests for root
   *  logins without privilege separation, e.g. OpenSSH 9.2, and a closed channel does not stop a
   *  process that never writes). Best effort: the channel is closed regardless. */
  private killGroup(pgid: number): void {
    if (this.closed) return;
    this.client.exec(commandLine(['kill', '-s', 'TERM', '--', `-${pgid}`]), (err, ch) => {
      if (err) return;
      ch.on('data', () => {});
      ch.stderr.on('data', () => {});
      ch.end();
    });
  }

  /** Waits for the channel to close; rejects with ABORTED when the signal fires first. */
  private waitExit(cmd: RemoteCommand, signal: AbortSignal | undefined): Promise<Exit> {
    return new Promise<Exit>((resolve, reject) => {
      const onAbort = () => {
        cmd.terminate();
        reject(new FarmError('ABORTED', `cancelled: \`${shown(cmd.line)}\` on ${this.worker.name}`));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      cmd.channel.once('close', () => {
        signal?.removeEventListener('abort', onAbort);
        const exit = cmd.ended();
        if (exit) resolve(exit);
        else if (cmd.terminated) resolve({ code: null, signal: 'SIGTERM' });
        else if (this.lostError) {
          reject(new FarmError('SSH', `${this.lostError.message}, while running \`${shown(cmd.line)}\``, { hint: this.lostError.hint }));
        } else {
          const why = this.closedReason ? ` (${this.closedReason})` : '';
          reject(new FarmError('SSH', `lost the connection to ${who(this.worker)} while running \`${shown(cmd.line)}\`${why}`));
        }
      });
    });
  }

  private result(exit: Exit, stdout: string, stderr: string): ExecResult {
    return {
      code: exit.code ?? signalExitCode(exit.signal),
      signal: exit.signal,
      stdout,
      stderr,
    };
  }

  private commandError(cmd: string, exit: Exit, tail: TailBuffer): FarmError {
    const how = exit.code === null || exit.code === undefined ? `was killed by ${exit.signal ?? 'a signal'}` : `exited with code ${exit.code}`;
    const err = tail.lines();
    return new FarmError('REMOTE_COMMAND', `\`${shown(cmd)}\` on ${this.worker.name} ${how}${err ? `:\n${err}` : ''}`);
  }

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { signal, check = true, maxBuffer = DEFAULT_MAX_BUFFER } = options;
    const line = commandLine(argv);
    throwIfAborted(signal);
    const stdout = new CappedBuffer(maxBuffer);
    const stderr = new CappedBuffer(maxBuffer);
    const tail = new TailBuffer(STDERR_TAIL_BYTES);
    const cmd = await this.start(line, signal, (chunk) => {
      stderr.push(chunk);
      tail.push(chunk);
      options.onStderr?.(chunk);
    });
    cmd.channel.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      options.onStdout?.(chunk);
    });
    const exited = this.waitExit(cmd, signal);
    let stdinError: Error | undefined;
    feedStdin(cmd.channel, options.stdin, (err) => {
      // A command fed half its input must not look like it succeeded.
      stdinError = err;
      cmd.terminate();
    });
    const exit = await exited;
    if (stdinError) {
      throw new FarmError('REMOTE_COMMAND', `\`${shown(line)}\` on ${this.worker.name} was stopped: reading its stdin failed: ${stdinError.message}`, {
        cause: stdinError,
      });
    }
    const result = this.result(exit, stdout.toString(), stderr.toString());
    if (check && result.code !== 0) throw this.commandError(line, exit, tail);
    return result;
  }

  /** Runs argv with stdout as a stream (backpressure reaches the remote process through the SSH
   *  window). `done` resolves with the exit status once stdout has been read to its end, whatever
   *  the code; it rejects with ABORTED when the signal fires, and with SSH when the connection drops. */
  async spawn(argv: readonly string[], options: SpawnOptions = {}): Promise<RemoteProcess> {
    const { signal } = options;
    const line = commandLine(argv);
    throwIfAborted(signal);
    const stderr = new CappedBuffer(DEFAULT_MAX_BUFFER);
    const cmd = await this.start(line, signal, (chunk) => stderr.push(chunk));
    const done = this.waitExit(cmd, signal).then((exit) => this.result(exit, '', stderr.toString()));
    done.catch(() => {}); // callers that only kill() must not see an unhandled rejection
    return { stdout: cmd.channel, stdin: cmd.channel, done, kill: () => cmd.terminate() };
  }

  private async spawnOpenSsh(argv: readonly string[], options: BulkSpawnOptions = {}): Promise<RemoteProcess> {
    const line = commandLine(argv);
    throwIfAborted(options.signal);
    this.assertOpen();
    this.openssh ??= this.bulkSetup!();
    return (await this.openssh).spawn(line, options.signal, options.stdoutFd);
  }

  private async prepareOpenSsh(signal?: AbortSignal): Promise<void> {
    if (this.closedReason !== undefined) return;
    this.openssh ??= this.bulkSetup!();
    // A setup or master that failed is left to the spawn, which reports it (or connects alone).
    const bulk = await this.openssh.catch(() => undefined);
    await bulk?.ready(signal);
  }

  async openUnixSocket(path: string): Promise<Duplex> {
    this.assertOpen();
    try {
      return await new Promise<Duplex>((resolve, reject) => {
        this.client.openssh_forwardOutStreamLocal(path, (err, stream) => (err ? reject(err) : resolve(stream)));
      });
    } catch (err) {
      throw new FarmError('SSH', `cannot open unix socket ${path} on ${who(this.worker)}: ${errorMessage(err)}`, {
        cause: err,
        hint: 'check that the socket exists and its service runs, and that sshd allows it (AllowStreamLocalForwarding)',
      });
    }
  }

  /** Whether bulk streams go through OpenSSH's client (for logs and benchmarks). */
  get bulkTransfer(): 'openssh' | 'ssh2' {
    return this.bulkSetup ? 'openssh' : 'ssh2';
  }

  /** Ends the connection (and the OpenSSH master) within CLOSE_GRACE_MS, whatever the link. */
  async close(): Promise<void> {
    const bulk = this.openssh?.then((b) => b.dispose(), () => {});
    if (this.closedReason === undefined) {
      this.closedReason = 'closed by farm';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_GRACE_MS);
        this.client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this.client.end();
      });
    }
    dropSocket(this.client);
    await bulk;
  }
}

/** Connects to a worker: host key verified before authentication, then one connection reused for
 *  all commands. Never prompts for anything. */
export async function connectWorker(worker: Worker, options: ConnectOptions = {}): Promise<SshTransport> {
  const { maxChannels = 8, log } = options;
  throwIfAborted(options.signal);
  const sshProgram = bulkProgram(options.bulkTransfer ?? 'auto');
  const { client, check, negotiated, auth } = await openConnection(worker, options);
  log?.(`connected to ${who(worker)} as ${worker.user} (${negotiated.cipher}, host key ${check?.presented.keyType} ${check?.presented.fingerprint})`);
  return new SshTransport(worker, client, negotiated, maxChannels, bulkSetup(worker, auth, check, sshProgram, options), options.keepaliveIntervalMs);
}
