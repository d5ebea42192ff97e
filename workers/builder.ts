// The builder seam: turns the shared Containerfile into disk images on a worker. prepare() builds
// the image there once; each builder run converts it into a group of types written to its own
// output dir (an arch's runs may be spread over several workers, each preparing its own image).
// Outputs stay on the worker until fetched, then cleanup() removes everything the build created
// there. The real implementation (workers/bib/) builds with podman and converts with
// bootc-image-builder.

import type { Arch } from '../src/core/arch.ts';
import type { ImageType } from '../src/core/image-types.ts';
import type { ContextSummary } from './podman/context.ts';
import type { PullAuth } from './podman/pull.ts';
import type { WorkerTransport } from './transport.ts';

/** How bootc-image-builder runs (the inventory's `builder` settings). */
export interface BuilderSettings {
  image: string;
  pull: 'always' | 'missing' | 'never' | 'newer';
  rootfs: 'xfs' | 'ext4' | 'btrfs';
  extra_args: string[];
  config?: string | undefined;
}

export interface BuildRequest {
  buildId: string;
  arch: Arch;
  source: {
    contextDir: string;
    containerfile: string;
    buildArgs: Record<string, string>;
    /** Paths inside the context that are never sent. */
    exclude: string[];
  };
  builder: BuilderSettings & { configPath?: string | undefined };
  /** An image source: pull this (a repository by the arch's digest) instead of building the source. */
  pull?: { ref: string; auth?: PullAuth | undefined; tlsVerify: boolean } | undefined;
  /** Stops the image build and every run on this worker. */
  signal: AbortSignal;
  /** One line of build or builder output. */
  onLine: (line: string) => void;
}

export interface RemoteOutput {
  type: ImageType;
  /** Absolute path of the disk on the worker. */
  path: string;
  /** Name to record it under (e.g. "ami/disk.raw"). */
  name: string;
}

/** What one builder run wrote on the worker. */
export interface RunOutputs {
  disks: RemoteOutput[];
  /** bib manifests and other small outputs, with the types of the run that wrote them. */
  extras: Array<{ path: string; name: string; types: ImageType[] }>;
}

/** The image built on one worker, ready for builder runs. */
export interface PreparedWorker {
  imageRef: string;
  imageId: string;
  /** What the context tar carried to the worker (none for a pulled image). */
  context?: ContextSummary | undefined;
  /** Builder run `index` (its number in the arch's plan, naming its output dir) for these types. */
  run(index: number, types: ImageType[]): Promise<RunOutputs>;
  /** Removes the image and every run's outputs from the worker (after a verified fetch, or a failure). */
  cleanup(): Promise<void>;
  /** Pushes the prepared image from the worker to `destination` (publish_image); the digest when podman reports it. */
  push?(destination: string, opts: { auth?: PullAuth | undefined; tlsVerify: boolean; signal: AbortSignal }): Promise<{ digest?: string | undefined }>;
}

export interface Builder {
  prepare(transport: WorkerTransport, request: BuildRequest): Promise<PreparedWorker>;
}
