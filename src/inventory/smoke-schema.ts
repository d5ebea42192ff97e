// The inventory's `smoke:` settings: boot every disk on the worker that built it before it is
// fetched (workers/smoke/). Global, overridden per arch (arches.<arch>.smoke), or `false` (off:
// globally it wins over the arches' objects).
// Every field has a default (workers/smoke/settings.ts SMOKE_DEFAULTS) so an arch's object only
// says what differs.

import { z } from 'zod';
import { nonEmpty } from '../core/fields.ts';

const pattern = z.string().min(1).refine(
  (p) => {
    try {
      new RegExp(p, 'im');
      return true;
    } catch {
      return false;
    }
  },
  'a regular expression (JavaScript syntax), e.g. "login: *$"',
);

export const smokeCheckSchema = z
  .object({
    run: nonEmpty.describe('Command run in the guest over SSH (by its shell), e.g. "uname -m"'),
    exit: z.number().int().min(0).max(255).optional().describe('Expected exit status (default 0)'),
    output: z.string().optional().describe('Expected output, trimmed and exact; {arch} is the arch'),
  })
  .strict();

export const smokeObjectSchema = z
  .object({
    timeout_s: z.number().positive().max(3600).optional().describe('Seconds for the whole check: boot, console pattern and SSH checks (default 300)'),
    console: pattern.optional().describe('Regular expression the serial console must reach (default: a login prompt or "Reached target multi-user.target")'),
    policy: z.enum(['block', 'warn']).optional().describe('block (default): a failed image is not fetched, not uploaded, its arch fails; warn: published and marked'),
    boot: z
      .enum(['firmware', 'direct'])
      .optional()
      .describe("firmware (default): the arch's firmware runs the disk's bootloader; direct: QEMU boots the kernel the disk's /boot/loader/entries names (needs rootfs ext4)"),
    memory_mib: z.number().int().min(128).max(65536).optional().describe('Guest memory (default 512, ppc64le 1024)'),
    ssh: z.boolean().optional().describe('SSH into the guest with the seed key after the console pattern and run the checks (default true)'),
    default_checks: z.boolean().optional().describe('Run `systemctl is-system-running --wait` and `bootc status` first (default true)'),
    allow_degraded: z.boolean().optional().describe('systemctl may answer degraded (default false)'),
    checks: z.array(smokeCheckSchema).optional().describe('Commands run in the guest over SSH, each with its expected exit status or output'),
  })
  .strict();

export const smokeSchema = z
  .union([z.literal(false), smokeObjectSchema])
  .describe('Smoke check: boot each disk with QEMU on its worker before the fetch; false turns it off');

export type SmokeConfig = z.infer<typeof smokeSchema>;
