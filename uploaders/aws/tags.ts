// The tags EC2 takes on AMIs and snapshots. Pure, so `farm inventory check` refuses a tag that
// CreateTags would refuse only after the upload.
//
// AWS tag restrictions: "Maximum key length – 128 Unicode characters in UTF-8; Maximum value length
// – 256 Unicode characters in UTF-8; Don't use aws:, AWS:, or any upper or lowercase combination of
// such as a prefix for either keys or values, as it is reserved for AWS use"
// (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html, the EC2 Tag type).

export const TAG_KEY_MAX = 128;
export const TAG_VALUE_MAX = 256;

/** Why EC2 would refuse this tag, or undefined when it takes it. */
export function tagProblem(key: string, value: string): string | undefined {
  const keyLength = [...key].length;
  const valueLength = [...value].length;
  if (keyLength === 0) return 'a tag key cannot be empty';
  if (keyLength > TAG_KEY_MAX) return `the tag key is ${keyLength} characters long; AWS takes at most ${TAG_KEY_MAX}`;
  if (valueLength > TAG_VALUE_MAX) return `the value of tag '${key}' is ${valueLength} characters long; AWS takes at most ${TAG_VALUE_MAX}`;
  if (/^aws:/i.test(key)) return `the tag key '${key}' starts with 'aws:', which AWS reserves for its own tags`;
  if (/^aws:/i.test(value)) return `the value of tag '${key}' starts with 'aws:', which AWS reserves for its own tags`;
  return undefined;
}
