// Fetches a build's outputs into builds/<id>/<arch>/ and turns them into artifact records.
// Every file is checked against the worker's own sha256 by fetchFile before it gets its name.

import { join, relative } from 'node:path';
import type { ArtifactRecord } from '../records/state.ts';
import { formatBytes } from '../ui/table.ts';
import type { ScopedReporter } from '../ui/reporter.ts';
import type { RunOutputs } from '../../workers/builder.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { TYPE_FORMAT, type ArtifactFile } from '../core/artifact.ts';
import { fetchFile, type FetchResult } from '../../workers/fetch/fetch.ts';
import { errorMessage, isAbortError } from '../core/errors.ts';

const MiB = 1024 * 1024;
// A dropped connection or a stream cut short costs one more try; what fails twice is reported.
const FETCH_ATTEMPTS = 2;

export async function fetchArtifacts(
  transport: WorkerTransport,
  result: RunOutputs,
  archDir: string,
  buildDir: string,
  imageName: string,
  signal: AbortSignal,
  log: ScopedReporter,
): Promise<ArtifactRecord[]> {
  const fetchOne = async (remote: string, name: string): Promise<Omit<ArtifactFile, 'format'>> => {
    const local = join(archDir, name);
    let r: FetchResult | undefined;
    for (let attempt = 1; !r; attempt++) {
      try {
        r = await fetchFile(transport, remote, local, { signal });
      } catch (err) {
        if (isAbortError(err) || attempt >= FETCH_ATTEMPTS) throw err;
        log.warn(`fetching ${name} failed (${errorMessage(err)}); trying again (attempt ${attempt + 1} of ${FETCH_ATTEMPTS})`);
      }
    }
    const rate = r.seconds > 0 ? (r.bytesReceived / MiB / r.seconds).toFixed(0) : '-';
    log.info(
      `fetched ${name}: ${formatBytes(r.size)} (${formatBytes(r.bytesReceived)} over the wire) in ${r.seconds.toFixed(1)} s, ${rate} MiB/s, sha256 ${r.sha256.slice(0, 12)} verified`,
    );
    return { path: local, name: relative(buildDir, local), size: r.size, sha256: r.sha256 };
  };

  // One arch's disks come over one connection one after another: they share the same link, and
  // the other arches' fetches run in parallel on their own connections.
  const extras: Array<ArtifactFile & { types: string[] }> = [];
  for (const e of result.extras) {
    const f = await fetchOne(e.path, e.name);
    extras.push({ ...f, format: 'raw', types: e.types });
  }
  const records: ArtifactRecord[] = [];
  for (const d of result.disks) {
    const f = await fetchOne(d.path, d.name);
    records.push({
      type: d.type,
      imageName,
      disk: { ...f, format: TYPE_FORMAT[d.type] },
      extra: extras.filter((e) => e.types.includes(d.type)).map(({ types: _t, ...file }) => file),
    });
  }
  return records;
}
