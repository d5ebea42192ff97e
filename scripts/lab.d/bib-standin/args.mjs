// Command line of the stand-in, shaped like bootc-image-builder's (cobra/pflag):
//   [build] [--type T]... [--rootfs ext4|xfs|btrfs] [--progress auto|verbose|term|debug]
//   [--chown UID:GID] [--use-librepo[=BOOL]] [--target-arch A] [--config FILE] [--output DIR]
//   IMAGE_REF
// Flags take "--flag value" or "--flag=value", before or after the image ref, like pflag.

export class UsageError extends Error {}

/** bib's image types and the /output subdirectory ("export") each one writes. */
export const IMAGE_TYPES = {
  ami: { export: 'image', iso: false },
  raw: { export: 'image', iso: false },
  qcow2: { export: 'qcow2', iso: false },
  vmdk: { export: 'vmdk', iso: false },
  vhd: { export: 'vpc', iso: false },
  gce: { export: 'gce', iso: false },
  ova: { export: 'archive', iso: false },
  'pxe-tree': { export: 'bootc-pxe-tree', iso: false },
  'bootc-installer': { export: 'bootiso', iso: true },
  'anaconda-iso': { export: 'bootiso', iso: true },
  iso: { export: 'bootiso', iso: true },
};

/** What this stand-in really writes. */
export const STANDIN_TYPES = ['ami', 'raw', 'qcow2', 'vmdk', 'vhd', 'gce'];

const PROGRESS = ['auto', 'verbose', 'term', 'debug'];
const ROOTFS = ['ext4', 'xfs', 'btrfs'];

// Flags with a value; boolean flags are listed apart because "--flag value" must not eat the ref.
const VALUE_FLAGS = new Set([
  'type', 'rootfs', 'progress', 'chown', 'target-arch', 'config', 'output', 'store', 'rpmmd',
  'log-level', 'build-container', 'aws-ami-name', 'aws-bucket', 'aws-region',
]);
const BOOL_FLAGS = new Set(['use-librepo', 'local', 'verbose', 'tls-verify', 'help']);

function parseBool(name, value) {
  if (/^(1|t|true|TRUE|True)$/.test(value)) return true;
  if (/^(0|f|false|FALSE|False)$/.test(value)) return false;
  throw new UsageError(`invalid argument "${value}" for "--${name}" flag: strconv.ParseBool: parsing "${value}": invalid syntax`);
}

export function parseArgs(argv) {
  const args = [...argv];
  let command = 'build';
  if (args[0] === 'build' || args[0] === 'version' || args[0] === 'manifest') command = args.shift();
  const opts = {
    command,
    types: [],
    rootfs: '',
    progress: 'auto',
    chown: '',
    useLibrepo: false,
    targetArch: '',
    config: '',
    output: '/output',
    local: undefined,
    verbose: false,
    help: false,
    aws: false,
    positional: [],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      opts.positional.push(...args.slice(i + 1));
      break;
    }
    if (arg === '-h') {
      opts.help = true;
      continue;
    }
    if (arg === '-v') {
      opts.verbose = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown shorthand flag: '${arg.slice(1, 2)}' in ${arg}`);
      opts.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq === -1 ? undefined : arg.slice(eq + 1);
    if (BOOL_FLAGS.has(name)) {
      const b = value === undefined ? true : parseBool(name, value);
      if (name === 'use-librepo') opts.useLibrepo = b;
      else if (name === 'local') opts.local = b;
      else if (name === 'verbose') opts.verbose = b;
      else if (name === 'help') opts.help = b;
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown flag: --${name}`);
    if (value === undefined) {
      if (i + 1 >= args.length) throw new UsageError(`flag needs an argument: --${name}`);
      value = args[++i];
    }
    switch (name) {
      case 'type':
        opts.types.push(value);
        break;
      case 'rootfs':
        opts.rootfs = value;
        break;
      case 'progress':
        opts.progress = value;
        break;
      case 'chown':
        opts.chown = value;
        break;
      case 'target-arch':
        opts.targetArch = value;
        break;
      case 'config':
        opts.config = value;
        break;
      case 'output':
        opts.output = value;
        break;
      case 'store':
        opts.store = value;
        break;
      case 'rpmmd':
        opts.rpmmd = value;
        break;
      case 'aws-ami-name':
      case 'aws-bucket':
      case 'aws-region':
        opts.aws = true;
        break;
      default:
        break; // accepted and ignored: --log-level, --build-container
    }
  }
  if (opts.types.length === 0) opts.types = ['qcow2']; // bib's default
  return opts;
}

