// What the fake VPC knows without being told: operating systems (GET /operating_systems/{name})
// and the id prefixes VPC uses per region (image ids look like r006-<uuid> in us-south).

export interface FakeOperatingSystem {
  name: string;
  architecture: 'amd64' | 's390x';
  display_name: string;
  family: string;
  vendor: string;
  version: string;
  dedicated_host_only: boolean;
  allow_user_image_creation: boolean;
  user_data_format: 'cloud_init' | 'esxi_kickstart' | 'ipxe';
}

const os = (
  name: string,
  architecture: FakeOperatingSystem['architecture'],
  display_name: string,
  family: string,
  vendor: string,
  version: string,
): FakeOperatingSystem => ({
  name,
  architecture,
  display_name,
  family,
  vendor,
  version,
  dedicated_host_only: false,
  allow_user_image_creation: true,
  user_data_format: 'cloud_init',
});

export const OPERATING_SYSTEMS: readonly FakeOperatingSystem[] = [
  os('red-9-s390x-byol', 's390x', 'Red Hat Enterprise Linux 9.x - Minimal Install (s390x) BYOL', 'Red Hat Enterprise Linux', 'Red Hat', '9.x - Minimal Install'),
  os('red-8-s390x-byol', 's390x', 'Red Hat Enterprise Linux 8.x - Minimal Install (s390x) BYOL', 'Red Hat Enterprise Linux', 'Red Hat', '8.x - Minimal Install'),
  os('ibm-redhat-9-4-minimal-s390x-byol', 's390x', 'Red Hat Enterprise Linux 9.4 - Minimal Install (s390x) BYOL', 'Red Hat Enterprise Linux', 'Red Hat', '9.4 - Minimal Install'),
  os('ubuntu-22-04-s390x', 's390x', 'Ubuntu Linux 22.04 LTS Jammy Jellyfish (s390x)', 'Ubuntu Linux', 'Canonical', '22.04 LTS'),
  os('red-9-amd64-byol', 'amd64', 'Red Hat Enterprise Linux 9.x - Minimal Install (amd64) BYOL', 'Red Hat Enterprise Linux', 'Red Hat', '9.x - Minimal Install'),
  os('red-9-amd64', 'amd64', 'Red Hat Enterprise Linux 9.x - Minimal Install (amd64)', 'Red Hat Enterprise Linux', 'Red Hat', '9.x - Minimal Install'),
  os('ibm-ubuntu-22-04-minimal-amd64', 'amd64', 'Ubuntu Linux 22.04 LTS Jammy Jellyfish Minimal Install (amd64)', 'Ubuntu Linux', 'Canonical', '22.04 LTS'),
  os('ubuntu-22-04-amd64', 'amd64', 'Ubuntu Linux 22.04 LTS Jammy Jellyfish (amd64)', 'Ubuntu Linux', 'Canonical', '22.04 LTS'),
  os('centos-stream-9-amd64', 'amd64', 'CentOS Stream 9 (amd64)', 'CentOS Stream', 'CentOS', '9'),
];

/** Regional id prefixes as the real service uses them; unknown regions get a stable made-up one. */
const REGION_PREFIX: Record<string, string> = {
  'us-south': 'r006',
  'eu-de': 'r010',
  'us-east': 'r014',
  'eu-gb': 'r018',
  'jp-tok': 'r022',
  'au-syd': 'r026',
  'jp-osa': 'r034',
  'ca-tor': 'r038',
  'br-sao': 'r042',
  'eu-es': 'r050',
};

export function regionPrefix(region: string): string {
  return REGION_PREFIX[region] ?? 'r099';
}

/** farm arch names (as artifacts carry them) → VPC operating-system architectures. */
export const FARM_TO_VPC_ARCH: Record<string, FakeOperatingSystem['architecture']> = {
  x86_64: 'amd64',
  s390x: 's390x',
};
