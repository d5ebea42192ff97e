// The lab's Azure for tests: its Blob account (Azurite), a fake ARM of the test's own beside it
// (same lab certificate, so the farm's NODE_EXTRA_CA_CERTS covers it), and the real SDK in this
// process, which cannot take NODE_EXTRA_CA_CERTS after start: a policy gives its requests an
// agent that trusts the lab CA.

import { Agent } from 'node:https';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { ComputeManagementClient } from '@azure/arm-compute';
import { blobProbe, hashBlob, type BlobAccount } from '../fakes/azure/blob-probe.ts';
import { LAB_AZURE, labArmSeeds } from '../fakes/azure/lab.ts';
import { startAzureFake, type AzureFake, type AzureFakeOptions } from '../fakes/azure/server.ts';

export async function labAzureAccount(env: Record<string, string>): Promise<BlobAccount> {
  const ca = env.FARM_LAB_AZURE_CA;
  if (!ca || !env.AZURE_STORAGE_KEY || !env.FARM_LAB_AZURE_BLOB_URL) throw new Error("the lab env has no Azure part: run scripts/lab up (azure.sh writes it)");
  return { name: LAB_AZURE.account, key: env.AZURE_STORAGE_KEY, url: env.FARM_LAB_AZURE_BLOB_URL, ca: await readFile(ca, 'utf8') };
}

/** A fake ARM + Entra ID on a free port, reading the lab's Azurite; hashes what it copies. */
export async function startTestArm(env: Record<string, string>, account: BlobAccount, extra: Partial<AzureFakeOptions> = {}): Promise<{ fake: AzureFake; copied: Map<string, string> }> {
  const tls = dirname(env.FARM_LAB_AZURE_CA!);
  const copied = new Map<string, string>();
  const fake = await startAzureFake({
    tls: { key: await readFile(join(tls, 'server.key'), 'utf8'), cert: await readFile(join(tls, 'server.crt'), 'utf8') },
    ...labArmSeeds(),
    clients: { [LAB_AZURE.clientId]: env.AZURE_CLIENT_SECRET! },
    probe: blobProbe(account),
    onCopy: async (uri) => {
      copied.set(uri, await hashBlob(account, uri));
    },
    ...extra,
  });
  return { fake, copied };
}

/** The real SDK's clients in this process, trusting the lab CA. */
export function sdkClients(env: Record<string, string>, account: BlobAccount, armUrl: string) {
  const agent = new Agent({ ca: account.ca, keepAlive: true });
  const policy = { name: 'farmLabCa', sendRequest: (req: { agent?: unknown }, next: (r: never) => Promise<unknown>) => ((req.agent = agent), next(req as never)) };
  const additionalPolicies = [{ policy: policy as never, position: 'perCall' as const }];
  const credential = new ClientSecretCredential(LAB_AZURE.tenantId, LAB_AZURE.clientId, env.AZURE_CLIENT_SECRET!, {
    authorityHost: armUrl,
    disableInstanceDiscovery: true,
    additionalPolicies,
  });
  const compute = new ComputeManagementClient(credential, LAB_AZURE.subscriptionId, { endpoint: armUrl, credentialScopes: [`${armUrl}/.default`], additionalPolicies });
  return { credential, compute, close: () => agent.destroy() };
}

/** An azure target of the lab inventory, at `armUrl`. */
export function labAzureTarget(env: Record<string, string>, armUrl: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'azure',
    subscription_id: LAB_AZURE.subscriptionId,
    resource_group: LAB_AZURE.resourceGroup,
    location: LAB_AZURE.location,
    storage_account: LAB_AZURE.account,
    container: LAB_AZURE.container,
    blob_endpoint: env.FARM_LAB_AZURE_BLOB_URL,
    arm_endpoint: armUrl,
    ...more,
  };
}
