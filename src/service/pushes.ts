// A push webhook reduced to what the farm acts on, and whether it starts a build. A delivery seen
// before (a forge's retry, or someone replaying a captured request: GitHub's HMAC covers the body,
// not the delivery header, so a replay verifies) starts nothing, and neither does a push of a
// commit that was already built or is queued or being built. The answer says which.

import { errorMessage } from '../core/errors.ts';
import { printable } from './printable.ts';
import type { SourceConfig } from './config.ts';
import type { Reason, RunRecord, ServiceStore } from './store.ts';

export interface Push {
  /** As sent (compared raw with the watched branch; shown through printable()). */
  ref: string;
  /** The head commit, when the payload names a well-formed one. */
  commit?: string;
  /** The head commit's first line, already printable. */
  subject?: string;
  deleted: boolean;
  /** The forge's id for this delivery (X-GitHub-Delivery, GitLab's Idempotency-Key). */
  delivery?: string;
}

export type PushDecision = { start: true; detail: string; commit?: string } | { start: false; why: string };

const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const DELIVERY = /^[A-Za-z0-9._:-]{1,128}$/;
/** Finished runs that built a commit: a later push of it has nothing new to build. */
const BUILT = new Set<RunRecord['status']>(['succeeded', 'skipped']);
export const DELIVERIES_KEPT = 1000;

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const object = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

function subjectOf(message: unknown): string | undefined {
  const m = text(message);
  return m ? printable(m.split('\n')[0]!.trim(), 72) || undefined : undefined;
}

function commitOf(v: unknown): string | undefined {
  const c = text(v)?.toLowerCase();
  return c && COMMIT.test(c) && !/^0+$/.test(c) ? c : undefined;
}

export function deliveryId(header: string | undefined): string | undefined {
  return header && DELIVERY.test(header) ? header : undefined;
}

/** GitHub's push payload: ref, after (the new head), deleted, head_commit. */
export function githubPush(body: unknown, delivery: string | undefined): Push {
  const b = object(body);
  const after = text(b.after);
  return {
    ref: text(b.ref) ?? '',
    ...(commitOf(after) ? { commit: commitOf(after)! } : {}),
    ...(subjectOf(object(b.head_commit).message) ? { subject: subjectOf(object(b.head_commit).message)! } : {}),
    deleted: b.deleted === true || (after !== undefined && /^0+$/.test(after)),
    ...(deliveryId(delivery) ? { delivery: delivery! } : {}),
  };
}

/** GitLab's push payload: ref, checkout_sha (null when deleted), after, commits[]. */
export function gitlabPush(body: unknown, delivery: string | undefined): Push {
  const b = object(body);
  const after = text(b.after);
  const commit = commitOf(b.checkout_sha) ?? commitOf(after);
  const head = Array.isArray(b.commits) ? b.commits.map(object).find((c) => commitOf(c.id) === commit) : undefined;
  return {
    ref: text(b.ref) ?? '',
    ...(commit ? { commit } : {}),
    ...(subjectOf(head?.message) ? { subject: subjectOf(head?.message)! } : {}),
    deleted: (after !== undefined && /^0+$/.test(after)) || b.checkout_sha === null,
    ...(deliveryId(delivery) ? { delivery: delivery! } : {}),
  };
}

export interface PushGateDeps {
  source: SourceConfig;
  store: ServiceStore;
  /** The run being built and the one waiting, if any. */
  inFlight: () => Array<Readonly<RunRecord> | undefined>;
  now: () => number;
  log: (line: string) => void;
}

export class PushGate {
  /** kind:delivery → when it was received; mirrors the store's deliveries. */
  private readonly seen = new Map<string, string>();

  constructor(private readonly deps: PushGateDeps) {
    for (const d of [...(deps.store.current.deliveries ?? [])].reverse()) this.seen.set(d.id, d.at); // oldest first, as evicted
  }

  /** Decides, and remembers the delivery (whatever the decision) so a replay is known. */
  decide(kind: Reason['kind'], push: Push): PushDecision {
    if (push.delivery) {
      const key = `${kind}:${push.delivery}`;
      const before = this.seen.get(key);
      if (before) return { start: false, why: `delivery ${push.delivery} was already received at ${before}` };
      this.remember(key);
    }
    const ref = printable(push.ref, 200);
    const { source } = this.deps;
    if (source.kind === 'git' && push.ref !== `refs/heads/${source.branch}`) return { start: false, why: `push to ${ref || '(no ref)'}, not refs/heads/${printable(source.branch)}` };
    if (push.deleted) return { start: false, why: `${ref} was deleted` };
    const short = push.commit?.slice(0, 12);
    if (push.commit) {
      const done = this.builtBy(push.commit);
      if (done) return { start: false, why: `commit ${short} ${done}` };
    }
    const detail = `push to ${ref}${short ? ` (${short}${push.subject ? ` "${push.subject}"` : ''})` : ''}${push.delivery ? `, delivery ${push.delivery}` : ''}`;
    return { start: true, detail, ...(push.commit ? { commit: push.commit } : {}) };
  }

  /** "is already being built (run r…)", "was already built (run r…, build …)", or undefined. */
  private builtBy(commit: string): string | undefined {
    const has = (r: Readonly<RunRecord>) => r.commit === commit || r.reasons.some((x) => x.commit === commit);
    const { store, source } = this.deps;
    for (const r of this.deps.inFlight()) {
      if (!r) continue;
      const running = r.status === 'running';
      // A git source's running build is at the head its work dir was brought to.
      if (has(r) || (running && source.kind === 'git' && store.current.source.gitHead === commit)) {
        return running ? `is already being built (run ${r.id})` : `is already queued (run ${r.id})`;
      }
    }
    const done = store.current.runs.find((r) => BUILT.has(r.status) && has(r));
    return done ? `was already built (run ${done.id}${done.buildId ? `, build ${done.buildId}` : ''}, ${done.status})` : undefined;
  }

  private remember(key: string): void {
    const at = new Date(this.deps.now()).toISOString();
    this.seen.set(key, at);
    if (this.seen.size > DELIVERIES_KEPT) this.seen.delete(this.seen.keys().next().value!);
    void this.deps.store
      .update((s) => {
        s.deliveries = [{ id: key, at }, ...(s.deliveries ?? [])].slice(0, DELIVERIES_KEPT);
      })
      .catch((err: unknown) => this.deps.log(`cannot record delivery ${key}: ${errorMessage(err)}`)); // memory still stops replays until a restart
  }
}
