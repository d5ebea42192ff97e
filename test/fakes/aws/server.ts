// A strict fake of EC2 (Query protocol) and EBS direct (REST-JSON) on one HTTP server on
// 127.0.0.1, for the real AWS SDK clients pointed at it by `endpoint`. Requests must be SigV4
// signed with the fake's key pair (the signature is recomputed and compared); the credential
// scope picks the service (ec2|ebs) and the region, so one server stands for several regions.

import { Instances } from './instances.ts';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { Ebs, ebsAction, type EbsStats } from './ebs.ts';
import { Ec2 } from './ec2.ts';
import { QueryParams } from './query.ts';
import { parseAuthorization, verifySignature, type AuthProblem } from './sigv4.ts';
import { ACCOUNT_ID, AwsFault, FakeState, type Image, type ImportTask, type Snapshot, type Timing } from './state.ts';
import { ec2Error, ec2Response } from './xml.ts';
import { restoreAwsState, saveAwsState, type SavedAwsState } from './persist.ts';
import { readStateFile, StateFile } from '../state-file.ts';

export { ACCOUNT_ID, BLOCK_SIZE } from './state.ts';
export type { Image, ImportTask, Snapshot } from './state.ts';

export interface AwsFakeOptions {
  regions?: string[];
  /** Config of the S3 server ImportSnapshot reads from (see test/support/s3.ts s3ClientConfig). */
  s3?: S3ClientConfig;
  timing?: Partial<Timing>;
  dir?: string;
  /** The one key pair the fake accepts (default: a fixed fake pair). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Program that makes and removes the lab host of an instance (scripts/lab.d/ec2-host); without it instances have no host. */
  instanceHosts?: string;
  /** Port on 127.0.0.1 (default: any free one). */
  port?: number;
  /**
   * JSON file keeping snapshots, images and import tasks across restarts (default: none). Use it
   * with a fixed `dir`, which holds the snapshots' data.
   */
  statePath?: string;
}

export interface Injection {
  /** Operation name, e.g. 'RegisterImage' or 'PutSnapshotBlock'. */
  action: string;
  /** How many of the next matching requests fail. */
  times: number;
  code: string;
  status?: number;
  message?: string;
}

export interface RequestRecord {
  service: 'ec2' | 'ebs';
  region: string;
  action: string;
  status: number;
  code?: string;
}

export interface AwsFake {
  endpoint: string;
  accountId: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  regions: string[];
  /** Fail the next `times` requests of an operation with an AWS error. */
  inject(injection: Injection): void;
  snapshots(region?: string): Snapshot[];
  images(region?: string): Image[];
  importTasks(region?: string): ImportTask[];
  stats: EbsStats & { requests: RequestRecord[] };
  stop(): Promise<void>;
}

const DEFAULT_REGIONS = ['us-east-1', 'us-west-2', 'eu-central-1', 'eu-west-1', 'ap-southeast-1'];
const EC2_VERSION = '2016-11-15';
// PutSnapshotBlock carries 512 KiB; nothing legitimate is bigger.
const MAX_BODY = 2 * 1024 * 1024;
const ACCESS_KEY_ID = 'AKIAFAKEFARM0EXAMPLE';
const SECRET_ACCESS_KEY = 'fake/farm/secret/key/0123456789abcdefghij';

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) tooBig = true; // keep draining so the client sees the answer
    else chunks.push(chunk);
  }
  return tooBig ? undefined : Buffer.concat(chunks);
}

