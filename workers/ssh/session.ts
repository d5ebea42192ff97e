// The SSH worker transport: one ssh2 connection per worker, reused for every command and socket.
// The host key is verified before authentication (workers/ssh/hostkeys.ts); commands are argv
// arrays quoted for the remote login shell (workers/ssh/quote.ts).

import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { homedir } from 'node:os';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import ssh2, { Client, type CipherAlgorithm, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import { FarmError, errorMessage, throwIfAborted } from '../../src/core/errors.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';
import type { ExecOptions, ExecResult, RemoteProcess, SpawnOptions, WorkerTransport } from '../transport.ts';
import {
  checkHostKey,
  findPinnedKeyAlgorithms,
  hostKeyAlgorithms,
  hostKeyError,
  loadHostKeyPolicy,
  type HostKeyCheck,
  type HostKeyPolicy,
} from './hostkeys.ts';
import { OpenSshBulk, findSshClient, type BulkTransfer } from './openssh.ts';
import { commandLine } from './quote.ts';

export interface ConnectOptions {
  signal?: AbortSignal;
  /** Limit for TCP connect + key exchange + authentication (default 20 s). */
  connectTimeoutMs?: number;
  /** SSH-level keepalive period (default 15 s); 4 unanswered keepalives drop the connection. */
  keepaliveIntervalMs?: number;
  /** Concurrent exec/spawn channels (default 8; OpenSSH's MaxSessions defaults to 10). */
  maxChannels?: number;
  /** Cipher preference (default: AES-GCM first, see CIPHERS). */
  ciphers?: CipherAlgorithm[];
  /** How bulk streams (spawn with bulk: true) travel (default auto: OpenSSH's client if installed,
   *  see openssh.ts; ssh2: always this connection). */
  bulkTransfer?: BulkTransfer;
  log?: (line: string) => void;
}

// AES-GCM runs in OpenSSL (AES-NI, PCLMUL) through Node's crypto and needs no separate MAC;
// measured on the lab it moves bulk data faster than chacha20-poly1305 (see test/bench).
export const CIPHERS: CipherAlgorithm[] = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
];

const DEFAULT_MAX_BUFFER = 1024 * 1024;
// Enough of stderr to explain a failure in an error message.
const STDERR_TAIL_BYTES = 4096;
// Closing waits this long for the worker to answer our disconnect, then drops the socket: a dead
// link must never hold the farm (or a `farm serve` queue) for the kernel's minutes of FIN retries.
export const CLOSE_GRACE_MS = 2_000;
// Keepalives unanswered before ssh2 drops the connection (OpenSSH's ServerAliveCountMax likewise).
export const KEEPALIVE_COUNT_MAX = 4;

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

function who(worker: Worker): string {
  return `${worker.name} (${worker.host}:${worker.port})`;
}

/** 192 → "3m12s", for how long a connection lived. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Why a connection the farm did not close ended, as the user should read it. */
export function lostConnectionError(
  worker: Pick<Worker, 'name' | 'host'>,
  livedMs: number,
  cause: { keepalive: true; intervalMs: number } | { keepalive: false; message: string },
): FarmError {
  const why = cause.keepalive
    ? `no keepalive answer for ${Math.round((cause.intervalMs * KEEPALIVE_COUNT_MAX) / 1000)} s`
    : cause.message;
  return new FarmError('SSH', `lost the SSH connection to ${worker.name} (${worker.host}) after ${shortDuration(livedMs)}: ${why}`, {
    hint: `check the network to ${worker.host} and that the worker is up, then run the build again (settings.keepalive_s sets how fast a dead link is noticed)`,
  });
}

type Auth = { privateKey: Buffer; identity: string } | { agent: string };

