// A preload (node --import) that appends every module URL the process resolves through the ESM
// loader to the file named by FARM_MODULE_LOG: what a command loads, without timing anything.

import { register } from 'node:module';

register('./module-log-hooks.mjs', import.meta.url, { data: { file: process.env.FARM_MODULE_LOG } });
