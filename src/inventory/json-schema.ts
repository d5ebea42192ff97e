// JSON Schema of the inventory, generated from the zod schema so the two cannot drift. Editors use
// it (yaml-language-server) for completion and checks while the inventory is written.

import { z } from 'zod';
import { inventorySchema } from './schema.ts';

export const JSON_SCHEMA_FILE = 'farm.schema.json';

export function inventoryJsonSchema(): Record<string, unknown> {
  // io 'input': fields with defaults are optional in what a person writes. draft-07 because it is
  // the draft editors support best.
  const generated = z.toJSONSchema(inventorySchema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: 'farm inventory',
    description:
      'What farm builds (source, builder), where (workers, one native host per arch) and where the images go (arches.<arch>.targets). Paths are relative to the inventory file.',
    ...rest,
  };
}

/** The schema as written to inventory/farm.schema.json (and printed by `farm inventory schema`). */
export function inventoryJsonSchemaText(): string {
  return `${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`;
}
