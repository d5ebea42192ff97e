// A process that brings up an OpenSSH master connection and then dies without cleaning up, for
// the test that the master does not outlive the farm. Input: one JSON argument; prints the
// master's PID and waits to be killed.

import { hostKeyFromBlob } from '../../src/core/hostkeys.ts';
import { OpenSshBulk, findSshClient } from '../../workers/ssh/openssh.ts';
import { workerSchema } from '../../src/inventory/schema.ts';

const input = JSON.parse(process.argv[2] ?? '{}') as { worker: Record<string, unknown>; hostKey: string; identityFile: string };
const bulk = await OpenSshBulk.prepare(findSshClient()!, workerSchema.parse(input.worker), hostKeyFromBlob(Buffer.from(input.hostKey, 'base64')), {
  identityFile: input.identityFile,
});
if (!(await bulk.ready())) throw new Error(`no master: ${bulk.masterError}`);
process.stdout.write(`${bulk.masterPid}\n`);
setInterval(() => {}, 60_000);
