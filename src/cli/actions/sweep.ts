// `farm workers sweep [--dry-run] [--json]`: pool VMs earlier runs left, given back (src/pipeline/sweep.ts).

import type { CommandContext } from 'citty';
import { sweepPools } from '../../pipeline/sweep.ts';
import { renderTable } from '../../ui/table.ts';
import type { sweepArgs } from '../commands/workers.ts';
import { io, out } from '../io.ts';
import { loadFromArgs } from './args.ts';

export async function sweep({ args }: CommandContext<typeof sweepArgs>): Promise<void> {
  const loaded = await loadFromArgs(args);
  const items = await sweepPools(loaded, { dryRun: Boolean(args['dry-run']) });
  if (args.json) out(JSON.stringify(items, null, 2));
  else if (items.length === 0) out('no pool VMs left by earlier runs');
  else {
    out(
      renderTable(
        ['BUILD', 'POOL', 'PROVIDER', 'ID', 'HOST', 'AGE', 'REASON', 'OUTCOME'],
        items.map((i) => [i.build, i.pool, i.provider, i.id, i.host ?? '-', `${i.ageSeconds} s`, i.reason, i.outcome + (i.error ? `: ${i.error}` : '')]),
      ),
    );
  }
  if (items.some((i) => i.outcome === 'failed' || i.outcome === 'pool not in the inventory')) io().exitCode = 1;
}
