// Options several commands share. Like every module in commands/, this one is only definitions:
// `--help` and argument checking read them without loading what the commands run.

export const inventoryArg = {
  inventory: {
    type: 'string' as const,
    alias: 'i',
    default: 'inventory/farm.yaml',
    description: 'Inventory file (YAML)',
    valueHint: 'FILE',
  },
};

export const targetArgs = {
  only: { type: 'string' as const, description: 'Upload only to these targets (names or kinds, comma-separated)', valueHint: 'LIST' },
  skip: { type: 'string' as const, description: 'Do not upload to these targets (names or kinds)', valueHint: 'LIST' },
};

export const archArg = {
  arch: { type: 'string' as const, default: 'all', description: 'Arches: all, or a list such as x86_64,s390x', valueHint: 'LIST' },
};

export function jsonArg(description: string) {
  return { json: { type: 'boolean' as const, description } };
}
