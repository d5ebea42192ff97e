// Keeps passwords, application-credential secrets and tokens out of every message the OpenStack
// uploader produces: known secret values are replaced wherever they appear, and anything shaped
// like a credential field or token header is masked even if its value is not known.

const MASK = '***';

// "password": "x", password: x, "secret": "x", X-Auth-Token: x, X-Subject-Token: x
const PATTERNS: RegExp[] = [
  /("(?:password|secret|application_credential_secret|token)"\s*:\s*")[^"]*(")/gi,
  /(\b(?:password|secret|application_credential_secret)\s*[:=]\s*)[^\s,;&}]+()/gi,
  /(\bx-(?:auth|subject)-token\s*:\s*)\S+()/gi,
];

export class Redactor {
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string> = []) {
    for (const s of secrets) this.add(s);
  }

  /** Registers a secret (a token once issued); too-short values would mask ordinary words. */
  add(secret: string | undefined): void {
    if (secret && secret.length >= 6) this.secrets.add(secret);
  }

  redact(text: string): string {
    let out = text;
    // Longest first, so a secret containing another is masked whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join(MASK);
    for (const re of PATTERNS) out = out.replace(re, `$1${MASK}$2`);
    return out;
  }
}
