// The SSH transport against a real OpenSSH sshd on 127.0.0.1.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { scanHostKey } from '../../src/core/hostkeys.ts';
import { trustHostKey } from '../../workers/ssh/trust.ts';
import { connectWorker, type SshTransport } from '../../workers/ssh/session.ts';
import { generateKey, startSshd, type TestSshd } from '../support/sshd.ts';
import { rejection } from '../support/assert.ts';

let sshd: TestSshd;
let t: SshTransport;
let scratch: string;

beforeAll(async () => {
  sshd = await startSshd({ extraConfig: ['MaxSessions 3'] });
  scratch = mkdtempSync(join(tmpdir(), 'farm-ssh-test-'));
  t = await connectWorker(sshd.worker());
});

afterAll(async () => {
  await t?.close();
  await sshd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const acceptedLogins = () => (sshd.log().match(/Accepted publickey/g) ?? []).length;

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

describe('exec', () => {
  const NASTY = ['', ' ', "it's", '"q"', '$(id)', '`id`', '$HOME', 'a;b', 'x\ny', '*', '~', 'A=b', '-n', '\\', '!x', 'é'];

  it('runs argv exactly, whatever the characters', async () => {
    const r = await t.exec(['printf', '%s\\0', ...NASTY]);
    expect(r.code).toBe(0);
    const got = r.stdout.split('\0');
    expect(got.pop()).toBe('');
    expect(got).toEqual(NASTY);
  });

  it('reports exit codes, and throws REMOTE_COMMAND with the stderr tail', async () => {
    const r = await t.exec(['sh', '-c', 'echo out; echo oops >&2; exit 3'], { check: false });
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'oops\n' });
    const err = await rejection(t.exec(['sh', '-c', 'echo "line $1" >&2; echo "cannot frobnicate /dev/x" >&2; exit 7', 'sh', 'one']));
    expect(err.code).toBe('REMOTE_COMMAND');
    expect(err.message).toContain('exited with code 7');
    expect(err.message).toContain('cannot frobnicate /dev/x');
    expect(err.message).toContain("sh -c 'echo");
    const missing = await rejection(t.exec(['/nonexistent/farm-cmd']));
    expect(missing.message).toMatch(/code 127[\s\S]*No such file/);
  });

  it('feeds stdin from a string, a Buffer and a stream', async () => {
    expect((await t.exec(['cat'], { stdin: 'hello\n' })).stdout).toBe('hello\n');
    expect((await t.exec(['cat'], { stdin: Buffer.from([0x61, 0x62]) })).stdout).toBe('ab');
    const big = Buffer.alloc(5 * 1024 * 1024, 'x');
    const r = await t.exec(['wc', '-c'], { stdin: Readable.from([big.subarray(0, 3 << 20), big.subarray(3 << 20)]) });
    expect(r.stdout.trim()).toBe(String(big.length));
    // A failing stdin source stops the command and fails the call.
    const broken = new Readable({
      read() {
        this.destroy(new Error('disk went away'));
      },
    });
    const err = await rejection(t.exec(['cat'], { stdin: broken }));
    expect(err.code).toBe('REMOTE_COMMAND');
    expect(err.message).toContain('disk went away');
    // Without stdin the command sees EOF instead of waiting.
    expect((await t.exec(['cat'])).stdout).toBe('');
  });

  it('caps captured output at maxBuffer and still streams it live', async () => {
    let live = 0;
    const r = await t.exec(['head', '-c', '3000000', '/dev/zero'], { maxBuffer: 1000, onStdout: (c) => (live += c.length) });
    expect(r.stdout.length).toBe(1000);
    expect(live).toBe(3_000_000);
    const e = await t.exec(['sh', '-c', 'head -c 200000 /dev/zero | tr "\\0" e >&2'], { maxBuffer: 10 });
    expect(e.stderr).toBe('eeeeeeeeee');
  });

  it('abort ends the remote process and rejects with ABORTED', async () => {
    const pidFile = join(scratch, 'sleep.pid');
    const ac = new AbortController();
    const running = t.exec(['sh', '-c', 'echo $$ > "$1"; exec sleep 60', 'sh', pidFile], { signal: ac.signal });
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 10_000)).toBe(true);
    const pid = readFileSync(pidFile, 'utf8').trim();
    // The process runs; kill -0 on the worker says so.
    expect((await t.exec(['kill', '-0', pid], { check: false })).code).toBe(0);
    const started = Date.now();
    ac.abort();
    const err = await rejection(running);
    expect(err.code).toBe('ABORTED');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await waitFor(async () => (await t.exec(['kill', '-0', pid], { check: false })).code !== 0, 5_000)).toBe(true);
  });

  it('refuses to start when the signal has already fired', async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(t.exec(['true'], { signal: ac.signal }))).code).toBe('ABORTED');
  });

  it('queues channels beyond maxChannels instead of failing (sshd MaxSessions 3)', async () => {
    const conn = await connectWorker(sshd.worker(), { maxChannels: 3 });
    try {
      const results = await Promise.all(Array.from({ length: 9 }, (_, i) => conn.exec(['sh', '-c', 'sleep 0.2; echo "$1"', 'sh', String(i)])));
      expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 9 }, (_, i) => String(i)));
    } finally {
      await conn.close();
    }
  });
});

