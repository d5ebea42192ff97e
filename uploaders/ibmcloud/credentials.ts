// Secrets come from the environment only, never from the inventory:
// - IBMCLOUD_API_KEY (or IC_API_KEY, as the IBM Terraform provider names it): IAM API key for
//   VPC and Resource Manager, exchanged for bearer tokens by ibm-cloud-sdk-core's IamAuthenticator.
// - COS_HMAC_ACCESS_KEY_ID + COS_HMAC_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID +
//   AWS_SECRET_ACCESS_KEY, as the COS docs allow): HMAC keys for COS's S3-compatible API.
//   COS is reached with HMAC keys only (the AWS SDK signs with them); IAM bearer auth for COS is
//   not used, so a service credential "with HMAC" is needed.

export interface IbmCredentials {
  apiKey: string;
  hmac: { accessKeyId: string; secretAccessKey: string };
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

  let hmac: IbmCredentials['hmac'] | undefined;
  for (const [id, secret] of [
    ['COS_HMAC_ACCESS_KEY_ID', 'COS_HMAC_SECRET_ACCESS_KEY'],
    ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
  ] as const) {
    const a = get(env, id);
    const s = get(env, secret);
    if (a && s) {
      hmac = { accessKeyId: a, secretAccessKey: s };
      break;
    }
    if (a || s) {
      problems.push(`${a ? secret : id} is not set but ${a ? id : secret} is: COS HMAC keys come in pairs`);
      break;
    }
  }
  if (!hmac && !problems.some((p) => p.includes('HMAC'))) {
    problems.push('COS_HMAC_ACCESS_KEY_ID and COS_HMAC_SECRET_ACCESS_KEY are not set (COS HMAC keys; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY also work)');
  }
  if (problems.length > 0 || !apiKey || !hmac) return { ok: false, problems };
  return { ok: true, creds: { apiKey, hmac } };
}

/** Values that must never appear in messages or logs. */
export function secretsOf(creds: IbmCredentials): string[] {
  return [creds.apiKey, creds.hmac.secretAccessKey, creds.hmac.accessKeyId].filter((s) => s.length >= 4);
}
