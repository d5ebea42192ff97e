// The smoke check, on the worker that built the disks, before anything is fetched: each distinct
// disk is booted with QEMU there (the worker's own arch, KVM when usable, else TCG), attached as a
// throwaway snapshot, with a NoCloud seed carrying a fresh SSH key for this check and the guest's
// host key (pinned: SSH verifies it, never accepts any). The serial console streams back over the
// worker's connection into the arch's smoke.log and is watched for the configured pattern, a
// panic, an emergency shell or the timeout; then the checks run over SSH from the worker to the
// guest's forwarded port. Whatever happens, QEMU is stopped and its directory removed.

import { createWriteStream, type WriteStream } from 'node:fs';
import { posix } from 'node:path';
import type { Arch } from '../../src/core/arch.ts';
import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';
import type { RemoteOutput } from '../builder.ts';
import type { RemoteProcess, WorkerTransport } from '../transport.ts';
import { ConsoleWatcher } from './console.ts';
import { directKernel } from './direct.ts';
import { FIRMWARE, QEMU, chooseAccel, diskFormat, distinctDisks, qemuArgv, type Firmware } from './plan.ts';
import { checksFor, type SmokeCheck, type SmokeSettings } from './settings.ts';
import { makeSeed } from './seed.ts';

/** The verdict of one boot: the disk (and the types sharing it), what happened and how long. */
export interface SmokeVerdict {
  types: string[];
  disk: string;
  status: 'passed' | 'failed';
  reason?: string;
  accel?: 'kvm' | 'tcg';
  boot?: 'firmware' | 'direct';
  seconds: number;
  banner?: string;
  lastLines?: string[];
}

export interface SmokeRequest {
  arch: Arch;
  disks: readonly RemoteOutput[];
  settings: SmokeSettings;
  /** Local file the consoles go to (all boots of the arch, one after another). */
  consoleFile: string;
  signal: AbortSignal;
  onLine: (line: string) => void;
}

const SSH_RETRY_MS = 1000;
const STOP_WAIT_S = 5;
const CLEANUP_TIMEOUT_MS = 30_000;

/** The worker's tools and firmware, in one round trip: `key=value` lines. */
const FACTS_SCRIPT = `bin=$1; shift
command -v "$bin" >/dev/null 2>&1 && echo qemu=yes
[ -r /dev/kvm ] && [ -w /dev/kvm ] && echo devkvm=yes
{ [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; } && echo hwmod=yes
command -v "$bin" >/dev/null 2>&1 && "$bin" -accel help 2>/dev/null | grep -qx kvm && echo qemukvm=yes
for t in ssh ssh-keygen mkfs.vfat mcopy qemu-img; do command -v "$t" >/dev/null 2>&1 || echo "missing=$t"; done
for f in "$@"; do [ -f "$f" ] && echo "file=$f"; done
exit 0`;

/** The package each helper tool comes in (Debian's names). */
export const TOOL_PACKAGES: Record<string, string> = {
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  'qemu-img': 'qemu-utils (Fedora: qemu-img)',
};

interface Facts {
  qemu: boolean;
  missing: string[];
  files: Set<string>;
  kvm: { devKvm: boolean; hwModule: boolean; qemuHasKvm: boolean };
}

async function workerFacts(t: WorkerTransport, arch: Arch, signal: AbortSignal): Promise<Facts> {
  const fw = FIRMWARE[arch];
  const lists = [...(fw.code ?? []), ...(fw.vars ?? []), ...(fw.rom ?? [])];
  const r = await t.exec(['sh', '-c', FACTS_SCRIPT, 'sh', QEMU[arch].bin, ...lists], { signal });
  const lines = r.stdout.split('\n');
  const has = (k: string) => lines.includes(`${k}=yes`);
  return {
    qemu: has('qemu'),
    missing: lines.filter((l) => l.startsWith('missing=')).map((l) => l.slice(8)),
    files: new Set(lines.filter((l) => l.startsWith('file=')).map((l) => l.slice(5))),
    kvm: { devKvm: has('devkvm'), hwModule: has('hwmod'), qemuHasKvm: has('qemukvm') },
  };
}

/** What a worker lacks for smoke checks of its arch, each with the package to install (probe). */
export async function smokeProblems(t: WorkerTransport, arch: Arch, signal: AbortSignal): Promise<string[]> {
  const f = await workerFacts(t, arch, signal);
  const problems: string[] = [];
  if (!f.qemu) problems.push(`${QEMU[arch].bin} is not installed, and smoke checks boot each image with it: install ${QEMU[arch].pkg} on the worker, or set smoke: false`);
  for (const tool of f.missing) problems.push(`${tool} is not installed (smoke checks need it): install ${TOOL_PACKAGES[tool] ?? tool} on the worker`);
  try {
    pickFirmware(arch, f.files);
  } catch (err) {
    problems.push(errorMessage(err));
  }
  return problems;
}