/** Checks what bib checks before touching anything; throws UsageError with bib's wording. */
export function validate(opts) {
  if (opts.command === 'version' || opts.help) return;
  if (opts.positional.length !== 1) {
    throw new UsageError(`accepts 1 arg(s), received ${opts.positional.length}`);
  }
  for (const t of opts.types) {
    if (!IMAGE_TYPES[t]) {
      throw new UsageError(`unsupported image type "${t}", valid types are ${Object.keys(IMAGE_TYPES).sort().join(', ')}`);
    }
  }
  const isos = opts.types.filter((t) => IMAGE_TYPES[t].iso).length;
  if (isos > 0 && isos < opts.types.length) {
    throw new UsageError(`cannot mix ISO/disk images in request [${opts.types.join(' ')}]`);
  }
  const unsupported = opts.types.filter((t) => !STANDIN_TYPES.includes(t));
  if (unsupported.length > 0) {
    throw new UsageError(
      `the farm lab stand-in for bootc-image-builder builds ${STANDIN_TYPES.join(', ')}; not ${unsupported.join(', ')}`,
    );
  }
  if (opts.rootfs !== '' && !ROOTFS.includes(opts.rootfs)) {
    throw new UsageError(`unsupported rootfs type "${opts.rootfs}", valid types are ${ROOTFS.join(', ')}`);
  }
  if (!PROGRESS.includes(opts.progress)) {
    throw new UsageError(`unknown progress type: "${opts.progress}"`);
  }
  if (opts.chown !== '' && !/^\d+(:\d+)?$/.test(opts.chown)) {
    throw new UsageError(`cannot parse --chown "${opts.chown}": use UID or UID:GID (numbers)`);
  }
  if (opts.local === false) {
    throw new UsageError(
      `--local=false is no longer supported, remove it and make sure to pull the container before running bib:\n\tsudo podman pull ${opts.positional[0]}`,
    );
  }
  if (opts.aws) {
    throw new UsageError('the farm lab stand-in does not upload: drop the --aws-* flags (the farm uploads)');
  }
}

/** bib's arch names (arch.FromString) to uname -m's. */
export function normalizeArch(a) {
  const map = { amd64: 'x86_64', x86_64: 'x86_64', arm64: 'aarch64', aarch64: 'aarch64', ppc64le: 'ppc64le', s390x: 's390x' };
  const out = map[a];
  if (!out) throw new UsageError(`unsupported architecture ${a}`);
  return out;
}

export const USAGE = `Create a bootable image from an ostree native container (farm lab stand-in)

Usage:
  bootc-image-builder [build] IMAGE_NAME [flags]

Flags:
      --type stringArray     image types to build [ami, gce, qcow2, raw, vhd, vmdk] (default [qcow2])
      --rootfs string        root filesystem type (xfs, ext4, btrfs)
      --progress string      type of progress bar to use (auto, verbose, term, debug) (default "auto")
      --chown string         chown the output directory to match the specified UID:GID
      --use-librepo          accepted for compatibility (the stand-in downloads nothing)
      --target-arch string   must be this host's arch (the stand-in does not emulate)
      --config string        build config file; /config.toml or /config.json if present
      --output string        artifact output directory (default "/output")
`;
