// Write-behind: the disk writes while the network still delivers. After every SYNC_EVERY new
// bytes a datasync starts (not awaited, one at a time), so the fsync before the rename only has
// the tail left to flush.

import type { FileHandle } from 'node:fs/promises';

const SYNC_EVERY = 64 * 1024 * 1024;

export class WriteBehind {
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly every = SYNC_EVERY,
  ) {}

  /** `bytes` more have been written. */
  wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.syncing || this.unsynced < this.every) return;
    this.unsynced = 0;
    this.syncing = this.fh.datasync().then(
      () => {
        this.syncing = undefined;
      },
      (err: unknown) => {
        this.syncing = undefined;
        this.failure ??= err;
      },
    );
  }

  /** Waits for the flush under way; throws if one failed. */
  async settle(): Promise<void> {
    await this.syncing;
    if (this.failure) throw this.failure;
  }
}
