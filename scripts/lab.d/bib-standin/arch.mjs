// Which arch an image is for, and bib's refusal to turn an image of one arch into a disk for
// another (bib compares the container's arch with the arch it builds for: the host's, or
// --target-arch, which the stand-in only accepts when it is the host's).

// The image config's Architecture (Go/OCI names) to bib's (uname -m) names.
const OCI_TO_ARCH = { amd64: 'x86_64', arm64: 'aarch64', ppc64le: 'ppc64le', s390x: 's390x' };

/** The arch an image config says it is for, in bib's names ("" when it names none). */
export function imageArch(config) {
  const a = typeof config?.architecture === 'string' ? config.architecture : '';
  return OCI_TO_ARCH[a] ?? a;
}

/** Throws bib's error when the image is not for `buildArch`. */
export function refuseForeignImage(config, buildArch) {
  const arch = imageArch(config);
  if (arch !== buildArch) {
    throw new Error(
      `cannot build manifest: image found is for unexpected architecture "${arch || 'unknown'}" (expected "${buildArch}"), if that is intentional, please make sure --target-arch matches`,
    );
  }
}