function pickFirmware(arch: Arch, files: Set<string>): Firmware {
  const fw = FIRMWARE[arch];
  const first = (list: string[] | undefined, what: string) => {
    const f = list?.find((p) => files.has(p));
    if (!f) throw new FarmError('BUILD', `no ${arch} ${what} on the worker (looked for ${list?.join(', ')}): install ${fw.pkg}`);
    return f;
  };
  if (fw.code) return { kind: 'uefi', code: first(fw.code, 'UEFI firmware'), vars: first(fw.vars, 'UEFI variable store') };
  return { kind: arch === 'ppc64le' ? 'slof' : 's390-ccw', rom: first(fw.rom, 'firmware') };
}

/** Boots each distinct disk in turn; resolves with one verdict per boot. Throws only when cancelled. */
export async function smokeDisks(t: WorkerTransport, req: SmokeRequest): Promise<SmokeVerdict[]> {
  const out = createWriteStream(req.consoleFile, { flags: 'a' });
  try {
    const verdicts: SmokeVerdict[] = [];
    for (const { boot, types } of distinctDisks(req.disks)) {
      out.write(`==== farm smoke check: ${req.arch} ${types.join(', ')} (${boot.path}) ====\n`);
      verdicts.push(await smokeOne(t, req, boot, types, out));
    }
    return verdicts;
  } finally {
    await new Promise<void>((r) => out.end(r));
  }
}

async function smokeOne(t: WorkerTransport, req: SmokeRequest, disk: RemoteOutput, types: string[], out: WriteStream): Promise<SmokeVerdict> {
  const { arch, settings: s, signal } = req;
  const t0 = Date.now();
  const secs = () => Math.round((Date.now() - t0) / 100) / 10;
  const verdict: SmokeVerdict = { types, disk: disk.name, status: 'failed', seconds: 0, boot: s.boot };
  const log = (line: string) => req.onLine(`smoke ${types.join('+')}: ${line}`);
  let dir: string | undefined;
  let qemu: RemoteProcess | undefined;
  try {
    const facts = await workerFacts(t, arch, signal);
    if (!facts.qemu) throw new FarmError('BUILD', `${QEMU[arch].bin} is not installed on ${t.worker.name}: install ${QEMU[arch].pkg}`);
    const fw = pickFirmware(arch, facts.files);
    const { accel, why } = chooseAccel(arch, facts.kvm);
    verdict.accel = accel;
    log(why);
    dir = (await t.exec(['mktemp', '-d', '-p', t.worker.output_dir, 'farm-smoke.XXXXXX'], { signal })).stdout.trim();
    const keys = await makeSeed(t, { dir, arch, signal });
    const format = diskFormat(disk.path);
    let direct;
    if (s.boot === 'direct') {
      direct = await directKernel(t, { disk: disk.path, format, dir, signal });
      log(`direct kernel boot from the disk's ${direct.entry} (smoke boot: direct for ${arch}; the firmware does not run the disk's bootloader)`);
    } else {
      log(`booting through ${fw.kind} firmware (${fw.kind === 'uefi' ? fw.code : fw.rom}) and the disk's own bootloader`);
    }
    let varsFile: string | undefined;
    if (fw.kind === 'uefi') {
      varsFile = posix.join(dir, 'vars.fd');
      await t.exec(['cp', '--', fw.vars, varsFile], { signal });
    }
    const watcher = new ConsoleWatcher(s.console);
    const ports = [0, 1, 2].map(() => 20000 + Math.floor(Math.random() * 40000));
    let outcome: Outcome | undefined;
    for (const sshPort of ports) {
      const argv = ['env', `TMPDIR=${dir}`, ...qemuArgv({ arch, accel, disk: disk.path, format, seed: keys.seed, sshPort, memory: s.memory_mib, fw, varsFile, direct, pidFile: posix.join(dir, 'qemu.pid') })];
      log(argv.slice(2).join(' '));
      await t.exec(['sh', '-c', 'printf "%s\\n" "$2" > "$1"', 'sh', keys.knownHosts, `[127.0.0.1]:${sshPort} ${keys.hostPublic}`], { signal });
      qemu = await t.spawn(argv, { signal });
      outcome = await watch({ t, qemu, watcher, out, s, arch, sshPort, keys, signal, t0, log });
      if (!/Could not set up host forwarding rule/.test(outcome.reason ?? '')) break;
      log(`port ${sshPort} is taken on the worker: trying another`);
    }
    Object.assign(verdict, outcome!.passed ? { status: 'passed' } : { status: 'failed', reason: outcome!.reason });
    if (!outcome!.passed) verdict.lastLines = watcher.lastLines();
    const banner = watcher.banner();
    if (banner) verdict.banner = banner;
  } catch (err) {
    if (signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'build cancelled', { cause: err });
    verdict.status = 'failed';
    verdict.reason = errorMessage(err);
  } finally {
    qemu?.kill();
    if (dir) await removeRun(t, dir).catch((e: Error) => log(`warning: cleanup of ${dir} on ${t.worker.name}: ${e.message}`));
  }
  verdict.seconds = secs();
  log(`${verdict.status}${verdict.reason ? `: ${verdict.reason}` : ''} after ${verdict.seconds} s (${verdict.accel ?? '-'})`);
  return verdict;
}

