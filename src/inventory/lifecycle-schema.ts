// The inventory's image lifecycle sections (issue 13): `release` (what `farm release` runs and
// whether a successful build releases itself) and `retention` (the policy of `farm prune`).

import { z } from 'zod';
import { nonEmpty } from '../core/fields.ts';

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

export const releaseSchema = z
  .object({
    auto: z.boolean().default(false).describe('Release a build as soon as it succeeds (`release: { auto: true }`)'),
    hook: z
      .object({
        command: z.array(nonEmpty).min(1).optional().describe('Run this command (argv, no shell) with the released images (JSON) on stdin'),
        webhook: z.string().regex(/^https?:\/\/\S+$/, 'an http:// or https:// URL').optional().describe('POST the released images (JSON) to this URL'),
        env: z.array(envName).default([]).describe('Environment variables the command gets besides PATH, HOME and LANG (never the cloud credentials)'),
        timeout_s: z.number().int().min(1).max(3600).default(60).describe('Seconds the command or webhook may take'),
      })
      .strict()
      .optional()
      .describe('Told the released images: how pools or Ansible variables switch to them'),
  })
  .strict();

export const retentionSchema = z
  .object({
    keep: z.number().int().min(1).default(3).describe('Newest images per arch and target prune never touches'),
    unused_days: z.number().int().min(1).default(30).describe('A candidate unused (not launched) this long, or a released image this old and not current, is deprecated'),
    delete_after_days: z.number().int().min(0).default(30).describe('Days an image stays deprecated before prune deletes it'),
    max_deletions: z.number().int().min(1).default(50).describe('Most images one prune deletes (more needs --max)'),
  })
  .strict();

export type ReleaseConfig = z.infer<typeof releaseSchema>;
export type RetentionPolicy = z.infer<typeof retentionSchema>;
