// Secrets come from the environment only, never from the inventory:
// - IBMCLOUD_API_KEY (or IC_API_KEY, as the IBM Terraform provider names it): IAM API key for
//   VPC and Resource Manager, exchanged for bearer tokens by ibm-cloud-sdk-core's IamAuthenticator.
// - COS_HMAC_ACCESS_KEY_ID + COS_HMAC_SECRET_ACCESS_KEY: HMAC keys of a COS service credential,
//   for COS's S3-compatible API (the AWS SDK signs with them). Without them, COS is reached with
//   the same IAM bearer tokens (COS takes "Authorization: Bearer" on its S3 API), so the API key
//   needs Writer on the bucket. AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are never used for COS:
//   in a farm they belong to the AWS targets.

export interface IbmCredentials {
  apiKey: string;
  /** COS HMAC keys; absent: COS with IAM bearer tokens. */
  hmac?: { accessKeyId: string; secretAccessKey: string };
}

export type CredentialResult = { ok: true; creds: IbmCredentials } | { ok: false; problems: string[] };

const get = (env: NodeJS.ProcessEnv, name: string) => {
  const v = env[name]?.trim();
  return v ? v : undefined;
};

export function readCredentials(env: NodeJS.ProcessEnv): CredentialResult {
  const problems: string[] = [];
  const apiKey = get(env, 'IBMCLOUD_API_KEY') ?? get(env, 'IC_API_KEY');
  if (!apiKey) problems.push('IBMCLOUD_API_KEY is not set (an IBM Cloud IAM API key)');

  const id = get(env, 'COS_HMAC_ACCESS_KEY_ID');
  const secret = get(env, 'COS_HMAC_SECRET_ACCESS_KEY');
  if ((id === undefined) !== (secret === undefined)) {
    problems.push(
      `${id ? 'COS_HMAC_SECRET_ACCESS_KEY' : 'COS_HMAC_ACCESS_KEY_ID'} is not set but ${id ? 'COS_HMAC_ACCESS_KEY_ID' : 'COS_HMAC_SECRET_ACCESS_KEY'} is: ` +
        'COS HMAC keys come in pairs (or set neither, and COS is reached with the IAM API key)',
    );
  }
  if (problems.length > 0 || !apiKey) return { ok: false, problems };
  return { ok: true, creds: { apiKey, ...(id && secret ? { hmac: { accessKeyId: id, secretAccessKey: secret } } : {}) } };
}

/** How COS is reached with these credentials. */
export function cosAuth(creds: IbmCredentials): 'hmac' | 'iam' {
  return creds.hmac ? 'hmac' : 'iam';
}

/** Values that must never appear in messages or logs. */
export function secretsOf(creds: IbmCredentials): string[] {
  return [creds.apiKey, creds.hmac?.secretAccessKey ?? '', creds.hmac?.accessKeyId ?? ''].filter((s) => s.length > 0);
}
