// The command tree: names, descriptions and options only. Each command loads what it runs when it
// runs, so `--help`, argument errors and a light command never import the cloud SDKs.

import { defineCommand } from 'citty';
import build from './build.ts';
import upload from './upload.ts';
import images from './images.ts';
import inventory from './inventory.ts';
import workers from './workers.ts';
import serve from './serve.ts';
import rollback from './rollback.ts';
import release from './release.ts';
import prune from './prune.ts';

export const DESCRIPTION = 'One bootc Containerfile into bootable disk images for every arch and every cloud';

export const root = defineCommand({
  meta: { name: 'farm', description: DESCRIPTION },
  subCommands: { build, upload, images, inventory, workers, serve, rollback, release, prune },
});
