// One remote command on its ssh2 channel: its exit status, its process group, and how to end it.
//
// ──── ssh2 internals ─────────────────────────────────────────────────────────────────────────
// This is the only module that reaches past ssh2's public API. Each use is a small function
// below, says why, and degrades to the public API when the field is not there:
//   earlyExit()    channel._exit              an exit status ssh2 kept before we could listen
//   sendSignal()   channel._client._protocol  a signal request after our EOF
//   dropSocket()   client._sock               a socket ssh2 no longer destroys after end()
// ssh2 is pinned in package.json; a new major version must be checked against these three.
// ─────────────────────────────────────────────────────────────────────────────────────────────

import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import type { Client, ClientChannel } from 'ssh2';
import type { ExecOptions } from '../transport.ts';

export interface Exit {
  code: number | null | undefined;
  signal: string | undefined;
}

/**
 * ssh2 parses all packets of one read synchronously: a fast command's exit-status can arrive in the
 * same read as the exec reply and be emitted before any 'exit' listener exists. ssh2 keeps it on the
 * channel, so read it from there when no event was seen.
 */
export function earlyExit(channel: ClientChannel): Exit | undefined {
  const kept = (channel as unknown as { _exit?: { code?: number | null; signal?: string } })._exit;
  return kept && kept.code !== undefined ? { code: kept.code, signal: kept.signal } : undefined;
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

/** ssh2's destroy() does nothing once end() has run (the socket is no longer writable), and a
 *  half-closed socket to a dead host lives on in FIN-WAIT-1, holding the event loop: drop it. */
export function dropSocket(client: Client): void {
  const socket = (client as unknown as { _sock?: Socket })._sock;
  if (socket && !socket.destroyed) socket.destroy();
}

// ──── public API only below ──────────────────────────────────────────────────────────────────

/** The exit code a shell would report for a command ended by `signal`. */
export function signalExitCode(signal: string | undefined): number {
  const num = signal ? (osConstants.signals as Record<string, number | undefined>)[signal] : undefined;
  return num === undefined ? 255 : 128 + num;
}

// Printed by the remote shell before the command: its pid, which is also the process group.
export const PGID_PREFIX = "printf 'farm-pgid:%s\\n' \"$$\" >&2; ";
const PGID_LINE = /(^|\n)farm-pgid:(\d+)\n/;
const PGID_SEARCH_BYTES = 4096;

/** One remote command on its channel: exit status, process group, and how to end it. */
export class RemoteCommand {
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

  /** How the command ended, once its channel has closed (undefined: no exit status came). */
  ended(): Exit | undefined {
    return this.exit ?? earlyExit(this.channel);
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

/** Feeds a command's stdin: EOF at once when there is none, so commands that read it do not wait. */
export function feedStdin(channel: ClientChannel, stdin: ExecOptions['stdin'], onError: (err: Error) => void): void {
  if (stdin === undefined) channel.end();
  else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) channel.end(stdin);
  else {
    (stdin as Readable).once('error', onError);
    (stdin as Readable).pipe(channel);
  }
}