/** The credentials for a worker: its identity_file, else the ssh-agent. Never prompts. */
async function loadAuth(worker: Worker): Promise<Auth> {
  if (worker.identity_file) {
    const path = expandHome(worker.identity_file);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      throw new FarmError('SSH', `cannot read identity_file ${path} of worker ${worker.name}: ${errorMessage(err)}`);
    }
    const parsed = ssh2.utils.parseKey(data);
    if (parsed instanceof Error) {
      if (/encrypted|passphrase/i.test(parsed.message)) {
        throw new FarmError('SSH', `identity_file ${path} of worker ${worker.name} is protected by a passphrase, and farm never prompts for one`, {
          hint: 'load the key into ssh-agent (ssh-add) and drop identity_file so the agent is used, or use a dedicated key without a passphrase (mode 0600)',
        });
      }
      throw new FarmError('SSH', `identity_file ${path} of worker ${worker.name} is not a usable private key: ${parsed.message}`);
    }
    return { privateKey: data, identity: path };
  }
  const agent = process.env.SSH_AUTH_SOCK;
  if (!agent) {
    throw new FarmError('SSH', `no SSH credentials for worker ${worker.name}: it has no identity_file and SSH_AUTH_SOCK is not set`, {
      hint: 'set identity_file for the worker in the inventory, or start ssh-agent and ssh-add the key',
    });
  }
  return { agent };
}

/** Counts channels so the farm never asks sshd for more sessions than it allows. */
class ChannelSlots {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}

  async acquire(signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal);
    if (this.used < this.max) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new FarmError('ABORTED', 'cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.used--;
  }
}

/** Keeps the first `cap` bytes of a stream; the rest is counted and dropped, never buffered. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  dropped = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.kept;
    if (room <= 0) {
      this.dropped += chunk.length;
      return;
    }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.chunks.push(part);
    this.kept += part.length;
    this.dropped += chunk.length - part.length;
  }
  toString(): string {
    return Buffer.concat(this.chunks, this.kept).toString('utf8');
  }
}

/** The last few KiB of a stream, for error messages. */
class TailBuffer {
  private tail = Buffer.alloc(0);
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.tail =
      chunk.length >= this.cap ? Buffer.from(chunk.subarray(chunk.length - this.cap)) : Buffer.concat([this.tail, chunk]).subarray(-this.cap);
  }
  lines(max = 20): string {
    return this.tail.toString('utf8').trimEnd().split('\n').slice(-max).join('\n');
  }
}

function signalExitCode(signal: string | undefined): number {
  const num = signal ? (osConstants.signals as Record<string, number | undefined>)[signal] : undefined;
  return num === undefined ? 255 : 128 + num;
}

/** Shortens a command line for messages. */
function shown(cmd: string): string {
  return cmd.length > 300 ? `${cmd.slice(0, 300)}...` : cmd;
}

interface Exit {
  code: number | null | undefined;
  signal: string | undefined;
}

// Printed by the remote shell before the command: its pid, which is also the process group.
const PGID_PREFIX = "printf 'farm-pgid:%s\\n' \"$$\" >&2; ";
const PGID_LINE = /(^|\n)farm-pgid:(\d+)\n/;
const PGID_SEARCH_BYTES = 4096;
const OPEN_ATTEMPTS = 6;

/**
 * ssh2 parses all packets of one read synchronously: a fast command's exit-status can arrive in the
 * same read as the exec reply and be emitted before any 'exit' listener exists. ssh2 keeps it on the
 * channel, so read it from there when no event was seen.
 */
function earlyExit(channel: ClientChannel): Exit | undefined {
  const kept = (channel as unknown as { _exit?: { code?: number | null; signal?: string } })._exit;
  return kept && kept.code !== undefined ? { code: kept.code, signal: kept.signal } : undefined;
}

/** One remote command on its channel: exit status, process group, and how to end it. */
class RemoteCommand {
  exit: Exit | undefined;
  terminated = false;
  private pgid: number | undefined;
  private head: Buffer | undefined = Buffer.alloc(0);

