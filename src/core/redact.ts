// The one redaction module. Every sink the farm writes to (the terminal, build logs, state and
// manifest files, the service's log and HTTP answers) passes its text through redact(), so a
// credential never leaves the process: neither one the farm knows (registered here from the
// environment at start, and by uploaders as they obtain tokens) nor one it never saw but that has
// the shape of a credential (an Authorization header, a "password" field, a JWT, a signature).
//
// Known values are masked in every form they travel in: raw, JSON-escaped (also with \uXXXX and
// \/), URL-encoded (also form-encoded) and base64 (standard and URL-safe, at any alignment, so
// the password inside "Basic base64(user:password)" is found too).
//
// Short values. A secret of 8 characters or more is masked wherever it appears. One of 3 to 7
// characters is masked where it stands alone as a value: between spaces, quotes, '=', ':', '@',
// '&' and the like, but not as part of a name, path or host (next to letters, digits, '_', '-',
// '/' or a dotted part). A 4-character API key "ab12" is masked in "key ab12 refused",
// "password=ab12" and '"ab12"', but not in "ab123", a hex digest or "ab12-lab": short secrets
// do not shred unrelated text, and records the farm reads back (image names, paths) stay whole.
// Values of 1 or 2 characters are not masked by value at all: masking every "a" would make
// every message unreadable, and such a secret protects nothing (it falls to a hundred guesses).
// The shape patterns still mask them where they stand as a credential (password=x).

const MASK = '***';

/** Values this long are masked anywhere; shorter ones only as whole words. */
const ANYWHERE_FROM = 8;
/** Shorter values are not masked by value (see above). */
const SHORTEST = 3;
/** Base64 forms only for values of this many bytes or more: shorter cores would hit at random. */
const BASE64_FROM = 6;

const secrets = new Set<string>();
let matcher: RegExp | undefined;

/** Registers a secret value; every later redact() masks it. Empty and unset values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value !== 'string') return;
  for (const v of new Set([value, value.trim()])) {
    if (v.length < SHORTEST || secrets.has(v)) continue;
    secrets.add(v);
    matcher = undefined;
  }
}

export function registerSecrets(values: Iterable<string | undefined | null>): void {
  for (const v of values) registerSecret(v);
}

/** The credential variables the farm and the SDKs it uses read. */
export const SECRET_ENV_VARS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_SECURITY_TOKEN',
  'IBMCLOUD_API_KEY',
  'IC_API_KEY',
  'COS_HMAC_ACCESS_KEY_ID',
  'COS_HMAC_SECRET_ACCESS_KEY',
  'OS_PASSWORD',
  'OS_APPLICATION_CREDENTIAL_SECRET',
  'OS_TOKEN',
  'OS_AUTH_TOKEN',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'FARM_TOKEN',
] as const;

// Any other variable named like a credential (GITHUB_TOKEN, a webhook secret the inventory names).
const SECRET_NAME = /(?:SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_?KEY|WEBHOOK)/i;
// ...but not the ones that name a file, a directory or another variable, nor a flag's value.
const NOT_SECRET_NAME = /_(?:FILE|PATH|DIR|ENV|TYPE|NAME)$/i;
const FLAG_VALUE = /^(?:true|false|yes|no|on|off|\d{1,5})$/i;

