// The entry point: reads the command line against the command tree, runs one command with its io,
// turns errors into messages and exit codes. Only here do errors become exit codes. The tree holds
// definitions only (commands/); a command's own modules load when it runs (actions/).

import { runCommand } from 'citty';
import { FarmError } from '../core/errors.ts';
import { redact, redactStream, registerEnvSecrets } from '../core/redact.ts';
import { wantColor } from '../ui/color.js';
import { root } from './commands/index.ts';
import { readArgv } from './argv.ts';
import { withIo, type CliIo } from './io.ts';
import { renderUsage } from './usage.ts';
import { VERSION } from './version.ts';

export const EXIT_USAGE = 2;

export async function main(argv: string[], partial: Partial<CliIo> = {}): Promise<number> {
  const env = partial.env ?? process.env;
  // Before anything can print: the credential variables are known secrets, and every write to
  // stdout and stderr (the reporter's, a library's, a stack trace) passes redaction.
  registerEnvSecrets(env);
  const io: CliIo = {
    stdout: redactStream(partial.stdout ?? process.stdout),
    stderr: redactStream(partial.stderr ?? process.stderr),
    stdin: partial.stdin ?? process.stdin,
    env,
    cwd: partial.cwd ?? process.cwd(),
    signal: partial.signal ?? new AbortController().signal,
    exitCode: 0,
  };
  const usage = (stream: NodeJS.WritableStream, path: string[], cmd: Parameters<typeof renderUsage>[0]) =>
    stream.write(renderUsage(cmd, { path, version: VERSION, color: wantColor(stream as { isTTY?: boolean }, io.env) }));
  return withIo(io, async () => {
    try {
      const request = readArgv(root, argv);
      switch (request.kind) {
        case 'version':
          io.stdout.write(`${VERSION}\n`);
          return 0;
        case 'help':
          usage(io.stdout, request.path, request.cmd);
          return 0;
        case 'usage':
          usage(io.stderr, request.path, request.cmd);
          return EXIT_USAGE;
        case 'run':
          await runCommand(request.cmd, { rawArgs: request.argv, data: request.data });
          return io.exitCode;
      }
    } catch (err) {
      if (err instanceof FarmError) {
        if (err.code === 'ABORTED') {
          io.stderr.write('farm: cancelled\n');
          return 130;
        }
        io.stderr.write(`farm: ${redact(err.message)}\n`);
        if (err.hint) io.stderr.write(`hint: ${redact(err.hint)}\n`);
        return err.code === 'USAGE' || err.code === 'INVENTORY' ? EXIT_USAGE : 1;
      }
      const e = err as Error;
      io.stderr.write(`farm: unexpected error\n${redact(e?.stack ?? String(err))}\n`);
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
