// The virsh session against libvirt's built-in test driver (test:///default: no daemon, no
// network): outputs split per command, failures told by virsh's own error lines, arguments
// quoted for its shell, and a session that ends reported to the command that was waiting.
import { describe, expect, it } from 'vitest';
import { VirshSession, virshShellWord } from '../../uploaders/libvirt/virsh-session.ts';

const session = () => VirshSession.start({ virsh: 'virsh', uri: 'test:///default', pass: [] });
const signal = () => AbortSignal.timeout(20_000);

describe('virsh session', () => {
  it('runs commands one after another on one virsh, each with its own output', async () => {
    const s = session();
    try {
      const [a, b, c] = await Promise.all([
        s.run(['pool-info', '--pool', 'default-pool'], { signal: signal() }),
        s.run(['pool-info', '--pool', 'no-such-pool'], { signal: signal() }),
        s.run(['pool-dumpxml', '--pool', 'default-pool'], { signal: signal() }),
      ]);
      expect(a.code).toBe(0);
      expect(a.stdout).toMatch(/^State:\s+running\s*$/m);
      expect(a.stderr).toBe('');
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(/Storage pool not found/);
      expect(b.stdout).not.toMatch(/^State:/m);
      expect(c.code).toBe(0);
      expect(c.stdout).toMatch(/<pool type='dir'>[\s\S]*<\/pool>/);
      expect(c.stdout).not.toMatch(/State:/);
    } finally {
      await s.close();
    }
  });

  it('passes odd arguments through its shell unchanged', async () => {
    const s = session();
    try {
      const odd = ["it's", 'a b', 'semi;colon', '"dq"', 'back\\slash', '#hash', '$HOME'];
      const r = await s.run(['echo', ...odd], { signal: signal() });
      expect(r.code).toBe(0);
      // echo joins its arguments with spaces (no newline after); the shell's echo of the line,
      // with its quotes, comes first.
      expect(r.stdout).toContain(`\n${odd.join(' ')}`);
      expect(() => virshShellWord('line\nbreak')).toThrow(/control character/);
    } finally {
      await s.close();
    }
  });

  it('a killed session fails the waiting command and is not alive; a timeout says so', async () => {
    const s = session();
    const r = await s.run(['echo', 'before'], { signal: signal() });
    expect(r.code).toBe(0);
    const slow = s.run(['cpu-stats', '--help'], { signal: AbortSignal.abort() });
    const res = await slow;
    expect(res.code).not.toBe(0);
    expect(s.alive).toBe(false);
    const after = await s.run(['echo', 'x'], { signal: signal() });
    expect(after.code).not.toBe(0);
    const t = session();
    // A zero timeout ends the session before its answer comes.
    const timed = await t.run(['list', '--all'], { signal: signal(), timeoutMs: 0 });
    expect(timed.stderr).toMatch(/timed out after 0 s|virsh ended/);
    await t.close();
  });
});
