import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkBearer, checkGithubDigest, checkGitlabToken, githubHmac, githubSignatureHeader, safeEqual } from '../../src/service/auth.ts';

describe('API and webhook authentication', () => {
  it('bearer token: missing 401, wrong 403, right ok, unconfigured 403', () => {
    expect(checkBearer(undefined, 's3cret', 'FARM_TOKEN')).toMatchObject({ ok: false, status: 401 });
    expect(checkBearer('Basic czNjcmV0', 's3cret', 'FARM_TOKEN')).toMatchObject({ ok: false, status: 401 });
    expect(checkBearer('Bearer s3cre', 's3cret', 'FARM_TOKEN')).toMatchObject({ ok: false, status: 403 });
    expect(checkBearer('Bearer s3cretX', 's3cret', 'FARM_TOKEN')).toMatchObject({ ok: false, status: 403 });
    expect(checkBearer('Bearer s3cret', 's3cret', 'FARM_TOKEN')).toEqual({ ok: true });
    expect(checkBearer('bearer   s3cret', 's3cret', 'FARM_TOKEN')).toEqual({ ok: true });
    const off = checkBearer('Bearer anything', undefined, 'FARM_TOKEN');
    expect(off).toMatchObject({ ok: false, status: 403 });
    expect(!off.ok && off.message).toMatch(/FARM_TOKEN is not set/);
  });

  it("GitHub: HMAC-SHA256 of the raw body, as GitHub's documentation example computes it, fed while reading", () => {
    // The example from GitHub's "Validating webhook deliveries" page.
    const secret = "It's a Secret to Everybody";
    const header = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(createHmac('sha256', secret).update('Hello, World!').digest('hex')).toBe(header.slice(7));
    const parsed = githubSignatureHeader(header);
    if (!parsed.ok) throw new Error(parsed.message);
    const streamed = (parts: string[], key = secret) => {
      const h = githubHmac(key);
      for (const p of parts) h.update(Buffer.from(p));
      return checkGithubDigest(h.digest(), parsed);
    };
    expect(streamed(['Hello, ', 'World!'])).toEqual({ ok: true });
    expect(streamed(['Hello, World?'])).toMatchObject({ ok: false, status: 401, message: 'bad signature' });
    expect(streamed(['Hello, World!'], 'another secret')).toMatchObject({ ok: false, status: 401 });
    // Decided from the header alone, before any body is read.
    expect(githubSignatureHeader(undefined)).toMatchObject({ ok: false, status: 401, message: 'missing X-Hub-Signature-256' });
    expect(githubSignatureHeader('sha1=' + 'a'.repeat(40))).toMatchObject({ ok: false, message: 'malformed X-Hub-Signature-256' });
    expect(githubSignatureHeader('sha256=' + 'z'.repeat(64))).toMatchObject({ ok: false, message: 'malformed X-Hub-Signature-256' });
  });

  it('GitLab: the token header must equal the secret', () => {
    expect(checkGitlabToken('tok', 'tok')).toEqual({ ok: true });
    expect(checkGitlabToken('tok2', 'tok')).toMatchObject({ ok: false, status: 401 });
    expect(checkGitlabToken(undefined, 'tok')).toMatchObject({ ok: false, status: 401 });
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('a', '')).toBe(false);
  });
});
