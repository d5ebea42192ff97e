// Glance image names. Pure, shared by `farm inventory check` and the uploader.
//
// Glance v2's image schema gives `name` "maxLength": 255 (glance/api/v2/images.py,
// get_base_properties; the images table's name column is VARCHAR(255)); any other text is allowed.
// JSON Schema counts characters (code points), not UTF-16 units or bytes.

export const GLANCE_NAME_MAX = 255;

export const GLANCE_NAME_ALLOWED = `at most ${GLANCE_NAME_MAX} characters`;

/** Why Glance would refuse this image name, or undefined when it takes it. */
export function glanceNameProblem(name: string): string | undefined {
  const length = [...name].length;
  if (length > GLANCE_NAME_MAX) return `'${name}' is ${length} characters long; Glance image names have at most ${GLANCE_NAME_MAX}`;
  return undefined;
}
