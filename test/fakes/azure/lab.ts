// The lab's Azure: fixed ids (the inventory names them) and ports; secrets are made per lab.

export const LAB_AZURE = {
  tenantId: 'fa7b1ab0-0000-4000-8000-000000000001',
  subscriptionId: 'fa7b1ab0-0000-4000-8000-000000000002',
  clientId: 'fa7b1ab0-0000-4000-8000-000000000003',
  resourceGroup: 'farm-lab',
  location: 'eastus',
  account: 'farmlab',
  container: 'farm-staging',
  gallery: 'farm_lab_gallery',
  galleryImages: { x86_64: 'farm-lab-x64', aarch64: 'farm-lab-arm64' },
  ports: { blob: 19010, arm: 19011 },
  host: '127.0.0.1',
} as const;

export const labBlobUrl = (host: string = LAB_AZURE.host, port: number = LAB_AZURE.ports.blob) => `https://${host}:${port}/${LAB_AZURE.account}`;

/** What the lab's Resource Manager holds from the start: its resource group, gallery and account. */
export function labArmSeeds() {
  const { resourceGroup, gallery, location, galleryImages } = LAB_AZURE;
  return {
    tenantId: LAB_AZURE.tenantId,
    subscriptionId: LAB_AZURE.subscriptionId,
    resourceGroups: [resourceGroup],
    galleries: [
      { resourceGroup, gallery, image: galleryImages.x86_64, architecture: 'x64' as const, location },
      { resourceGroup, gallery, image: galleryImages.aarch64, architecture: 'Arm64' as const, location },
    ],
    storageAccounts: { [LAB_AZURE.account]: resourceGroup },
  };
}
