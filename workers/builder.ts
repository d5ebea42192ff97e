// The builder seam: turns the shared Containerfile into disk images on one worker. The real
// implementation (workers/bib/) builds with podman and converts with bootc-image-builder; outputs
// stay on the worker until fetched, then cleanup() removes everything the build created there.

import type { Arch } from '../src/arch.ts';
import type { ImageType, Inventory } from '../src/inventory/schema.ts';
import type { WorkerTransport } from './transport.ts';

export interface BuildRequest {
  buildId: string;
  arch: Arch;
  /** bib runs: each a list of --type values written to its own output dir. */
  runs: ImageType[][];
  source: { contextDir: string; containerfile: string; buildArgs: Record<string, string> };
  builder: Inventory['builder'] & { configPath?: string | undefined };
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

export interface BuildResult {
  imageRef: string;
  imageId: string;
  disks: RemoteOutput[];
  /** bib manifests and other small outputs, with the types of the run that wrote them. */
  extras: Array<{ path: string; name: string; types: ImageType[] }>;
  /** Removes the built image and the outputs from the worker (after a verified fetch). */
  cleanup(): Promise<void>;
}

export interface Builder {
  build(transport: WorkerTransport, request: BuildRequest): Promise<BuildResult>;
}
