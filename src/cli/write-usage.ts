// Writes bin/usage.json, the usage pages bin/fast-path.js answers --help from.
//   node bin/tsnode.js src/cli/write-usage.ts

import { writeFileSync } from 'node:fs';
import { USAGE_FILE } from '../../bin/fast-path.js';
import { usagePages } from './usage-pages.ts';

writeFileSync(USAGE_FILE, JSON.stringify(usagePages(), null, 1) + '\n');
