// IBM Cloud VPC uploader: stage the qcow2 in Cloud Object Storage, import it as a custom image
// in every region of the target, wait until each is available, then remove the staging object.
//
// - Auth: IBMCLOUD_API_KEY through ibm-cloud-sdk-core's IamAuthenticator (VPC, Resource Manager,
//   and COS unless HMAC keys are in the environment; see credentials.ts). Secrets never reach
//   messages.
// - One object serves all regions: the cos://<bucket region>/<bucket>/<key> href carries the
//   bucket's region and VPC reads it across regions (IBM's own guidance for publishing an image
//   to several regions is one bucket, one import per region). The imports run in parallel.
// - Re-runs: regions that already hold an available image of the name are reported as existing
//   and not imported again; a pending one is waited for.
// - Failure anywhere: images this run created (in every region) and the staging object are
//   removed before a FarmError('UPLOAD') naming the region and step is thrown.

import { FarmError, throwIfAborted } from '../../src/core/errors.ts';
import type { IbmCloudTarget } from './schema.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { NO_JOURNAL, type JournalEntry, type PublishedImage, type RemovesImages, type UploadContext, type Uploader } from '../uploader.ts';
import type { PollSettings } from '../../src/core/poll.ts';
import { Steps, allOrNothing } from '../toolkit/steps.ts';
import { abortMultipartUploads } from '../s3-leftovers.ts';
import { COS_MULTIPART, COS_OBJECT, VPC_IMAGE, removeIbmLeftovers, removeIbmObject } from './leftovers.ts';
import { cosHref, objectKey } from './endpoints.ts';
import { imageNameProblem, vpcImageName } from './names.ts';
import { redact, serviceFault, stepError } from './errors.ts';
import type { VpcImage } from './vpc-client.ts';
import { deleteObject, headBucket, objectMetadata, uploadFile } from './cos.ts';
import { resolveResourceGroup, type ResourceGroupRef } from './resource-group.ts';
import { openSession, type Session } from './session.ts';
import { DELETE_POLL, IMPORT_POLL, removeImage, waitAvailable } from './images.ts';
import type { ImageLifecycle } from '../lifecycle.ts';
import { ibmLifecycle, identityUserTags } from './lifecycle.ts';

export { vpcServiceUrl, cosHref, cosEndpoint, objectKey } from './endpoints.ts';
export { imageNameProblem, vpcImageName } from './names.ts';
export { VPC_API_VERSION } from './vpc-client.ts';

export interface IbmCloudUploaderOptions {
  /** Where credentials come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Polling of imports (tests shorten it). */
  importPoll?: PollSettings;
  /** Polling of deletions. */
  deletePoll?: PollSettings;
  /** Smallest multipart part for the COS upload (default 16 MiB; S3 allows 5 MiB). */
  cosPartSize?: number;
}

/** farm arch → VPC operating-system architecture; VPC has no aarch64 or ppc64le virtual servers. */
export const VPC_ARCH: Partial<Record<Artifact['arch'], string>> = { x86_64: 'amd64', s390x: 's390x' };

