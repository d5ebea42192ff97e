import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { redact, redactJson, redactStream, registerEnvSecrets, registerSecret, secretForms } from '../../src/core/redact.ts';

// The registry is process-wide: every test uses values of its own.

describe('registered values', () => {
  it('masks a value in raw, JSON-escaped, URL-encoded and base64 forms', () => {
    const s = 'pa"ss/w\\ord ü+1';
    registerSecret(s);
    expect(redact(`raw ${s} end`)).toBe('raw *** end');
    expect(redact(JSON.stringify({ error: `bad ${s}` }))).toBe('{"error":"bad ***"}');
    // Python's json.dumps: non-ASCII as \u escapes, and \/ for slashes.
    expect(redact('{"m": "pa\\"ss\\/w\\\\ord \\u00fc+1"}')).toBe('{"m": "***"}');
    expect(redact(`?q=${encodeURIComponent(s)}&x=1`)).toBe('?q=***&x=1');
    expect(redact(`form=${encodeURIComponent(s).replace(/%20/g, '+')}`)).toBe('form=***');
    expect(redact(`b64 ${Buffer.from(s).toString('base64')}`)).not.toContain(Buffer.from(s).toString('base64').slice(4, -4));
  });

  it('finds the password inside Basic credentials, at any alignment', () => {
    const pw = 'Zq8-secret-value';
    registerSecret(pw);
    for (const user of ['u', 'us', 'use']) {
      const b64 = Buffer.from(`${user}:${pw}`).toString('base64');
      const masked = redact(`creds ${b64} done`);
      expect(masked).not.toBe(`creds ${b64} done`);
      for (const core of secretForms(pw).filter((f) => /^[A-Za-z0-9+/_-]+$/.test(f) && f !== pw)) expect(masked).not.toContain(core);
    }
  });

  it('masks short values as whole words, never 1-2 character ones', () => {
    registerSecret('k7q');
    registerSecret('ab12');
    registerSecret('x');
    expect(redact('key ab12 refused; "ab12"; ab12.')).toBe('key *** refused; "***"; ***.');
    expect(redact('ab123 and 0ab12f and k7qz stay')).toBe('ab123 and 0ab12f and k7qz stay');
    expect(redact('names ab12-lab, /srv/ab12/x, ab12.example.org stay; user:ab12@host, ab12, key=ab12&x')).toBe(
      'names ab12-lab, /srv/ab12/x, ab12.example.org stay; user:***@host, ***, key=***&x',
    );
    expect(redact('password k7q')).toBe('password ***');
    expect(redact('x86_64 and a x here')).toBe('x86_64 and a x here');
    expect(redact('password=x')).toBe('password=***');
  });

  it('masks a long value anywhere, and the longest of overlapping values whole', () => {
    registerSecret('inner-secret-1');
    registerSecret('outer-inner-secret-1-tail');
    expect(redact('aaouter-inner-secret-1-tailzz and xxinner-secret-1yy')).toBe('aa***zz and xx***yy');
  });

  it('registers credential variables, those named like one, and the names given', () => {
    registerEnvSecrets(
      {
        OS_PASSWORD: 'os-pw-777',
        AWS_SECRET_ACCESS_KEY: 'aws-sk-777',
        GITHUB_TOKEN: 'gh-token-777',
        MY_HOOK: 'named-777',
        FARM_TOKEN_REQUIRED: 'true',
        FARM_TOKEN_FILE: '/etc/farm/token',
        HOME: '/home/farm',
      },
      ['MY_HOOK', undefined],
    );
    expect(redact('os-pw-777 aws-sk-777 gh-token-777 named-777')).toBe('*** *** *** ***');
    expect(redact('"ok": true in /etc/farm/token of /home/farm')).toBe('"ok": true in /etc/farm/token of /home/farm');
  });
});

