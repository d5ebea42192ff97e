// Glance: the farm's OpenStack uploader (Keystone auth, create, streamed PUT with sha512, wait for
// active, check Glance's hash) against `openstack image create --file` (python3-openstackclient),
// both to the lab's Glance on loopback with the lab's clouds.yaml. Neither is sparse: both send
// the whole raw. Each image is checked (active, full size) and deleted after its turn, untimed.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { openstackTargetSchema } from '../../../uploaders/openstack/schema.ts';
import { createOpenStackUploader } from '../../../uploaders/openstack/index.ts';
import type { BenchDisk } from '../../support/bench-disk.ts';
import { startupSeconds, type Contender } from '../../support/bench-pair.ts';
import { GLANCE_URL, ensureOpenStack } from '../../support/openstack.ts';
import { benchArtifact } from './artifact.ts';
import type { PeerSetup } from './peer.ts';

const run = promisify(execFile);

export async function glancePeer(disk: BenchDisk): Promise<PeerSetup> {
  const lab = await ensureOpenStack();
  const cliEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', OS_CLIENT_CONFIG_FILE: lab.cloudsYaml };
  const osc = async (args: string[]) => (await run('openstack', ['--os-cloud', lab.cloud, ...args], { env: cliEnv, maxBuffer: 16 << 20 })).stdout;
  // One token for the untimed checks and deletes.
  const token = (await osc(['token', 'issue', '-f', 'value', '-c', 'id'])).trim();
  const version = (await run('openstack', ['--version'], { env: cliEnv })).stdout.trim().split(/\s+/).pop();
  const prefix = `farm-bench-${randomBytes(3).toString('hex')}`;
  const ids = new Map<number, string>();

  const checkAndDelete = async (turn: number) => {
    const id = ids.get(turn);
    if (!id) throw new Error(`turn ${turn} left no image id`);
    const res = await fetch(`${GLANCE_URL}/v2/images/${id}`, { headers: { 'X-Auth-Token': token } });
    const image = (await res.json()) as { status: string; size: number };
    const del = await fetch(`${GLANCE_URL}/v2/images/${id}`, { method: 'DELETE', headers: { 'X-Auth-Token': token } });
    if (del.status !== 204) throw new Error(`deleting image ${id}: HTTP ${del.status}`);
    if (image.status !== 'active' || image.size !== disk.apparent) {
      throw new Error(`image ${id} is ${image.status} with ${image.size} bytes, expected active with ${disk.apparent}`);
    }
  };

  const target = openstackTargetSchema.parse({ kind: 'openstack', name: 'bench-glance', cloud: lab.cloud, image_type: 'raw' });
  // The uploader's own defaults (poll interval, progress throttle, retries): as a build runs it.
  const uploader = createOpenStackUploader(target, { env: { OS_CLIENT_CONFIG_FILE: lab.cloudsYaml } });
  const farm: Contender = {
    label: 'farm openstack uploader',
    async run(turn) {
      const name = `${prefix}-farm-${turn}`;
      const [image] = await uploader.upload(benchArtifact(disk, name), name, { signal: AbortSignal.timeout(20 * 60_000), log: () => {}, tags: {} });
      ids.set(turn, image!.imageId);
    },
    after: checkAndDelete,
  };
  const peer: Contender = {
    label: `openstack image create --file (${version})`,
    async run(turn) {
      const out = await osc(['image', 'create', '--disk-format', 'raw', '--container-format', 'bare', '--file', disk.path, `${prefix}-cli-${turn}`, '-f', 'json']);
      ids.set(turn, (JSON.parse(out) as { id: string }).id);
    },
    after: checkAndDelete,
  };
  return {
    bench: 'Glance upload',
    farm,
    peer,
    farmSends: disk.apparent,
    peerSends: disk.apparent,
    peerStartup: await startupSeconds('openstack', ['--version'], cliEnv),
    note: 'both send the whole raw over one HTTP PUT; peer start-up is `openstack --version` (Python and the client\'s modules), paid by every CLI upload',
    close: async () => {},
  };
}
