// The verified sparse fetch over a real sshd: GNU tar, dd and the hasher run on the "worker" side.
// Every transfer case runs twice: data through OpenSSH's client (the default when `ssh` is
// installed) and through the ssh2 connection itself.

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { PassThrough } from 'node:stream';
import { fetchArtifacts } from '../../src/pipeline/fetch-artifacts.ts';
import { Reporter } from '../../src/ui/reporter.ts';
import { bulkOf, type BulkSpawnOptions } from '../../workers/bulk.ts';
import type { RemoteProcess, WorkerTransport } from '../../workers/transport.ts';
import { fetchFile, type FetchProgress } from '../../workers/fetch/fetch.ts';
import { remoteHashArgv } from '../../workers/fetch/checksum.ts';
import { hostKeyFromBlob } from '../../src/core/hostkeys.ts';
import { MUX_STREAMS, OpenSshBulk, findSshClient } from '../../workers/ssh/openssh.ts';
import { commandLine } from '../../src/core/quote.ts';
import { connectWorker, type SshTransport } from '../../workers/ssh/session.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';
import { identical } from '../support/assert.ts';

const MiB = 1024 * 1024;
let sshd: TestSshd;
let t: SshTransport; // bulk data through OpenSSH's client
let t2: SshTransport; // bulk data through ssh2
let remote: string; // the worker's directory
const outer = { local: '' }; // the coordinator's directory

const SPARSE_REGIONS = [
  { offset: 0, size: 1 * MiB },
  { offset: 7 * MiB + 8192, size: 3 * MiB },
  { offset: 40 * MiB, size: 2 * MiB + 4096 },
  { offset: 63 * MiB, size: 1 * MiB },
];
const SPARSE_DATA = SPARSE_REGIONS.reduce((n, r) => n + r.size, 0);

/** What a spawn was asked for: bulk streams come through the transport's bulk capability. */
type Spawned = (BulkSpawnOptions & { bulk?: boolean }) | undefined;

/** `inner`, with `onSpawn` seeing (and free to tamper with) every process it spawns, plain or bulk. */
function watching(inner: WorkerTransport, onSpawn: (p: RemoteProcess, o: Spawned) => void): WorkerTransport {
  const bulk = bulkOf(inner);
  return {
    worker: inner.worker,
    exec: (argv, o) => inner.exec(argv, o),
    openUnixSocket: (path) => inner.openUnixSocket(path),
    close: async () => {},
    spawn: async (argv, o) => {
      const p = await inner.spawn(argv, o);
      onSpawn(p, o);
      return p;
    },
    bulk: {
      prepare: (signal) => bulk.prepare(signal),
      spawn: async (argv, o) => {
        const p = await bulk.spawn(argv, o);
        onSpawn(p, { ...o, bulk: true });
        return p;
      },
    },
  };
}

/** The worker hashes `instead` when asked to hash `path`: as if the bytes had changed on the way. */
function hashingElsewhere(inner: WorkerTransport, path: string, instead: string): WorkerTransport {
  const asked = JSON.stringify(remoteHashArgv(path));
  return { ...watching(inner, () => {}), exec: (argv, o) => inner.exec(JSON.stringify(argv) === asked ? remoteHashArgv(instead) : argv, o) };
}

/** Whether no process matches `pattern` (pgrep -f) within 5 s. */
async function gone(pattern: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      execFileSync('pgrep', ['-f', '--', pattern]);
    } catch {
      return true; // pgrep exits 1 when nothing matches
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const PRINT_CONNECTION = ['sh', '-c', 'echo "$SSH_CONNECTION"'];

/** The first line a stream prints. */
function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        stream.off('data', onData);
        resolve(text.slice(0, nl));
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`stream ended before a line: ${JSON.stringify(text)}`)));
  });
}

/** The SSH_CONNECTION a finished stream printed. */
async function connectionOf(p: RemoteProcess): Promise<string> {
  const line = await firstLine(p.stdout);
  await p.done;
  return line;
}

function sha256sum(file: string): string {
  return execFileSync('sha256sum', ['--', file]).toString().slice(0, 64);
}