export function createIbmCloudUploader(target: IbmCloudTarget, opts: IbmCloudUploaderOptions = {}): Uploader & RemovesImages & ImageLifecycle {
  const env = opts.env ?? process.env;
  const importPoll = opts.importPoll ?? IMPORT_POLL;
  const deletePoll = opts.deletePoll ?? DELETE_POLL;
  const targetName = target.name ?? 'ibmcloud'; // the kind gives the resolved name; direct callers may not
  const regions = [...new Set(target.regions)];
  let session: Session | undefined;
  let group: ResourceGroupRef | undefined;
  const open = () => (session ??= openSession(target, env, targetName));

  /** Runs one step; failures become FarmErrors naming the step and region. */
  async function step<T>(name: string, region: string | undefined, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw stepError(name, region, err, session?.secrets ?? [], signal, session?.cosAuth);
    }
  }

  async function resourceGroup(s: Session): Promise<ResourceGroupRef> {
    group ??= await step('resolve resource group', undefined, () => resolveResourceGroup(s.rm, target.resource_group));
    return group;
  }

  /** The target's operating system in a region, or undefined when VPC does not know the name there. */
  async function operatingSystem(s: Session, region: string, signal: AbortSignal) {
    try {
      return await s.vpc(region).getOperatingSystem(target.operating_system, signal);
    } catch (err) {
      if (serviceFault(err).status === 404) return undefined;
      throw stepError('check operating system', region, err, s.secrets, signal);
    }
  }

  function published(region: string, image: VpcImage, existing: boolean): PublishedImage {
    return {
      target: targetName,
      kind: 'ibmcloud',
      location: region,
      imageName: image.name,
      imageId: image.id,
      artifactId: `${region}:${image.id}`,
      existing,
    };
  }

  return {
    name: targetName,
    kind: 'ibmcloud',

    async preflight(signal) {
      throwIfAborted(signal);
      const s = open();
      await step('get an IAM token', undefined, () => s.authenticator.authenticate({ headers: {} }), signal);
      const problems: string[] = [];
      const check = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          const e = err instanceof FarmError ? err : stepError('preflight', undefined, err, s.secrets, signal);
          if (e.code === 'ABORTED') throw e;
          problems.push(e.hint ? `${e.message} (${e.hint})` : e.message);
        }
      };
      const unknownOs: string[] = [];
      await Promise.all([
        check(() => resourceGroup(s)),
        check(() => step(`reach COS bucket '${target.cos.bucket}'`, target.cos.region, () => headBucket(s.cos, target.cos.bucket, signal), signal)),
        ...regions.map((r) =>
          check(async () => {
            if ((await operatingSystem(s, r, signal)) === undefined) unknownOs.push(r);
          }),
        ),
      ]);
      if (unknownOs.length > 0) {
        problems.unshift(
          `operating system '${target.operating_system}' is not known to VPC in ${regions.filter((r) => unknownOs.includes(r)).join(', ')} ` +
            '(list the names with `ibmcloud is operating-systems`; s390x ones look like red-9-s390x-byol, amd64 ones like red-9-amd64-byol)',
        );
      }
      throwIfAborted(signal);
      if (problems.length > 0) {
        throw new FarmError('UPLOAD', `IBM Cloud target '${targetName}' is not ready: ${problems.join('; ')}`);
      }
    },

    // The upload stage skips upload() when find() returns anything: report the image only when
    // every region has it available, so that a partial set is completed by upload().
    async find(imageName, _artifact, signal) {
      const s = open();
      const name = vpcImageName(imageName);
      const found = await Promise.all(
        regions.map((r) => step('list images', r, () => s.vpc(r).findImages(name, signal), signal)),
      );
      const images = regions.map((r, i) => (found[i] ?? []).find((img) => img.name === name && img.status === 'available'));
      if (images.some((img) => img === undefined)) return [];
      return regions.map((r, i) => published(r, images[i]!, true));
    },

    async upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
      const { signal } = ctx;
      throwIfAborted(signal);
      // Local checks first: a refusal here creates nothing.
      if (artifact.disk.format !== 'qcow2') {
        throw new FarmError('UPLOAD', `IBM Cloud VPC imports qcow2 images, but ${artifact.disk.name} is ${artifact.disk.format}`, {
          hint: `build the qcow2 type for ${artifact.arch} (arches.${artifact.arch}.types: [qcow2])`,
        });
      }
      const vpcArch = VPC_ARCH[artifact.arch];
      if (!vpcArch) {
        throw new FarmError('UPLOAD', `IBM Cloud VPC has no ${artifact.arch} virtual servers (it takes x86_64 and s390x images)`, {
          hint: `remove the ibmcloud target from arches.${artifact.arch}`,
        });
      }
      const name = vpcImageName(imageName);
      const nameProblem = imageNameProblem(name);
      if (nameProblem) {
        throw new FarmError('UPLOAD', `IBM Cloud: ${nameProblem}`, { hint: 'set `naming` on the ibmcloud target to a template VPC accepts, e.g. {name}-{date}-{time}-{arch}' });
      }
      const s = open();
      const [first] = regions as [string];
      const os = await operatingSystem(s, first, signal);
      if (!os) {
        throw new FarmError('UPLOAD', `IBM Cloud ${first}: operating system '${target.operating_system}' is not known to VPC`, {
          hint: 'list the names with `ibmcloud is operating-systems`; s390x ones look like red-9-s390x-byol, amd64 ones like red-9-amd64-byol',
        });
      }
      if (os.architecture !== vpcArch) {
        throw new FarmError(
          'UPLOAD',
          `IBM Cloud: operating system ${os.name} is for ${os.architecture}, but the artifact is ${artifact.arch} (${vpcArch})`,
          { hint: `choose an operating_system for ${vpcArch}, e.g. ${vpcArch === 's390x' ? 'red-9-s390x-byol' : 'red-9-amd64-byol'}` },
        );
      }
      const rg = await resourceGroup(s);

      // What a previous run left: available images are reused, pending ones waited for.
      const before = await Promise.all(regions.map((r) => step('list images', r, () => s.vpc(r).findImages(name, signal), signal)));
      const existing = new Map<string, VpcImage>();
      regions.forEach((r, i) => {
        const img = before[i]?.find((x) => x.name === name);
        if (!img) return;
        if (img.status !== 'available' && img.status !== 'pending') {
          throw new FarmError('UPLOAD', `IBM Cloud ${r}: an image named ${name} already exists (${img.id}) with status ${img.status}`, {
            hint: `delete it (ibmcloud is image-delete ${img.id} in ${r}) or change the naming template`,
          });
        }
        existing.set(r, img);
      });
      const toCreate = regions.filter((r) => !existing.has(r));
      if (toCreate.length === 0 && [...existing.values()].every((i) => i.status === 'available')) {
        ctx.log(`${name} already exists in ${regions.join(', ')}`);
        return regions.map((r) => published(r, existing.get(r)!, true));
      }

      const key = objectKey(name);
      const href = cosHref(target.cos.region, target.cos.bucket, key);
      const total = artifact.disk.size;
      const journal = ctx.journal ?? NO_JOURNAL;
      const steps = new Steps({
        signal,
        log: ctx.log,
        wrap: (what, err) => stepError(what, undefined, err, s.secrets, signal, s.cosAuth),
        // Its own deadline: the caller's signal may be the reason we are here.
        cleanupTimeoutMs: deletePoll.timeoutMs + importPoll.timeoutMs,
        redact: (text) => redact(text, s.secrets),
        leftoverHint: 'remove them by hand (ibmcloud is image-delete ID; ibmcloud cos object-delete).',
        removedNote: 'created images and the staging object were removed',
      });
      // Every object is recorded in the journal before it is created (images: id added once known).
      const created: Created[] = [];
      try {
        steps.current = 'upload';
        let staging: JournalEntry | undefined;
        if (toCreate.length > 0) {
          ctx.log(`uploading ${artifact.disk.name} to ${href}`);
          staging = await journal.begin({ kind: COS_OBJECT, location: target.cos.bucket, name: key });
          const multipart = await journal.begin({ kind: COS_MULTIPART, location: target.cos.bucket, name: key });
          // Registered first, so it runs last: a pending import still reads the object.
          steps.onCleanup(
            href,
            async (cleanup) => {
              await abortMultipartUploads(s.cos, target.cos.bucket, key, cleanup);
              await multipart.drop();
              await deleteObject(s.cos, target.cos.bucket, key, cleanup);
            },
            staging,
          );
          steps.current = 'upload to COS';
          await step(
            'upload to COS',
            target.cos.region,
            () =>
              uploadFile(
                s.cos,
                {
                  bucket: target.cos.bucket,
                  key,
                  file: artifact.disk.path,
                  size: total,
                  metadata: objectMetadata({
                    ...ctx.tags,
                    ...(ctx.identity ? { 'farm-inventory': ctx.identity.inventory, 'farm-name': name } : {}),
                    'farm-arch': artifact.arch,
                    'farm-image-name': name,
                    'farm-sha256': artifact.disk.sha256,
                  }),
                  ...(opts.cosPartSize ? { minPartSize: opts.cosPartSize } : {}),
                },
                signal,
                (sent) => ctx.onProgress?.({ done: sent, total, sent, phase: 'upload to COS' }),
              ),
            signal,
          );
          await multipart.drop(); // completed
        }
        // One failure stops the waits in the other regions: the call is all or nothing.
        const out = await allOrNothing(
          regions,
          async (region, regionSignal) => {
            const prior = existing.get(region);
            if (prior?.status === 'available') return published(region, prior, true);
            let image: VpcImage;
            if (prior) {
              ctx.log(`${region}: waiting for the pending import ${prior.id}`);
              image = prior;
            } else {
              const made: Created = { region, name, entry: await journal.begin({ kind: VPC_IMAGE, location: region, name }) };
              // One cleanup removes them all at once (each may wait out a pending import), before the object's.
              if (created.length === 0) steps.onCleanup(`the images this upload created`, (cleanup) => removeCreated(s, created, cleanup));
              created.push(made);
              // Not cancellable once sent: an image created behind our back could not be cleaned up.
              image = await step('create image', region, () =>
                s.vpc(region).createImage({
                  name,
                  file: { href },
                  operating_system: { name: target.operating_system },
                  resource_group: { id: rg.id },
                }),
              );
              made.id = image.id;
              await made.entry.identify(image.id);
              ctx.log(`${region}: importing ${name} as ${image.id}`);
            }
            const done = await waitAvailable(s.vpc(region), region, image, importPoll, regionSignal, s.secrets);
            // The identity, as user tags (lifecycle.ts); a failure here fails the upload, which removes the image.
            if (ctx.identity) await step('attach tags', region, () => s.tagging.attach(done.crn, identityUserTags(ctx.identity!), regionSignal), regionSignal);
            ctx.onProgress?.({ done: total, total, sent: total, phase: `imported in ${region}` });
            ctx.log(`${region}: ${done.id} available`);
            return published(region, done, Boolean(prior));
          },
          signal,
        );
        if (staging) {
          try {
            await deleteObject(s.cos, target.cos.bucket, key, signal);
            await staging.drop();
          } catch (err) {
            ctx.log(`could not remove the staging object ${href}: ${stepError('delete COS object', undefined, err, s.secrets).message}`);
          }
        }
        return out;
      } catch (err) {
        return await steps.fail(err);
      }
    },

    async removeHalfMade(objects, signal) {
      return removeIbmLeftovers(open(), objects, deletePoll, signal);
    },

    ...ibmLifecycle({
      session: open,
      resourceGroupId: async () => (await resourceGroup(open())).id,
      regions,
      target,
      name: targetName,
      deletePoll,
    }),

    async delete(image, signal) {
      const s = open();
      throwIfAborted(signal);
      await step('delete image', image.location, () => removeImage(s.vpc(image.location), image.imageId, deletePoll, signal), signal);
    },
  };

  /** Removes the images a failed upload created, at once (and drops their journal records). */
  async function removeCreated(s: Session, created: Created[], signal: AbortSignal): Promise<void> {
    const left: string[] = [];
    await Promise.all(
      created.map(async ({ region, id, name, entry }) => {
        try {
          // An image whose create got no answer is looked up by its name.
          if (id !== undefined) await removeImage(s.vpc(region), id, deletePoll, signal);
          else await removeIbmObject(s, { kind: VPC_IMAGE, location: region, name, attempt: '' }, deletePoll, signal);
          await entry.drop();
        } catch (err) {
          left.push(`image ${id ?? name} in ${region} (${stepError('delete image', region, err, s.secrets).message})`);
        }
      }),
    );
    if (left.length > 0) throw new Error(left.join('; '));
  }
}

/** A VPC image this upload asked for: recorded first, its id once VPC answered. */
interface Created {
  region: string;
  name: string;
  entry: JournalEntry;
  id?: string;
}
