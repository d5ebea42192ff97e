// A real OpenSSH sshd for tests: 127.0.0.1 on a free port, a temporary host key, a temporary
// authorized client key, key-only auth. Started in the foreground (-D) and stopped by the pid in
// its pid file, never by name.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { workerSchema, type Worker } from '../../src/inventory/schema.ts';
import { hostKeyFromBlob, type HostKey } from '../../src/core/hostkeys.ts';

const SSHD = '/usr/sbin/sshd'; // sshd refuses to start without an absolute path (it re-execs itself)
const START_TIMEOUT_MS = 10_000;

export interface GeneratedKey extends HostKey {
  /** Private key file; `${file}.pub` holds the public key. */
  file: string;
  /** `type base64` as in known_hosts and authorized_keys. */
  publicLine: string;
}

export function generateKey(dir: string, name: string, type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519', passphrase = ''): GeneratedKey {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', `farm-test-${name}`, '-f', file]);
  const [keyType, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/) as [string, string];
  return { ...hostKeyFromBlob(Buffer.from(b64, 'base64')), keyType, file, publicLine: `${keyType} ${b64}` };
}

export interface TestSshd {
  host: '127.0.0.1';
  port: number;
  /** Temporary directory holding keys, config and pid file; removed by stop(). */
  dir: string;
  /** The first host key; `hostKeys` lists all (one per type asked for). */
  hostKey: GeneratedKey;
  hostKeys: GeneratedKey[];
  clientKey: GeneratedKey;
  /** A known_hosts file holding this server's host key under [127.0.0.1]:port. */
  knownHosts: string;
  pidFile: string;
  user: string;
  /** A worker entry for this server (schema defaults applied); fields can be overridden. */
  worker(overrides?: Partial<Worker>): Worker;
  /** sshd's own log so far (stderr), for failing tests. */
  log(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function waitListening(child: ChildProcess, logs: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`sshd did not start within ${START_TIMEOUT_MS} ms:\n${logs.join('')}`)), START_TIMEOUT_MS);
    const onData = () => {
      if (/Server listening on/.test(logs.join(''))) done(undefined);
    };
    const onExit = (code: number | null) => done(new Error(`sshd exited with ${code}:\n${logs.join('')}`));
    function done(err: Error | undefined) {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startSshd(
  options: { hostKeyTypes?: Array<'ed25519' | 'ecdsa' | 'rsa'>; extraConfig?: string[] } = {},
): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'farm-sshd-'));
  const user = userInfo().username;
  // Debian's sshd wants its privilege separation directory when run as root.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeys = (options.hostKeyTypes ?? ['ed25519']).map((t) => generateKey(dir, `host_key_${t}`, t));
  const hostKey = hostKeys[0]!;
  const clientKey = generateKey(dir, 'client_key');
  writeFileSync(join(dir, 'authorized_keys'), `${clientKey.publicLine}\n`, { mode: 0o600 });
  const pidFile = join(dir, 'sshd.pid');
  const config = join(dir, 'sshd_config');

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        ...hostKeys.map((k) => `HostKey ${k.file}`),
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${pidFile}`,
        'StrictModes no', // the temp directory is not root-owned 0755 all the way up
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'UsePAM no',
        'AllowStreamLocalForwarding yes',
        'X11Forwarding no',
        'PrintMotd no',
        'Subsystem sftp internal-sftp',
        ...(options.extraConfig ?? []),
        '',
      ].join('\n'),
    );
    const logs: string[] = [];
    const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => {
      logs.push(d.toString());
      if (logs.length > 2000) logs.splice(0, 1000);
    });
    try {
      await waitListening(child, logs);
    } catch (err) {
      lastError = err;
      if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
      if (/Address already in use/.test(String(err))) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey.publicLine}\n`, { mode: 0o600 });
    const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      dir,
      hostKey,
      hostKeys,
      clientKey,
      knownHosts,
      pidFile,
      user,
      worker: (overrides = {}) =>
        workerSchema.parse({
          name: 'test-sshd',
          host: '127.0.0.1',
          port,
          user,
          arch: 'x86_64',
          identity_file: clientKey.file,
          known_hosts: knownHosts,
          ...overrides,
        }),
      log: () => logs.join(''),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
          process.kill(pid, 'SIGTERM');
          const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5_000).unref());
          if ((await Promise.race([exited, timeout])) === 'timeout' && pidAlive(pid)) process.kill(pid, 'SIGKILL');
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}
