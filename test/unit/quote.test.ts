import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandLine, quote } from '../../src/core/quote.ts';

const NASTY = [
  '',
  ' ',
  'plain',
  'two words',
  "it's",
  "''",
  '"double" quotes',
  '$(touch /tmp/farm-quote-pwned)',
  '`id`',
  '$HOME ${PATH}',
  'a; rm -rf /',
  'a && b || c | d',
  'line1\nline2\n',
  '\ttab',
  '*',
  '?[a-z]*',
  '{a,b}',
  '~',
  '~root/x',
  'A=b',
  '-rf',
  '--',
  '\\',
  'back\\slash\\',
  '!history',
  '#comment',
  '> /dev/null',
  'é ünï 日本',
  "mixed ' \" $ ` \\ \n end",
];

describe('quote', () => {
  it('leaves words made of safe characters alone', () => {
    expect(quote('abc')).toBe('abc');
    expect(quote('/var/lib/farm/output/image/disk.raw')).toBe('/var/lib/farm/output/image/disk.raw');
    expect(quote('--format=posix')).toBe("'--format=posix'");
    expect(quote('-cf')).toBe('-cf');
  });

  it('single-quotes everything else', () => {
    expect(quote('')).toBe("''");
    expect(quote('a b')).toBe("'a b'");
    expect(quote("it's")).toBe("'it'\\''s'");
    expect(quote('$(x)')).toBe("'$(x)'");
    expect(quote('A=b')).toBe("'A=b'");
    expect(quote('~')).toBe("'~'");
    expect(quote('*')).toBe("'*'");
  });

  it('refuses NUL bytes and empty argv', () => {
    expect(() => quote('a\0b')).toThrow(/NUL/);
    expect(() => commandLine([])).toThrow(/empty/);
  });

  it('joins argv with spaces', () => {
    expect(commandLine(['tar', '-C', '/a dir', '-cf', '-', 'x'])).toBe("tar -C '/a dir' -cf - x");
  });

  // The real check: a POSIX shell parses the quoted line back into exactly the same argv.
  for (const shell of ['/bin/sh', '/bin/bash']) {
    it(`round-trips through ${shell}`, () => {
      const line = `printf '%s\\0' ${commandLine(NASTY)}`;
      const out = execFileSync(shell, ['-c', line], { cwd: '/tmp' });
      const got = out.toString('utf8').split('\0');
      expect(got.pop()).toBe('');
      expect(got).toEqual(NASTY);
    });

    it(`runs argv as the command through ${shell}`, () => {
      // `sh -c 'printf ...' sh ARGS`: the quoted argv are the positional parameters of an inner shell.
      const argv = ['sh', '-c', 'printf "%s\\0" "$@"', 'sh', ...NASTY];
      const out = execFileSync(shell, ['-c', commandLine(argv)], { cwd: '/tmp' });
      const got = out.toString('utf8').split('\0');
      expect(got.pop()).toBe('');
      expect(got).toEqual(NASTY);
    });
  }
});
