// Azure credentials: DefaultAzureCredential, as the Azure CLI and SDKs find them (environment
// AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET or a certificate, workload or managed
// identity, `az login`), for Resource Manager and the Blob service alike (the identity needs
// Storage Blob Data Contributor on the account, and Contributor on the resource group).

import { AzureAuthorityHosts, DefaultAzureCredential, type TokenCredential } from '@azure/identity';

const PUBLIC_HOSTS = new Set<string>(Object.values(AzureAuthorityHosts).map((h) => new URL(h).host));

/**
 * The credential chain. An authority host Microsoft's instance discovery does not know (Azure
 * Stack, ADFS, a private or lab issuer) has no discovery endpoint; MSAL would ask
 * login.microsoftonline.com about it and fail, so discovery is off for it, as the SDK advises.
 */
export function azureCredential(env: NodeJS.ProcessEnv): TokenCredential {
  const authority = env.AZURE_AUTHORITY_HOST;
  const privateAuthority = authority !== undefined && authority !== '' && !PUBLIC_HOSTS.has(hostOf(authority));
  return new DefaultAzureCredential(privateAuthority ? { authorityHost: authority, disableInstanceDiscovery: true } : {});
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