export async function startAwsFake(opts: AwsFakeOptions = {}): Promise<AwsFake> {
  const regions = opts.regions ?? DEFAULT_REGIONS;
  const ownDir = opts.dir === undefined;
  const dataDir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'farm-awsfake-')));
  const timing: Timing = { snapshotCompleteMs: 300, imageAvailableMs: 300, importPolls: 3, ...opts.timing };
  const state = new FakeState(regions, timing);
  const stats: AwsFake['stats'] = {
    putSnapshotBlock: { requests: 0, accepted: 0, bytesReceived: 0, bytesAccepted: 0 },
    requests: [],
  };
  const ebs = new Ebs(state, dataDir, stats);
  const ec2 = new Ec2(state, dataDir, opts.s3);
  // Pool instances (./instances.ts), beside the image API.
  Object.assign(ec2.handlers, new Instances(opts.instanceHosts).handlers(ec2.handlers.DescribeImages!));
  const stateFile = opts.statePath === undefined ? undefined : new StateFile(opts.statePath, () => saveAwsState(state));
  if (opts.statePath !== undefined) {
    const saved = readStateFile<SavedAwsState>(opts.statePath);
    if (saved) for (const task of restoreAwsState(state, saved)) void ec2.readImportObject(task);
  }
  const injections: Injection[] = [];
  const credentials = opts.credentials ?? { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

  function injected(action: string): Injection | undefined {
    const i = injections.find((x) => x.action === action && x.times > 0);
    if (i) i.times--;
    return i;
  }

  function sendEc2Error(res: ServerResponse, status: number, code: string, message: string): void {
    const requestId = randomUUID();
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId });
    res.end(ec2Error(code, message, requestId));
  }

  function sendEbsError(res: ServerResponse, status: number, code: string, message: string, reason?: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      'x-amzn-errortype': code,
      'x-amzn-requestid': randomUUID(),
    });
    res.end(JSON.stringify(reason === undefined ? { Message: message } : { Message: message, Reason: reason }));
  }

  function authError(service: 'ec2' | 'ebs', res: ServerResponse, problem: AuthProblem): { status: number; code: string } {
    const table: Record<AuthProblem['kind'], { ec2: [number, string]; ebs: [number, string] }> = {
      missing: { ec2: [403, 'MissingAuthenticationToken'], ebs: [403, 'MissingAuthenticationTokenException'] },
      malformed: { ec2: [400, 'IncompleteSignature'], ebs: [400, 'IncompleteSignatureException'] },
      'unknown-key': { ec2: [401, 'AuthFailure'], ebs: [403, 'UnrecognizedClientException'] },
      expired: { ec2: [400, 'RequestExpired'], ebs: [403, 'InvalidSignatureException'] },
      mismatch: { ec2: [401, 'AuthFailure'], ebs: [403, 'InvalidSignatureException'] },
    };
    const messages: Record<AuthProblem['kind'], string> = {
      missing: 'Missing Authentication Token',
      malformed: 'message' in problem ? problem.message : 'Incomplete signature',
      'unknown-key': service === 'ec2' ? 'AWS was not able to validate the provided access credentials' : 'The security token included in the request is invalid.',
      expired: 'message' in problem ? problem.message : 'Signature expired',
      mismatch:
        service === 'ec2'
          ? 'AWS was not able to validate the provided access credentials'
          : 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
    const [status, code] = table[problem.kind][service];
    if (service === 'ec2') sendEc2Error(res, status, code, messages[problem.kind]);
    else sendEbsError(res, status, code, messages[problem.kind]);
    return { status, code };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const rawQuery = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1) : '';
    const method = req.method ?? 'GET';
    const body = await readBody(req);
    // Without a credential scope, tell the services apart by their URL shapes.
    const guess: 'ec2' | 'ebs' = rawPath.startsWith('/snapshots') ? 'ebs' : 'ec2';
    if (body === undefined) {
      const rec = { service: guess, region: '', action: '?', status: 413, code: 'RequestEntityTooLarge' };
      stats.requests.push(rec);
      if (guess === 'ec2') sendEc2Error(res, 413, rec.code, 'Request body too large');
      else sendEbsError(res, 413, rec.code, 'Request body too large');
      return;
    }
    const auth = parseAuthorization(req.headers.authorization);
    if ('kind' in auth) {
      const { status, code } = authError(guess, res, auth);
      stats.requests.push({ service: guess, region: '', action: '?', status, code });
      return;
    }
    const service = auth.service === 'ebs' ? 'ebs' : auth.service === 'ec2' ? 'ec2' : undefined;
    if (!service) {
      sendEc2Error(res, 400, 'IncompleteSignature', `Credential should be scoped to a valid service: '${auth.service}' is not ec2 or ebs`);
      return;
    }
    // Hashed once here: the signature check and PutSnapshotBlock's checksum both need it.
    const bodyDigest = createHash('sha256').update(body).digest();
    const problem = verifySignature(
      auth,
      { method, rawPath, rawQuery, headers: req.headers, body, bodySha256: bodyDigest.toString('hex') },
      (key) => (key === credentials.accessKeyId ? credentials.secretAccessKey : undefined),
    );
    if (problem) {
      const { status, code } = authError(service, res, problem);
      stats.requests.push({ service, region: auth.region, action: '?', status, code });
      return;
    }
    const region = state.region(auth.region);
    if (!region) {
      const msg = `Credential should be scoped to a valid region, not '${auth.region}'.`;
      if (service === 'ec2') sendEc2Error(res, 401, 'AuthFailure', msg);
      else sendEbsError(res, 403, 'InvalidSignatureException', msg);
      stats.requests.push({ service, region: auth.region, action: '?', status: 401, code: 'AuthFailure' });
      return;
    }

    if (service === 'ebs') {
      const action = ebsAction(method, url.pathname) ?? '?';
      const rec: RequestRecord = { service, region: region.name, action, status: 0 };
      stats.requests.push(rec);
      try {
        const inj = injected(action);
        if (inj) {
          if (action === 'PutSnapshotBlock') {
            stats.putSnapshotBlock.requests++;
            stats.putSnapshotBlock.bytesReceived += body.length;
          }
          throw new AwsFault(inj.code, inj.message ?? `Injected failure: ${inj.code}`, inj.status ?? 400);
        }
        const out = await ebs.handle(region, { method, path: url.pathname, headers: req.headers, body, bodyDigest });
        rec.status = out.status;
        res.writeHead(out.status, { 'content-type': 'application/json', 'x-amzn-requestid': randomUUID(), ...out.headers });
        res.end(out.json === undefined ? '' : JSON.stringify(out.json));
      } catch (err) {
        const f = err instanceof AwsFault ? err : new AwsFault('InternalServerException', String(err), 500);
        rec.status = f.status;
        rec.code = f.code;
        sendEbsError(res, f.status, f.code, f.message, f.reason);
      }
      return;
    }

    // EC2 Query: POST / with a form body (GET with the same fields in the query also works on AWS).
    const form = method === 'POST' ? body.toString('utf8') : rawQuery;
    const params = new QueryParams(new URLSearchParams(form));
    const action = params.get('Action') ?? '?';
    const rec: RequestRecord = { service, region: region.name, action, status: 0 };
    stats.requests.push(rec);
    try {
      if (rawPath !== '/') throw new AwsFault('InvalidAction', `The action ${action} is not valid for this web service.`);
      if (params.get('Action') === undefined) throw new AwsFault('MissingAction', 'The request must contain the parameter Action');
      if (params.get('Version') !== EC2_VERSION) {
        throw new AwsFault('InvalidParameterValue', `Invalid API version ${params.get('Version') ?? '(none)'}; expected ${EC2_VERSION}`);
      }
      const handler = ec2.handlers[action];
      if (!handler) throw new AwsFault('InvalidAction', `The action ${action} is not valid for this web service.`);
      const inj = injected(action);
      if (inj) throw new AwsFault(inj.code, inj.message ?? `Injected failure: ${inj.code}`, inj.status ?? 400);
      if (params.bool('DryRun')) {
        throw new AwsFault('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
      }
      const members = await handler(region, params);
      const requestId = randomUUID();
      rec.status = 200;
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId });
      res.end(ec2Response(action, requestId, members));
    } catch (err) {
      const f = err instanceof AwsFault ? err : new AwsFault('InternalError', `An internal error has occurred: ${String(err)}`, 500);
      rec.status = f.status;
      rec.code = f.code;
      sendEc2Error(res, f.status, f.code, f.message);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res)
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      })
      // Any request may have changed state (Describe* calls advance pending resources too).
      .finally(() => stateFile?.touch());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  const list = <T>(pick: (r: NonNullable<ReturnType<FakeState['region']>>) => Map<string, T>, region?: string): T[] => {
    const out: T[] = [];
    for (const name of region ? [region] : regions) {
      const r = state.region(name);
      if (r) out.push(...pick(r).values());
    }
    return out;
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    accountId: ACCOUNT_ID,
    credentials,
    regions,
    inject(injection) {
      injections.push({ ...injection });
    },
    snapshots: (region) => list((r) => r.snapshots, region),
    images: (region) => list((r) => r.images, region),
    importTasks: (region) => list((r) => r.importTasks, region),
    stats,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await stateFile?.flush();
      ec2.close();
      await ebs.close();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
