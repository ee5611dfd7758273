// Online statistics of audited traffic per submitted class, updated in O(1) per item: since this process started (or
// since it first audited a different model), and over a sliding window of each class's last N items. They live in
// memory; at start the windows are refilled from the stored records of the served model (restoreWindows), so online
// thresholds and drift carry on across a restart, while the since-start figures begin at zero. The mean probability
// of the submitted label is mu_k, the quantity Adaptive Threshold Learning uses.
import type { Verdict } from './judge.js';

export const VERDICTS: readonly Verdict[] = ['clean', 'ambiguous', 'noisy'];

/** What the live statistics keep of one audited item. */
export interface AuditedOutcome {
  label: string;
  labelProbability: number;
  verdict: Verdict;
}

export interface Aggregate {
  count: number;
  /** Mean probability of the submitted label; null before the first item. */
  meanLabelProbability: number | null;
  /** Share of each verdict; all 0 before the first item. */
  verdictRates: Record<Verdict, number>;
}

export interface ClassLive {
  label: string;
  sinceStart: Aggregate;
  window: Aggregate;
}

export interface LiveSnapshot {
  /** When these statistics started: this process's start, or the first audit by a model other than the previous one. */
  since: string;
  /**
   * Whose items the windows hold: this process's (refilled from its own trail at start), or every replica's, read
   * from the shared trail. sinceStart is always this process's.
   */
  windowScope: 'process' | 'shared';
  model: { name: string; version: string } | null;
  windowSize: number;
  classes: ClassLive[];
}

class Running {
  count = 0;
  sum = 0;
  readonly verdicts = [0, 0, 0];

  add(p: number, v: number, sign: 1 | -1): void {
    this.count += sign;
    this.sum += sign * p;
    this.verdicts[v] = (this.verdicts[v] as number) + sign;
  }

  aggregate(): Aggregate {
    const n = this.count;
    const rate = (i: number) => (n === 0 ? 0 : (this.verdicts[i] as number) / n);
    return {
      count: n,
      meanLabelProbability: n === 0 ? null : this.sum / n,
      verdictRates: { clean: rate(0), ambiguous: rate(1), noisy: rate(2) },
    };
  }
}

/** The last `size` items of one class in a ring buffer; the oldest leaves the running sums as a new one enters. */
class Window extends Running {
  private readonly probs: Float64Array;
  private readonly codes: Uint8Array;
  private next = 0;

  constructor(private readonly size: number) {
    super();
    this.probs = new Float64Array(size);
    this.codes = new Uint8Array(size);
  }

  push(p: number, v: number): void {
    if (this.count === this.size) this.add(this.probs[this.next] as number, this.codes[this.next] as number, -1);
    this.probs[this.next] = p;
    this.codes[this.next] = v;
    this.next = (this.next + 1) % this.size;
    this.add(p, v, 1);
  }
}

export class LiveStats {
  private since = new Date();
  private current: { name: string; version: string } | null = null;
  private classes = new Map<string, { total: Running; window: Window }>();

  constructor(readonly windowSize: number) {}

  /**
   * Counts one audited item; statistics restart when the model differs from the previous item's. The first item only
   * names the model: nothing was counted before it, so `since` stays at the process start.
   */
  observe(model: { name: string; version: string }, label: string, labelProbability: number, verdict: Verdict): void {
    if (this.current === null) {
      this.current = { ...model };
    } else if (this.current.name !== model.name || this.current.version !== model.version) {
      this.current = { ...model };
      this.since = new Date();
      this.classes.clear();
    }
    const c = this.entry(label);
    const v = VERDICTS.indexOf(verdict);
    c.total.add(labelProbability, v, 1);
    c.window.push(labelProbability, v);
  }

  /**
   * Refills the windows with items `model` audited before this process started (oldest first within each class), so
   * the window means continue across a restart; nothing is counted since start. Only before the first observed item:
   * afterwards the windows already hold this process's own items.
   */
  restoreWindows(model: { name: string; version: string }, items: readonly AuditedOutcome[]): void {
    if (this.current !== null) throw new Error('restoreWindows must run before the first observed item');
    // Name and version only: callers pass the whole manifest, whose other fields must not reach the snapshot.
    this.current = { name: model.name, version: model.version };
    for (const it of items) this.entry(it.label).window.push(it.labelProbability, VERDICTS.indexOf(it.verdict));
  }

  private entry(label: string): { total: Running; window: Window } {
    let c = this.classes.get(label);
    if (!c) {
      c = { total: new Running(), window: new Window(this.windowSize) };
      this.classes.set(label, c);
    }
    return c;
  }

  /** The model the statistics describe (null before the first item). */
  get model(): { name: string; version: string } | null {
    return this.current && { ...this.current };
  }

  /** The window's mean and count for `label` (count 0 when the class has not been audited). */
  windowMean(label: string): { mean: number | null; count: number } {
    const w = this.classes.get(label)?.window.aggregate();
    return { mean: w?.meanLabelProbability ?? null, count: w?.count ?? 0 };
  }

  /**
   * `classOrder` (the served model's classes) lists every class, audited or not, in that order. `shared`: windows
   * read from the shared trail (restoreWindows into another LiveStats), reported in place of this process's.
   */
  snapshot(classOrder: readonly string[], shared?: LiveStats): LiveSnapshot {
    const windows = shared ?? this;
    const labels = [...new Set([...classOrder, ...this.classes.keys(), ...windows.classes.keys()])];
    const empty = new Running().aggregate();
    return {
      since: this.since.toISOString(),
      windowScope: shared ? 'shared' : 'process',
      model: shared ? shared.model : this.current && { ...this.current },
      windowSize: this.windowSize,
      classes: labels.map((label) => {
        const c = this.classes.get(label);
        return { label, sinceStart: c?.total.aggregate() ?? empty, window: windows.classes.get(label)?.window.aggregate() ?? empty };
      }),
    };
  }
}
