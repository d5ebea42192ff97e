// The AWS uploader: a raw disk becomes an EBS snapshot (EBS direct, or S3 + VM Import), then an
// AMI registered with the build's architecture, copied to other regions, shared and deprecated
// as the target says. Anything created is removed again if a later step fails.

import { randomUUID } from 'node:crypto';
import { DescribeImagesCommand, CreateTagsCommand, type ArchitectureValues } from '@aws-sdk/client-ec2';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import { AWS_ARCH, type AwsTarget } from './schema.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { NO_JOURNAL, type HalfMade, type HalfMadeResult, type PublishedImage, type RemovesImages, type UploadContext, type Uploader } from '../uploader.ts';
import { AwsClients, type ClientSettings } from './clients.ts';
import { uploadEbsDirect } from './ebs-direct.ts';
import { copyImage, deleteSnapshot, deprecateImage, registerImage, removeImage, shareImage, waitAvailable } from './register.ts';
import { AMI_NAME_ALLOWED, amiNameProblem } from './names.ts';
import { AMI, ATTEMPT_TAG, EBS_SNAPSHOT, removeAwsLeftovers, removeAwsObject, type AwsAccess, type Track } from './leftovers.ts';
import { importSnapshot } from './s3-import.ts';
import { identityTags, type ImageLifecycle, type ReleaseChange, type RemoteImage } from '../lifecycle.ts';
import { awsDeprecate, awsListImages, awsMark, awsRemove } from './lifecycle.ts';
import { Progress } from '../toolkit/progress.ts';
import { Steps, allOrNothing } from '../toolkit/steps.ts';
import { AWS_LEFTOVER_HINT, awsWrap } from './errors.ts';
import { DEFAULT_WAIT, type WaitSettings } from './wait.ts';

export { BLOCK_SIZE, linearChecksum, readBlocks, volumeSizeGiB, isZero } from './blocks.ts';
export { ROOT_DEVICE } from './register.ts';

export interface AwsUploaderOptions {
  /** Credentials instead of the SDK's default chain (embedding, tests). */
  credentials?: ClientSettings['credentials'];
  /** S3 endpoint for s3-import when it differs from the target's `endpoint`. */
  s3Endpoint?: string;
  /** PutSnapshotBlock requests in flight (default 64). */
  concurrency?: number;
  /** Attempts per request including the first (default 10), with the SDK's backoff. */
  maxAttempts?: number;
  /** Multipart part size for s3-import (default 64 MiB) and parts in flight (default 6). */
  partSize?: number;
  queueSize?: number;
  /** Polling of snapshot, image and import states. */
  wait?: Partial<WaitSettings>;
  /** Per-request socket timeout in ms (default 120 s). */
  requestTimeoutMs?: number;
  /** Minimum ms between onProgress calls (default 500). */
  progressIntervalMs?: number;
  /** Clock for deprecation dates (tests). */
  now?: () => Date;
}

// About 64 blocks in flight keep EBS direct busy without its per-snapshot throttling (coldsnap's
// figure).
const DEFAULT_CONCURRENCY = 64;
const DEFAULT_MAX_ATTEMPTS = 10;
// lib-storage holds every part in flight in memory: 8 MiB x 10 bounds an upload at 80 MiB while
// keeping as many requests in flight as `aws s3 cp` (its defaults) on the same link.
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 10;
const DAY_MS = 86_400_000;

/** States in which an image with the name counts as already published. */
const LIVE_STATES = new Set(['available', 'pending']);

export function targetLabel(target: AwsTarget): string {
  return target.name ?? `aws-${target.region}`;
}

/** AWS's Architecture for the artifact's arch: from the build, never from this host. */
export function awsArchitecture(artifact: Pick<Artifact, 'arch'>): ArchitectureValues {
  const arch = AWS_ARCH[artifact.arch];
  if (!arch) {
    throw new FarmError('UPLOAD', `AWS has no ${artifact.arch} AMIs`, {
      hint: 'Only x86_64 and aarch64 builds can go to an aws target; remove it from this arch in the inventory.',
    });
  }
  return arch as ArchitectureValues;
}

