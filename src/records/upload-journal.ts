// The upload journal: each object an upload is about to create is recorded in the build's
// state.json (through the BuildRecord, so atomically and in order with every other change) before
// the create call, its id added once known, and its record dropped once the object is removed or
// the upload is recorded as done. What a killed run leaves in the record is what it left half-made
// in the cloud; the next run of the upload removes it first (src/pipeline/upload-stage.ts).

import { randomBytes } from 'node:crypto';
import type { Arch } from '../core/arch.ts';
import type { HalfMade, JournalEntry, UploadJournal } from '../../uploaders/uploader.ts';
import type { BuildRecord } from './build-record.ts';
import type { HalfMadeRecord } from './state.ts';

/** A token that tells this attempt's objects from every other's (tags allow few characters). */
export function attemptToken(): string {
  return randomBytes(6).toString('hex');
}

export class StateJournal implements UploadJournal {
  readonly attempt = attemptToken();
  private seq = 0;

  constructor(
    private readonly record: BuildRecord,
    private readonly arch: Arch,
    /** The upload record's key (the target's name); the record must exist. */
    private readonly target: string,
  ) {}

  async begin(object: Omit<HalfMade, 'attempt'>): Promise<JournalEntry> {
    const key = `${this.attempt}.${++this.seq}`;
    const entry: HalfMadeRecord = { ...object, attempt: this.attempt, key, at: new Date().toISOString() };
    await this.record.halfMadeBegun(this.arch, this.target, entry);
    return {
      identify: (id) => this.record.halfMadeIdentified(this.arch, this.target, key, id),
      drop: () => this.drop([key]),
    };
  }

  /** Drops the records with these keys (objects removed or found complete). */
  drop(keys: readonly string[]): Promise<void> {
    return this.record.halfMadeDropped(this.arch, this.target, keys);
  }
}
