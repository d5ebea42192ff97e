// Whether a stream gets ANSI colour: one rule for every line the farm prints. Plain JavaScript (its
// types are in color.d.ts) because bin/farm.js answers --help before any TypeScript loader runs.
//   FORCE_COLOR set: colour unless it is '0' or 'false' (as Node's own tty does, it wins);
//   NO_COLOR non-empty (https://no-color.org) or TERM=dumb: no colour;
//   otherwise colour only on a terminal.

/**
 * @param {{ isTTY?: boolean }} stream
 * @param {Record<string, string | undefined>} env
 * @returns {boolean}
 */
export function wantColor(stream, env) {
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  if (env.NO_COLOR) return false;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY === true;
}