  constructor(
    readonly channel: ClientChannel,
    readonly line: string,
    onStderr: (chunk: Buffer) => void,
    private readonly killGroup: (pgid: number) => void,
  ) {
    channel.on('exit', (code: number | null, sig?: string) => {
      this.exit = { code, signal: sig };
    });
    channel.stderr.on('data', (chunk: Buffer) => {
      if (this.head === undefined) return onStderr(chunk);
      // Strip the pid line the shell prints first. Login scripts (Debian's bash sources .bashrc
      // under sshd) may print before it; their lines are passed on as stderr.
      const head = Buffer.concat([this.head, chunk]);
      const m = PGID_LINE.exec(head.toString('latin1'));
      if (!m && head.length < PGID_SEARCH_BYTES) {
        this.head = head;
        return;
      }
      this.head = undefined;
      if (!m) return onStderr(head);
      this.pgid = Number(m[2]);
      const rest = Buffer.concat([head.subarray(0, m.index + m[1]!.length), head.subarray(m.index + m[0].length)]);
      if (rest.length > 0) onStderr(rest);
    });
    channel.stderr.once('end', () => {
      if (this.head && this.head.length > 0) onStderr(this.head);
      this.head = undefined;
    });
  }

  /** Ends the command: a TERM signal request (sshd passes it on where it supports it), a TERM
   *  to its process group from another channel, then the channel is closed. */
  terminate(): void {
    if (this.terminated) return;
    this.terminated = true;
    try {
      sendSignal(this.channel, 'TERM');
    } catch {
      // the channel may already be closing
    }
    if (this.exit === undefined && this.pgid !== undefined && this.pgid > 1) this.killGroup(this.pgid);
    this.channel.close();
  }
}

export class SshTransport implements WorkerTransport {
  private closedReason: string | undefined;
  /** Set when the connection ended without the farm closing it. */
  private lostError: FarmError | undefined;
  private readonly slots: ChannelSlots;
  private bulk: Promise<OpenSshBulk> | undefined;
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
        const exit = cmd.exit ?? earlyExit(cmd.channel);
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
    if (options.bulk && this.bulkSetup) {
      this.assertOpen();
      this.bulk ??= this.bulkSetup();
      return (await this.bulk).spawn(line, signal, options.stdoutFd);
    }
    const stderr = new CappedBuffer(DEFAULT_MAX_BUFFER);
    const cmd = await this.start(line, signal, (chunk) => stderr.push(chunk));
    const exited = this.waitExit(cmd, signal).then((exit) => this.result(exit, '', stderr.toString()));
    let stdout: Readable = cmd.channel;
    let done = exited;
    if (options.stdoutFd !== undefined) {
      // A large mark lets chunks gather while a write is under way; they go out as one writev.
      // No start: writes go where the file's offset is (for a file opened to append: its end).
      const file = createWriteStream('', { fd: options.stdoutFd, autoClose: false, highWaterMark: 4 * 1024 * 1024 });
      cmd.channel.pipe(file);
      const written = finished(file);
      done = Promise.all([exited, written]).then(([r]) => r);
      stdout = new PassThrough().end();
    }
    done.catch(() => {}); // callers that only kill() must not see an unhandled rejection
    return {
      stdout,
      stdin: cmd.channel,
      done,
      kill: () => cmd.terminate(),
    };
  }

  async prepareBulk(signal?: AbortSignal): Promise<void> {
    if (!this.bulkSetup || this.closedReason !== undefined) return;
    this.bulk ??= this.bulkSetup();
    // A setup or master that failed is left to the spawn, which reports it (or connects alone).
    const bulk = await this.bulk.catch(() => undefined);
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
    const bulk = this.bulk?.then((b) => b.dispose(), () => {});
    const socket = (this.client as unknown as { _sock?: Socket })._sock;
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
    // ssh2's destroy() does nothing once end() has run (the socket is no longer writable), and
    // a half-closed socket to a dead host lives on in FIN-WAIT-1, holding the event loop: drop it.
    if (socket && !socket.destroyed) socket.destroy();
    await bulk;
  }
}

