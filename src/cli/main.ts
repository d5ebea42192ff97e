// The entry point: builds the command tree, runs one command with its io, turns errors into
// messages and exit codes. Only here do errors become exit codes.

import { readFileSync } from 'node:fs';
import { defineCommand, renderUsage, runCommand, type CommandDef } from 'citty';
import { FarmError } from '../errors.ts';
import { withIo, type CliIo } from './io.ts';
import build from './commands/build.ts';
import inventory from './commands/inventory.ts';
import workers from './commands/workers.ts';
import upload from './commands/upload.ts';
import serve from './commands/serve.ts';
import images from './commands/images.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export const root = defineCommand({
  meta: { name: 'farm', version: pkg.version, description: 'One bootc Containerfile into bootable disk images for every arch and every cloud' },
  subCommands: { build, upload, images, inventory, workers, serve },
});

/** Follows argv through subcommands to the command whose usage --help should print. */
async function resolveCommand(argv: string[]): Promise<{ cmd: CommandDef; parent?: CommandDef }> {
  let cmd: CommandDef = root as CommandDef;
  let parent: CommandDef | undefined;
  for (const word of argv) {
    if (word.startsWith('-')) break;
    const subs = typeof cmd.subCommands === 'function' ? await cmd.subCommands() : await cmd.subCommands;
    const next = subs?.[word];
    if (!next) break;
    parent = cmd;
    cmd = (typeof next === 'function' ? await next() : await next) as CommandDef;
  }
  return parent ? { cmd, parent } : { cmd };
}

const EXIT_USAGE = 2;

export async function main(argv: string[], partial: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = {
    stdout: partial.stdout ?? process.stdout,
    stderr: partial.stderr ?? process.stderr,
    stdin: partial.stdin ?? process.stdin,
    env: partial.env ?? process.env,
    cwd: partial.cwd ?? process.cwd(),
    signal: partial.signal ?? new AbortController().signal,
    exitCode: 0,
  };
  return withIo(io, async () => {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      const { cmd, parent } = await resolveCommand(argv);
      io.stdout.write((await renderUsage(cmd, parent)) + '\n');
      return argv.length === 0 ? EXIT_USAGE : 0;
    }
    if (argv[0] === '--version' || argv[0] === '-v') {
      io.stdout.write(pkg.version + '\n');
      return 0;
    }
    try {
      await runCommand(root, { rawArgs: argv });
      return io.exitCode;
    } catch (err) {
      if (err instanceof FarmError) {
        if (err.code === 'ABORTED') {
          io.stderr.write('farm: cancelled\n');
          return 130;
        }
        io.stderr.write(`farm: ${err.message}\n`);
        if (err.hint) io.stderr.write(`hint: ${err.hint}\n`);
        return err.code === 'USAGE' || err.code === 'INVENTORY' ? EXIT_USAGE : 1;
      }
      const e = err as Error & { code?: string };
      if (e?.name === 'CLIError') {
        const { cmd, parent } = await resolveCommand(argv);
        io.stderr.write(`farm: ${e.message}\n\n${await renderUsage(cmd, parent)}\n`);
        return EXIT_USAGE;
      }
      io.stderr.write(`farm: unexpected error\n${e?.stack ?? String(err)}\n`);
      return 1;
    }
  });
}

/** Used by bin/farm.js: wires signals to cancellation and sets the process exit code. */
export async function run(argv: string[]): Promise<void> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write('farm: second interrupt, exiting without cleanup\n');
      process.exit(130);
    }
    process.stderr.write(`farm: ${sig}: stopping remote builds and cleaning up (again to force)\n`);
    controller.abort(new FarmError('ABORTED', `interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.exitCode = await main(argv, { signal: controller.signal });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}
