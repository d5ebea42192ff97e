// EBS direct APIs (REST-JSON): StartSnapshot, PutSnapshotBlock, CompleteSnapshot. Block data goes
// to one sparse file per snapshot; only the per-block digests stay in memory.

import { createHash } from 'node:crypto';
import { open, truncate, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { ACCOUNT_ID, AwsFault, BLOCK_SIZE, GIB, applyTags, newId, type FakeState, type Region, type Snapshot } from './state.ts';

export interface EbsRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** SHA256 of body, computed once by the server. */
  bodyDigest: Buffer;
}

export interface EbsResult {
  action: string;
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
}

export interface EbsStats {
  putSnapshotBlock: { requests: number; accepted: number; bytesReceived: number; bytesAccepted: number };
}

// StartSnapshot's VolumeSize range (GiB) for EBS direct.
const MAX_VOLUME_GIB = 65_536;
const B64_SHA256 = /^[A-Za-z0-9+/]{43}=$/;

function validation(message: string, reason = 'INVALID_PARAMETER_VALUE'): AwsFault {
  return new AwsFault('ValidationException', message, 400, reason);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Which EBS operation a method+path is, or undefined. */
export function ebsAction(method: string, path: string): string | undefined {
  if (method === 'POST' && path === '/snapshots') return 'StartSnapshot';
  if (method === 'PUT' && /^\/snapshots\/[^/]+\/blocks\/[^/]+$/.test(path)) return 'PutSnapshotBlock';
  if (method === 'POST' && /^\/snapshots\/completion\/[^/]+$/.test(path)) return 'CompleteSnapshot';
  return undefined;
}

export class Ebs {
  // One open handle per snapshot being written, closed when it completes.
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(
    private readonly state: FakeState,
    private readonly dataDir: string,
    readonly stats: EbsStats,
  ) {}

  private handle_(s: Snapshot): Promise<FileHandle> {
    let h = this.handles.get(s.id);
    if (!h) {
      h = open(s.dataPath, 'r+');
      this.handles.set(s.id, h);
    }
    return h;
  }

  private async release(id: string): Promise<void> {
    const h = this.handles.get(id);
    this.handles.delete(id);
    if (h) await (await h).close();
  }

  async close(): Promise<void> {
    for (const id of [...this.handles.keys()]) await this.release(id);
  }

  async handle(region: Region, req: EbsRequest): Promise<EbsResult> {
    const action = ebsAction(req.method, req.path);
    switch (action) {
      case 'StartSnapshot':
        return this.startSnapshot(region, req);
      case 'PutSnapshotBlock':
        return this.putSnapshotBlock(region, req);
      case 'CompleteSnapshot':
        return this.completeSnapshot(region, req);
      default:
        throw new AwsFault('UnknownOperationException', `No operation matches ${req.method} ${req.path}`, 404);
    }
  }

  private snapshot(region: Region, id: string): Snapshot {
    this.state.tick(region);
    const s = region.snapshots.get(decodeURIComponent(id));
    if (!s) throw new AwsFault('ResourceNotFoundException', `The snapshot '${id}' does not exist.`, 404, 'SNAPSHOT_NOT_FOUND');
    return s;
  }

  private async startSnapshot(region: Region, req: EbsRequest): Promise<EbsResult> {
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(req.body.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      throw new AwsFault('SerializationException', 'Request body is not valid JSON');
    }
    const size = input.VolumeSize;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_VOLUME_GIB) {
      throw validation(`VolumeSize must be an integer between 1 and ${MAX_VOLUME_GIB} GiB`, 'INVALID_VOLUME_SIZE');
    }
    const description = input.Description === undefined ? '' : String(input.Description);
    if (description.length > 255) throw validation('Description must be at most 255 characters');
    const timeout = input.Timeout === undefined ? 60 : Number(input.Timeout);
    if (!Number.isInteger(timeout) || timeout < 10 || timeout > 4320) throw validation('Timeout must be between 10 and 4320 minutes');
    if (input.Encrypted === true || input.KmsKeyArn !== undefined) {
      throw validation('the fake does not implement encrypted snapshots', 'INVALID_CUSTOMER_KEY');
    }
    if (input.ParentSnapshotId !== undefined) {
      const parent = region.snapshots.get(String(input.ParentSnapshotId));
      if (!parent || parent.state !== 'completed') {
        throw new AwsFault('ResourceNotFoundException', `The parent snapshot '${String(input.ParentSnapshotId)}' does not exist.`, 404, 'SNAPSHOT_NOT_FOUND');
      }
      throw validation('the fake does not implement incremental snapshots (ParentSnapshotId)');
    }
    const rawTags = input.Tags === undefined ? [] : input.Tags;
    if (!Array.isArray(rawTags)) throw validation('Tags must be a list', 'INVALID_TAG');
    const tags = new Map<string, string>();
    try {
      applyTags(
        tags,
        rawTags.map((t: { Key?: unknown; Value?: unknown }) => ({
          key: t?.Key === undefined ? undefined : String(t.Key),
          value: t?.Value === undefined ? undefined : String(t.Value),
        })),
      );
    } catch (err) {
      throw validation((err as Error).message, 'INVALID_TAG');
    }
    const token = input.ClientToken === undefined ? undefined : String(input.ClientToken);
    // Idempotency: the same token with the same parameters answers the same snapshot.
    const requestKey = JSON.stringify({ size, description, timeout, tags: [...tags] });
    if (token !== undefined) {
      for (const s of region.snapshots.values()) {
        if (s.clientToken !== token) continue;
        if (s.startRequestKey !== requestKey) {
          throw new AwsFault('ConflictException', 'The request uses the same client token as a previous, but non-identical request.', 409);
        }
        return { action: 'StartSnapshot', status: 201, json: this.snapshotJson(s) };
      }
    }
    const id = newId('snap');
    const dataPath = join(this.dataDir, `${id}.img`);
    await (await open(dataPath, 'w')).close();
    await truncate(dataPath, size * GIB);
    const snap: Snapshot = {
      id,
      region: region.name,
      state: 'pending',
      volumeSize: size,
      description,
      tags,
      startTime: new Date(),
      origin: 'ebs-direct',
      dataPath,
      blockDigests: new Map(),
      clientToken: token,
      startRequestKey: requestKey,
      timeoutMinutes: timeout,
      bytesReceived: 0,
      putRequests: 0,
    };
    region.snapshots.set(id, snap);
    return { action: 'StartSnapshot', status: 201, json: this.snapshotJson(snap) };
  }

  private snapshotJson(s: Snapshot): Record<string, unknown> {
    return {
      Description: s.description,
      SnapshotId: s.id,
      OwnerId: ACCOUNT_ID,
      Status: s.state,
      StartTime: s.startTime.getTime() / 1000,
      VolumeSize: s.volumeSize,
      BlockSize: BLOCK_SIZE,
      Tags: [...s.tags].map(([Key, Value]) => ({ Key, Value })),
      SseType: 'none',
    };
  }

  private requirePending(s: Snapshot): void {
    if (Date.now() > s.startTime.getTime() + s.timeoutMinutes * 60_000 && s.state === 'pending' && s.completeAt === undefined) {
      s.state = 'error';
    }
    if (s.state !== 'pending' || s.completeAt !== undefined) {
      throw validation(`The snapshot '${s.id}' is not in the pending state (it is ${s.completeAt !== undefined && s.state === 'pending' ? 'completing' : s.state}).`, 'INVALID_SNAPSHOT_ID');
    }
  }

  private async putSnapshotBlock(region: Region, req: EbsRequest): Promise<EbsResult> {
    const [, , rawId, , rawIndex] = req.path.split('/');
    this.stats.putSnapshotBlock.requests++;
    this.stats.putSnapshotBlock.bytesReceived += req.body.length;
    const s = this.snapshot(region, rawId!);
    s.putRequests++;
    s.bytesReceived += req.body.length;
    this.requirePending(s);
    const index = Number(rawIndex);
    const blocks = (s.volumeSize * GIB) / BLOCK_SIZE;
    if (!/^\d+$/.test(rawIndex!) || index >= blocks) {
      throw validation(`BlockIndex ${rawIndex} is outside the volume (0..${blocks - 1}).`, 'INVALID_BLOCK');
    }
    const lengthHeader = header(req.headers, 'x-amz-Data-Length');
    if (lengthHeader === undefined) throw validation('The x-amz-Data-Length header is required.');
    const dataLength = Number(lengthHeader);
    if (dataLength !== BLOCK_SIZE) throw validation(`DataLength must be ${BLOCK_SIZE} bytes (one block), got ${lengthHeader}.`);
    if (req.body.length !== dataLength) {
      throw validation(`The block data is ${req.body.length} bytes but x-amz-Data-Length says ${dataLength}.`);
    }
    const checksum = header(req.headers, 'x-amz-Checksum');
    const algorithm = header(req.headers, 'x-amz-Checksum-Algorithm');
    if (checksum === undefined) throw validation('The x-amz-Checksum header is required.');
    if (algorithm !== 'SHA256') throw validation(`ChecksumAlgorithm must be SHA256, got ${algorithm ?? 'none'}.`);
    if (!B64_SHA256.test(checksum)) throw validation('The checksum is not a base64-encoded SHA256 digest.');
    const progress = header(req.headers, 'x-amz-Progress');
    if (progress !== undefined && !(Number(progress) >= 0 && Number(progress) <= 100)) throw validation('Progress must be between 0 and 100.');
    const digest = req.bodyDigest;
    if (digest.toString('base64') !== checksum) {
      throw validation('Checksum mismatch: the SHA256 of the block data does not match the x-amz-Checksum header.');
    }
    await (await this.handle_(s)).write(req.body, 0, req.body.length, index * BLOCK_SIZE);
    s.blockDigests.set(index, digest);
    this.stats.putSnapshotBlock.accepted++;
    this.stats.putSnapshotBlock.bytesAccepted += req.body.length;
    return {
      action: 'PutSnapshotBlock',
      status: 201,
      headers: { 'x-amz-Checksum': checksum, 'x-amz-Checksum-Algorithm': 'SHA256' },
      json: {},
    };
  }

  private async completeSnapshot(region: Region, req: EbsRequest): Promise<EbsResult> {
    const id = req.path.split('/')[3]!;
    const s = this.snapshot(region, id);
    this.requirePending(s);
    const countHeader = header(req.headers, 'x-amz-ChangedBlocksCount');
    if (countHeader === undefined || !/^\d+$/.test(countHeader)) throw validation('The x-amz-ChangedBlocksCount header is required.');
    const count = Number(countHeader);
    if (count !== s.blockDigests.size) {
      throw validation(`ChangedBlocksCount is ${count} but ${s.blockDigests.size} blocks were written to ${s.id}.`);
    }
    const checksum = header(req.headers, 'x-amz-Checksum');
    const algorithm = header(req.headers, 'x-amz-Checksum-Algorithm');
    const method = header(req.headers, 'x-amz-Checksum-Aggregation-Method');
    if (checksum !== undefined) {
      if (algorithm !== 'SHA256') throw validation(`ChecksumAlgorithm must be SHA256, got ${algorithm ?? 'none'}.`);
      if (method !== 'LINEAR') throw validation(`ChecksumAggregationMethod must be LINEAR, got ${method ?? 'none'}.`);
      const linear = createHash('sha256');
      for (const index of [...s.blockDigests.keys()].sort((a, b) => a - b)) linear.update(s.blockDigests.get(index)!);
      if (linear.digest('base64') !== checksum) {
        throw validation('Checksum mismatch: the aggregate LINEAR SHA256 checksum does not match the blocks written.');
      }
    } else if (algorithm !== undefined || method !== undefined) {
      throw validation('ChecksumAlgorithm and ChecksumAggregationMethod need a Checksum.');
    }
    await this.release(s.id);
    s.completeAt = Date.now() + this.state.timing.snapshotCompleteMs;
    return { action: 'CompleteSnapshot', status: 202, json: { Status: 'pending' } };
  }
}