/** Sends a signal request. ssh2's Channel.signal() stays silent once stdin has been ended (our
 *  EOF), which is the normal state of exec(); the protocol-level request has no such condition. */
function sendSignal(channel: ClientChannel, name: string): void {
  const c = channel as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, signal: string): void } };
  };
  const out = c.outgoing;
  const protocol = c._client?._protocol;
  if (out && protocol && (out.state === 'open' || out.state === 'eof')) protocol.signal(out.id, name);
  else channel.signal(name);
}

function feedStdin(channel: ClientChannel, stdin: ExecOptions['stdin'], onError: (err: Error) => void): void {
  if (stdin === undefined) channel.end(); // EOF, so commands that read stdin do not wait forever
  else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) channel.end(stdin);
  else {
    (stdin as Readable).once('error', onError);
    (stdin as Readable).pipe(channel);
  }
}

/** Maps an ssh2 connection error to a FarmError naming the worker, the address and the cause. */
function connectError(worker: Worker, auth: Auth, err: Error & { level?: string; code?: string }, timeoutMs: number): FarmError {
  const base = `cannot connect to worker ${who(worker)}`;
  switch (err.level) {
    case 'client-authentication': {
      const via = 'identity' in auth ? `identity_file ${auth.identity}` : `the keys in ssh-agent (${auth.agent})`;
      return new FarmError('SSH', `${base}: authentication as ${worker.user} refused with ${via}`, {
        hint: `add the public key to ~${worker.user}/.ssh/authorized_keys on ${worker.host}, or set identity_file for ${worker.name} to the right key`,
        cause: err,
      });
    }
    case 'client-timeout':
      return new FarmError('SSH', `${base}: timed out after ${Math.round(timeoutMs / 1000)} s (${err.message})`, {
        hint: 'check that the host is up and reachable and that sshd listens on that port',
        cause: err,
      });
    case 'client-socket':
      return new FarmError('SSH', `${base}: ${err.code ? `${err.code} ` : ''}${err.message}`, {
        hint: 'check host and port in the inventory and that sshd runs on the worker',
        cause: err,
      });
    default:
      return new FarmError('SSH', `${base}: ${err.message}`, { cause: err });
  }
}

interface Connected {
  client: Client;
  check: HostKeyCheck | undefined;
  negotiated: { cipher: string; serverHostKey: string };
}

/** One connection attempt: TCP, key exchange with the host key checked, authentication. */
function attemptConnect(
  worker: Worker,
  policy: HostKeyPolicy,
  auth: Auth,
  serverHostKey: ServerHostKeyAlgorithm[] | undefined,
  options: ConnectOptions,
): Promise<Connected> {
  const { signal, connectTimeoutMs = 20_000, keepaliveIntervalMs = 15_000 } = options;
  const client = new Client();
  let check: HostKeyCheck | undefined;
  let negotiated = { cipher: '', serverHostKey: '' };
  const config: ConnectConfig = {
    host: worker.host,
    port: worker.port,
    username: worker.user,
    readyTimeout: connectTimeoutMs,
    keepaliveInterval: keepaliveIntervalMs,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    algorithms: { cipher: options.ciphers ?? CIPHERS, ...(serverHostKey ? { serverHostKey } : {}) },
    hostVerifier: (key: Buffer) => {
      check = checkHostKey(policy, key);
      return check.status === 'ok';
    },
    ...('privateKey' in auth ? { privateKey: auth.privateKey } : { agent: auth.agent }),
  };

  return new Promise<Connected>((resolve, reject) => {
    let settled = false;
    const fail = (err: FarmError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      client.on('error', () => {}); // the socket may still report errors while being torn down
      client.destroy();
      reject(err);
    };
    const onAbort = () => fail(new FarmError('ABORTED', `cancelled while connecting to ${worker.name}`));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('handshake', (n) => {
      negotiated = { cipher: n.cs.cipher, serverHostKey: n.serverHostKey };
    });
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve({ client, check, negotiated });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (settled) return; // after setup the transport owns connection errors
      if (check && check.status !== 'ok') return fail(hostKeyError(worker, policy, check)!);
      if (!check && serverHostKey && /host key/i.test(err.message) && err.level === 'handshake') {
        return fail(
          new FarmError(
            'HOST_KEY',
            `${who(worker)} offers none of the host key types recorded for it (${serverHostKey.join(', ')}): ${err.message}`,
            { hint: `if the host was reinstalled with other key types, verify its key out of band and run \`farm workers trust ${worker.name}\`` },
          ),
        );
      }
      fail(connectError(worker, auth, err, connectTimeoutMs));
    });
    client.once('close', () => fail(new FarmError('SSH', `cannot connect to worker ${who(worker)}: connection closed during setup`)));
    try {
      client.connect(config);
    } catch (err) {
      fail(new FarmError('SSH', `cannot connect to worker ${who(worker)}: ${errorMessage(err)}`, { cause: err }));
    }
  });
}

