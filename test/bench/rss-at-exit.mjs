// Preload (node --import) for the startup bench: at exit, writes the process's peak RSS (KiB) to
// the file named by FARM_RSS_FILE. Loaded the same way for every command measured.

import { writeFileSync } from 'node:fs';

process.on('exit', () => writeFileSync(process.env.FARM_RSS_FILE, `${process.resourceUsage().maxRSS}\n`));