beforeAll(async () => {
  sshd = await startSshd();
  t = await connectWorker(sshd.worker());
  t2 = await connectWorker(sshd.worker(), { bulkTransfer: 'ssh2' });
  remote = mkdtempSync(join(tmpdir(), 'farm-fetch-remote-'));
  outer.local = mkdtempSync(join(tmpdir(), 'farm-fetch-local-'));
  // The worker's files are made on the worker, over the transport, as a build would leave them.
  const sparse = join(remote, 'disk.raw');
  await t.exec(['truncate', '-s', String(64 * MiB), sparse]);
  for (const r of SPARSE_REGIONS) {
    await t.exec(['dd', 'if=/dev/urandom', `of=${sparse}`, 'bs=4096', `seek=${r.offset / 4096}`, `count=${r.size / 4096}`, 'conv=notrunc', 'status=none']);
  }
  await t.exec(['dd', 'if=/dev/urandom', `of=${join(remote, 'dense.bin')}`, 'bs=1M', 'count=16', 'status=none']);
  await t.exec(['dd', 'if=/dev/urandom', `of=${join(remote, 'other.bin')}`, 'bs=1M', 'count=1', 'status=none']);
  // Large enough that an abort lands mid-transfer (written zeros are data, not holes).
  await t.exec(['dd', 'if=/dev/zero', `of=${join(remote, 'big.bin')}`, 'bs=1M', 'count=256', 'status=none']);
});

afterAll(async () => {
  await t?.close();
  await t2?.close();
  await sshd?.stop();
  for (const d of [remote, outer.local]) if (d) rmSync(d, { recursive: true, force: true });
});

describe('transports', () => {
  it('sends bulk data through OpenSSH by default (a connection of its own), through ssh2 when told', async () => {
    expect(t.bulkTransfer).toBe('openssh');
    expect(t2.bulkTransfer).toBe('ssh2');
    // sshd tells each session its client's address and port: a bulk stream through OpenSSH comes
    // from another TCP connection than the commands; through ssh2 from the same one.
    const clientOf = async (x: SshTransport, bulk: boolean) =>
      bulk ? connectionOf(await x.bulk.spawn(PRINT_CONNECTION)) : (await x.exec(PRINT_CONNECTION)).stdout.trim();
    expect(await clientOf(t, true)).not.toBe(await clientOf(t, false));
    expect(await clientOf(t2, true)).toBe(await clientOf(t2, false));
  });

  it('once the bulk path is ready, streams share the master connection (not the commands’ one)', async () => {
    const x = await connectWorker(sshd.worker());
    try {
      await x.bulk.prepare();
      const a = await connectionOf(await x.bulk.spawn(PRINT_CONNECTION));
      const b = await connectionOf(await x.bulk.spawn(PRINT_CONNECTION));
      expect(a).toBe(b);
      expect(a).not.toBe((await x.exec(PRINT_CONNECTION)).stdout.trim());
    } finally {
      await x.close();
    }
  });

  it('the OpenSSH client trusts only the key the connection verified', async () => {
    // Give it another key than the server's: ssh must refuse, as the ssh2 connection would.
    const other = sshd.clientKey; // any key that is not the server's host key
    const bulk = await OpenSshBulk.prepare(findSshClient()!, sshd.worker(), hostKeyFromBlob(other.blob), { identityFile: sshd.clientKey.file });
    try {
      const p = bulk.spawn('echo reached');
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const err = await p.done.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FarmError);
      expect((err as FarmError).code).toBe('SSH');
      expect((err as FarmError).message).toMatch(/host key verification failed/i);
      expect(out).toBe('');
    } finally {
      await bulk.dispose();
    }
  });
});