describe('spawn', () => {
  it('streams stdout with backpressure and reports the exit', async () => {
    const p = await t.spawn(['sh', '-c', 'head -c 20000000 /dev/urandom | tee /dev/null | wc -c >&2; exit 4']);
    // Read slowly at first: nothing is lost while the stream is paused.
    let n = 0;
    for await (const chunk of p.stdout) {
      n += (chunk as Buffer).length;
      if (n < 4_000_000) await new Promise((r) => setTimeout(r, 1));
    }
    const r = await p.done;
    expect(n).toBe(0); // tee writes to /dev/null; stdout stays empty
    expect(r.code).toBe(4);
    expect(r.stderr.trim()).toBe('20000000');

    const q = await t.spawn(['head', '-c', '12345678', '/dev/zero']);
    let m = 0;
    let paused = false;
    for await (const chunk of q.stdout) {
      m += (chunk as Buffer).length;
      if (!paused && m > 1_000_000) {
        paused = true;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    expect(m).toBe(12345678);
    expect((await q.done).code).toBe(0);
  });

  it('kill() ends a running command', async () => {
    const pidFile = join(scratch, 'spawn.pid');
    const p = await t.spawn(['sh', '-c', 'echo $$ > "$1"; exec sleep 60', 'sh', pidFile]);
    p.stdout.resume();
    expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 10_000)).toBe(true);
    const pid = readFileSync(pidFile, 'utf8').trim();
    p.kill();
    const r = await p.done;
    expect(r.code).not.toBe(0);
    expect(await waitFor(async () => (await t.exec(['kill', '-0', pid], { check: false })).code !== 0, 5_000)).toBe(true);
  });
});

