#!/usr/bin/env node
// Boots a disk image of one arch with QEMU and checks it came up: the lab's reference for the
// farm's smoke check, used by the tests.
//
//   node scripts/lab.d/boot/boot-image.mjs --arch ARCH --disk FILE [--format raw|qcow2]
//        [--wait login|ssh] [--ssh-command CMD] [--timeout SECONDS] [--console FILE]
//        [--boot auto|firmware|direct] [--memory MIB] [--json]
//
// The disk is attached as a throwaway snapshot (never modified), with a cloud-init NoCloud seed
// carrying a fresh SSH key for this boot and the guest's host key (pinned, so SSH verifies it).
// The console goes to --console (default: farm-boot-<arch>-<pid>.console in the temporary
// directory, named in the result). "login" waits for a login prompt (or systemd's multi-user target); "ssh" then runs
// CMD (default `uname -m`) over SSH forwarded from 127.0.0.1 only. A kernel panic, an emergency
// shell, UEFI's shell or GRUB's rescue prompt (nothing bootable), QEMU ending or the timeout
// fails at once, with the console's last lines.
// --boot auto boots through the firmware and the disk's own bootloader, except on s390x, where the
// lab's disks carry no bootloader (see bib-standin/boot.mjs): there QEMU boots the kernel named by
// the disk's /boot/loader/entries directly.
// Exit status: 0 passed, 1 failed, 2 bad usage. --json prints the result as one JSON object.
import { copyFileSync, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { attempt, run, startTool } from './run.mjs';
import { directKernel } from './direct.mjs';
import { QEMU, chooseAccel, firmware, qemuArgs } from './qemu.mjs';
import { makeSeed, metaData, userData } from './seed.mjs';

const LOGIN = /login: *$|Reached target .*Multi-User System/im;
const FATAL = [
  [/Kernel panic - not syncing.*/, 'kernel panic'],
  [/.*emergency shell.*|.*Entering emergency mode.*/i, 'emergency shell'],
  // UEFI found nothing to boot on the disk and falls back to its built-in shell.
  [/BdsDxe: starting Boot\w+ "EFI Internal Shell".*/, 'no bootloader the firmware could start'],
  [/grub rescue>.*/, 'GRUB rescue shell'],
];
const SSH_RETRY_MS = 1000;
const STOP_WAIT_MS = 5000;
const LAST_LINES = 15;

class UsageError extends Error {}

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      arch: { type: 'string' },
      disk: { type: 'string' },
      format: { type: 'string' },
      wait: { type: 'string', default: 'ssh' },
      'ssh-command': { type: 'string', default: 'uname -m' },
      timeout: { type: 'string', default: '180' },
      console: { type: 'string' },
      boot: { type: 'string', default: 'auto' },
      memory: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return { help: true };
  if (!values.arch || !QEMU[values.arch]) throw new UsageError(`--arch must be one of ${Object.keys(QEMU).join(', ')}`);
  if (!values.disk) throw new UsageError('--disk FILE is required');
  const format = values.format ?? (values.disk.endsWith('.qcow2') ? 'qcow2' : 'raw');
  if (!['raw', 'qcow2'].includes(format)) throw new UsageError('--format must be raw or qcow2');
  if (!['login', 'ssh'].includes(values.wait)) throw new UsageError('--wait must be login or ssh');
  if (!['auto', 'firmware', 'direct'].includes(values.boot)) throw new UsageError('--boot must be auto, firmware or direct');
  const timeout = Number(values.timeout);
  if (!(timeout > 0)) throw new UsageError('--timeout must be a number of seconds');
  const memory = values.memory === undefined ? undefined : Number(values.memory);
  if (memory !== undefined && !(memory >= 128)) throw new UsageError('--memory must be at least 128 (MiB)');
  return { ...values, disk: resolve(values.disk), format, timeout, memory };
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function keyPair(dir, name) {
  const file = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `farm-lab-boot-${name}`, '-f', file]);
  return { file, private: readFileSync(file, 'utf8'), public: readFileSync(`${file}.pub`, 'utf8').trim() };
}

