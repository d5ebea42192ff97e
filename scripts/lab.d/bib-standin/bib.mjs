#!/usr/bin/env node
// Stand-in for bootc-image-builder in the farm's lab, where bib's image cannot be pulled. It
// keeps bib's contract (command line, refusals, /output layout, manifest-<types>.json) and writes
// real disks from the image in the host's container storage, with a real bootloader where the
// arch's Debian packages allow it (boot.mjs); it makes no ostree deployment: the image's own
// kernel, initramfs and init boot as they are.
import { randomUUID } from 'node:crypto';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { machine } from 'node:os';
import { join } from 'node:path';
import { IMAGE_TYPES, USAGE, UsageError, normalizeArch, parseArgs, validate } from './args.mjs';
import { parseTomlLite, readBuildConfig } from './config.mjs';
import { refuseForeignImage } from './arch.mjs';
import { BOOT, installBootloader, prepareBoot } from './boot.mjs';
import { contentSize, convert, diskSize, makeDisk } from './disk.mjs';
import { killChildren } from './run.mjs';
import { checkStorage, findImage, imageConfig, layerChain, openRootfs } from './storage.mjs';

const VERSION = 'farm-lab-standin 2';
const CAP_SYS_ADMIN = 21n;

let interrupted = null;
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    interrupted = sig;
    killChildren();
  });
}

function makeLog(progress) {
  let step = 0;
  return {
    step(msg) {
      step += 1;
      process.stdout.write(`[${step}] ${msg}\n`);
    },
    info(msg) {
      process.stdout.write(`    ${msg}\n`);
    },
    debug(msg) {
      if (progress === 'debug') process.stdout.write(`debug: ${msg}\n`);
    },
  };
}

