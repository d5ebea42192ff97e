// libvirt volume names, as the farm gives them. Pure, shared by `farm inventory check` and the
// uploader (which checks again before every virsh call that takes a name).
//
// libvirt refuses a '/' in the name of a volume in a directory pool ("Volumes within a directory
// pools are not recursive; do not allow escape to ../ or a subdir": "volume name '%s' cannot contain
// '/'", src/storage/storage_util.c, virStorageBackendVolCreateLocal), and the name becomes a file
// name there, so at most NAME_MAX (255) bytes. The farm is stricter: a name is never '.', '..', a
// hidden file or a virsh option (leading '-'), and holds only characters that need no quoting.

export const VOLUME_NAME_MAX = 255;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export const VOLUME_NAME_ALLOWED = `1-${VOLUME_NAME_MAX} letters, digits, '.', '_', '+' and '-', starting with a letter or digit`;

/** Why the farm will not create a volume of this name, or undefined when it will. */
export function volumeNameProblem(name: string): string | undefined {
  if (name === '') return 'a volume name cannot be empty';
  if (name.includes('/')) return `'${name}' contains '/': a volume name is a file name in the pool, never a path`;
  if (name.length > VOLUME_NAME_MAX) return `'${name}' is ${name.length} characters long; volume names have at most ${VOLUME_NAME_MAX}`;
  if (!VOLUME_NAME.test(name)) {
    return `'${name}' cannot be a libvirt volume name: use letters, digits, '.', '_', '+' and '-', starting with a letter or digit`;
  }
  return undefined;
}
