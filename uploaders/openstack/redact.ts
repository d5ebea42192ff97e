// The OpenStack uploader's view of the farm's one redaction module (src/core/redact.ts): the
// passwords, application-credential secrets and tokens it learns are registered process-wide,
// so every sink masks them, not only this uploader's messages.

import { redact, registerSecret } from '../../src/core/redact.ts';

export class Redactor {
  constructor(secrets: Iterable<string> = []) {
    for (const s of secrets) this.add(s);
  }

  /** Registers a secret (a token once issued). */
  add(secret: string | undefined): void {
    registerSecret(secret);
  }

  redact(text: string): string {
    return redact(text);
  }
}