function hasCapSysAdmin() {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  return line !== undefined && ((BigInt(`0x${line.split(/\s+/)[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

// Like bib, without --rootfs the image must name its root filesystem in bootc's install config.
function defaultRootfs(rootDir) {
  const dir = join(rootDir, 'usr/lib/bootc/install');
  if (!existsSync(dir)) return '';
  let type = '';
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.toml')).sort()) {
    const t = parseTomlLite(readFileSync(join(dir, f), 'utf8'))?.install?.filesystem?.root?.type;
    if (typeof t === 'string') type = t;
  }
  return type;
}

function chownTree(path, uid, gid) {
  chownSync(path, uid, gid);
  if (lstatSync(path).isDirectory()) {
    for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
  }
}

async function build(opts) {
  const ref = opts.positional[0];
  const log = makeLog(opts.progress);

  // bib validates its environment first.
  if (!hasCapSysAdmin()) {
    throw new Error('cannot validate the setup: this command requires a privileged container');
  }
  const hostArch = normalizeArch(process.env.FARM_LAB_ARCH || machine());
  if (opts.targetArch && normalizeArch(opts.targetArch) !== hostArch) {
    throw new Error(
      `the farm lab stand-in cannot build for another arch (this host is ${hostArch}, --target-arch ${opts.targetArch}): use a native worker`,
    );
  }
  try {
    checkStorage();
  } catch (err) {
    throw new Error(`cannot build manifest: ${err.message}`);
  }
  const config = readBuildConfig(opts.config);
  const manifestName = `manifest-${opts.types.join('-')}.json`;
  const out = opts.output;
  mkdirSync(out, { recursive: true });

  log.step(`Manifest generation step: ${manifestName}`);
  const image = findImage(ref);
  refuseForeignImage(imageConfig(image), hostArch);
  const chain = layerChain(image);
  log.info(`image ${ref} (${image.id.slice(0, 12)}), ${chain.length} layer(s), storage driver ${image.driver}, arch ${hostArch}`);
  if (config.path) log.info(`config ${config.path}${config.ignored.length ? `; ignoring customizations: ${config.ignored.join(', ')}` : ''}`);

  const work = join(out, `.bib-work-${process.pid}`);
  const rootUuid = randomUUID();
  const extraDir = join(work, 'extra');
  let rootfsView = await openRootfs(image, chain, log);
  const made = [];
  try {
    const rootfs = opts.rootfs || defaultRootfs(rootfsView.dir);
    if (!rootfs) {
      throw new Error('cannot build manifest: no default root filesystem type specified in container, please use "--rootfs" to set manually');
    }

    log.step('Disk image building step');
    const content = contentSize(rootfsView.dir);
    const size = diskSize(content, config.rootMinsize);
    mkdirSync(extraDir, { recursive: true });
    const boot = prepareBoot({ rootDir: rootfsView.dir, extraDir, arch: hostArch, rootUuid, rootfs, log });
    // The root filesystem is the image's files plus the boot entries, as one view.
    await rootfsView.release();
    rootfsView = await openRootfs(image, chain, log, extraDir);

    const wantsRaw = opts.types.some((t) => IMAGE_TYPES[t].export === 'image');
    const raw = wantsRaw ? join(out, 'image', 'disk.raw') : join(work, 'disk.raw');
    mkdirSync(join(raw, '..'), { recursive: true });
    if (wantsRaw) made.push('image');
    log.info(`raw disk ${raw}: ${size} bytes (sparse), image content ${content} bytes`);
    const firmware = BOOT[hostArch].partition;
    const table = await makeDisk({ path: raw, size, rootDir: rootfsView.dir, rootfs, rootUuid, firmware, log });
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    await rootfsView.release();
    const bootloader = boot
      ? await installBootloader({ path: raw, arch: hostArch, firmwarePart: firmware ? table.partitions[0] : null, rootUuid, work: join(work, 'boot'), log })
      : { bootloader: 'none', boot: 'none' };
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);

    const outputs = [];
    for (const type of opts.types) {
      const exp = IMAGE_TYPES[type].export;
      if (exp === 'image') {
        outputs.push({ type, path: 'image/disk.raw', format: 'raw' });
        continue;
      }
      const file = { qcow2: 'disk.qcow2', vmdk: 'disk.vmdk', vpc: 'disk.vhd', gce: 'image.tar.gz' }[exp];
      log.step(`Exporting ${type} to ${exp}/${file}`);
      mkdirSync(join(out, exp), { recursive: true });
      made.push(exp);
      await convert(raw, type, join(out, exp, file));
      if (interrupted) throw new Error(`interrupted by ${interrupted}`);
      outputs.push({ type, path: `${exp}/${file}`, format: { qcow2: 'qcow2', vmdk: 'vmdk', vpc: 'vpc', gce: 'tar.gz' }[exp] });
    }

    const manifest = {
      builder: `bootc-image-builder ${VERSION}`,
      image: { ref, id: image.id, digest: image.digest, names: image.names, layers: chain.length, storage_driver: image.driver },
      arch: hostArch,
      rootfs,
      types: opts.types,
      disk: { size, partition_table: table },
      boot: { ...bootloader, kernel: boot?.kernel.kernel ?? null, initrd: boot?.kernel.initrd ?? null, options: boot?.args ?? null },
      outputs,
      config: config.path,
      created: new Date().toISOString(),
    };
    const manifestPath = join(out, manifestName);
    writeFileSync(`${manifestPath}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
    renameSync(`${manifestPath}.tmp`, manifestPath);
    made.push(manifestName);

    if (opts.chown) {
      const [uid, gid] = opts.chown.split(':').map(Number);
      for (const m of made) chownTree(join(out, m), uid, gid ?? -1);
    }
    log.step('Build complete!');
    process.stdout.write(`Results saved in\n${out}\n`);
  } finally {
    await rootfsView.release();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * What bib's caches would hold: each run leaves 1 MiB in the store (osbuild's objects) and a
 * metadata file in rpmmd, and says how many earlier runs it finds, so persistence (and its trim)
 * shows in the log. Only when the directory is there, as bib's mounts are.
 */
function useCaches(opts) {
  for (const [what, dir] of [['store', opts.store], ['rpmmd', opts.rpmmd]]) {
    if (!dir || !existsSync(dir)) continue;
    const sub = join(dir, 'farm-standin');
    mkdirSync(sub, { recursive: true });
    const earlier = readdirSync(sub).length;
    process.stdout.write(`${what}: ${dir} holds ${earlier} earlier run(s)\n`);
    writeFileSync(join(sub, `${Date.now()}-${process.pid}`), what === 'store' ? Buffer.alloc(1 << 20, 1) : 'repomd\n');
  }
}

async function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
    validate(opts);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`Error: ${err.message}\n${USAGE}`);
    return 1;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts.command === 'version') {
    process.stdout.write(`bootc-image-builder ${VERSION}\n`);
    return 0;
  }
  if (opts.command === 'manifest') {
    process.stderr.write('error: the farm lab stand-in has no "manifest" command (it runs no osbuild)\n');
    return 1;
  }
  if (opts.local === true) process.stderr.write('WARNING: --local is now the default behavior, you can remove it from the command line\n');
  try {
    useCaches(opts);
    await build(opts);
    return 0;
  } catch (err) {
    process.stderr.write(`error: ${interrupted ? `interrupted by ${interrupted}` : err.message}\n`);
    return interrupted === 'SIGINT' ? 130 : interrupted ? 143 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
