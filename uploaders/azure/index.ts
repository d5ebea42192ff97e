// The Azure uploader: a fixed VHD becomes a page blob in the target's storage account (only its
// non-zero pages are sent), then a managed image or a Compute Gallery image version is made
// from the blob, Hyper-V generation V2 (UEFI), with the build's architecture. The staging blob is
// removed afterwards, whether the image was made or not; a failed image is removed too.

import { stat } from 'node:fs/promises';
import type { TokenCredential } from '@azure/identity';
import type { PageBlobClient } from '@azure/storage-blob';
import { FarmError, errorMessage, isAbortError, throwIfAborted } from '../../src/core/errors.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { NO_JOURNAL, type HalfMade, type HalfMadeResult, type PublishedImage, type RemovesImages, type UploadContext, type Uploader } from '../uploader.ts';
import { Arm } from './arm.ts';
import { DEFAULT_CONCURRENCY, blobMetadata, containerClient, removeBlob, uploadSparse } from './blob.ts';
import { azureCredential } from './credential.ts';
import { ATTEMPT_TAG, STAGING_BLOB, removeAzureLeftover, type AzureAccess } from './leftovers.ts';
import { planImage } from './image.ts';
import { IMAGE_NAME_ALLOWED, imageNameProblem, stagingBlobName } from './names.ts';
import { planPages } from './pages.ts';
import type { AzureTarget } from './schema.ts';
import { checkVhd } from './vhd.ts';
import { azureArchitecture } from './arch.ts';
import { Progress } from '../toolkit/progress.ts';
import { CLEANUP_TIMEOUT_MS, runSteps } from '../toolkit/steps.ts';
import { identityTags, type ImageLifecycle, type ReleaseChange, type RemoteImage } from '../lifecycle.ts';
import { azureDeprecate, azureListImages, azureMark, azureRemove } from './lifecycle.ts';

export interface AzureUploaderOptions {
  env?: NodeJS.ProcessEnv;
  /** Instead of DefaultAzureCredential (embedding, tests). */
  credential?: TokenCredential;
  /** Put Page requests in flight (default 8). */
  concurrency?: number;
  /** Polling interval of ARM's long-running operations (default 5 s). */
  pollMs?: number;
  /** Minimum ms between onProgress calls (default 500). */
  progressIntervalMs?: number;
}


export function targetLabel(target: Pick<AzureTarget, 'name'>): string {
  return target.name ?? 'azure';
}

export function createAzureUploader(target: AzureTarget & { name?: string }, opts: AzureUploaderOptions = {}): Uploader & RemovesImages & ImageLifecycle {
  return new AzureUploader(target, opts);
}

class AzureUploader implements Uploader, RemovesImages, ImageLifecycle {
  readonly kind = 'azure' as const;
  readonly name: string;
  private readonly env: NodeJS.ProcessEnv;
  private session: AzureAccess | undefined;

  constructor(
    private readonly target: AzureTarget,
    private readonly opts: AzureUploaderOptions,
  ) {
    this.name = targetLabel(target);
    this.env = opts.env ?? process.env;
  }

  /** Clients are made on first use, so constructing never throws. */
  private access(): AzureAccess {
    if (!this.session) {
      const t = this.target;
      const credential = this.opts.credential ?? azureCredential(this.env);
      this.session = {
        arm: new Arm({ subscriptionId: t.subscription_id, credential, endpoint: t.arm_endpoint, pollMs: this.opts.pollMs }),
        container: containerClient({ endpoint: t.blob_endpoint ?? `https://${t.storage_account}.blob.core.windows.net`, container: t.container, credential }),
        resourceGroup: t.resource_group,
        gallery: t.gallery ? { name: t.gallery.name, image: t.gallery.image } : undefined,
      };
    }
    return this.session;
  }