describe('openUnixSocket', () => {
  let server: Server;
  const sock = () => join(scratch, 'echo.sock');
  beforeAll(async () => {
    server = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => server.listen(sock(), r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reaches a unix socket on the worker over the same connection', async () => {
    const s = await t.openUnixSocket(sock());
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.write('ping over streamlocal');
    expect(await waitFor(() => Buffer.concat(got).toString() === 'ping over streamlocal', 5_000)).toBe(true);
    s.end();
  });

  it('names the socket when it cannot be opened', async () => {
    const err = await rejection(t.openUnixSocket(join(scratch, 'missing.sock')));
    expect(err.code).toBe('SSH');
    expect(err.message).toContain('missing.sock');
    expect(err.message).toContain('test-sshd');
  });
});

describe('connection errors', () => {
  it('reports refused authentication with a hint about authorized_keys', async () => {
    const other = generateKey(scratch, 'stranger');
    const err = await rejection(connectWorker(sshd.worker({ identity_file: other.file })));
    expect(err.code).toBe('SSH');
    expect(err.message).toContain(`test-sshd (127.0.0.1:${sshd.port})`);
    expect(err.message).toContain('authentication');
    expect(err.hint).toContain('authorized_keys');
  });

  it('refuses a passphrase-protected identity without prompting', async () => {
    const locked = generateKey(scratch, 'locked', 'ed25519', 'secret phrase');
    const err = await rejection(connectWorker(sshd.worker({ identity_file: locked.file })));
    expect(err.code).toBe('SSH');
    expect(err.message).toContain('passphrase');
    expect(err.hint).toContain('ssh-agent');
  });

  it('needs an identity_file or an agent', async () => {
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      const err = await rejection(connectWorker(sshd.worker({ identity_file: undefined })));
      expect(err.message).toContain('SSH_AUTH_SOCK');
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });

  it('authenticates with ssh-agent when there is no identity_file', async () => {
    const agentSock = join(scratch, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      expect(await waitFor(() => existsSync(agentSock), 5_000)).toBe(true);
      execFileSync('ssh-add', ['-q', sshd.clientKey.file], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: 'ignore' });
      process.env.SSH_AUTH_SOCK = agentSock;
      const conn = await connectWorker(sshd.worker({ identity_file: undefined }));
      expect((await conn.exec(['echo', 'via agent'])).stdout).toBe('via agent\n');
      // Bulk streams go through OpenSSH's client, which uses the same agent.
      expect(conn.bulkTransfer).toBe('openssh');
      const bulk = await conn.bulk.spawn(['echo', 'bulk via agent']);
      let out = '';
      bulk.stdout.on('data', (c: Buffer) => (out += c.toString()));
      expect((await bulk.done).code).toBe(0);
      expect(out).toBe('bulk via agent\n');
      await conn.close();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      if (agent.pid) process.kill(agent.pid, 'SIGTERM');
    }
  });

  it('names host and port when nothing listens', async () => {
    const probe = createServer();
    const port = await new Promise<number>((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as { port: number }).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await rejection(connectWorker(sshd.worker({ port }), { connectTimeoutMs: 5_000 }));
    expect(err.code).toBe('SSH');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('fails calls on a closed transport', async () => {
    const conn = await connectWorker(sshd.worker());
    await conn.close();
    const err = await rejection(conn.exec(['true']));
    expect(err.code).toBe('SSH');
    expect(err.message).toContain('closed');
  });
});

describe('host keys', () => {
  const knownHostsWith = (name: string, lines: string[]) => {
    const file = join(scratch, name);
    writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
    return file;
  };

  it('accepts the pinned fingerprint (known_hosts not consulted)', async () => {
    const conn = await connectWorker(sshd.worker({ host_key: sshd.hostKey.fingerprint, known_hosts: join(scratch, 'none') }));
    expect(conn.negotiated.serverHostKey).toBe('ssh-ed25519');
    await conn.close();
  });

  it('refuses a wrong pin, naming the fingerprint it saw, before authenticating', async () => {
    const before = acceptedLogins();
    const other = generateKey(scratch, 'pin-other');
    const err = await rejection(connectWorker(sshd.worker({ host_key: other.fingerprint })));
    expect(err.code).toBe('HOST_KEY');
    expect(err.message).toContain(sshd.hostKey.fingerprint);
    expect(err.message).toContain(other.fingerprint);
    expect(acceptedLogins()).toBe(before);
  });

  it('refuses an unknown host with the fingerprint and the trust command', async () => {
    const before = acceptedLogins();
    const err = await rejection(connectWorker(sshd.worker({ known_hosts: knownHostsWith('kh-empty', []) })));
    expect(err.code).toBe('HOST_KEY');
    expect(err.message).toContain(`host key for test-sshd (127.0.0.1:${sshd.port}) is not known`);
    expect(err.message).toContain(`it presented ssh-ed25519 ${sshd.hostKey.fingerprint}`);
    expect(err.hint).toContain('farm workers trust test-sshd');
    expect(acceptedLogins()).toBe(before);
  });

  it('refuses a changed key, naming both fingerprints and the known_hosts line', async () => {
    const stale = generateKey(scratch, 'stale');
    const file = knownHostsWith('kh-changed', ['# old entry', `[127.0.0.1]:${sshd.port} ${stale.publicLine}`]);
    const err = await rejection(connectWorker(sshd.worker({ known_hosts: file })));
    expect(err.code).toBe('HOST_KEY');
    expect(err.message).toContain('HOST KEY CHANGED');
    expect(err.message).toContain(sshd.hostKey.fingerprint);
    expect(err.message).toContain(`${stale.fingerprint} (${file} line 2)`);
    expect(err.hint).toContain('remove the stale line');
  });

  it('refuses a revoked key', async () => {
    const file = knownHostsWith('kh-revoked', [
      `[127.0.0.1]:${sshd.port} ${sshd.hostKey.publicLine}`,
      `@revoked [127.0.0.1]:${sshd.port} ${sshd.hostKey.publicLine}`,
    ]);
    const err = await rejection(connectWorker(sshd.worker({ known_hosts: file })));
    expect(err.code).toBe('HOST_KEY');
    expect(err.message).toContain('REVOKED');
  });

  it('scans the key without authenticating, trusts it, then connects', async () => {
    const before = acceptedLogins();
    const file = join(scratch, 'trust', 'dir', 'known_hosts');
    const worker = sshd.worker({ known_hosts: file });
    const key = await scanHostKey(worker);
    expect(key).toMatchObject({ keyType: 'ssh-ed25519', fingerprint: sshd.hostKey.fingerprint });
    expect(acceptedLogins()).toBe(before);
    await expect(connectWorker(worker)).rejects.toMatchObject({ code: 'HOST_KEY' });
    await trustHostKey(worker, file, key.blob, key.keyType);
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostKey.publicLine}\n`);
    const conn = await connectWorker(worker);
    expect((await conn.exec(['echo', 'trusted'])).stdout).toBe('trusted\n');
    await conn.close();
  });

  it('finds a pinned key of a type the server does not present first', async () => {
    const multi = await startSshd({ hostKeyTypes: ['ed25519', 'ecdsa'] });
    try {
      const ecdsa = multi.hostKeys[1]!;
      const conn = await connectWorker(multi.worker({ host_key: ecdsa.fingerprint, known_hosts: join(scratch, 'none') }));
      expect(conn.negotiated.serverHostKey).toBe(ecdsa.keyType);
      await conn.close();
      // A pin that matches none of its keys is still refused, naming what it presented.
      const stranger = generateKey(scratch, 'pin-stranger');
      const err = await rejection(connectWorker(multi.worker({ host_key: stranger.fingerprint })));
      expect(err.code).toBe('HOST_KEY');
      expect(err.message).toContain(multi.hostKeys[0]!.fingerprint);
    } finally {
      await multi.stop();
    }
  });

  it('asks the server for the key type known_hosts holds', async () => {
    // This server has ed25519 and ECDSA keys; ssh2 alone would negotiate ed25519.
    const multi = await startSshd({ hostKeyTypes: ['ed25519', 'ecdsa'] });
    try {
      const ecdsa = multi.hostKeys[1]!;
      const file = knownHostsWith('kh-ecdsa', [`[127.0.0.1]:${multi.port} ${ecdsa.publicLine}`]);
      const conn = await connectWorker(multi.worker({ known_hosts: file }));
      expect(conn.negotiated.serverHostKey).toBe(ecdsa.keyType);
      await conn.close();
    } finally {
      await multi.stop();
    }
  });
});
