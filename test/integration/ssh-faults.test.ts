// A dead link between the farm and a worker, without the lab: a real sshd behind a TCP relay that
// can go silent (it stops forwarding and never answers or closes, as a link that drops every
// packet looks from our side). The connection must be declared lost with what happened and how
// long it had lived, and closing it must never wait on the silent peer beyond a short grace.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lostConnectionError, shortDuration } from '../../workers/ssh/errors.ts';
import { CLOSE_GRACE_MS, connectWorker, type SshTransport } from '../../workers/ssh/session.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';
import { rejection } from '../support/assert.ts';

let sshd: TestSshd;
let dir: string;

/** A relay to sshd; silence() makes it swallow everything, both ways, and never close. */
async function relay(): Promise<{ port: number; silence(): void; stop(): Promise<void> }> {
  const pairs: Array<[Socket, Socket]> = [];
  let silent = false;
  // allowHalfOpen: a silent relay must not answer the client's FIN with its own (Node would).
  const server: Server = createServer({ allowHalfOpen: true }, (down) => {
    const up = connect({ port: sshd.port, host: '127.0.0.1', allowHalfOpen: true });
    pairs.push([down, up]);
    down.on('error', () => {});
    up.on('error', () => {});
    down.on('data', (d) => silent || up.write(d));
    up.on('data', (d) => silent || down.write(d));
    down.on('end', () => silent || up.end());
    up.on('end', () => silent || down.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    silence: () => {
      silent = true;
    },
    stop: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

async function viaRelay(port: number, keepaliveIntervalMs = 15_000, bulkTransfer: 'ssh2' | 'openssh' = 'ssh2'): Promise<SshTransport> {
  const knownHosts = join(dir, `known_hosts_${port}`);
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${sshd.hostKey.publicLine}\n`);
  return connectWorker(sshd.worker({ port, known_hosts: knownHosts }), { keepaliveIntervalMs, bulkTransfer });
}

const socketOf = (t: SshTransport) => (t as unknown as { client: { _sock: Socket } }).client._sock;

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), 'farm-ssh-faults-'));
});

afterAll(async () => {
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a link that goes silent', () => {
  it('fails a running command after the keepalives, saying the connection was lost, to whom and after how long', async () => {
    const r = await relay();
    try {
      const t = await viaRelay(r.port, 250);
      const running = rejection(t.exec(['sleep', '30']));
      await new Promise((res) => setTimeout(res, 1200));
      r.silence();
      const t0 = performance.now();
      const err = await running;
      const took = performance.now() - t0;
      expect(err.message).toMatch(/^lost the SSH connection to \S+ \(127\.0\.0\.1\) after [12]s: no keepalive answer for 1 s, while running `sleep 30`/);
      expect(took).toBeGreaterThan(900);
      expect(took).toBeLessThan(5_000);
      expect(t.connectionLost()?.message).toMatch(/no keepalive answer for 1 s$/);
      // What comes after says the same, not "closed".
      expect((await rejection(t.exec(['true']))).message).toMatch(/^lost the SSH connection/);
      await t.close();
    } finally {
      await r.stop();
    }
  });

  it('close() ends within the grace period and destroys the socket, though the peer never answers', async () => {
    const r = await relay();
    try {
      const t = await viaRelay(r.port);
      expect((await t.exec(['echo', 'up'])).stdout).toBe('up\n');
      r.silence();
      const t0 = performance.now();
      await t.close();
      const took = performance.now() - t0;
      expect(took).toBeLessThan(CLOSE_GRACE_MS + 1_000);
      // The socket is gone: nothing holds the process open (ssh2's own destroy() does nothing
      // once end() has run, which left it half-closed for as long as the peer kept silent).
      expect(socketOf(t).destroyed).toBe(true);
      expect(t.connectionLost()).toBeUndefined(); // the farm closed it: not a loss
    } finally {
      await r.stop();
    }
  });

  it('close() also ends the OpenSSH master connection within the grace period', async () => {
    const r = await relay();
    try {
      const t = await viaRelay(r.port, 15_000, 'openssh');
      await t.bulk.prepare();
      const bulk = await (t as unknown as { openssh: Promise<{ masterPid?: number; multiplexing: boolean }> }).openssh;
      expect(bulk.multiplexing).toBe(true);
      const pid = bulk.masterPid!;
      r.silence();
      const t0 = performance.now();
      await t.close();
      const took = performance.now() - t0;
      expect(took).toBeLessThan(2 * CLOSE_GRACE_MS + 1_000);
      expect(() => process.kill(pid, 0)).toThrow(); // our child, gone
    } finally {
      await r.stop();
    }
  });

  it('close() of a healthy connection is prompt', async () => {
    const r = await relay();
    try {
      const t = await viaRelay(r.port);
      const t0 = performance.now();
      await t.close();
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(socketOf(t).destroyed).toBe(true);
    } finally {
      await r.stop();
    }
  });
});

describe('lostConnectionError', () => {
  it('names the worker, its address, how long the connection lived and why', () => {
    const w = { name: 'lab-x86_64', host: '10.231.0.11' };
    expect(lostConnectionError(w, 192_000, { keepalive: true, intervalMs: 15_000 }).message).toBe(
      'lost the SSH connection to lab-x86_64 (10.231.0.11) after 3m12s: no keepalive answer for 60 s',
    );
    expect(lostConnectionError(w, 5_400, { keepalive: false, message: 'read ECONNRESET' }).message).toBe(
      'lost the SSH connection to lab-x86_64 (10.231.0.11) after 5s: read ECONNRESET',
    );
    expect([shortDuration(0), shortDuration(59_600), shortDuration(3_600_000 + 61_000)]).toEqual(['0s', '1m00s', '1h01m']);
  });
});
