// The lab's real Keystone and Glance for integration tests: brought up once per process
// (idempotent `scripts/lab.d/services/openstack.sh up`), then reused.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './cli.ts';

const run = promisify(execFile);

export const OPENSTACK_SCRIPT = join(REPO, 'scripts', 'lab.d', 'services', 'openstack.sh');
export const OPENSTACK_DIR = join(process.env.FARM_LAB_DIR ?? join(REPO, '.lab'), 'openstack');
export const KEYSTONE_URL = 'http://127.0.0.1:15000/v3';
export const GLANCE_URL = 'http://127.0.0.1:19292';

export interface LabOpenStack {
  /** clouds.yaml with clouds lab (password), lab-appcred (application credential), lab-admin. */
  cloudsYaml: string;
  cloud: 'lab';
  appCredCloud: 'lab-appcred';
}

let up: Promise<LabOpenStack> | undefined;

/** Starts (or finds running) the lab's Keystone and Glance. A first run configures them (~1 min). */
export function ensureOpenStack(): Promise<LabOpenStack> {
  up ??= run(OPENSTACK_SCRIPT, ['up'], { maxBuffer: 16 << 20, timeout: 600_000 }).then(() => ({
    cloudsYaml: join(OPENSTACK_DIR, 'clouds.yaml'),
    cloud: 'lab' as const,
    appCredCloud: 'lab-appcred' as const,
  }));
  up.catch(() => (up = undefined));
  return up;
}
