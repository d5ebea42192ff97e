// The registry of target kinds: the one place in src/ that names them. Each kind lives in its own
// folder (uploaders/<kind>/kind.ts, the TargetKind interface of uploaders/kind.ts); the inventory's
// schema, `inventory check`, the planner and the pipeline reach kinds only through this list.

import { z } from 'zod';
import type { TargetKind } from '../uploaders/kind.ts';
import type { Uploader } from '../uploaders/uploader.ts';
import { aws } from '../uploaders/aws/kind.ts';
import { azure } from '../uploaders/azure/kind.ts';
import { ibmcloud } from '../uploaders/ibmcloud/kind.ts';
import { libvirt } from '../uploaders/libvirt/kind.ts';
import { openstack } from '../uploaders/openstack/kind.ts';

export const KINDS = [aws, ibmcloud, libvirt, openstack, azure] as const;

/** A target of any kind, as the schema gives it. */
export type Target = (typeof KINDS)[number] extends infer K ? (K extends TargetKind<infer T> ? T : never) : never;
export type TargetKindName = Target['kind'];

export const KIND_NAMES: readonly TargetKindName[] = KINDS.map((k) => k.kind);

/** The kind of that name, or undefined for a name no kind has. */
export function kindOf(name: unknown): TargetKind | undefined {
  return KINDS.find((k) => k.kind === name);
}

/** The kind of a target the schema accepted. */
export function kindFor<T extends Target>(target: T): TargetKind<T> {
  const kind = kindOf(target.kind);
  if (!kind) throw new Error(`no target kind '${target.kind}' (src/targets.ts lists ${KIND_NAMES.join(', ')})`);
  return kind as TargetKind<T>;
}

// Every kind's schema is a strict object with a literal `kind`, which is what a discriminated union
// needs; the interface types it as a plain ZodType so a kind's own file needs no zod generics.
type Discriminable = Parameters<typeof z.discriminatedUnion>[1];
export const targetSchema: z.ZodType<Target> = z.discriminatedUnion('kind', KINDS.map((k) => k.schema) as unknown as Discriminable) as never;

/** The uploader of a target, under its resolved name. */
export function createUploader(target: Target, name: string, env: NodeJS.ProcessEnv = process.env): Uploader {
  return kindFor(target).create({ ...target, name }, { env });
}
