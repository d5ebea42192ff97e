// The image lifecycle as `farm serve` offers it: what the targets hold (channel, current mark), for
// the page, and `farm release` over the API. The listing asks every target, so it is kept for a
// while and refreshed after a release; it is never the build records' idea of the images.

import { errorMessage } from '../core/errors.ts';
import { loadInventory } from '../inventory/load.ts';
import { listRemote, plainImage } from '../pipeline/lifecycle.ts';
import { releaseBuild, type ReleaseOutcome } from '../pipeline/release.ts';
import type { UploaderFactory } from '../pipeline/upload-stage.ts';
import { createUploader } from '../targets.ts';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';
import type { Arch } from '../core/arch.ts';
import type { Clock } from './clock.ts';

/** How long a listing of the targets is reused by GET /api/images. */
export const LISTING_TTL_MS = 60_000;

export interface ImagesView {
  listed_at: string;
  images: RemoteImage[];
  /** Targets that could not be listed (their images are missing above). */
  failures: string[];
}

export class ServiceLifecycle {
  private cached: { at: number; view: Promise<ImagesView> } | undefined;
  /** One release at a time: two would race for the current mark. */
  private releasing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly opts: { inventoryPath: string; env: NodeJS.ProcessEnv; clock: Clock; log: (line: string) => void; factory?: UploaderFactory },
  ) {}

  private factory(): UploaderFactory {
    return this.opts.factory ?? ((target, name) => createUploader(target, name, this.opts.env));
  }

  /** The next listing asks the targets again (a build finished: it may have uploaded images). */
  forget(): void {
    this.cached = undefined;
  }

  images(): Promise<ImagesView> {
    const now = this.opts.clock.now();
    if (!this.cached || now - this.cached.at >= LISTING_TTL_MS) {
      const view = this.list();
      this.cached = { at: now, view };
      // A failed listing is not kept: the next request tries again.
      view.catch(() => (this.cached = undefined));
    }
    return this.cached.view;
  }

  private async list(): Promise<ImagesView> {
    const loaded = await loadInventory(this.opts.inventoryPath);
    const list = await listRemote(loaded, {}, this.factory(), AbortSignal.timeout(120_000));
    return { listed_at: new Date(this.opts.clock.now()).toISOString(), images: list.images.map(plainImage), failures: list.failures };
  }

  /** `farm release BUILD [--arch ...]`, the same code; the outcome is what the CLI's --json prints. */
  release(build: string, arches: Arch[] | undefined, who: string): Promise<ReleaseOutcome> {
    const run = this.releasing.then(async () => {
      const loaded = await loadInventory(this.opts.inventoryPath);
      try {
        const outcome = await releaseBuild(loaded, build, { arches, factory: this.factory(), env: this.opts.env, signal: AbortSignal.timeout(600_000), log: this.opts.log });
        this.opts.log(
          `release ${build} (${who}): released ${outcome.released.length} image(s), unmarked ${outcome.unmarked.length}` +
            (outcome.failures.length ? `; ${outcome.failures.length} failed: ${outcome.failures.join('; ')}` : '') +
            (outcome.hook?.error ? `; ${outcome.hook.error}` : ''),
        );
        return outcome;
      } catch (err) {
        this.opts.log(`release ${build} (${who}) failed: ${errorMessage(err)}`);
        throw err;
      } finally {
        this.cached = undefined;
      }
    });
    this.releasing = run.catch(() => undefined);
    return run;
  }
}