/** Connects to a worker: host key verified before authentication, then one connection reused for
 *  all commands. Never prompts for anything. */
export async function connectWorker(worker: Worker, options: ConnectOptions = {}): Promise<SshTransport> {
  const { signal, maxChannels = 8, log } = options;
  throwIfAborted(signal);
  const sshProgram = bulkProgram(options.bulkTransfer ?? 'auto');
  const policy: HostKeyPolicy = await loadHostKeyPolicy(worker);
  const auth = await loadAuth(worker);
  let connected: Connected;
  try {
    connected = await attemptConnect(worker, policy, auth, hostKeyAlgorithms(policy), options);
  } catch (err) {
    // A pin says nothing about the key type, and the server may have presented another of its
    // keys: look for the pinned one among the other types before refusing.
    if (!(err instanceof FarmError && err.code === 'HOST_KEY' && policy.kind === 'pinned')) throw err;
    const algorithms = await findPinnedKeyAlgorithms(worker, policy.fingerprint, { ...(signal ? { signal } : {}) });
    if (!algorithms) throw err;
    connected = await attemptConnect(worker, policy, auth, algorithms, options);
  }
  const { client, check, negotiated } = connected;
  log?.(`connected to ${who(worker)} as ${worker.user} (${negotiated.cipher}, host key ${check?.presented.keyType} ${check?.presented.fingerprint})`);
  return new SshTransport(worker, client, negotiated, maxChannels, bulkSetup(worker, auth, check, sshProgram, options), options.keepaliveIntervalMs);
}

/** The OpenSSH client that carries bulk streams, if any; refuses `openssh` without one. */
function bulkProgram(mode: BulkTransfer): string | undefined {
  if (mode === 'ssh2') return undefined;
  const program = findSshClient();
  if (!program && mode === 'openssh') {
    throw new FarmError('SSH', 'settings.bulk_transfer is openssh, but no ssh client is installed on this machine', {
      hint: 'install the OpenSSH client (Debian: apt-get install openssh-client), or set settings.bulk_transfer: auto',
    });
  }
  return program;
}

/** Sets up the OpenSSH client for bulk streams, trusting exactly the key this connection verified. */
function bulkSetup(
  worker: Worker,
  auth: Auth,
  check: HostKeyCheck | undefined,
  program: string | undefined,
  options: ConnectOptions,
): (() => Promise<OpenSshBulk>) | undefined {
  if (!program || !check || check.status !== 'ok') return undefined;
  const presented = check.presented;
  return () =>
    OpenSshBulk.prepare(program, worker, presented, 'identity' in auth ? { identityFile: auth.identity } : { agent: auth.agent }, {
      ...(options.connectTimeoutMs ? { connectTimeoutS: options.connectTimeoutMs / 1000 } : {}),
      ...(options.keepaliveIntervalMs ? { keepaliveS: options.keepaliveIntervalMs / 1000 } : {}),
    });
}