describe('the OpenSSH master connection', () => {
  let bulk: OpenSshBulk;
  beforeAll(async () => {
    bulk = await OpenSshBulk.prepare(findSshClient()!, sshd.worker(), sshd.hostKey, { identityFile: sshd.clientKey.file });
  });
  afterAll(() => bulk?.dispose());

  /** Starts `n` streams at once, each holding its channel open until all have said their connection. */
  async function connectionsAtOnce(n: number): Promise<string[]> {
    const ps = Array.from({ length: n }, () => bulk.spawn(commandLine(['sh', '-c', 'echo "$SSH_CONNECTION"; cat > /dev/null'])));
    const seen = await Promise.all(ps.map((p) => firstLine(p.stdout)));
    for (const p of ps) p.stdin.end();
    for (const p of ps) expect((await p.done).code).toBe(0);
    return seen;
  }

  it('streams connect on their own until the master is up', async () => {
    expect(new Set(await connectionsAtOnce(2)).size).toBe(2);
  });

  it(`carries up to ${MUX_STREAMS} streams at once over the master; more connect on their own`, async () => {
    expect(await bulk.ready()).toBe(true);
    const seen = await connectionsAtOnce(MUX_STREAMS + 1);
    const perConnection = [...new Set(seen)].map((c) => seen.filter((s) => s === c).length).sort();
    expect(perConnection).toEqual([1, MUX_STREAMS]);
  });

  it('a master that died leaves streams to connect on their own; dispose ends a live one', async () => {
    const pid = bulk.masterPid!;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL'); // our own child
    for (let i = 0; i < 50 && bulk.masterPid !== undefined; i++) await new Promise((r) => setTimeout(r, 100));
    expect(bulk.masterPid).toBeUndefined();
    expect(await connectionsAtOnce(1)).toHaveLength(1);
    // Readied again, it connects again, over its old socket's path.
    expect(await bulk.ready()).toBe(true);
    expect(bulk.masterPid).not.toBe(pid);
    expect(new Set(await connectionsAtOnce(2)).size).toBe(1);

    const other = await OpenSshBulk.prepare(findSshClient()!, sshd.worker(), sshd.hostKey, { identityFile: sshd.clientKey.file });
    expect(await other.ready()).toBe(true);
    const live = other.masterPid!;
    await other.dispose();
    expect(() => process.kill(live, 0)).toThrow(/ESRCH/);
  });

  it('does not outlive a farm that dies without cleaning up', async () => {
    const input = { worker: sshd.worker(), hostKey: sshd.hostKey.blob.toString('base64'), identityFile: sshd.clientKey.file };
    // Its private directory lands in a temporary directory of this test's (no dispose() removes it).
    const tmp = mkdtempSync(join(tmpdir(), 'farm-crash-'));
    const child = spawn(process.execPath, ['bin/tsnode.js', 'test/support/bulk-master-child.ts', JSON.stringify(input)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, TMPDIR: tmp },
    });
    let pid = 0;
    try {
      pid = Number(await firstLine(child.stdout));
      expect(pid).toBeGreaterThan(0);
      expect(() => process.kill(pid, 0)).not.toThrow();
      child.kill('SIGKILL'); // no dispose(), no exit handlers
      let alive = true;
      for (let i = 0; i < 50 && alive; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          process.kill(pid, 0);
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
    } finally {
      child.kill('SIGKILL');
      try {
        if (pid > 0) process.kill(pid, 'SIGKILL'); // the master, if it did outlive it (started by this test)
      } catch {
        // gone, as it should be
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('learns a worker’s lower session limit: later streams skip the master from the start', async () => {
    // MaxSessions 2: the master's own session and one stream.
    const strict = await startSshd({ extraConfig: ['MaxSessions 2'] });
    const b = await OpenSshBulk.prepare(findSshClient()!, strict.worker(), strict.hostKey, { identityFile: strict.clientKey.file });
    const printConnection = () => b.spawn(commandLine(PRINT_CONNECTION));
    try {
      expect(await b.ready()).toBe(true);
      const first = b.spawn(commandLine(['sh', '-c', 'echo "$SSH_CONNECTION"; cat > /dev/null']));
      const viaMaster = await firstLine(first.stdout);
      // The worker refuses a second stream on the master; ssh connects it on its own.
      const second = printConnection();
      expect(await firstLine(second.stdout)).not.toBe(viaMaster);
      const secondExit = await second.done;
      expect([secondExit.code, secondExit.stderr]).toEqual([0, expect.stringMatching(/Session open refused/)]);
      // The next one, with the first still open, does not ask the master at all.
      const third = printConnection();
      expect(await firstLine(third.stdout)).not.toBe(viaMaster);
      expect(await third.done).toMatchObject({ code: 0, stderr: '' });
      first.stdin.end();
      expect((await first.done).code).toBe(0);
      // One at a time still goes over the master.
      expect(await connectionOf(printConnection())).toBe(viaMaster);
    } finally {
      await b.dispose();
      await strict.stop();
    }
  });

  it('reports a master that cannot log in, and streams then say why themselves', async () => {
    const wrong = await OpenSshBulk.prepare(findSshClient()!, sshd.worker(), hostKeyFromBlob(sshd.clientKey.blob), { identityFile: sshd.clientKey.file });
    try {
      expect(await wrong.ready()).toBe(false);
      expect(wrong.masterError).toMatch(/host key verification failed/i);
      const err = await wrong.spawn('echo reached').done.catch((e: unknown) => e);
      expect((err as FarmError).message).toMatch(/host key verification failed/i);
    } finally {
      await wrong.dispose();
    }
  });
});

describe.each([
  ['openssh', () => t],
  ['ssh2', () => t2],
] as const)('fetchFile, data through %s', (via, transport) => {
  let t: SshTransport;
  let local: string;
  beforeAll(() => {
    t = transport();
    local = join(outer.local, via);
    mkdirSync(local);
  });

  it('fetches a 64 MiB sparse image: identical, still sparse, sha256 verified, holes not sent', async () => {
    const src = join(remote, 'disk.raw');
    const dst = join(local, 'x86_64', 'disk.raw');
    const progress: FetchProgress[] = [];
    const r = await fetchFile(t, src, dst, { onProgress: (p) => progress.push(p), progressIntervalMs: 0 });
    expect(r.size).toBe(64 * MiB);
    expect(r.sha256).toBe(sha256sum(src));
    expect(identical(src, dst)).toBe(true);
    expect(statSync(dst).size).toBe(64 * MiB);
    expect(statSync(dst).blocks * 512).toBeLessThanOrEqual(SPARSE_DATA + 256 * 1024);
    // Only data and a few headers crossed the connection.
    expect(r.bytesReceived).toBeGreaterThanOrEqual(SPARSE_DATA);
    expect(r.bytesReceived).toBeLessThan(SPARSE_DATA + 128 * 1024);
    expect(r.seconds).toBeGreaterThan(0);
    // Progress moves forward and ends at the full size.
    expect(progress.length).toBeGreaterThan(2);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.received).toBeGreaterThanOrEqual(progress[i - 1]!.received);
    expect(progress.at(-1)).toMatchObject({ received: 64 * MiB, total: 64 * MiB });
    expect(existsSync(`${dst}.partial`)).toBe(false);
  });

  it('fetches a dense 16 MiB file (written by the reader straight into the file)', async () => {
    const src = join(remote, 'dense.bin');
    const dst = join(local, 'dense.bin');
    const progress: FetchProgress[] = [];
    const r = await fetchFile(t, src, dst, { onProgress: (p) => progress.push(p), progressIntervalMs: 0 });
    expect(r).toMatchObject({ size: 16 * MiB, sha256: sha256sum(src) });
    expect(identical(src, dst)).toBe(true);
    expect(r.bytesReceived).toBeGreaterThanOrEqual(16 * MiB);
    expect(progress.at(-1)).toMatchObject({ received: 16 * MiB, total: 16 * MiB });
    expect(existsSync(`${dst}.partial`)).toBe(false);
  });

  it('lets readers write a file of few ranges themselves, one per range, and streams one of many through Node', async () => {
    // 40 regions of 4 KiB a MiB apart: more ranges than readers of their own are worth.
    const many = join(remote, 'many.raw');
    execFileSync('truncate', ['-s', String(40 * MiB), many]);
    const fd = openSync(many, 'r+');
    for (let i = 0; i < 40; i++) writeSync(fd, Buffer.alloc(4096, i + 1), 0, 4096, i * MiB);
    closeSync(fd);
    /** The ranges each bulk reader got, and whether it wrote the file itself or streamed. */
    const carriers = async (file: string) => {
      const carried: string[] = [];
      const recording = watching(t, (p, o) => {
        if (!o?.bulk) return;
        const end = p.stdin.end.bind(p.stdin) as (chunk?: unknown) => typeof p.stdin;
        p.stdin.end = ((chunk?: unknown) => {
          if (chunk) carried.push(`${o.stdoutFd === undefined ? 'stream' : 'file'}:${String(chunk).trim().split('\n').length}`);
          return end(chunk);
        }) as typeof p.stdin.end;
      });
      const dst = join(local, `carried-${file}`);
      const r = await fetchFile(recording, join(remote, file), dst);
      expect(r.sha256).toBe(sha256sum(join(remote, file)));
      expect(identical(join(remote, file), dst)).toBe(true);
      return carried;
    };
    expect(await carriers('dense.bin')).toEqual(['file:1']);
    expect(await carriers('disk.raw')).toEqual(['file:1', 'file:1', 'file:1', 'file:1']); // SPARSE_REGIONS
    expect(await carriers('many.raw')).toEqual(['stream:40']);
    expect(statSync(join(local, 'carried-disk.raw')).blocks * 512).toBeLessThan(SPARSE_DATA + 1024 * 1024);
  });

  it('refuses a dense file whose bytes do not match the worker checksum', async () => {
    const src = join(remote, 'dense.bin');
    const dst = join(local, 'dense-mismatch.bin');
    const err = await fetchFile(hashingElsewhere(t, src, join(remote, 'other.bin')), src, dst).catch((e: unknown) => e);
    expect((err as FarmError).code).toBe('CHECKSUM');
    expect(existsSync(dst)).toBe(false);
    expect(existsSync(`${dst}.partial`)).toBe(false);
  });

  it('fetches the same file through tar’s own stream (method tar)', async () => {
    const src = join(remote, 'disk.raw');
    const dst = join(local, 'disk-tar.raw');
    const r = await fetchFile(t, src, dst, { method: 'tar' });
    expect(r.sha256).toBe(sha256sum(src));
    expect(identical(src, dst)).toBe(true);
    expect(statSync(dst).blocks * 512).toBeLessThanOrEqual(SPARSE_DATA + 256 * 1024);
    expect(r.bytesReceived).toBeLessThan(SPARSE_DATA + 64 * 1024);
  });

  it('fetches a file whose sparse map is too long for the first read (1,500 regions)', async () => {
    // Made by positional writes on the worker's filesystem (the test sshd shares this host's).
    const src = join(remote, 'fragmented.raw');
    execFileSync('truncate', ['-s', String(1500 * 128 * 1024), src]);
    const fd = openSync(src, 'r+');
    const block = Buffer.alloc(4096);
    for (let i = 0; i < 1500; i++) writeSync(fd, block.fill(i % 255), 0, 4096, i * 128 * 1024);
    closeSync(fd);
    const dst = join(local, 'fragmented.raw');
    const r = await fetchFile(t, src, dst);
    expect(r.sha256).toBe(sha256sum(src));
    expect(identical(src, dst)).toBe(true);
    expect(statSync(dst).blocks * 512).toBeLessThanOrEqual(1500 * 4096 + 256 * 1024);
  });

  it.each(['python', 'openssl', 'sha256sum'] as const)('verifies with the worker hashing by %s', async (hasher) => {
    const src = join(remote, 'disk.raw');
    const dst = join(local, `disk-${hasher}.raw`);
    const r = await fetchFile(t, src, dst, { hasher });
    expect(r.sha256).toBe(sha256sum(src));
    expect(identical(src, dst)).toBe(true);
  });

  it('refuses bytes that do not match the worker checksum and leaves no file behind', async () => {
    const src = join(remote, 'disk.raw');
    const dst = join(local, 'mismatch.bin');
    let err: unknown;
    try {
      await fetchFile(hashingElsewhere(t, src, join(remote, 'other.bin')), src, dst);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('CHECKSUM');
    expect((err as FarmError).message).toContain(`the worker has ${sha256sum(join(remote, 'other.bin'))}`);
    expect((err as FarmError).message).toContain(`received ${sha256sum(src)}`);
    expect(existsSync(dst)).toBe(false);
    expect(existsSync(`${dst}.partial`)).toBe(false);
  });

  it('abort mid-transfer leaves neither the file nor a partial', async () => {
    const src = join(remote, 'big.bin');
    const dst = join(local, 'aborted.bin');
    const ac = new AbortController();
    let seen = 0;
    const err = await fetchFile(t, src, dst, {
      signal: ac.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        seen = p.received;
        if (p.received > 0) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(256 * MiB);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('ABORTED');
    expect(existsSync(dst)).toBe(false);
    expect(existsSync(`${dst}.partial`)).toBe(false);
    // The worker's reader is gone (the test sshd runs on this host, so its processes are visible).
    expect(await gone(`^dd if=${src} `)).toBe(true);
    // The connection is still usable afterwards.
    expect((await t.exec(['echo', 'ok'])).stdout).toBe('ok\n');
  });

  it('reports a missing remote file with tar’s own words', async () => {
    const dst = join(local, 'missing.raw');
    const err = await fetchFile(t, join(remote, 'nope.raw'), dst).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('FETCH');
    expect((err as FarmError).message).toMatch(/tar on test-sshd failed .*nope\.raw/);
    expect((err as FarmError).message).toMatch(/No such file/);
    expect(readdirSync(local).filter((f) => f.startsWith('missing'))).toEqual([]);
  });

  it('refuses a relative path and a directory', async () => {
    await expect(fetchFile(t, 'disk.raw', join(local, 'rel'))).rejects.toMatchObject({ code: 'FETCH' });
    const err = await fetchFile(t, remote, join(local, 'dir')).catch((e: unknown) => e);
    expect((err as FarmError).code).toBe('FETCH');
    expect((err as FarmError).message).toMatch(/not a regular file|sha256/);
    expect(existsSync(join(local, 'dir.partial'))).toBe(false);
  });
});

describe('fetchArtifacts', () => {
  /** The real transport, with the first `cut` bulk readers cut off as soon as they get work:
   *  at their first bytes when they stream, right after their ranges when they write the file. */
  function cutting(cut: number): WorkerTransport {
    let cuts = 0;
    return watching(t, (p, o) => {
      if (!o?.bulk) return;
      const end = p.stdin.end.bind(p.stdin) as (chunk?: unknown) => typeof p.stdin;
      p.stdin.end = ((chunk?: unknown) => {
        const r = end(chunk);
        if (chunk && cuts++ < cut) {
          if (o.stdoutFd !== undefined) p.kill();
          else p.stdout.once('data', () => p.kill());
        }
        return r;
      }) as typeof p.stdin.end;
    });
  }

  function reporter(): { log: ReturnType<Reporter['scoped']>; text: () => string } {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const r = new Reporter({ stream: out, color: false });
    return { log: r.scoped('x86_64'), text: () => text };
  }

  const result = () => ({
    imageRef: 'localhost/x',
    imageId: 'x',
    disks: [{ type: 'raw' as const, path: join(remote, 'disk.raw'), name: 'raw/disk.raw' }],
    extras: [],
    cleanup: async () => {},
  });

  it('tries a transfer that was cut off once more, saying so, and records the verified file', async () => {
    const dir = join(outer.local, 'artifacts-retry');
    const { log, text } = reporter();
    const records = await fetchArtifacts(cutting(1), result(), join(dir, 'x86_64'), dir, 'img', new AbortController().signal, log);
    expect(records[0]!.disk.sha256).toBe(sha256sum(join(remote, 'disk.raw')));
    expect(identical(join(remote, 'disk.raw'), join(dir, 'x86_64', 'raw', 'disk.raw'))).toBe(true);
    expect(text()).toMatch(/warning: fetching raw\/disk\.raw failed \(.*disk\.raw.*\); trying again \(attempt 2 of 2\)/);
  });

  it('reports a second failure and leaves nothing under the final name', async () => {
    const dir = join(outer.local, 'artifacts-fail');
    const { log } = reporter();
    const err = await fetchArtifacts(cutting(2), result(), join(dir, 'x86_64'), dir, 'img', new AbortController().signal, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).message).toContain(join(remote, 'disk.raw'));
    expect(existsSync(join(dir, 'x86_64', 'raw', 'disk.raw'))).toBe(false);
    expect(existsSync(join(dir, 'x86_64', 'raw', 'disk.raw.partial'))).toBe(false);
  });
});