describe('credential shapes never registered', () => {
  it('masks Authorization and token headers, in every notation', () => {
    expect(redact('Authorization: Bearer abc.def-ghi')).toBe('Authorization: Bearer ***');
    expect(redact('authorization: Basic dXNlcjpwYXNz')).toBe('authorization: Basic ***');
    expect(redact("{ authorization: 'Bearer zzz', 'x-auth-token': 'gAAAA1', \"X-Subject-Token\": \"gAAAA2\" }")).toBe(
      "{ authorization: 'Bearer ***', 'x-auth-token': '***', \"X-Subject-Token\": \"***\" }",
    );
    expect(redact('X-Auth-Token: abc.def\nnext')).toBe('X-Auth-Token: ***\nnext');
    expect(redact('sent with Bearer abcdefghijklmnop0123')).toBe('sent with Bearer ***');
    expect(redact('IAM bearer tokens expire')).toBe('IAM bearer tokens expire');
  });

  it('masks credential fields in JSON (escaped quotes and nested JSON too), YAML and key=value', () => {
    expect(redact('{"password": "a\\"b c"}')).toBe('{"password": "***"}');
    expect(redact('{"auth":{"application_credential_secret":"s1","apikey":"k1","api_key":"k2","token":""}}')).toBe(
      '{"auth":{"application_credential_secret":"***","apikey":"***","api_key":"***","token":""}}',
    );
    expect(redact('{"error":"body {\\"password\\": \\"hunter2\\"}"}')).toBe('{"error":"body {\\"password\\": \\"***\\"}"}');
    expect(redact("{ password: 'hunter2', user: 'farm' }")).toBe("{ password: '***', user: 'farm' }");
    expect(redact('password: hunter2')).toBe('password: ***');
    expect(redact('OS_PASSWORD=hunter2 AWS_SECRET_ACCESS_KEY="x/y" apikey=1')).toBe('OS_PASSWORD=*** AWS_SECRET_ACCESS_KEY="***" apikey=***');
    expect(redact('GET /x?token=abc&other=1')).toBe('GET /x?token=***&other=1');
  });

  it('masks JWTs (IAM tokens), presigned URL signatures, URL userinfo and private keys', () => {
    const jwt = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"iam_id":"x"}').toString('base64url')}.c2lnbmF0dXJl_-`;
    expect(redact(`token ${jwt} expired`)).toBe('token *** expired');
    expect(redact('https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abcdef0123&X-Amz-Security-Token=FQo')).toBe(
      'https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***',
    );
    expect(redact('https://a.blob.core.windows.net/c/d?sv=2024&sig=abc%2Bdef')).toBe('https://a.blob.core.windows.net/c/d?sv=2024&sig=***');
    expect(redact('git https://user:tok3n@git.example/r.git')).toBe('git https://user:***@git.example/r.git');
    expect(redact('https://ghp_0123456789abcdefXYZ@github.com/o/r ssh://git@host/r')).toBe('https://***@github.com/o/r ssh://git@host/r');
    expect(redact('-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----')).toBe('***');
  });

  it('takes time in proportion to the text, however hostile (no pattern backtracks over it)', () => {
    registerSecret('abc');
    const M = 1 << 19;
    for (const unit of ['password', 'a.', '\\', '-----BEGIN RSA PRIVATE KEY-----', "'password': '", '\\"password\\": \\"', 'x://', 'Bearer ', 'abc-', 'eyJ']) {
      const t = performance.now();
      redact(unit.repeat(Math.ceil(M / unit.length)));
      expect(performance.now() - t, unit).toBeLessThan(2000);
    }
  });

  it('leaves the farm\'s ordinary messages alone', () => {
    for (const line of [
      'IAM refused the API key: check IBMCLOUD_API_KEY (ibmcloud iam api-keys lists yours)',
      'the IAM token was refused: check IBMCLOUD_API_KEY and that endpoints.iam matches',
      'Keystone refused the credentials for user farm',
      'cannot get a token: connect ECONNREFUSED 127.0.0.1:5000',
      'x86_64: sha256 3f786850e387550fdab836ed7e6dc881de23001b uploaded (12 KiB)',
      'set COS_HMAC_ACCESS_KEY_ID/COS_HMAC_SECRET_ACCESS_KEY, or neither',
    ]) {
      expect(redact(line)).toBe(line);
    }
  });
});

