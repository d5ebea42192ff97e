// A Packer-compatible manifest.json: builds[] with name, builder_type, build_time, files,
// artifact_id, packer_run_uuid and custom_data, plus the farm's own fields (arch, type, worker,
// sha256). One entry per fetched artifact and one per published image, so the AMI ids are
// machine-readable where Packer users look for them.

import type { BuildState, SmokeRecord } from './state.ts';

/** The smoke verdict of one image type (the boot of the disk it shares), if the arch has one. */
export function smokeOf(records: readonly SmokeRecord[] | undefined, type: string): SmokeRecord | undefined {
  return records?.find((r) => (r.types as string[]).includes(type));
}

/** The verdict as custom_data fields: smoke (passed, failed, skipped) and its reason. */
function smokeData(r: SmokeRecord | undefined): Record<string, string> {
  if (!r) return {};
  return { smoke: r.status, ...(r.reason ? { smoke_reason: r.reason } : {}), ...(r.log ? { smoke_log: r.log } : {}) };
}

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
}

export interface ManifestBuild {
  name: string;
  builder_type: string;
  build_time: number;
  files: ManifestFile[];
  artifact_id: string;
  packer_run_uuid: string;
  arch: string;
  type: string;
  image_name: string;
  worker?: string;
  target?: string;
  location?: string;
  custom_data: Record<string, string>;
}

export interface Manifest {
  builds: ManifestBuild[];
  last_run_uuid: string;
}

export function buildManifest(state: BuildState): Manifest {
  const builds: ManifestBuild[] = [];
  for (const a of Object.values(state.arches)) {
    if (!a || a.step !== 'fetched') continue;
    const buildTime = Math.floor(Date.parse(a.at.fetched ?? state.startedAt) / 1000);
    for (const art of a.artifacts) {
      const files = [art.disk, ...art.extra].map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 }));
      builds.push({
        name: `${a.arch}-${art.type}`,
        builder_type: 'farm.bootc-image-builder',
        build_time: buildTime,
        files,
        artifact_id: art.disk.name,
        packer_run_uuid: state.buildId,
        arch: a.arch,
        type: art.type,
        image_name: art.imageName,
        ...((art.worker ?? a.worker) ? { worker: art.worker ?? a.worker } : {}),
        custom_data: {
          build_id: state.buildId,
          ...(state.key ? { build_key: state.key } : {}),
          ...sourceData(state, a.arch),
          ...publishedData(state, a.arch),
          ...smokeData(smokeOf(a.smoke, art.type)),
        },
      });
      for (const up of Object.values(a.uploads)) {
        if (up.step !== 'uploaded' || up.type !== art.type) continue;
        for (const img of up.images) {
          builds.push({
            name: `${a.arch}-${art.type}-${img.target}`,
            builder_type: `farm.upload.${img.kind}`,
            build_time: Math.floor(Date.parse(up.at.uploaded ?? state.startedAt) / 1000),
            files: [],
            artifact_id: img.artifactId,
            packer_run_uuid: state.buildId,
            arch: a.arch,
            type: art.type,
            image_name: img.imageName,
            target: img.target,
            location: img.location,
            custom_data: { build_id: state.buildId, image_id: img.imageId, ...sourceData(state, a.arch), ...smokeData(smokeOf(a.smoke, art.type)) },
          });
        }
      }
    }
  }
  return { builds, last_run_uuid: state.buildId };
}

/** publish_image: where this arch's OCI image and the list naming it were pushed. */
function publishedData(state: BuildState, arch: keyof BuildState['arches']): Record<string, string> {
  const p = state.published;
  const mine = p?.arches[arch];
  if (!p || !mine) return {};
  return { published_image: `${p.repository}@${mine.digest}`, ...(p.list ? { published_list: `${p.list.ref}@${p.list.digest}` } : {}) };
}

/** An image source's reference and digests, for the entries of one arch. */
function sourceData(state: BuildState, arch: keyof BuildState['arches']): Record<string, string> {
  const s = state.source;
  const d = s?.arches[arch];
  return s && d ? { source_image: s.image, source_list_digest: s.digest, source_digest: d } : {};
}
