// One answer to "which signatures may an RSA host key make" for every SSH path of the farm:
// workers (ssh2), `farm workers trust` and the libvirt wrapper (OpenSSH) share src/core/hostkeys.ts.
// Against real OpenSSH servers: one that signs with SHA-2 is found and pinned with SHA-2 only;
// one that can sign only with SHA-1 (`ssh-rsa`) is refused on every path.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCEPTED_HOST_KEY_ALGORITHMS, algorithmsForKeyType, findPinnedKey, scanHostKey } from '../../src/core/hostkeys.ts';
import { createSshWrapper } from '../../uploaders/libvirt/ssh-wrapper.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

let sha2: TestSshd;
let sha1Only: TestSshd;

beforeAll(async () => {
  sha2 = await startSshd({ hostKeyTypes: ['rsa'] });
  sha1Only = await startSshd({ hostKeyTypes: ['rsa'], extraConfig: ['HostKeyAlgorithms ssh-rsa'] });
});
afterAll(async () => {
  await sha2?.stop();
  await sha1Only?.stop();
});

const host = (s: TestSshd) => ({ name: 'rsa-host', host: s.host, port: s.port });

describe('RSA host keys', () => {
  it('are SHA-2 only in the one table every path uses', () => {
    expect(algorithmsForKeyType('ssh-rsa')).toEqual(['rsa-sha2-512', 'rsa-sha2-256']);
    expect(ACCEPTED_HOST_KEY_ALGORITHMS).not.toContain('ssh-rsa');
  });

  it('a pinned RSA key is found, and the libvirt wrapper limits OpenSSH to its SHA-2 algorithms', async () => {
    const search = await findPinnedKey(host(sha2), sha2.hostKey.fingerprint);
    expect(search.found?.key.fingerprint).toBe(sha2.hostKey.fingerprint);
    expect(search.found?.algorithms).toEqual(['rsa-sha2-512', 'rsa-sha2-256']);
    const ac = new AbortController();
    const w = await createSshWrapper({ uri: `qemu+ssh://root@${sha2.host}:${sha2.port}/system`, host_key: sha2.hostKey.fingerprint }, ac.signal);
    try {
      expect(readFileSync(w.command, 'utf8')).toContain("'HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256'");
    } finally {
      await w.dispose();
    }
  });

  it('a host that signs only with SHA-1 is refused: no scan, no pin, no wrapper', async () => {
    await expect(scanHostKey(host(sha1Only), { timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'SSH' });
    const search = await findPinnedKey(host(sha1Only), sha1Only.hostKey.fingerprint, { timeoutMs: 10_000 });
    expect(search.found).toBeUndefined();
    const ac = new AbortController();
    await expect(
      createSshWrapper({ uri: `qemu+ssh://root@${sha1Only.host}:${sha1Only.port}/system`, host_key: sha1Only.hostKey.fingerprint }, ac.signal),
    ).rejects.toMatchObject({ code: 'HOST_KEY', message: expect.stringMatching(/HOST KEY MISMATCH .* presented no key/) });
  });
});