/** Stops QEMU by its pid file (the channel's end may not reach it) and removes the directory. */
async function removeRun(t: WorkerTransport, dir: string): Promise<void> {
  const script = `d=$1; w=$2
if [ -f "$d/qemu.pid" ]; then
  p=$(cat "$d/qemu.pid")
  if kill "$p" 2>/dev/null; then
    i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt $((w * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null
  fi
fi
rm -rf -- "$d"`;
  await t.exec(['sh', '-c', script, 'sh', dir, String(STOP_WAIT_S)], { signal: AbortSignal.timeout(CLEANUP_TIMEOUT_MS) });
}

interface Outcome {
  passed: boolean;
  reason?: string;
}

interface WatchArgs {
  t: WorkerTransport;
  qemu: RemoteProcess;
  watcher: ConsoleWatcher;
  out: WriteStream;
  s: SmokeSettings;
  arch: Arch;
  sshPort: number;
  keys: { client: string; knownHosts: string };
  signal: AbortSignal;
  t0: number;
  log: (line: string) => void;
}

function watch(a: WatchArgs): Promise<Outcome> {
  return new Promise<Outcome>((resolve, reject) => {
    let done = false;
    let ready = false;
    const checks = checksFor(a.s, a.arch);
    const stop = new AbortController();
    const finish = (o: Outcome | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      a.signal.removeEventListener('abort', onAbort);
      stop.abort();
      if (o instanceof Error) reject(o);
      else resolve(o);
    };
    const onAbort = () => finish(new FarmError('ABORTED', 'build cancelled'));
    a.signal.addEventListener('abort', onAbort, { once: true });
    const left = a.s.timeout_s * 1000 - (Date.now() - a.t0);
    const timer = setTimeout(
      () => finish({ passed: false, reason: `timeout after ${a.s.timeout_s}s waiting for ${ready ? 'the SSH checks' : `the console to show /${a.s.console}/`}` }),
      Math.max(left, 1000),
    );
    let stderr = '';
    a.qemu.stdout.on('data', (chunk: Buffer) => {
      if (done) return;
      a.out.write(chunk);
      const ev = a.watcher.feed(chunk.toString('latin1'));
      if (ev?.kind === 'fatal') return finish({ passed: false, reason: ev.reason });
      if (ev?.kind === 'ready' && !ready) {
        ready = true;
        a.log(`console reached "${ev.line}" after ${((Date.now() - a.t0) / 1000).toFixed(1)} s`);
        if (checks.length === 0) return finish({ passed: true });
        runChecks(a, checks, stop.signal).then(finish, (err: unknown) => {
          if (!done) finish(isAbortError(err) ? new FarmError('ABORTED', 'build cancelled') : { passed: false, reason: errorMessage(err) });
        });
      }
    });
    a.qemu.done.then(
      (r) => {
        stderr = r.stderr.trim();
        finish({ passed: false, reason: `QEMU ended (${r.signal ?? `exit ${r.code}`}) before the check passed${stderr ? `: ${stderr}` : ''}` });
      },
      (err: unknown) => finish(isAbortError(err) || a.signal.aborted ? new FarmError('ABORTED', 'build cancelled') : { passed: false, reason: `QEMU: ${errorMessage(err)}` }),
    );
  });
}

/** SSH from the worker to the guest, verifying its host key against the seed's. */
function sshArgv(a: WatchArgs, command: string): string[] {
  return [
    'ssh', '-p', String(a.sshPort), '-i', a.keys.client, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${a.keys.knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
    '-o', 'LogLevel=ERROR', 'root@127.0.0.1', command,
  ];
}

async function runChecks(a: WatchArgs, checks: SmokeCheck[], signal: AbortSignal): Promise<Outcome> {
  // sshd may come up after the login prompt: retry until it answers (the timeout bounds this).
  for (;;) {
    const r = await a.t.exec(sshArgv(a, 'true'), { signal, check: false });
    if (r.code === 0) break;
    if (/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(r.stderr)) {
      return { passed: false, reason: `SSH refused the guest's host key (not the seed's): ${r.stderr.trim()}` };
    }
    if (r.code !== 255) return { passed: false, reason: `SSH to the guest failed (exit ${r.code}): ${r.stderr.trim()}` };
    await new Promise((w) => setTimeout(w, SSH_RETRY_MS));
    if (signal.aborted) return { passed: false, reason: 'stopped' };
  }
  a.log(`SSH with the check's key answered after ${((Date.now() - a.t0) / 1000).toFixed(1)} s`);
  for (const c of checks) {
    const r = await a.t.exec(sshArgv(a, c.run), { signal, check: false });
    const got = r.stdout.trim();
    if (r.code !== c.exit) return { passed: false, reason: `check "${c.run}" exited ${r.code}, expected ${c.exit}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 300)}` : ''}` };
    if (c.output && !c.output.includes(got)) return { passed: false, reason: `check "${c.run}" printed "${got.slice(0, 200)}", expected ${c.output.map((o) => `"${o}"`).join(' or ')}` };
    a.log(`check "${c.run}": ${got.split('\n')[0]?.slice(0, 120) ?? ''} (exit ${r.code})`);
  }
  return { passed: true };
}
