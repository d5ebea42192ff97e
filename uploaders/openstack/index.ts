// The OpenStack uploader: Keystone v3 auth from the user's clouds.yaml or OS_* variables, then
// Glance v2: create the image record, stream the disk to it while hashing, wait for `active`,
// and check Glance's sha512 and size against what was sent. If anything fails after the record
// exists, the record is deleted before the error is thrown.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { stat } from 'node:fs/promises';
import { FarmError, throwIfAborted } from '../../src/core/errors.ts';
import { pollUntil } from '../../src/core/poll.ts';
import type { OpenStackTarget } from './schema.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { NO_JOURNAL, type HalfMade, type HalfMadeResult, type PublishedImage, type RemovesImages, type UploadContext, type Uploader } from '../uploader.ts';
import { cloudLabel, configSecrets, resolveCloudConfig, type CloudConfig } from './config.ts';
import { Glance, type GlanceImage } from './glance.ts';
import { DEFAULT_RETRY, Http, type RetrySettings } from './http.ts';
import { diskFor, imageFields, propertyProblems, virtualSize } from './image.ts';
import { verifyStored } from './verify.ts';
import { Keystone, glanceBase, selectEndpoint } from './keystone.ts';
import { Redactor } from './redact.ts';
import { ATTEMPT_PROPERTY, GLANCE_IMAGE, removeGlanceLeftover } from './leftovers.ts';
import { wrapError } from '../toolkit/errors.ts';
import type { ImageLifecycle, ReleaseChange, RemoteImage } from '../lifecycle.ts';
import { glanceDeprecate, glanceListImages, glanceMark, glanceRemove } from './lifecycle.ts';
import { Progress } from '../toolkit/progress.ts';
import { runSteps } from '../toolkit/steps.ts';

export { resolveCloudConfig, configCandidates, type CloudConfig } from './config.ts';
export { selectEndpoint, authRequestBody, glanceBase } from './keystone.ts';
export { Redactor } from './redact.ts';

export interface OpenStackUploaderOptions {
  /** Environment for OS_CLOUD, OS_* and OS_CLIENT_CONFIG_FILE (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directory searched first for clouds.yaml (default the working directory). */
  cwd?: string;
  retry?: Partial<RetrySettings>;
  /** How long to wait for `active` after the data is in (default 10 min), and how often to look. */
  activeTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Minimum ms between onProgress calls (default 500; 0 reports every chunk). */
  progressIntervalMs?: number;
}

// 1 MiB reads keep syscalls and hash updates cheap while the socket stays busy.
const READ_CHUNK = 1024 * 1024;
const DEFAULT_ACTIVE_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_POLL_MS = 2000;
// Removing a half-made image must not depend on the (possibly cancelled) upload's signal.
const CLEANUP_TIMEOUT_MS = 120_000;

export function createOpenStackUploader(target: OpenStackTarget, opts: OpenStackUploaderOptions = {}): Uploader & RemovesImages & ImageLifecycle {
  return new OpenStackUploader(target, opts);
}

interface Session {
  config: CloudConfig;
  keystone: Keystone;
  http: Http;
  redactor: Redactor;
}

class OpenStackUploader implements Uploader, RemovesImages, ImageLifecycle {
  readonly kind = 'openstack' as const;
  readonly name: string;
  private session: Session | undefined;

  constructor(
    private readonly target: OpenStackTarget,
    private readonly opts: OpenStackUploaderOptions,
  ) {
    this.name = target.name ?? 'openstack';
  }

  /** Resolves credentials once, on first use (so constructing never throws). */
  private connect(): Session {
    if (!this.session) {
      const config = resolveCloudConfig({ cloud: this.target.cloud, env: this.opts.env ?? process.env, cwd: this.opts.cwd });
      const redactor = new Redactor(configSecrets(config));
      const http = new Http(redactor, { ...DEFAULT_RETRY, ...this.opts.retry });
      this.session = { config, redactor, http, keystone: new Keystone(config, http, redactor) };
    }
    return this.session;
  }

  private async glance(signal: AbortSignal): Promise<{ glance: Glance; projectId: string; session: Session }> {
    const session = this.connect();
    const { config, keystone } = session;
    const token = await keystone.getToken(signal);
    const url =
      config.imageEndpointOverride ??
      selectEndpoint(token.catalog, { type: 'image', interface: config.interface, region: config.regionName }, cloudLabel(config));
    const glance = new Glance(session.http, glanceBase(url), async (s) => (await keystone.getToken(s)).value);
    return { glance, projectId: token.projectId, session };
  }

  private location(session: Session, glance: Glance): string {
    return session.config.regionName ?? new URL(glance.base).host;
  }

