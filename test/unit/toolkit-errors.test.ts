// wrapError (uploaders/toolkit/errors.ts): cancellations, step failures, redaction.

import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { wrapError } from '../../uploaders/toolkit/errors.ts';

const redact = (s: string) => s.split('hunter22').join('***');

describe('wrapError', () => {
  it('names where and which step failed, with a hint, and never the secret', () => {
    const e = wrapError(new Error('denied for key hunter22'), { step: 'RegisterImage', where: 'aws-us-east-1', redact, hint: () => 'use key hunter22 less' });
    expect(e).toMatchObject({ code: 'UPLOAD', message: 'aws-us-east-1: RegisterImage failed: denied for key ***', hint: 'use key *** less' });
  });

  it('turns cancellations into ABORTED, by the error or by the signal', () => {
    expect(wrapError(new DOMException('x', 'AbortError'), { step: 'upload' }).code).toBe('ABORTED');
    const c = new AbortController();
    c.abort();
    expect(wrapError(new Error('canceled'), { step: 'import', where: 'r', signal: c.signal })).toMatchObject({ code: 'ABORTED', message: 'r: cancelled during import' });
  });

  it('keeps a FarmError as it is unless redaction changes its text', () => {
    const own = new FarmError('UPLOAD', 'already clear');
    expect(wrapError(own, { step: 'x', redact })).toBe(own);
    const leaky = new FarmError('INVENTORY', 'token hunter22 refused');
    const masked = wrapError(leaky, { step: 'x', redact });
    expect(masked).toMatchObject({ code: 'INVENTORY', message: 'token *** refused' });
    expect(masked.cause).toBe(leaky);
  });

  it('takes the format of the message from the kind', () => {
    const e = wrapError(new Error('Keystone refused'), { step: 'preflight', where: 'lab-glance', format: (step, d) => `${step}: ${d}` });
    expect(e.message).toBe('lab-glance: preflight: Keystone refused');
  });
});
