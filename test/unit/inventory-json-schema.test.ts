import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ARCHES } from '../../src/core/arch.ts';
import { inventoryJsonSchema, inventoryJsonSchemaText } from '../../src/inventory/json-schema.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minItems?: number;
  minLength?: number;
};

/**
 * A small validator for the JSON Schema keywords the generated schema uses, enough to show the
 * committed schema accepts the example and rejects what the loader rejects (no extra dependency).
 */
function validate(schema: JsonSchema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  if (schema.oneOf) {
    const passing = schema.oneOf.filter((s) => validate(s, value, path).length === 0);
    return passing.length === 1 ? [] : [`${path}: matches ${passing.length} of oneOf`];
  }
  if (schema.const !== undefined && value !== schema.const) errors.push(`${path}: not ${String(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${path}: ${String(value)} not in enum`);
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${path}: not an object`];
      const obj = value as Record<string, unknown>;
      for (const key of schema.required ?? []) if (!(key in obj)) errors.push(`${path}.${key}: required`);
      for (const [key, v] of Object.entries(obj)) {
        if (schema.propertyNames) errors.push(...validate(schema.propertyNames, key, `${path}{${key}}`));
        const prop = schema.properties?.[key];
        if (prop) errors.push(...validate(prop, v, `${path}.${key}`));
        else if (schema.additionalProperties === false) errors.push(`${path}.${key}: not allowed`);
        else if (typeof schema.additionalProperties === 'object') errors.push(...validate(schema.additionalProperties, v, `${path}.${key}`));
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) return [`${path}: not an array`];
      if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: too few items`);
      value.forEach((item, i) => schema.items && errors.push(...validate(schema.items, item, `${path}[${i}]`)));
      break;
    case 'string':
      if (typeof value !== 'string') return [`${path}: not a string`];
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
      if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: too short`);
      break;
    case 'number':
    case 'integer':
      if (typeof value !== 'number') return [`${path}: not a number`];
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return [`${path}: not a boolean`];
      break;
  }
  return errors;
}

describe('inventory JSON Schema', () => {
  it('the committed inventory/farm.schema.json equals a fresh generation (regenerate: node bin/tsnode.js src/inventory/write-json-schema.ts)', async () => {
    const committed = await readFile(join(ROOT, 'inventory/farm.schema.json'), 'utf8');
    expect(committed).toBe(inventoryJsonSchemaText());
    expect(JSON.parse(committed)).toEqual(inventoryJsonSchema());
  });

  it('describes the inventory: draft-07, title, required sections, defaults optional', () => {
    const s = inventoryJsonSchema() as JsonSchema & { $schema: string; title: string; description: string };
    expect(s.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(s.title).toBe('farm inventory');
    expect(s.description).toMatch(/workers/);
    expect(Object.keys(s.properties!)).toEqual(['version', 'source', 'builder', 'naming', 'settings', 'workers', 'pools', 'arches', 'service', 'smoke', 'release', 'retention']);
    expect(s.required).toEqual(['version', 'source']);
    expect(s.additionalProperties).toBe(false);
    const worker = s.properties!.workers!.items!;
    // io: 'input' — a field with a default (port, user, storage...) need not be written.
    expect(worker.required).toEqual(['name', 'host', 'arch']);
    expect(worker.properties!.arch!.enum).toEqual([...ARCHES]);
    expect(worker.properties!.storage!.pattern).toBe('^\\/');
    const arches = s.properties!.arches!;
    expect(arches.propertyNames!.enum).toEqual([...ARCHES]);
    const targets = (arches.additionalProperties as JsonSchema).properties!.targets!.items!;
    expect(targets.oneOf!.map((t) => t.properties!.kind!.const)).toEqual(['aws', 'ibmcloud', 'libvirt', 'openstack', 'azure']);
  });

  it('accepts the example inventory and rejects what the loader rejects', async () => {
    const schema = inventoryJsonSchema() as JsonSchema;
    const example = parse(await readFile(join(ROOT, 'inventory/farm.yaml'), 'utf8')) as {
      workers: Record<string, unknown>[];
      arches: Record<string, { targets: Record<string, unknown>[] }>;
    };
    expect(validate(schema, example)).toEqual([]);

    const broken = structuredClone(example);
    broken.workers[1]!.arch = 'arm64';
    broken.workers[0]!.hostt = 'x';
    broken.arches.x86_64!.targets[0]!.kind = 'gcp';
    expect(validate(schema, broken)).toEqual([
      '$.workers[0].hostt: not allowed',
      '$.workers[1].arch: arm64 not in enum',
      '$.arches.x86_64.targets[0]: matches 0 of oneOf',
    ]);
  });
});