  private published(session: Session, glance: Glance, image: GlanceImage, existing: boolean): PublishedImage {
    const { config } = session;
    const location = this.location(session, glance);
    const prefix = config.cloud === 'envvars' ? location : config.cloud;
    return {
      target: this.name,
      kind: 'openstack',
      location,
      imageName: image.name ?? '',
      imageId: image.id,
      artifactId: `${prefix}:${image.id}`,
      existing,
    };
  }

  /** Runs `fn`, turning any error into a FarmError prefixed with this target, secrets removed. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(what, err);
    }
  }

  private wrap(what: string, err: unknown): FarmError {
    return wrapError(err, {
      step: what,
      where: this.name,
      redact: (s) => this.session?.redactor.redact(s) ?? s,
      format: (step, description) => `${step}: ${description}`,
      // The HTTP layer's errors name the operation, not the target.
      prefixFarmErrors: true,
      // Only the redacted text leaves: the HTTP layer's errors may hold a request's secrets.
      cause: undefined,
    });
  }

  async preflight(signal: AbortSignal): Promise<void> {
    const problems = propertyProblems(this.target.properties);
    if (problems.length) {
      throw new FarmError('INVENTORY', `${this.name}: properties: ${problems.join('; ')}`, {
        hint: 'Remove these keys from the target\'s properties; farm sets architecture and farm_* itself, and Glance\'s own attributes are not properties.',
      });
    }
    await this.guard('preflight', async () => {
      const { glance } = await this.glance(signal);
      // Proves Glance is reachable and takes the token, without creating anything.
      await glance.probe(signal);
    });
  }

  async find(imageName: string, _artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]> {
    return this.guard(`find ${imageName}`, async () => {
      const { glance, projectId, session } = await this.glance(signal);
      const images = await glance.list({ name: imageName, owner: projectId, status: 'active' }, signal);
      return images.map((img) => this.published(session, glance, img, true));
    });
  }

  async delete(image: PublishedImage, signal: AbortSignal): Promise<void> {
    await this.guard(`delete ${image.imageName} (${image.imageId})`, async () => {
      const { glance } = await this.glance(signal);
      await glance.remove(image.imageId, signal);
    });
  }

  async listImages(inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
    return this.guard('list images', async () => {
      const { glance, projectId, session } = await this.glance(signal);
      return glanceListImages(glance, projectId, inventory, { target: this.name, location: this.location(session, glance) }, signal);
    });
  }

  async removeImage(image: RemoteImage, signal: AbortSignal): Promise<string[]> {
    return this.guard(`delete ${image.imageName} (${image.imageId})`, async () => {
      const { glance } = await this.glance(signal);
      return glanceRemove(glance, image, signal);
    });
  }

  async markImage(image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
    await this.guard(`release ${image.imageName} (${image.imageId})`, async () => {
      const { glance } = await this.glance(signal);
      await glanceMark(glance, image, change, this.target.visibility, signal);
    });
  }

  async deprecateImage(image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
    await this.guard(`deprecate ${image.imageName} (${image.imageId})`, async () => {
      const { glance } = await this.glance(signal);
      await glanceDeprecate(glance, image, at, signal);
    });
  }

  async removeHalfMade(objects: readonly HalfMade[], signal: AbortSignal): Promise<HalfMadeResult[]> {
    let connected: Awaited<ReturnType<OpenStackUploader['glance']>>;
    try {
      connected = await this.glance(signal);
    } catch (err) {
      const error = this.wrap('connect', err).message;
      return objects.map((object) => ({ object, error }));
    }
    const { glance, projectId, session } = connected;
    const results: HalfMadeResult[] = [];
    for (const o of objects) results.push(await removeGlanceLeftover(glance, projectId, o, signal, (s) => session.redactor.redact(s)));
    return results;
  }

  async upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
    const disk = diskFor(this.target, artifact, this.name);
    throwIfAborted(ctx.signal);
    const { glance, session, projectId } = await this.guard('connect', () => this.glance(ctx.signal));
    // A file that is not what the fetch recorded fails here, before anything is created.
    const size = await this.guard(`read ${disk.path}`, async () => {
      const actual = (await stat(disk.path)).size;
      if (actual !== disk.size) {
        throw new FarmError('UPLOAD', `${disk.path} has ${actual} bytes but the build recorded ${disk.size}: it changed after the fetch`);
      }
      return virtualSize(disk);
    });
    const fields = imageFields({ target: this.target, artifact, imageName, tags: ctx.tags, virtualSize: size, ...(ctx.identity ? { identity: ctx.identity } : {}) });
    const journal = ctx.journal ?? NO_JOURNAL;
    if (ctx.journal) fields[ATTEMPT_PROPERTY] = journal.attempt;
    // Recorded before the create: Glance answers the id only once the record exists, and a run
    // killed in between must still leave a trace (the name and the farm_attempt property).
    const intent: Omit<HalfMade, 'attempt'> = { kind: GLANCE_IMAGE, location: this.location(session, glance), name: imageName };
    const entry = await journal.begin(intent);
    const redact = (s: string) => session.redactor.redact(s);
    const steps = {
      signal: ctx.signal,
      log: ctx.log,
      wrap: (what: string, err: unknown) => this.wrap(what, err),
      // Removing a half-made image must not depend on the (possibly cancelled) upload's signal.
      cleanupTimeoutMs: CLEANUP_TIMEOUT_MS,
      redact,
      leftoverHint: 'Delete it by hand: openstack image delete ID',
    };
    return runSteps(steps, async (s) => {
      // A create cut off mid-answer may still have made the record: look for it by its marker.
      const sweep = s.onCleanup(
        `image ${imageName}`,
        async (cleanup) => {
          const swept = await removeGlanceLeftover(glance, projectId, { ...intent, attempt: journal.attempt }, cleanup, redact);
          if (!swept.outcome) throw new Error(swept.error ?? 'not removed');
          return false;
        },
        entry,
      );
      const created = await s.run(`create image ${imageName}`, () => glance.create(fields, ctx.signal));
      sweep.dismiss();
      await entry.identify(created.id);
      ctx.log(`created image ${created.id} (${imageName}) at ${glance.base}`);
      s.onCleanup(
        `image ${created.id}`,
        async (cleanup) => {
          await glance.remove(created.id, cleanup);
          return `removed image ${created.id} after the failure`;
        },
        entry,
      );
      return s.run(`upload of ${imageName} (image ${created.id})`, async () => {
        const sent = await this.send(glance, created.id, disk.path, disk.size, ctx);
        const image = await this.waitActive(glance, created.id, ctx.signal);
        verifyStored(image, sent, disk.size);
        ctx.log(`image ${created.id} is active; size and sha512 match what was sent`);
        return [this.published(session, glance, image, false)];
      });
    });
  }

  /** Streams the file to Glance, hashing what goes out; returns the bytes sent and their sha512. */
  private async send(glance: Glance, id: string, path: string, total: number, ctx: UploadContext): Promise<{ bytes: number; sha512: string }> {
    const progress = new Progress(ctx.onProgress, total, this.opts.progressIntervalMs ?? 500);
    let hash: Hash = createHash('sha512');
    let bytes = 0;
    // Called once per attempt: a retried PUT starts over with a fresh stream and hash. The hash
    // is a pass-through stage, so the bytes are read once and streamed (no async generator).
    const body = () => {
      hash = createHash('sha512');
      bytes = 0;
      return tapped(createReadStream(path, { highWaterMark: READ_CHUNK, signal: ctx.signal }), (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
        progress.report(bytes, bytes, 'upload');
      });
    };
    const started = Date.now();
    await glance.upload(id, body, total, ctx.signal);
    progress.report(bytes, bytes, 'upload', true);
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    ctx.log(`sent ${(bytes / 2 ** 20).toFixed(1)} MiB in ${secs.toFixed(1)} s`);
    return { bytes, sha512: hash.digest('hex') };
  }

  private async waitActive(glance: Glance, id: string, signal: AbortSignal): Promise<GlanceImage> {
    const timeout = this.opts.activeTimeoutMs ?? DEFAULT_ACTIVE_TIMEOUT_MS;
    const interval = this.opts.pollIntervalMs ?? DEFAULT_POLL_MS;
    return pollUntil(
      async (status) => {
        const image = await glance.get(id, signal);
        if (image.status === 'active') return image;
        if (image.status === 'killed' || image.status === 'deleted' || image.status === 'deactivated') {
          throw new FarmError('UPLOAD', `Glance put the image in state '${image.status}'`);
        }
        status(image.status);
        return undefined;
      },
      { what: `image ${id} to become active after its data was sent`, intervalMs: interval, timeoutMs: timeout, signal },
    );
  }
}

/** The file's chunks, each shown to `see` first; errors and teardown go both ways. */
function tapped(file: ReadStream, see: (chunk: Buffer) => void): Transform {
  const tap = new Transform({
    highWaterMark: READ_CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      see(chunk);
      cb(null, chunk);
    },
  });
  file.on('error', (err) => tap.destroy(err));
  tap.on('close', () => file.destroy());
  return file.pipe(tap);
}
