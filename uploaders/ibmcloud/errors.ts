// Turns errors of ibm-cloud-sdk-core (VPC, IAM, Resource Manager) and the AWS SDK (COS) into
// FarmErrors that say which region and step failed, what the service said and what to do.
// Every message passes through redact(): API keys and HMAC secrets never reach a message.

import { FarmError } from '../../src/core/errors.ts';
import { wrapError } from '../toolkit/errors.ts';

/** What ibm-cloud-sdk-core rejects with: status plus the service's error document in `result`. */
interface SdkError {
  status?: number;
  statusText?: string;
  message?: string;
  result?: {
    errors?: { code?: string; message?: string; target?: { name?: string } }[];
    errorCode?: string;
    errorMessage?: string;
    error_code?: string;
    message?: string;
    trace?: string;
  };
  name?: string;
  $metadata?: { httpStatusCode?: number };
  Code?: string;
}

export interface ServiceFault {
  status?: number;
  /** VPC error code, IAM errorCode (BXNIM...), or the S3 error name. */
  code?: string;
  message: string;
}

/** The service's own words for a failure, from whichever SDK threw it. */
export function serviceFault(err: unknown): ServiceFault {
  const e = (err ?? {}) as SdkError;
  const r = e.result;
  if (r && Array.isArray(r.errors) && r.errors[0]) {
    const first = r.errors[0];
    const field = first.target?.name ? ` (${first.target.name})` : '';
    return { status: e.status, code: first.code, message: `${first.message ?? e.message ?? 'error'}${field}` };
  }
  if (r && typeof r.errorCode === 'string') {
    return { status: e.status, code: r.errorCode, message: r.errorMessage ?? e.message ?? 'IAM error' };
  }
  if (r && typeof r.error_code === 'string') {
    return { status: e.status, code: r.error_code, message: r.message ?? e.message ?? 'error' };
  }
  if (e.$metadata) {
    // AWS SDK v3 service exception (COS). Answers to HEAD have no body: the SDK then says only "UnknownError".
    const code = e.name ?? e.Code;
    const bodiless = !e.message || e.message === 'UnknownError';
    const message = bodiless ? (e.$metadata.httpStatusCode === 404 ? 'not found' : code ?? 'COS error') : e.message!;
    return { status: e.$metadata.httpStatusCode, code, message };
  }
  return { status: e.status, message: e.message ?? String(err) };
}

export function faultText(f: ServiceFault): string {
  const parts = [f.status ? `HTTP ${f.status}` : undefined, f.code].filter(Boolean).join(' ');
  return parts ? `${f.message} [${parts}]` : f.message;
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

export function isIamError(f: ServiceFault): boolean {
  return typeof f.code === 'string' && f.code.startsWith('BXNIM');
}

/** What to do about a failure, by what the service said. */
export function hintFor(f: ServiceFault, step: string, cos: 'hmac' | 'iam' = 'hmac'): string | undefined {
  if (isIamError(f)) {
    return 'IAM refused the API key: check IBMCLOUD_API_KEY (ibmcloud iam api-keys lists yours; ibmcloud iam api-key-create makes one)';
  }
  if (f.status === 401) return 'the IAM token was refused: check IBMCLOUD_API_KEY and that endpoints.iam matches the cloud you target';
  if (f.status === 403) {
    if (!step.includes('COS')) return 'the API key lacks access: it needs Editor on VPC Infrastructure Services (images) and Viewer on the resource group';
    return cos === 'iam'
      ? 'COS refused the IAM token: give the API key Writer on the bucket (Cloud Object Storage), or set COS_HMAC_ACCESS_KEY_ID/COS_HMAC_SECRET_ACCESS_KEY'
      : 'COS refused the HMAC keys: check COS_HMAC_ACCESS_KEY_ID/COS_HMAC_SECRET_ACCESS_KEY and their access to the bucket';
  }
  if (f.code === 'NoSuchBucket' || (step.includes('COS') && f.status === 404)) return 'create the bucket or fix cos.bucket and cos.region in the target';
  if (f.code === 'InvalidAccessKeyId' || f.code === 'SignatureDoesNotMatch') {
    return 'check COS_HMAC_ACCESS_KEY_ID and COS_HMAC_SECRET_ACCESS_KEY (HMAC keys of a COS service credential)';
  }
  if (f.code === 'validation_unique_failed') return 'an image with this name already exists in the region: delete it or change the naming template';
  if (step === 'create image' && /file\.href|Cloud Object Storage/.test(f.message)) {
    return 'VPC reads the image from COS with its own service authorization: in IAM, authorize "VPC Infrastructure Services" (Image Service) to read the COS instance (Reader)';
  }
  if (f.status === 429 || (f.status !== undefined && f.status >= 500)) return 'the service is busy or failing; retry later';
  return undefined;
}

/**
 * A FarmError for a failed step: code ABORTED for cancellations, UPLOAD otherwise; the message
 * names the region (when there is one) and the step, and never contains a secret.
 */
export function stepError(
  step: string,
  region: string | undefined,
  err: unknown,
  secrets: readonly string[],
  signal?: AbortSignal,
  cos?: 'hmac' | 'iam',
): FarmError {
  if (err instanceof FarmError) {
    return err.code === 'ABORTED' || err.code === 'UPLOAD' ? err : new FarmError('UPLOAD', redact(err.message, secrets), { hint: err.hint, cause: err });
  }
  const fault = serviceFault(err);
  const masked = (text: string) => redact(text, secrets);
  // The SDK core rewraps axios' cancellation into a plain Error: wrapError takes the signal as witness.
  return wrapError(err, {
    step,
    where: region ? `IBM Cloud ${region}` : 'IBM Cloud',
    redact: masked,
    ...(signal ? { signal } : {}),
    describe: () => faultText(fault),
    hint: () => hintFor(fault, step, cos),
    // The SDK errors carry the response only (no request config), but keep just the parsed fault as cause.
    cause: { ...fault, message: masked(fault.message) },
  });
}
