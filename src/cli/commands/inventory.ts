import { defineCommand } from 'citty';
import { inventoryJsonSchema } from '../../inventory/json-schema.ts';
import { inventoryArches, planBuild } from '../../plan/plan.ts';
import { renderTable } from '../../ui/table.ts';
import { inventoryArg, loadFromArgs } from '../inventory-arg.ts';
import { out } from '../io.ts';

const check = defineCommand({
  meta: { name: 'check', description: 'Validate the inventory and show what each arch would build' },
  args: { ...inventoryArg },
  async run({ args }) {
    const loaded = await loadFromArgs(args);
    const plan = planBuild(loaded, inventoryArches(loaded), '19700101t000000z');
    const rows = plan.arches.map((a) => [
      a.arch,
      a.workers.map((w) => w.name).join(', '),
      a.types.join(', '),
      a.runs.map((r) => r.join('+')).join(' | '),
      a.targets.map((t) => t.kind).join(', ') || '-',
    ]);
    out(`${loaded.file}: valid\n`);
    out(renderTable(['ARCH', 'WORKERS', 'TYPES', 'BUILDER RUNS', 'TARGETS'], rows));
    for (const u of plan.unbuildable) out(`${u.arch}: ${u.reason}`);
  },
});

const schema = defineCommand({
  meta: { name: 'schema', description: 'Print the inventory JSON Schema (for editors)' },
  run() {
    out(JSON.stringify(inventoryJsonSchema(), null, 2));
  },
});

export default defineCommand({
  meta: { name: 'inventory', description: 'Check the inventory or print its JSON Schema' },
  subCommands: { check, schema },
});
