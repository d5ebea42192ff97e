// The farm's version, from package.json (the same reader bin/fast-path.js uses).

import { version } from '../../bin/fast-path.js';

export const VERSION = version();
