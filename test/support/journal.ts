// An upload journal for tests that calls the uploader directly: it keeps the records in memory
// and can freeze the upload at one record (begin or identify never returns), which leaves the
// cloud exactly as a coordinator killed at that moment would: nothing after it runs, no rollback.

import type { HalfMade, JournalEntry, UploadJournal } from '../../uploaders/uploader.ts';

export type JournalStep = { op: 'begin' | 'identify'; object: HalfMade };

export class TestJournal implements UploadJournal {
  readonly attempt: string;
  /** The records a killed run would leave, in the order they were made. */
  readonly records: HalfMade[] = [];
  /** Resolves when the upload reached the freeze point. */
  readonly frozen: Promise<JournalStep>;
  private reached!: (s: JournalStep) => void;

  constructor(
    private readonly freezeAt: (step: JournalStep) => boolean = () => false,
    attempt = `t${Date.now().toString(16)}`,
  ) {
    this.attempt = attempt;
    this.frozen = new Promise((r) => (this.reached = r));
  }

  private async pass(step: JournalStep): Promise<void> {
    if (!this.freezeAt(step)) return;
    this.reached(step);
    await new Promise<never>(() => {}); // the process is gone: nothing after this runs
  }

  async begin(o: Omit<HalfMade, 'attempt'>): Promise<JournalEntry> {
    const object: HalfMade = { ...o, attempt: this.attempt };
    this.records.push(object);
    await this.pass({ op: 'begin', object });
    return {
      identify: async (id) => {
        object.id = id;
        await this.pass({ op: 'identify', object });
      },
      drop: async () => {
        const i = this.records.indexOf(object);
        if (i >= 0) this.records.splice(i, 1);
      },
    };
  }
}
