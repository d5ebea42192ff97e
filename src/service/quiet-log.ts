// Lines that a stranger can cause (every refused request logs one) are kept to a few a minute per
// kind, so a flood of requests does not become a flood of log; the next line of that kind says how
// many were left out. The metrics still count every one.

export class QuietLog {
  private readonly windows = new Map<string, { start: number; shown: number; hidden: number }>();

  constructor(
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
    private readonly perMinute = 10,
  ) {}

  line(kind: string, text: string): void {
    const now = this.now();
    let w = this.windows.get(kind);
    if (!w || now - w.start >= 60_000) {
      if (w?.hidden) this.log(`${w.hidden} more ${kind} line(s) in the minute from ${new Date(w.start).toISOString()} not shown`);
      w = { start: now, shown: 0, hidden: 0 };
      this.windows.set(kind, w);
    }
    if (w.shown < this.perMinute) {
      w.shown++;
      this.log(text);
    } else w.hidden++;
  }
}
