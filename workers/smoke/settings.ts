// What a smoke check does for one arch (the inventory's `smoke:` settings, global merged with the
// arch's own): the coordinator resolves them, the worker side (./smoke.ts) only reads them.

/** A command run in the guest over SSH, with what it must give. */
export interface SmokeCheck {
  run: string;
  /** Expected exit status (default 0). */
  exit: number;
  /** Expected output (trimmed, exact): any one of these; `{arch}` is the arch's name. */
  output?: string[] | undefined;
}

export interface SmokeSettings {
  /** Seconds for the whole check (boot, console pattern, SSH checks). */
  timeout_s: number;
  /** Regular expression the console must reach (multi-line, case-insensitive). */
  console: string;
  /** block: a failed image is neither fetched nor published; warn: it is, marked failed. */
  policy: 'block' | 'warn';
  /** How the guest starts: its firmware and its disk's bootloader, or QEMU loading the kernel that
   *  the disk's /boot/loader/entries names (for disks whose bootloader the firmware cannot run). */
  boot: 'firmware' | 'direct';
  memory_mib?: number | undefined;
  /** SSH in after the console pattern and run the checks. */
  ssh: boolean;
  /** Run `systemctl is-system-running --wait` and `bootc status` before the user checks. */
  default_checks: boolean;
  /** `systemctl is-system-running` may answer degraded. */
  allow_degraded: boolean;
  checks: SmokeCheck[];
}

/** The console pattern by default: a login prompt or systemd's multi-user target. */
export const DEFAULT_CONSOLE = 'login: *$|Reached target .*Multi-User System|Reached target multi-user\\.target';

export const SMOKE_DEFAULTS: SmokeSettings = {
  timeout_s: 300,
  console: DEFAULT_CONSOLE,
  policy: 'block',
  boot: 'firmware',
  ssh: true,
  default_checks: true,
  allow_degraded: false,
  checks: [],
};

/** The inventory's shape as far as smoke goes (structural: workers/ cannot import the inventory). */
export type SmokeInput = { [K in keyof Omit<SmokeSettings, 'checks'>]?: SmokeSettings[K] | undefined } & {
  checks?: Array<{ run: string; exit?: number | undefined; output?: string | undefined }> | undefined;
};
export interface SmokeInventory {
  smoke?: false | SmokeInput | undefined;
  arches?: Partial<Record<string, { smoke?: false | SmokeInput | undefined } | undefined>> | undefined;
}

/**
 * The settings for one arch, or undefined when its smoke check is off: `smoke: false` globally
 * turns it off everywhere (arch objects then only wait), for an arch only there; an arch's object
 * overrides the global fields, and turns the check on for that arch when there is no global one.
 */
export function smokeFor(inv: SmokeInventory, arch: string): SmokeSettings | undefined {
  const global = inv.smoke;
  const own = inv.arches?.[arch]?.smoke;
  if (global === false || own === false || (own === undefined && global === undefined)) return undefined;
  const strip = (o: SmokeInput) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as SmokeInput;
  const { checks, ...rest } = { ...strip(global || {}), ...strip(own || {}) };
  return {
    ...SMOKE_DEFAULTS,
    ...rest,
    checks: (checks ?? []).map((c) => ({ run: c.run, exit: c.exit ?? 0, ...(c.output !== undefined ? { output: [c.output] } : {}) })),
  };
}

/** The default checks, then the user's. */
export function checksFor(s: SmokeSettings, arch: string): SmokeCheck[] {
  const out: SmokeCheck[] = [];
  if (s.ssh && s.default_checks) {
    // --wait blocks until boot ends; `|| true` keeps its answer (running, degraded, ...) for the
    // comparison below instead of a bare exit status.
    out.push({ run: 'systemctl is-system-running --wait || true', exit: 0, output: s.allow_degraded ? ['running', 'degraded'] : ['running'] });
    out.push({ run: 'bootc status', exit: 0 });
  }
  if (s.ssh) out.push(...s.checks.map((c) => (c.output === undefined ? c : { ...c, output: c.output.map((o) => o.replaceAll('{arch}', arch)) })));
  return out;
}
