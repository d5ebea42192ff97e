// Regenerates inventory/farm.schema.json: node bin/tsnode.js src/inventory/write-json-schema.ts
// (a unit test fails when the committed file is stale).

import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { JSON_SCHEMA_FILE, inventoryJsonSchemaText } from './json-schema.ts';

const target = fileURLToPath(new URL(`../../inventory/${JSON_SCHEMA_FILE}`, import.meta.url));
await writeFile(target, inventoryJsonSchemaText());
console.log(`wrote ${target}`);
