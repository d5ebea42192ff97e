// POSIX sh quoting, for the command lines the farm hands to a shell it does not choose. sshd hands
// a worker's command line to the user's login shell (`$SHELL -c LINE`), and libvirt runs the ssh
// wrapper script (uploaders/libvirt/ssh-wrapper.ts) with /bin/sh. zx's quoting does not fit
// either: it writes bash's $'...' strings, which dash (Debian's sh) and other POSIX shells read
// as a literal `$` followed by a quoted word. So every argv element is single-quoted unless it is
// made only of characters no POSIX shell treats specially. Workers need a POSIX login shell (sh,
// bash, dash, zsh, ksh); csh-family shells treat newlines and `!` inside single quotes differently.

// No `=` (a first word `A=b` would be an assignment), no `~` (tilde expansion), no glob or
// brace characters.
const SAFE = /^[A-Za-z0-9_/.:,@%+-]+$/;

/** One argument, quoted so that a POSIX shell reads it back as exactly `arg`. */
export function quote(arg: string): string {
  // A NUL would silently cut the command line short on the remote side.
  if (arg.includes('\0')) throw new TypeError('quote: argument contains a NUL byte');
  if (arg === '') return "''";
  if (SAFE.test(arg)) return arg;
  // Inside single quotes nothing is special except `'` itself, which is closed, escaped, reopened.
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line that makes a remote POSIX shell run exactly `argv`. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('commandLine: empty argv');
  return argv.map(quote).join(' ');
}
