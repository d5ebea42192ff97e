// Azure resource names as Microsoft.Compute takes them. Pure, so that `farm inventory check` and
// the uploader apply one rule: a name ARM would refuse only after the VHD is uploaded is refused
// before anything is built.
//
// Azure naming rules (Microsoft.Compute/images and galleries/images): "1-80 characters.
// Alphanumerics, underscores, periods, and hyphens. Start with alphanumeric. End with
// alphanumeric or underscore." Gallery image versions are named "Major.Minor.Patch", each part a
// 32-bit integer (learn.microsoft.com, "Naming rules and restrictions for Azure resources").

export const IMAGE_NAME_MAX = 80;
const IMAGE_CHAR = /[A-Za-z0-9._-]/;

/** What Azure allows, for messages. */
export const IMAGE_NAME_ALLOWED = `1-${IMAGE_NAME_MAX} characters: letters, digits, '.', '_' and '-', starting with a letter or digit and ending with a letter, digit or '_'`;

/** Why Azure would refuse this managed image (or gallery image definition) name, or undefined. */
export function imageNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty; Azure image names have 1-80 characters';
  const bad = [...new Set([...name].filter((c) => !IMAGE_CHAR.test(c)))];
  if (bad.length > 0) return `'${name}' contains ${bad.map((c) => JSON.stringify(c)).join(', ')}, which Azure image names cannot hold`;
  if (name.length > IMAGE_NAME_MAX) return `'${name}' is ${name.length} characters long; Azure image names have at most ${IMAGE_NAME_MAX}`;
  if (!/^[A-Za-z0-9]/.test(name)) return `'${name}' starts with '${name[0]}'; Azure image names start with a letter or digit`;
  if (!/[A-Za-z0-9_]$/.test(name)) return `'${name}' ends with '${name.at(-1)}'; Azure image names end with a letter, digit or '_'`;
  return undefined;
}

const INT32_MAX = 2 ** 31 - 1;

/** Why Azure would refuse this gallery image version name, or undefined. */
export function versionNameProblem(version: string): string | undefined {
  const parts = version.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^\d{1,10}$/.test(p) && Number(p) <= INT32_MAX)) {
    return `'${version}' is not Major.Minor.Patch with each part a 32-bit integer`;
  }
  return undefined;
}

/**
 * The gallery image version for a build finished at `builtAt` (UTC ISO time): YYYYmmdd.HHMMSS.N.
 * Versions sort by build time, as gallery consumers pick "latest"; N separates builds that
 * finished in the same second (the farm's attempt number, 0 first).
 */
export function galleryVersion(builtAt: string, n = 0): string {
  const d = new Date(builtAt);
  if (Number.isNaN(d.getTime())) throw new Error(`'${builtAt}' is not a time`);
  const p = (v: number, w = 2) => String(v).padStart(w, '0');
  const date = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`;
  const time = `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
  return `${Number(date)}.${Number(time)}.${n}`;
}

/** The staging blob of one upload attempt (blob names allow far more than image names). */
export function stagingBlobName(imageName: string, attempt: string): string {
  return `${imageName}.${attempt}.vhd`;
}
