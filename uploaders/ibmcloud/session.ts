// The clients of one uploader, built once from the target and the environment: an
// IamAuthenticator shared by Resource Manager, every regional VPC client and (without HMAC keys)
// the COS client.

import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import ResourceManagerV2 from '@ibm-cloud/platform-services/resource-manager/v2.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { FarmError } from '../../src/core/errors.ts';
import type { IbmCloudTarget } from './schema.ts';
import { cosAuth, readCredentials, secretsOf, type IbmCredentials } from './credentials.ts';
import { DEFAULT_IAM_URL, DEFAULT_RESOURCE_MANAGER_URL, checkRegion, cosEndpoint, vpcServiceUrl } from './endpoints.ts';
import { redact } from './errors.ts';
import { registerSecret, registerSecrets } from '../../src/core/redact.ts';
import { VpcClient } from './vpc-client.ts';
import { DEFAULT_TAGGING_URL, TaggingClient } from './tagging.ts';
import { createCosClient } from './cos.ts';

export interface Session {
  creds: IbmCredentials;
  /** Values redacted from every message. */
  secrets: string[];
  authenticator: IamAuthenticator;
  rm: ResourceManagerV2;
  cos: S3Client;
  /** How COS is reached: HMAC keys, or the IAM API key's bearer tokens. */
  cosAuth: 'hmac' | 'iam';
  vpc(region: string): VpcClient;
  /** Global Tagging: the images' user tags (the farm's identity). */
  tagging: TaggingClient;
}

/** An IamAuthenticator whose bearer tokens, once issued, are masked wherever the farm writes. */
class RedactingIamAuthenticator extends IamAuthenticator {
  override async authenticate(request: Parameters<IamAuthenticator['authenticate']>[0]): Promise<void> {
    await super.authenticate(request);
    const auth = (request.headers as Record<string, unknown> | undefined)?.Authorization;
    if (typeof auth === 'string') registerSecret(auth.replace(/^Bearer\s+/i, ''));
  }
}

/** Throws one error naming every missing credential, or a bad endpoint setting. */
export function openSession(target: IbmCloudTarget, env: NodeJS.ProcessEnv, targetName: string): Session {
  const got = readCredentials(env);
  if (!got.ok) {
    throw new FarmError('UPLOAD', `IBM Cloud target '${targetName}': ${got.problems.join('; ')}`, {
      hint: 'export the credentials in the environment farm runs in; they are never read from the inventory',
    });
  }
  const { creds } = got;
  const secrets = secretsOf(creds);
  registerSecrets(secrets);
  const regions = [...new Set(target.regions)];
  for (const r of regions) checkRegion(r, 'VPC region');
  checkRegion(target.cos.region, 'COS region');
  const urlFor = (region: string) => vpcServiceUrl(target.endpoints?.vpc, region, regions.includes(region) ? regions.length : 2);
  for (const r of regions) urlFor(r);

  let authenticator: IamAuthenticator;
  try {
    authenticator = new RedactingIamAuthenticator({ apikey: creds.apiKey, url: target.endpoints?.iam ?? DEFAULT_IAM_URL });
  } catch (err) {
    // The SDK checks the key's shape (no quotes or braces); its message never needs the key itself.
    throw new FarmError('UPLOAD', redact(`IBMCLOUD_API_KEY is not usable: ${(err as Error).message}`, secrets), {
      hint: 'set IBMCLOUD_API_KEY to the bare key, without quotes or braces',
    });
  }
  const rm = new ResourceManagerV2({ authenticator, serviceUrl: target.endpoints?.resource_manager ?? DEFAULT_RESOURCE_MANAGER_URL });
  rm.enableRetries({ maxRetries: 4, maxRetryInterval: 30 });
  const clients = new Map<string, VpcClient>();
  return {
    creds,
    secrets,
    authenticator,
    rm,
    cosAuth: cosAuth(creds),
    cos: createCosClient({
      endpoint: cosEndpoint(target.cos.region, target.cos.endpoint),
      region: target.cos.region,
      auth: creds.hmac ? { hmac: creds.hmac } : { iam: authenticator },
    }),
    tagging: new TaggingClient({ serviceUrl: target.endpoints?.tagging ?? DEFAULT_TAGGING_URL, authenticator }),
    vpc(region) {
      let c = clients.get(region);
      if (!c) {
        c = new VpcClient({ serviceUrl: urlFor(region), authenticator });
        clients.set(region, c);
      }
      return c;
    },
  };
}