  private wrap(what: string, err: unknown): FarmError {
    if (isAbortError(err)) return new FarmError('ABORTED', `${what}: cancelled`, { cause: err });
    if (err instanceof FarmError) return err;
    return new FarmError('UPLOAD', `${what}: ${errorMessage(err)}`, { cause: err, hint: hintFor(err) });
  }

  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(what, err);
    }
  }

  async preflight(signal: AbortSignal): Promise<void> {
    const a = this.access();
    const t = this.target;
    // Reading proves the credential, the subscription and the resource group without creating anything.
    if (t.gallery) {
      const g = t.gallery;
      await this.guard(`preflight: gallery image ${g.name}/${g.image}`, () => a.arm.getGalleryImage(t.resource_group, g.name, g.image, signal));
    } else {
      await this.guard(`preflight: list images in ${t.resource_group}`, () => a.arm.listImages(t.resource_group, signal));
    }
    await this.guard(`preflight: container ${t.container} of ${t.storage_account}`, async () => {
      if (!(await a.container.exists({ abortSignal: signal }))) {
        throw new FarmError('UPLOAD', `the container ${t.container} does not exist in storage account ${t.storage_account}`, {
          hint: `Create it (az storage container create --account-name ${t.storage_account} --name ${t.container} --auth-mode login) or set container: on the target.`,
        });
      }
    });
  }

  private published(id: string, imageName: string, existing: boolean): PublishedImage {
    return { target: this.name, kind: this.kind, location: this.target.location, imageName, imageId: id, artifactId: `${this.target.location}:${id}`, existing };
  }

  async find(imageName: string, _artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]> {
    const a = this.access();
    const t = this.target;
    return this.guard(`find ${imageName}`, async () => {
      if (t.gallery) {
        const g = t.gallery;
        const versions = await a.arm.listVersions(t.resource_group, g.name, g.image, signal);
        return versions
          .filter((v) => v.tags?.['farm-image-name'] === imageName && v.provisioningState === 'Succeeded' && v.id)
          .map((v) => this.published(v.id!, imageName, true));
      }
      const image = await a.arm.getImage(t.resource_group, imageName, signal);
      return image?.id && image.provisioningState === 'Succeeded' ? [this.published(image.id, imageName, true)] : [];
    });
  }

  /** Removes a published image (tests, and the lifecycle commands to come). */
  async delete(image: PublishedImage, signal: AbortSignal): Promise<void> {
    const a = this.access();
    const t = this.target;
    await this.guard(`delete ${image.imageId}`, async () => {
      if (t.gallery) await a.arm.deleteVersion(t.resource_group, t.gallery.name, t.gallery.image, image.imageId.split('/').at(-1)!, signal);
      else await a.arm.deleteImage(t.resource_group, image.imageName, signal);
    });
  }

  listImages(inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
    return this.guard('list images', () => azureListImages(this.access(), { target: this.name, t: this.target }, inventory, signal));
  }

  removeImage(image: RemoteImage, signal: AbortSignal): Promise<string[]> {
    return this.guard(`delete ${image.imageId}`, () => azureRemove(this.access(), this.target, image, signal));
  }

  markImage(image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
    return this.guard(`release ${image.imageId}`, () => azureMark(this.access(), this.target, image, change, signal));
  }

  deprecateImage(image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
    return this.guard(`deprecate ${image.imageId}`, () => azureDeprecate(this.access(), this.target, image, at, signal));
  }

  removeHalfMade(objects: readonly HalfMade[], signal: AbortSignal): Promise<HalfMadeResult[]> {
    const a = this.access();
    return Promise.all(objects.map((o) => removeAzureLeftover(a, o, signal)));
  }

  async upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
    const t = this.target;
    const architecture = azureArchitecture(artifact.arch, Boolean(t.gallery));
    const disk = artifact.disk;
    if (disk.format !== 'vhd') {
      throw new FarmError('UPLOAD', `Azure takes fixed VHDs, got ${disk.format} (${disk.name})`, { hint: 'Build the vhd image type for azure targets.' });
    }
    if (!t.gallery) {
      const problem = imageNameProblem(imageName);
      if (problem) throw new FarmError('UPLOAD', problem, { hint: `Set \`naming\` on the azure target to a template giving ${IMAGE_NAME_ALLOWED}.` });
    }
    throwIfAborted(ctx.signal);
    // A file that is not what the fetch recorded, or not a VHD Azure takes, fails before anything is made.
    await this.guard(`check ${disk.path}`, async () => {
      const actual = (await stat(disk.path)).size;
      if (actual !== disk.size) throw new Error(`it has ${actual} bytes but the build recorded ${disk.size}: it changed after the fetch`);
      await checkVhd(disk.path, disk.size);
    });
    const a = this.access();
    const signal = ctx.signal;
    const journal = ctx.journal ?? NO_JOURNAL;
    // The identity (farm:build-id, ...) goes on the image and, as metadata, on the staging blob.
    const tags = { ...ctx.tags, ...t.tags, ...(ctx.identity ? identityTags(ctx.identity) : {}), ...(ctx.journal ? { [ATTEMPT_TAG]: journal.attempt } : {}) };

    // ARM would refuse (or overwrite) a taken name only after the upload: look first.
    const target = await this.guard(`check ${imageName}`, () => planImage(a.arm, t, imageName, artifact, architecture, signal));

    const blob = a.container.getPageBlobClient(stagingBlobName(imageName, journal.attempt));
    const blobEntry = await journal.begin({ kind: STAGING_BLOB, location: `${t.storage_account}/${t.container}`, name: blob.name });
    let made = false;
    try {
      return await runSteps(
        {
          signal,
          log: ctx.log,
          wrap: (_step, err) => this.wrap(`upload of ${imageName}`, err),
          leftoverHint: 'The next run of this upload removes them (they are in the build record), or remove them by hand (az image delete, az storage blob delete).',
        },
        async (steps) => {
          // Registered before the blob exists: a create cut short may have made it all the same.
          steps.onCleanup(
            `staging blob ${blob.url}`,
            async (cleanup) => ((await removeBlob(blob, cleanup)) ? `removed the staging blob ${blob.name}` : false),
            blobEntry,
          );
          const total = disk.size;
          const progress = new Progress(ctx.onProgress, total, this.opts.progressIntervalMs ?? 500);
          const plan = await this.guard('plan the pages to send', () =>
            planPages(disk.path, total, { signal, onScanned: (n) => progress.report(n, 0, 'scan') }),
          );
          ctx.log(`sending ${(plan.bytes / 2 ** 20).toFixed(1)} MiB of ${(total / 2 ** 20).toFixed(1)} MiB in ${plan.ranges.length} Put Page request(s) to ${blob.url}`);
          const started = Date.now();
          const sent = await this.guard(`upload to ${blob.url}`, () =>
            uploadSparse({
              blob,
              path: disk.path,
              size: total,
              ranges: plan.ranges,
              metadata: blobMetadata(tags),
              concurrency: this.opts.concurrency ?? DEFAULT_CONCURRENCY,
              signal,
              // Progress counts the image as covered in file order: holes are done once scanned.
              onProgress: (n) => progress.report(Math.min(total, Math.round((n / Math.max(1, plan.bytes)) * total)), n, 'upload'),
            }),
          );
          ctx.log(`sent ${(sent / 2 ** 20).toFixed(1)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);

          progress.report(total, sent, 'image', true);
          const imageEntry = await journal.begin(target.record);
          // A create that failed part-way may have left a failed resource under the name.
          const image = steps.onCleanup(
            target.record.name,
            async (cleanup) => {
              const r = await removeAzureLeftover(a, { ...target.record, attempt: journal.attempt }, cleanup);
              if (r.error) throw new Error(r.error);
              if (r.outcome === 'complete') return `${target.record.name} was made after all: kept (the next run finds it)`;
              return r.outcome === 'removed' ? `removed the half-made ${target.record.name}` : false;
            },
            imageEntry,
          );
          const id = await this.guard(target.what, () => target.create(blob.url, tags, signal));
          made = true;
          image.dismiss();
          await imageEntry.identify(id);
          ctx.log(`made ${id} (${architecture}, Hyper-V V2)`);
          progress.report(total, sent, 'done', true);
          return [this.published(id, imageName, false)];
        },
      );
    } finally {
      if (made) {
        // The image holds its own copy of the disk: the staging blob goes now.
        const left = await this.removeStaging(blob, blobEntry, ctx);
        if (left) ctx.log(`the staging blob stays: ${left}; the next run of this upload removes it`);
      }
    }
  }

  /** Removes the staging blob; returns what could not be removed, if anything. */
  private async removeStaging(blob: PageBlobClient, entry: { drop(): Promise<void> }, ctx: UploadContext): Promise<string | undefined> {
    try {
      const removed = await removeBlob(blob, AbortSignal.timeout(CLEANUP_TIMEOUT_MS));
      await entry.drop();
      if (removed) ctx.log(`removed the staging blob ${blob.name}`);
      return undefined;
    } catch (err) {
      return `staging blob ${blob.url} (${errorMessage(err)})`;
    }
  }
}

function hintFor(err: unknown): string | undefined {
  const e = err as { name?: string; statusCode?: number; code?: string };
  if (e.name === 'CredentialUnavailableError' || e.name === 'AuthenticationError' || e.name === 'AggregateAuthenticationError') {
    return 'Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal), use a managed identity, or run `az login`.';
  }
  if (e.statusCode === 401) return 'Azure refused the token: check the tenant and the service principal.';
  if (e.statusCode === 403) return 'The identity lacks a role this step needs: Contributor on the resource group, Storage Blob Data Contributor on the storage account.';
  return undefined;
}
