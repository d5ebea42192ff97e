import { defineCommand } from 'citty';
import { inventoryArg, jsonArg } from './args.ts';

export const checkArgs = {
  ...inventoryArg,
  ...jsonArg('Print the result as JSON: the plan when valid, else every problem (file, line, column, field, message, fix)'),
} as const;

export const schemaArgs = {
  ...jsonArg('Accepted for symmetry: the schema is JSON already'),
} as const;

const check = defineCommand({
  meta: { name: 'check', description: 'Validate the inventory and show what each arch would build' },
  args: checkArgs,
  run: async (ctx) => (await import('../actions/inventory.ts')).check(ctx),
});

const schema = defineCommand({
  meta: { name: 'schema', description: 'Print the inventory JSON Schema (for editors)' },
  args: schemaArgs,
  run: async () => (await import('../actions/inventory.ts')).schema(),
});

export default defineCommand({
  meta: { name: 'inventory', description: 'Check the inventory or print its JSON Schema' },
  subCommands: { check, schema },
});