export function createAwsUploader(target: AwsTarget, opts: AwsUploaderOptions = {}): Uploader & RemovesImages & ImageLifecycle {
  return new AwsUploader(target, opts);
}

class AwsUploader implements Uploader, RemovesImages, ImageLifecycle {
  readonly kind = 'aws' as const;
  readonly name: string;
  private readonly clients: AwsClients;
  private readonly wait: WaitSettings;
  private readonly concurrency: number;

  constructor(
    private readonly target: AwsTarget,
    private readonly opts: AwsUploaderOptions,
  ) {
    this.name = targetLabel(target);
    this.concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    this.wait = { ...DEFAULT_WAIT, ...opts.wait };
    this.clients = new AwsClients(target.region, {
      credentials: opts.credentials,
      endpoint: target.endpoint,
      s3Endpoint: opts.s3Endpoint,
      maxAttempts: opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      maxSockets: this.concurrency + 8,
      requestTimeoutMs: opts.requestTimeoutMs ?? 120_000,
    });
  }

  private regions(): string[] {
    return [this.target.region, ...this.target.copy_regions.filter((r) => r !== this.target.region)];
  }

  async preflight(signal: AbortSignal): Promise<void> {
    const problems: string[] = [];
    const t = this.target;
    if (!t.region) problems.push('no region set');
    if (t.method === 's3-import' && !t.bucket) problems.push('method s3-import needs a bucket');
    if (problems.length) {
      throw new FarmError('INVENTORY', `${this.name}: ${problems.join('; ')}`, {
        hint: 'Set region (and bucket for method s3-import) on the aws target in the inventory.',
      });
    }
    try {
      await this.clients.resolveCredentials();
    } catch (err) {
      // The provider's message says which sources it tried; it never contains key material.
      throw new FarmError('UPLOAD', `${this.name}: no usable AWS credentials: ${errorMessage(err)}`, {
        hint: 'Set AWS_PROFILE (and run `aws sso login` for SSO profiles) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment.',
      });
    }
    const steps = this.steps(signal);
    for (const region of this.regions()) {
      await steps.run(`preflight: DescribeImages in ${region}`, () =>
        this.clients.ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], MaxResults: 5 }), { abortSignal: signal }),
      );
    }
    if (t.method === 's3-import') {
      await steps.run(`preflight: HeadBucket ${t.bucket}`, () =>
        this.clients.s3().send(new HeadBucketCommand({ Bucket: t.bucket! }), { abortSignal: signal }),
      );
    }
  }

  async find(imageName: string, _artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]> {
    const steps = this.steps(signal);
    const found: PublishedImage[] = [];
    for (const region of this.regions()) {
      const out = await steps.run(`DescribeImages in ${region}`, () =>
        this.clients
          .ec2(region)
          .send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [imageName] }] }), { abortSignal: signal }),
      );
      for (const img of out.Images ?? []) {
        if (!img.ImageId || img.Name !== imageName || !LIVE_STATES.has(img.State ?? '')) continue;
        found.push(this.published(region, imageName, img.ImageId, true));
      }
    }
    return found;
  }

  /** Steps whose failures name this target; an upload's also log and clean up. */
  private steps(signal: AbortSignal, log: (m: string) => void = () => {}): Steps {
    return new Steps({ signal, log, wrap: awsWrap(this.name, signal), leftoverHint: AWS_LEFTOVER_HINT });
  }

  private published(region: string, imageName: string, imageId: string, existing: boolean): PublishedImage {
    return {
      target: this.name,
      kind: 'aws',
      location: region,
      imageName,
      imageId,
      artifactId: `${region}:${imageId}`,
      existing,
    };
  }

  async delete(image: PublishedImage, signal: AbortSignal): Promise<void> {
    const steps = this.steps(signal);
    await steps.run(`delete ${image.artifactId}`, () => removeImage(this.clients.ec2(image.location), image.imageId, signal));
  }

  private get access(): AwsAccess {
    return { ec2: (region) => this.clients.ec2(region), s3: () => this.clients.s3() };
  }

  listImages(inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
    return awsListImages(this.lifecycleAccess, inventory, signal);
  }

  removeImage(image: RemoteImage, signal: AbortSignal): Promise<string[]> {
    return awsRemove(this.lifecycleAccess, image, signal);
  }

  markImage(image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
    return awsMark(this.lifecycleAccess, image, change, signal);
  }

  deprecateImage(image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
    return awsDeprecate(this.lifecycleAccess, image, at, signal);
  }

  private get lifecycleAccess() {
    return { ec2: (region: string) => this.clients.ec2(region), regions: this.regions(), target: this.target, name: this.name, steps: (s: AbortSignal) => this.steps(s) };
  }

  removeHalfMade(objects: readonly HalfMade[], signal: AbortSignal): Promise<HalfMadeResult[]> {
    return removeAwsLeftovers(this.access, this.regions(), objects, signal);
  }

  async upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
    const architecture = awsArchitecture(artifact);
    if (artifact.disk.format !== 'raw') {
      throw new FarmError('UPLOAD', `${this.name}: AWS takes raw disks, got ${artifact.disk.format} (${artifact.disk.name})`, {
        hint: 'Build the ami or raw image type for aws targets.',
      });
    }
    // RegisterImage would refuse the name only after the snapshot is uploaded.
    const nameProblem = amiNameProblem(imageName);
    if (nameProblem) {
      throw new FarmError('UPLOAD', `${this.name}: ${nameProblem}`, { hint: `Set \`naming\` on the aws target to a template giving ${AMI_NAME_ALLOWED}.` });
    }
    const t = this.target;
    const signal = ctx.signal;
    const steps = this.steps(signal, ctx.log);
    const journal = ctx.journal ?? NO_JOURNAL;
    // farm-attempt last: it is how a rerun finds what this attempt made before it knew the ids.
    // The identity (farm:build-id, ...) goes on the AMI and its snapshot in every region: the
    // lifecycle commands find the farm's images from these tags alone.
    const identity = ctx.identity ? identityTags(ctx.identity) : {};
    const tags = { ...ctx.tags, ...t.tags, ...identity, Name: imageName, ...(ctx.journal ? { [ATTEMPT_TAG]: journal.attempt } : {}) };
    // Every object is recorded in the journal before it is created, with its undo.
    const track: Track = async (o) => {
      const entry = await journal.begin(o);
      const object: HalfMade = { ...o, attempt: journal.attempt };
      const cleanup = steps.onCleanup(`${o.kind} ${o.name} in ${o.location}`, (s) => removeAwsObject(this.access, object, s).then(() => undefined), entry);
      return {
        identify: async (id) => {
          object.id = id;
          await entry.identify(id);
        },
        settle: async () => {
          cleanup.dismiss();
          await entry.drop();
        },
      };
    };
    const description = `${imageName} (farm build ${artifact.buildId}, ${artifact.arch})`;
    const ec2 = this.clients.ec2();
    const bar = new Progress(ctx.onProgress, artifact.disk.size, this.opts.progressIntervalMs ?? 500);
    const progress = bar.report.bind(bar);
    steps.current = 'check name';
    try {
      // RegisterImage would refuse a taken name only after the whole upload: ask first.
      const existing = await this.find(imageName, artifact, signal);
      if (existing.length) {
        throw new FarmError('UPLOAD', `${this.name}: an image named ${imageName} exists already (${existing.map((e) => e.artifactId).join(', ')})`, {
          hint: 'Use a new image name, or delete the existing image first.',
        });
      }

      let snapshotId: string;
      if (t.method === 'ebs-direct') {
        steps.current = 'EBS direct snapshot upload';
        const snapshot = await track({ kind: EBS_SNAPSHOT, location: t.region, name: imageName });
        const result = await uploadEbsDirect({
          ebs: this.clients.ebs(),
          ec2,
          path: artifact.disk.path,
          size: artifact.disk.size,
          description,
          tags,
          concurrency: this.concurrency,
          signal,
          wait: this.wait,
          onSnapshot: async (id) => {
            ctx.log(`snapshot ${id} started`);
            await snapshot.identify(id);
          },
          onProgress: progress,
        });
        snapshotId = result.snapshotId;
        ctx.log(`snapshot ${snapshotId} completed (${result.blocksSent} blocks, ${result.bytesSent} bytes sent)`);
      } else {
        steps.current = 'S3 upload and snapshot import';
        const bucket = t.bucket;
        if (!bucket) throw new FarmError('INVENTORY', `${this.name}: method s3-import needs a bucket`);
        snapshotId = await importSnapshot({
          s3: this.clients.s3(),
          ec2,
          bucket,
          key: `farm-import/${imageName}-${randomUUID()}.raw`,
          path: artifact.disk.path,
          size: artifact.disk.size,
          description,
          partSize: this.opts.partSize ?? DEFAULT_PART_SIZE,
          queueSize: this.opts.queueSize ?? DEFAULT_QUEUE_SIZE,
          signal,
          wait: this.wait,
          log: ctx.log,
          region: t.region,
          tags,
          track,
          onProgress: progress,
        });
        steps.current = 'CreateTags on the snapshot';
        await ec2.send(new CreateTagsCommand({ Resources: [snapshotId], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }), {
          abortSignal: signal,
        });
      }

      steps.current = 'RegisterImage';
      progress(artifact.disk.size, undefined, 'register');
      // Deregistering comes before the snapshot's cleanup (cleanups run in reverse).
      const ami = await track({ kind: AMI, location: t.region, name: imageName });
      const imageId = await registerImage({
        ec2,
        name: imageName,
        description,
        snapshotId,
        architecture,
        bootMode: t.boot_mode,
        imdsV2: t.imds_v2,
        tags,
        signal,
      });
      await ami.identify(imageId);
      ctx.log(`registered ${imageId} (${architecture}), waiting until available`);
      steps.current = `wait for ${imageId} to be available`;
      await waitAvailable(ec2, imageId, this.wait, signal);

      const images = [this.published(t.region, imageName, imageId, false)];
      const deprecateAt =
        t.deprecate_after_days === undefined ? undefined : new Date((this.opts.now?.() ?? new Date()).getTime() + t.deprecate_after_days * DAY_MS);
      // A candidate has no launch permissions beyond the owner: `farm release` shares it. Direct
      // calls (no identity: tests, embedding) keep sharing at upload.
      const finish = async (region: string, id: string) => {
        if (!ctx.identity) {
          steps.current = `share ${region}:${id}`;
          await shareImage(this.clients.ec2(region), id, t.share_accounts, signal);
        }
        if (deprecateAt) {
          steps.current = `EnableImageDeprecation ${region}:${id}`;
          await deprecateImage(this.clients.ec2(region), id, deprecateAt, signal);
        }
      };
      await finish(t.region, imageId);

      // Copies run in parallel (each waits minutes on AWS); the first failure stops the others.
      steps.current = 'copy to other regions';
      const copies = await allOrNothing(
        this.regions().slice(1),
        async (region, s) => {
          const regional = this.clients.ec2(region);
          const copy = await track({ kind: AMI, location: region, name: imageName });
          const copyId = await steps.run(`CopyImage to ${region}`, () =>
            copyImage({
              ec2: regional,
              sourceRegion: t.region,
              sourceImageId: imageId,
              name: imageName,
              description,
              tags,
              clientToken: `${imageId}-${region}`,
              signal: s,
            }),
          );
          await copy.identify(copyId);
          ctx.log(`copying ${imageId} to ${region} as ${copyId}`);
          await steps.run(`wait for ${region}:${copyId} to be available`, () => waitAvailable(regional, copyId, this.wait, s));
          await steps.run(`share/deprecate ${region}:${copyId}`, () => finish(region, copyId));
          return this.published(region, imageName, copyId, false);
        },
        signal,
      );
      images.push(...copies);
      progress(artifact.disk.size, undefined, 'done', true);
      return images;
    } catch (err) {
      return await steps.fail(err);
    }
  }
}
