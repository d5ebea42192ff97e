// `farm inventory check` on an inventory with one of each check-time mistake, through the real
// bin (no lab): exit 2, every problem listed with file:line:column, and nothing changed or made.

import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

/** Every entry under `dir` with its size and modification time. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    const st = await stat(join(dir, entry));
    out.push(`${entry} ${st.size} ${st.mtimeMs}`);
  }
  return out.sort();
}

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('farm inventory check', () => {
  it('exits 2 listing every problem, and changes nothing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'farm-inventory-cli-'));
    await copyFile(join(ROOT, 'test/fixtures/inventory/check-time.yaml'), join(dir, 'farm.yaml'));
    await writeFile(join(dir, 'Containerfile'), 'FROM scratch\n');
    const before = await snapshot(dir);

    const result = await run(process.execPath, [join(ROOT, 'bin/farm.js'), 'inventory', 'check', '-i', 'farm.yaml'], {
      cwd: dir,
      env: { ...process.env, HOME: dir, NO_COLOR: '1' },
    }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

    expect(result.code).toBe(2);
    // farm: <dir>/farm.yaml:LINE:COLUMN: FIELD: message — fix: ...
    const problems = result.stderr.split('\n').filter((l) => /^(farm: )?\S*farm\.yaml:\d+:\d+: /.test(l));
    expect(problems.map((l) => /farm\.yaml:(\d+):\d+: (\S+):/.exec(l)!.slice(1).join(' '))).toEqual([
      '2 settings.builds_dir',
      '7 workers[0].host',
      '10 workers[0].identity_file',
      '10 workers[0].identity_file',
      '11 workers[0].output_dir',
      '12 workers[0].storage',
      '16 arches.x86_64.targets[0]',
      '18 arches.x86_64.targets[1].naming',
      '20 arches.x86_64.targets[1].hypervisors[0].uri',
      '20 arches.x86_64.targets[1].hypervisors[0].uri',
      '25 service.source.git.url',
    ]);
    expect(result.stderr).toMatch(/^hint: 11 problems in the inventory; nothing was done$/m);
    // The token and the NUL never reach the terminal.
    expect(result.stderr).not.toContain('ghp_TOKEN');
    expect(result.stderr).not.toContain('\0');
    expect(result.stdout).toBe('');
    expect(await snapshot(dir)).toEqual(before);
  });
});
