// The upload journal: each object an upload is about to create is recorded in the build's
// state.json (through the StateStore, so atomically and in order with every other change) before
// the create call, its id added once known, and its record dropped once the object is removed or
// the upload is recorded as done. What a killed run leaves in the record is what it left half-made
// in the cloud; the next run of the upload removes it first (src/pipeline/upload-stage.ts).

import { randomBytes } from 'node:crypto';
import type { Arch } from '../core/arch.ts';
import type { HalfMade, JournalEntry, UploadJournal } from '../../uploaders/uploader.ts';
import type { HalfMadeRecord, StateStore, UploadRecord } from './state.ts';

/** A token that tells this attempt's objects from every other's (tags allow few characters). */
export function attemptToken(): string {
  return randomBytes(6).toString('hex');
}

export class StateJournal implements UploadJournal {
  readonly attempt = attemptToken();
  private seq = 0;

  constructor(
    private readonly store: StateStore,
    private readonly arch: Arch,
    /** The upload record's key (the target's name); the record must exist. */
    private readonly target: string,
  ) {}

  private change(fn: (u: UploadRecord) => void): Promise<void> {
    return this.store.updateArch(this.arch, (a) => {
      const u = a.uploads[this.target];
      if (!u) throw new Error(`no upload record for ${this.target} of ${this.arch}`);
      fn(u);
    });
  }

  async begin(object: Omit<HalfMade, 'attempt'>): Promise<JournalEntry> {
    const key = `${this.attempt}.${++this.seq}`;
    const record: HalfMadeRecord = { ...object, attempt: this.attempt, key, at: new Date().toISOString() };
    await this.change((u) => {
      (u.halfMade ??= []).push(record);
    });
    return {
      identify: (id) =>
        this.change((u) => {
          const r = u.halfMade?.find((h) => h.key === key);
          if (r) r.id = id;
        }),
      drop: () => this.drop([key]),
    };
  }

  /** Drops the records with these keys (objects removed or found complete). */
  drop(keys: readonly string[]): Promise<void> {
    return this.change((u) => dropHalfMade(u, keys));
  }
}

export function dropHalfMade(u: UploadRecord, keys: readonly string[]): void {
  const left = (u.halfMade ?? []).filter((h) => !keys.includes(h.key));
  if (left.length) u.halfMade = left;
  else delete u.halfMade;
}
