// The live windows of every replica writing one shared trail: the last N stored items of each class audited with the
// served model, read with one bounded query per class (about N rows each, down the (label, seq) index) and reused for
// a short interval, so drift and online thresholds describe all the traffic while each replica reads the database at
// most once per interval.
import { LiveStats } from './live-stats.js';
import type { AuditStore } from './store.js';

type ModelRef = { name: string; version: string };

interface Read {
  key: string;
  at: number;
  windows: LiveStats;
}

export class SharedWindows {
  private last: Read | undefined;
  private pending: Promise<LiveStats> | undefined;

  constructor(
    private readonly store: Pick<AuditStore, 'recentOutcomes'>,
    readonly windowSize: number,
    /** Windows read less than this long ago are reused. */
    private readonly ttlMs: number,
  ) {}

  /** `model`'s windows, read again when the last read is older than the interval; concurrent callers share a read. */
  async read(model: ModelRef, classes: readonly string[]): Promise<LiveStats> {
    const fresh = this.fresh(model, classes);
    if (fresh) return fresh;
    return this.refresh(model, classes);
  }

  /**
   * The last windows read for `model`, however old (undefined before the first), without waiting; a stale one starts
   * a read in the background for the next caller.
   */
  latest(model: ModelRef, classes: readonly string[]): LiveStats | undefined {
    if (!this.fresh(model, classes)) this.refresh(model, classes).catch(() => undefined);
    return this.last?.key === keyOf(model, classes) ? this.last.windows : undefined;
  }

  private fresh(model: ModelRef, classes: readonly string[]): LiveStats | undefined {
    const last = this.last;
    return last && last.key === keyOf(model, classes) && Date.now() - last.at < this.ttlMs ? last.windows : undefined;
  }

  private refresh(model: ModelRef, classes: readonly string[]): Promise<LiveStats> {
    this.pending ??= (async () => {
      try {
        const started = Date.now();
        const items = await this.store.recentOutcomes(model, classes, this.windowSize);
        const windows = new LiveStats(this.windowSize);
        windows.restoreWindows(model, items);
        this.last = { key: keyOf(model, classes), at: started, windows };
        return windows;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }
}

function keyOf(model: ModelRef, classes: readonly string[]): string {
  return JSON.stringify([model.name, model.version, classes]);
}