const lastLines = (text) => text.replace(/\r/g, '').split('\n').filter((l) => l.trim()).slice(-LAST_LINES);

async function boot(opts, log) {
  const dir = mkdtempSync(join(tmpdir(), 'farm-boot-'));
  const result = { arch: opts.arch, disk: opts.disk, format: opts.format, wait: opts.wait, passed: false };
  let qemu = null;
  const stop = async () => {
    if (!qemu || !qemu.running) return;
    qemu.kill('SIGTERM');
    const t = setTimeout(() => qemu.kill('SIGKILL'), STOP_WAIT_MS);
    await qemu.ended;
    clearTimeout(t);
  };
  const onSignal = (sig) => {
    log(`${sig}: stopping QEMU`);
    stop().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const q = QEMU[opts.arch];
    const { accel, why } = await chooseAccel(opts.arch, q.bin);
    result.accel = accel;
    log(`${opts.arch}: ${why}`);
    const fw = firmware(opts.arch);
    const useDirect = opts.boot === 'direct' || (opts.boot === 'auto' && opts.arch === 's390x');
    result.boot = useDirect ? 'direct-kernel' : 'firmware';
    result.firmware = fw.kind === 'uefi' ? fw.code : fw.rom;
    let direct = null;
    if (useDirect) {
      direct = await directKernel({ disk: opts.disk, format: opts.format, dir });
      log(`${opts.arch}: direct kernel boot from the disk's ${direct.entry} (the disk has no bootloader the firmware runs)`);
    } else {
      log(`${opts.arch}: booting through ${fw.kind} firmware (${result.firmware}) and the disk's bootloader`);
    }
    let varsFile;
    if (fw.kind === 'uefi') {
      varsFile = join(dir, 'vars.fd');
      copyFileSync(fw.vars, varsFile);
    }

    const client = await keyPair(dir, 'client');
    const host = await keyPair(dir, 'host');
    const seed = join(dir, 'seed.img');
    await makeSeed({
      path: seed,
      dir,
      userData: userData({ authorizedKey: client.public, hostPrivateKey: host.private, hostPublicKey: host.public }),
      metaData: metaData({ instanceId: `farm-boot-${Date.now()}`, hostname: `farm-boot-${opts.arch}` }),
    });
    const sshPort = await freePort();
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${sshPort} ${host.public.split(' ').slice(0, 2).join(' ')}\n`);

    const consolePath = opts.console ? resolve(opts.console) : join(tmpdir(), `farm-boot-${opts.arch}-${process.pid}.console`);
    result.console = consolePath;
    const { bin, args } = qemuArgs({ arch: opts.arch, accel, disk: opts.disk, format: opts.format, seed, sshPort, memory: opts.memory, fw, varsFile, direct });
    result.qemu = [bin, ...args].join(' ');
    log(`${bin} ${args.join(' ')}`);

    const consoleFile = createWriteStream(consolePath);
    let text = '';
    let stderr = '';
    const t0 = Date.now();
    const secs = () => Math.round((Date.now() - t0) / 100) / 10;
    // QEMU's -snapshot overlay is a temporary file: keep it in our directory.
    qemu = startTool(bin, args, { env: { TMPDIR: dir } });
    const outcome = await new Promise((resolveOutcome) => {
      let done = false;
      let loginAt = null;
      let sshing = false;
      const finish = (o) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolveOutcome(o);
      };
      const timer = setTimeout(
        () => finish({ passed: false, reason: `timeout after ${opts.timeout}s waiting for ${loginAt === null ? 'a login prompt' : 'SSH'}` }),
        opts.timeout * 1000,
      );
      const trySsh = async () => {
        if (sshing || done) return;
        sshing = true;
        while (!done) {
          const r = await sshOnce({ port: sshPort, key: client.file, knownHosts, command: opts['ssh-command'] });
          if (done) return;
          if (r.ok) return finish({ passed: true, sshAt: secs(), sshOutput: r.stdout });
          if (/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(r.stderr)) {
            return finish({ passed: false, reason: `SSH refused the guest's host key: ${r.stderr.trim()}` });
          }
          if (r.exit !== 255) return finish({ passed: false, reason: `SSH command "${opts['ssh-command']}" exited ${r.exit}: ${r.stderr.trim()}` });
          await new Promise((w) => setTimeout(w, SSH_RETRY_MS));
        }
      };
      qemu.stdout.on('data', (chunk) => {
        consoleFile.write(chunk);
        text += chunk.toString('latin1');
        for (const [re, what] of FATAL) {
          const m = re.exec(text);
          // The console up to the fatal line says what led to it; what follows is its trace.
          if (m) return finish({ passed: false, reason: `${what}: ${m[0].trim()}`, upto: m.index + m[0].length });
        }
        if (loginAt === null && LOGIN.test(text)) {
          loginAt = secs();
          result.login_seconds = loginAt;
          log(`${opts.arch}: login prompt after ${loginAt}s`);
          if (opts.wait === 'login') finish({ passed: true });
          else trySsh();
        }
      });
      qemu.stderr.on('data', (d) => (stderr += d));
      qemu.ended.then(({ code, signal }) => {
        if (code === 127) return finish({ passed: false, reason: `cannot run ${bin}: not found (install ${q.pkg})` });
        finish({ passed: false, reason: `QEMU ended (${signal ?? `exit ${code}`}) before the check passed${stderr.trim() ? `: ${stderr.trim()}` : ''}` });
      });
    });
    await stop();
    await new Promise((r) => consoleFile.end(r));
    Object.assign(result, outcome.passed ? { passed: true } : { passed: false, reason: outcome.reason });
    if (outcome.sshAt !== undefined) {
      result.ssh_seconds = outcome.sshAt;
      result.ssh_output = outcome.sshOutput;
    }
    if (!outcome.passed) result.last_lines = lastLines(text.slice(0, outcome.upto ?? text.length));
    result.kernel_banner = /Linux version \S+/.exec(text)?.[0] ?? null;
    return result;
  } finally {
    await stop();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    // Keys, seed, firmware variables and QEMU's snapshot overlay go; the console stays.
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sshOnce({ port, key, knownHosts, command }) {
  const args = [
    '-p', String(port), '-i', key, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', 'root@127.0.0.1', command,
  ];
  const r = await attempt('ssh', args);
  if (r.code === 127) return { ok: false, exit: -1, stdout: r.stdout, stderr: r.stderr };
  return { ok: r.code === 0, exit: r.code, stdout: r.stdout.trim(), stderr: r.stderr };
}

async function main(argv) {
  let opts;
  try {
    opts = options(argv);
  } catch (err) {
    process.stderr.write(`boot-image: ${err.message}\n`);
    process.stderr.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(4, 7).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    return 2;
  }
  if (opts.help) {
    process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 21).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    return 0;
  }
  const log = (msg) => process.stderr.write(`boot-image: ${msg}\n`);
  let result;
  try {
    result = await boot(opts, log);
  } catch (err) {
    result = { arch: opts.arch, disk: opts.disk, passed: false, reason: err.message };
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const t = [result.login_seconds !== undefined && `login ${result.login_seconds}s`, result.ssh_seconds !== undefined && `ssh ${result.ssh_seconds}s`].filter(Boolean).join(', ');
    process.stdout.write(`${result.arch}: ${result.passed ? 'passed' : `failed: ${result.reason}`}${t ? ` (${t}, ${result.accel})` : ''}; console ${result.console ?? '-'}\n`);
    if (!result.passed && result.last_lines) process.stdout.write(`last console lines:\n  ${result.last_lines.join('\n  ')}\n`);
  }
  return result.passed ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
