// Reading EC2 Query parameters: flat form fields where lists are numbered from 1
// (Filter.1.Name, Filter.1.Value.1, BlockDeviceMapping.1.Ebs.SnapshotId).

export class QueryParams {
  constructor(private readonly p: URLSearchParams) {}

  get(name: string): string | undefined {
    return this.p.get(name) ?? undefined;
  }

  has(name: string): boolean {
    return this.p.has(name);
  }

  /** The prefixes `${prefix}.N` present, in N order. */
  members(prefix: string): string[] {
    const seen = new Set<number>();
    const lead = `${prefix}.`;
    for (const key of this.p.keys()) {
      if (!key.startsWith(lead)) continue;
      const n = Number.parseInt(key.slice(lead.length), 10);
      if (Number.isInteger(n) && n >= 1) seen.add(n);
    }
    return [...seen].sort((a, b) => a - b).map((n) => `${prefix}.${n}`);
  }

  /** Values of `${prefix}.N` (a list of scalars). */
  list(prefix: string): string[] {
    return this.members(prefix)
      .map((m) => this.get(m))
      .filter((v): v is string => v !== undefined);
  }

  bool(name: string): boolean | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    return v.toLowerCase() === 'true';
  }

  keys(): string[] {
    return [...this.p.keys()];
  }
}