describe('records and streams', () => {
  it('redacts JSON values field by field, so the document stays well-formed', () => {
    registerSecret('running'); // absurd, but must not break a record
    registerSecret('json-secret-value');
    const doc = { status: 'running', error: 'auth json-secret-value failed', token: 'opaque', n: 3, ok: true, at: new Date(0), list: ['json-secret-value'] };
    const out = redactJson(doc);
    expect(out).toEqual({ status: '***', error: 'auth *** failed', token: '***', n: 3, ok: true, at: '1970-01-01T00:00:00.000Z', list: ['***'] });
    expect(doc.error).toBe('auth json-secret-value failed'); // a copy: the caller's object is untouched
    expect(JSON.parse(JSON.stringify(out))).toEqual(out);
  });

  it('redacts every write to a patched stream, strings and buffers', () => {
    registerSecret('stream-secret-1');
    const s = new PassThrough();
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    redactStream(redactStream(s));
    s.write('a stream-secret-1 b\n');
    s.write(Buffer.from('c stream-secret-1 d\n'));
    s.write(Buffer.from('plain\n'));
    expect(text).toBe('a *** b\nc *** d\nplain\n');
  });
});

describe('the sinks', () => {
  it('the reporter masks terminal lines and build log lines', async () => {
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { Reporter } = await import('../../src/ui/reporter.ts');
    registerSecret('reporter-secret-9');
    const dir = await mkdtemp(join(tmpdir(), 'redact-'));
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    const r = new Reporter({ stream, color: false });
    r.logTo('x86_64', join(dir, 'build.log'));
    r.scoped('x86_64').output('curl -H "Authorization: Bearer abc" reporter-secret-9');
    await r.close();
    const log = await readFile(join(dir, 'build.log'), 'utf8');
    for (const t of [text, log]) {
      expect(t).toContain('Authorization: Bearer ***');
      expect(t).not.toContain('reporter-secret-9');
    }
  });

  it('JSON records are written redacted, in memory they stay whole', async () => {
    const { mkdtemp, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { writeJsonAtomic } = await import('../../src/core/atomic.ts');
    registerSecret('record-secret-9');
    const path = join(await mkdtemp(join(tmpdir(), 'redact-')), 'state.json');
    const value = { error: 'Keystone said record-secret-9' };
    await writeJsonAtomic(path, value);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ error: 'Keystone said ***' });
    expect(value.error).toBe('Keystone said record-secret-9');
  });

  it('the CLI registers the credential variables and masks all it prints', async () => {
    const { cli } = await import('../support/cli.ts');
    const r = await cli(['inventory', 'check', '/nonexistent/cli-secret-9-OS_PASSWORD.yaml'], { env: { OS_PASSWORD: 'cli-secret-9' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('***');
    expect(r.stderr + r.stdout).not.toContain('cli-secret-9');
  });
});

describe('farm serve answers', () => {
  it('JSON and text answers are redacted', async () => {
    const { createServer } = await import('node:http');
    const { json, send } = await import('../../src/service/reply.ts');
    registerSecret('answer-secret-9');
    const server = createServer((req, res) =>
      req.url === '/json' ? json(res, 500, { error: 'Glance said answer-secret-9' }) : send(res, 200, 'log answer-secret-9\n', 'text/plain'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      expect(await (await fetch(`http://127.0.0.1:${port}/json`)).json()).toEqual({ error: 'Glance said ***' });
      expect(await (await fetch(`http://127.0.0.1:${port}/text`)).text()).toBe('log ***\n');
    } finally {
      server.close();
    }
  });
});