/** Registers the credential variables of `env`, and those of `names` (the service's configured ones). */
export function registerEnvSecrets(env: NodeJS.ProcessEnv, names: Iterable<string | undefined> = []): void {
  for (const n of [...SECRET_ENV_VARS, ...names]) if (n) registerSecret(env[n]);
  for (const [n, v] of Object.entries(env)) {
    if (v && SECRET_NAME.test(n) && !NOT_SECRET_NAME.test(n) && !FLAG_VALUE.test(v.trim())) registerSecret(v);
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The inner part of base64(x + value) that depends on the value only, for each alignment. */
function base64Cores(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length < BASE64_FROM) return [];
  const out: string[] = [];
  for (let pad = 0; pad < 3; pad++) {
    const s = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    const core = s.slice(Math.ceil((8 * pad) / 6), Math.floor((8 * (pad + bytes.length)) / 6));
    out.push(core, core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

/** Every form a value travels in. */
export function secretForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const asciiJson = json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const url = encodeURIComponent(value);
  const forms = [
    value,
    json,
    asciiJson,
    json.replace(/\//g, '\\/'),
    asciiJson.replace(/\//g, '\\/'),
    url,
    url.replace(/%20/g, '+'),
    url.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    encodeURI(value),
    ...base64Cores(value),
  ];
  return [...new Set(forms)].filter((f) => f.length > 0);
}

function compile(): RegExp | undefined {
  if (secrets.size === 0) return undefined;
  const anywhere = new Set<string>();
  const words = new Set<string>();
  for (const s of secrets) for (const f of secretForms(s)) (f.length >= ANYWHERE_FROM ? anywhere : words).add(f);
  const byLength = (a: string, b: string) => b.length - a.length;
  const alts = [
    ...[...anywhere].sort(byLength).map(escapeRe),
    ...[...words].sort(byLength).map((f) => `(?<![A-Za-z0-9_./-])${escapeRe(f)}(?![A-Za-z0-9_/-]|\\.[A-Za-z0-9])`),
  ];
  return new RegExp(alts.join('|'), 'g');
}

// Names of fields that hold credentials: OS_PASSWORD, application_credential_secret, api_key...
// (Every repetition in these patterns is bounded or stops at a separator, so no input, however
// long or hostile, makes a pattern backtrack over it more than a few hundred characters.)
const FIELD = String.raw`[A-Za-z0-9_.-]{0,64}(?:password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key)[A-Za-z0-9_-]{0,64}`;
// ...of which these also stand bare after a colon (YAML, prose): "password: hunter2".
const BARE_FIELD = String.raw`[A-Za-z0-9_.-]{0,64}(?:password|passwd|passphrase|api[_-]?key)`;
// Query parameters of presigned URLs (S3 and COS v4 and v2, Azure SAS).
const SIGNATURE = String.raw`x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|awsaccesskeyid`;
const HEADER = String.raw`authorization|proxy-authorization|x-auth-token|x-subject-token|x-storage-token|x-auth-key|x-api-key|x-amz-security-token|cookie|set-cookie`;
const SCHEME = String.raw`(?:Bearer|Basic|Digest|Negotiate|Token|AWS4-HMAC-SHA256)\s+`;
const NOT_FIELD_CHAR = String.raw`(?<![A-Za-z0-9_.-])`;

type Rule = [RegExp, (...m: string[]) => string];

const SHAPES: Rule[] = [
  // PEM private keys, whole.
  [/-----BEGIN [A-Z0-9 ]{0,32}PRIVATE KEY-----(?:[^-]|-(?!----)){0,16384}-----END [A-Z0-9 ]{0,32}PRIVATE KEY-----/g, () => MASK],
  // JWTs (IBM IAM access tokens, OIDC tokens): header and payload are base64url of '{"'.
  [/\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, () => MASK],
  // Credential headers, also as JSON or util.inspect shows them: Authorization: Bearer x, 'x-auth-token': 'x'.
  [new RegExp(String.raw`\b(${HEADER})(\\{0,8}["']?\s*[:=]\s*\\{0,8}["']?)(${SCHEME})?[^\s"'\\,;]+`, 'gi'), (_m, h, sep, scheme) => `${h}${sep}${scheme ?? ''}${MASK}`],
  // A bearer token anywhere else.
  [/\b([Bb]earer\s+)[A-Za-z0-9\-._~+/]{16,}=*/g, (_m, b) => `${b}${MASK}`],
  // "password": "x" (and 'password': 'x'): the value is read escape-aware, so \" inside it is no end.
  [new RegExp(String.raw`(["'])(${FIELD})\1(\s*:\s*)(["'])((?:\\.|(?!\4)[^\\])*)\4`, 'gi'), (m, q, f, sep, vq, v) => (v ? `${q}${f}${q}${sep}${vq}${MASK}${vq}` : m)],
  // The same field inside a JSON string: {\"password\": \"x\"}.
  [new RegExp(String.raw`(\\{1,8}["'])(${FIELD})\1(\s*:\s*)(\\{1,8}["'])(.{0,4096}?)\4`, 'gi'), (m, q, f, sep, vq, v) => (v ? `${q}${f}${q}${sep}${vq}${MASK}${vq}` : m)],
  // util.inspect and YAML: password: 'x'.
  [new RegExp(String.raw`${NOT_FIELD_CHAR}(${FIELD})(\s*:\s*)(["'])((?:\\.|(?!\3)[^\\])*)\3`, 'gi'), (m, f, sep, q, v) => (v ? `${f}${sep}${q}${MASK}${q}` : m)],
  // password: x (bare value after a colon, for the unambiguous names only).
  [new RegExp(String.raw`${NOT_FIELD_CHAR}(${BARE_FIELD})(:[ \t]*)(?!\*\*\*)([^\s"'\\,;]+)`, 'gi'), (_m, f, sep) => `${f}${sep}${MASK}`],
  // key=value: OS_PASSWORD=x, token=x in a query string, X-Amz-Signature=x.
  [new RegExp(String.raw`${NOT_FIELD_CHAR}(${FIELD}|${SIGNATURE})(\s*=\s*)(["']?)(?!\*\*\*)[^\s"'\\,;&}<>]+`, 'gi'), (_m, f, sep, q) => `${f}${sep}${q}${MASK}`],
  // userinfo in a URL: https://user:password@host.
  [/\b([a-z][a-z0-9+.-]{0,31}:\/\/[^\s/:@"']{0,256}:)[^\s/@"']{1,256}@/gi, (_m, head) => `${head}${MASK}@`],
  // ...and a token standing as the user name: https://ghp_0123456789abcdef@github.com (not git@).
  [/\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^\s/:@"']{16,256}@/gi, (_m, head) => `${head}${MASK}@`],
];

/** The text with every registered secret (in any form) and anything shaped like a credential masked. */
export function redact(text: string): string {
  if (text.length === 0) return text;
  matcher ??= compile();
  let out = matcher ? text.replace(matcher, MASK) : text;
  for (const [re, fn] of SHAPES) out = out.replace(re, fn as (substring: string, ...args: unknown[]) => string);
  return out;
}

const FIELD_NAME = new RegExp(`^${FIELD}$`, 'i');

/**
 * A copy of a JSON value with every string redacted and every credential-named string field
 * masked, for records and API answers: masking value by value keeps the JSON well-formed, which
 * masking its text could not promise (a registered value "running" would eat a status).
 */
export function redactJson<T>(value: T): T {
  return walk(value, undefined) as T;
}

function walk(v: unknown, key: string | undefined): unknown {
  if (typeof v === 'string') return key !== undefined && v !== '' && FIELD_NAME.test(key) ? MASK : redact(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, undefined));
  if (v !== null && typeof v === 'object') {
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return walk((v as { toJSON(): unknown }).toJSON(), key);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[redact(k)] = walk(x, k);
    return out;
  }
  return v;
}

const patched = new WeakSet<object>();

/**
 * Makes every write to a stream redacted (the CLI's stdout and stderr): whoever writes, through
 * whatever helper, the text passes redact(). Buffers are decoded and passed on unchanged unless
 * something in them was masked. Idempotent.
 */
export function redactStream<S extends NodeJS.WritableStream>(stream: S): S {
  if (patched.has(stream)) return stream;
  patched.add(stream);
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  (stream as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]): boolean => {
    // A string in another encoding (hex, base64) is data, not text.
    const textual = typeof rest[0] !== 'string' || /^utf-?8$/i.test(rest[0]);
    if (typeof chunk === 'string') return write(textual ? redact(chunk) : chunk, ...rest);
    if (chunk instanceof Uint8Array) {
      const text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
      const masked = redact(text);
      return write(masked === text ? chunk : Buffer.from(masked, 'utf8'), ...rest);
    }
    return write(chunk, ...rest);
  };
  return stream;
}
