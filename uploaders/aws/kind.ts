// The aws target kind: AMIs in one region (and its copies), from bib's ami disk.

import type { TargetKind, KindProblem } from '../kind.ts';
import { lazyUploader } from '../kind.ts';
import { AMI_NAME_ALLOWED, amiNameProblem } from './names.ts';
import { awsTargetSchema, type AwsTarget } from './schema.ts';
import { TAG_KEY_MAX, TAG_VALUE_MAX, tagProblem } from './tags.ts';

function check(target: AwsTarget): KindProblem[] {
  const out: KindProblem[] = [];
  for (const [key, value] of Object.entries(target.tags)) {
    const problem = tagProblem(key, value);
    if (problem) out.push({ path: ['tags', key], message: problem, fix: `AWS tag keys have 1-${TAG_KEY_MAX} characters, values at most ${TAG_VALUE_MAX}, neither starting with 'aws:'` });
  }
  if (target.method === 's3-import' && target.bucket === undefined) {
    out.push({
      path: ['bucket'],
      message: 'method s3-import needs a bucket to stage the disk in',
      fix: `add bucket: <an S3 bucket in ${target.region} the vmimport role can read>, or use method: ebs-direct (no bucket needed)`,
    });
  }
  return out;
}

export const aws: TargetKind<AwsTarget> = {
  kind: 'aws',
  schema: awsTargetSchema,
  arches: ['x86_64', 'aarch64'],
  archNote: 'AWS AMIs exist for x86_64 and aarch64 only',
  aliases: ['ec2', 'ami', 'amazon'],
  hints: { region: '<region, e.g. us-east-1>', bucket: '<bucket name>' },
  credentials: 'AWS credentials come from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) or ~/.aws/credentials',
  imageType: () => 'ami', // AWS takes the raw disk that bib's ami type writes
  names: { what: 'AWS AMI', problem: amiNameProblem, allowed: AMI_NAME_ALLOWED },
  check,
  create: (target) => lazyUploader(target.name, 'aws', async () => (await import('./index.ts')).createAwsUploader(target)),
};
