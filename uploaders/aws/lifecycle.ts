// The AWS image lifecycle: the farm's AMIs and snapshots found by their farm:* tags in every
// region of the target, removed (AMI, then its snapshots), released (launch permissions, channel
// and current tags) and deprecated (EnableImageDeprecation).

import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  ModifyImageAttributeCommand,
  type EC2Client,
  type Image,
  type Tag,
} from '@aws-sdk/client-ec2';
import { IDENTITY_TAGS, identityFromTags, type ReleaseChange, type RemoteImage } from '../lifecycle.ts';
import type { Steps } from '../toolkit/steps.ts';
import { deleteSnapshot, deprecateImage } from './register.ts';
import type { AwsTarget } from './schema.ts';

export interface AwsLifecycleAccess {
  ec2: (region: string) => EC2Client;
  regions: string[];
  target: AwsTarget;
  name: string;
  steps: (signal: AbortSignal) => Steps;
}

// EC2 refuses a deprecation time in the past: "now" is a minute ahead (EC2 rounds to minutes).
const DEPRECATE_AHEAD_MS = 2 * 60_000;
const DEPRECATED_TAG = 'farm:deprecated-at';

function tagMap(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key) out[t.Key] = t.Value ?? '';
  return out;
}

function iso(d: Date | string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const date = typeof d === 'string' ? new Date(d) : d;
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function snapshotsOf(img: Image): string[] {
  return (img.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId).filter((s): s is string => !!s);
}

export async function awsListImages(a: AwsLifecycleAccess, inventory: string, signal: AbortSignal): Promise<RemoteImage[]> {
  const steps = a.steps(signal);
  const out: RemoteImage[] = [];
  const filter = [{ Name: `tag:${IDENTITY_TAGS.inventory}`, Values: [inventory] }];
  for (const region of a.regions) {
    const ec2 = a.ec2(region);
    const images = await steps.run(`DescribeImages by tag in ${region}`, () =>
      ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filter }), { abortSignal: signal }),
    );
    const used = new Set<string>();
    for (const img of images.Images ?? []) {
      const id = identityFromTags(tagMap(img.Tags));
      if (!id || !img.ImageId) continue;
      const parts = snapshotsOf(img);
      for (const p of parts) used.add(p);
      out.push({
        target: a.name,
        kind: 'aws',
        location: region,
        imageId: img.ImageId,
        imageName: img.Name ?? id.name,
        buildId: id.buildId,
        arch: id.arch,
        channel: id.channel,
        current: id.current,
        permanent: id.permanent,
        createdAt: iso(img.CreationDate),
        lastLaunchedAt: iso(img.LastLaunchedTime),
        deprecatedAt: iso(img.DeprecationTime),
        parts,
      });
    }
    // Snapshots no AMI uses: a removal stopped between DeregisterImage and DeleteSnapshot, or an
    // upload that died before RegisterImage. Rollback finishes them.
    const snaps = await steps.run(`DescribeSnapshots by tag in ${region}`, () =>
      ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filter }), { abortSignal: signal }),
    );
    for (const s of snaps.Snapshots ?? []) {
      const id = identityFromTags(tagMap(s.Tags));
      if (!id || !s.SnapshotId || used.has(s.SnapshotId)) continue;
      const deprecated = tagMap(s.Tags)[DEPRECATED_TAG];
      out.push({
        target: a.name,
        kind: 'aws',
        location: region,
        imageId: s.SnapshotId,
        imageName: id.name,
        buildId: id.buildId,
        arch: id.arch,
        channel: id.channel,
        current: false,
        permanent: id.permanent,
        createdAt: iso(s.StartTime),
        ...(deprecated ? { deprecatedAt: deprecated } : {}),
        parts: [],
        leftover: true,
      });
    }
  }
  return out;
}

function isGone(err: unknown): boolean {
  const name = (err as { name?: string; cause?: { name?: string } }).name;
  const cause = (err as { cause?: { name?: string } }).cause?.name;
  return [name, cause].some((n) => n === 'InvalidAMIID.NotFound' || n === 'InvalidAMIID.Unavailable');
}

export async function awsRemove(a: AwsLifecycleAccess, image: RemoteImage, signal: AbortSignal): Promise<string[]> {
  const steps = a.steps(signal);
  const ec2 = a.ec2(image.location);
  const removed: string[] = [];
  if (!image.leftover) {
    // DeregisterImage leaves the snapshots: they go next, once no AMI uses them.
    const gone = await steps.run(`DeregisterImage ${image.location}:${image.imageId}`, async () => {
      try {
        await ec2.send(new DeregisterImageCommand({ ImageId: image.imageId }), { abortSignal: signal });
        return false;
      } catch (err) {
        if (isGone(err)) return true;
        throw err;
      }
    });
    if (!gone) removed.push(`AMI ${image.location}:${image.imageId}`);
  }
  const snapshots = image.leftover ? [image.imageId] : image.parts;
  for (const id of snapshots) {
    await steps.run(`DeleteSnapshot ${image.location}:${id}`, () => deleteSnapshot(ec2, id, signal));
    removed.push(`snapshot ${image.location}:${id}`);
  }
  return removed;
}

export async function awsMark(a: AwsLifecycleAccess, image: RemoteImage, change: ReleaseChange, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  const steps = a.steps(signal);
  const ec2 = a.ec2(image.location);
  const resources = [image.imageId, ...image.parts];
  if (change.share && a.target.share_accounts.length) {
    await steps.run(`share ${image.location}:${image.imageId}`, () =>
      ec2.send(
        new ModifyImageAttributeCommand({ ImageId: image.imageId, LaunchPermission: { Add: a.target.share_accounts.map((UserId) => ({ UserId })) } }),
        { abortSignal: signal },
      ),
    );
  }
  const tags: Tag[] = [{ Key: IDENTITY_TAGS.channel, Value: change.channel }];
  if (change.current) tags.push({ Key: IDENTITY_TAGS.current, Value: 'true' });
  await steps.run(`CreateTags ${image.location}:${image.imageId}`, () =>
    ec2.send(new CreateTagsCommand({ Resources: resources, Tags: tags }), { abortSignal: signal }),
  );
  if (!change.current && image.current) {
    await steps.run(`DeleteTags ${IDENTITY_TAGS.current} ${image.location}:${image.imageId}`, () =>
      ec2.send(new DeleteTagsCommand({ Resources: resources, Tags: [{ Key: IDENTITY_TAGS.current }] }), { abortSignal: signal }),
    );
  }
}

export async function awsDeprecate(a: AwsLifecycleAccess, image: RemoteImage, at: Date, signal: AbortSignal): Promise<void> {
  if (image.leftover) return;
  const when = new Date(Math.max(at.getTime(), Date.now() + DEPRECATE_AHEAD_MS));
  const steps = a.steps(signal);
  // The snapshots learn it too: one left by a removal cut short is then known as prune's to finish.
  if (image.parts.length) {
    await steps.run(`CreateTags ${DEPRECATED_TAG} ${image.location}:${image.parts.join(',')}`, () =>
      a.ec2(image.location).send(new CreateTagsCommand({ Resources: image.parts, Tags: [{ Key: DEPRECATED_TAG, Value: when.toISOString() }] }), { abortSignal: signal }),
    );
  }
  await steps.run(`EnableImageDeprecation ${image.location}:${image.imageId}`, () => deprecateImage(a.ec2(image.location), image.imageId, when, signal));
}
