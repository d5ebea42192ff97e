// AMI names as EC2 takes them (RegisterImage, CopyImage). Pure, so that `farm inventory check` and
// the uploader apply one rule: a name AWS would refuse only after the snapshot is uploaded is
// refused before anything is built.
//
// EC2 API reference, RegisterImage/CreateImage `Name`: "Constraints: 3-128 alphanumeric characters,
// parentheses (()), square brackets ([]), spaces ( ), periods (.), slashes (/), dashes (-), single
// quotes ('), at-signs (@), or underscores(_)"
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RegisterImage.html).

export const AMI_NAME_MIN = 3;
export const AMI_NAME_MAX = 128;
const AMI_CHAR = /[A-Za-z0-9()[\] ./'@_-]/;

/** What AWS allows, for messages. */
export const AMI_NAME_ALLOWED = `${AMI_NAME_MIN}-${AMI_NAME_MAX} characters: letters, digits, spaces and ( ) [ ] . / - ' @ _`;

/** Why EC2 would refuse this AMI name, or undefined when it takes it. */
export function amiNameProblem(name: string): string | undefined {
  const bad = [...new Set([...name].filter((c) => !AMI_CHAR.test(c)))];
  if (bad.length > 0) return `'${name}' contains ${bad.map((c) => JSON.stringify(c)).join(', ')}, which AMI names cannot hold`;
  if (name.length < AMI_NAME_MIN) return `'${name}' is ${name.length} characters long; AMI names have at least ${AMI_NAME_MIN}`;
  if (name.length > AMI_NAME_MAX) return `'${name}' is ${name.length} characters long; AMI names have at most ${AMI_NAME_MAX}`;
  return undefined;
}
