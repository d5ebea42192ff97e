// The names IBM Cloud VPC gives the farm's images. Pure, shared by `farm inventory check` and the
// uploader, so a name VPC would refuse after the COS upload is refused before anything is built.
//
// VPC API, image `name`: 1-63 characters matching ^([a-z]|[a-z][-a-z0-9]*[a-z0-9])$ (the pattern
// IBM's terraform provider validates ibm_is_image names with, ibm/service/vpc/resource_ibm_is_image.go),
// and "Names starting with `ibm-` are reserved for system-provided images, and are not allowed"
// (IBM's VPC SDK, ImagePrototype.name; https://cloud.ibm.com/apidocs/vpc/latest#create-image).

export const VPC_NAME_MAX = 63;
const VPC_NAME = /^([a-z]|[a-z][-a-z0-9]*[a-z0-9])$/;

/** What VPC allows, for messages. */
export const VPC_NAME_ALLOWED = `1-${VPC_NAME_MAX} lower-case letters, digits and '-', starting with a letter, ending with a letter or digit, not starting with 'ibm-'`;

/** VPC image names allow lower-case letters, digits and '-': map the farm's '_' and '.' (x86_64!). */
export function vpcImageName(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}

/** Why VPC would refuse this image name, or undefined when it is fine. */
export function imageNameProblem(name: string): string | undefined {
  if (name.length > VPC_NAME_MAX) return `'${name}' is ${name.length} characters long; VPC image names have at most ${VPC_NAME_MAX}`;
  if (!VPC_NAME.test(name)) {
    return `'${name}' is not a valid VPC image name: use lower-case letters, digits and '-', start with a letter and end with a letter or digit`;
  }
  if (name.startsWith('ibm-')) return `'${name}' starts with 'ibm-', which VPC reserves for its own images`;
  return undefined;
}
