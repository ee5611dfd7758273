// The audit trail as the audit routes use it: which thresholds judge the next items (the bundle's, or re-estimated
// online), committing audited items and then counting them in the live statistics, and the summary with its live and
// drift sections.
import type { BundleManifest, Thresholds } from '../bundle/load-bundle.js';
import { detectDrift, type DriftReport } from './drift.js';
import { LiveStats, type LiveSnapshot } from './live-stats.js';
import type { AuditFilters } from './query.js';
import type { NewAuditRecord, ThresholdSource } from './judge.js';
import { AuditStore, type StoreOptions } from './store.js';
import type { AuditSummary } from './summary.js';
import { adaptiveThresholds } from './online-thresholds.js';

export interface TrailOptions {
  /** Re-estimate thresholds from the live window's class means (ASM_FER_ONLINE_THRESHOLDS). */
  onlineThresholds: boolean;
  driftThreshold: number;
  /** Fewest window items before a class can drift or its live mean replaces the training mean. */
  minSamples: number;
}

export interface ThresholdChoice {
  source: ThresholdSource;
  byClass: Record<string, Thresholds>;
}

export interface FullSummary extends AuditSummary {
  live: LiveSnapshot;
  drift: DriftReport;
  thresholds: ThresholdChoice;
}

type Model = Pick<BundleManifest, 'name' | 'version' | 'classes' | 'thresholds' | 'thresholdLearning'>;

export class AuditTrail {
  constructor(
    readonly store: AuditStore,
    readonly live: LiveStats,
    private readonly opts: TrailOptions,
  ) {}

  /** Live means are used only when they describe `model` and measure the bundle's statistic (given-label). */
  private windowMean(model: Model): (label: string) => { mean: number | null; count: number } {
    const current = this.live.model;
    const same = current?.name === model.name && current.version === model.version;
    return (label) => (same ? this.live.windowMean(label) : { mean: null, count: 0 });
  }

  /**
   * Online: mu_k is the window mean of each class with at least minSamples items, else the training mean (as training
   * keeps the previous mu of a class without samples), and the training rule turns the means into thresholds.
   */
  thresholdsFor(model: Model): ThresholdChoice {
    const learning = model.thresholdLearning;
    if (!this.opts.onlineThresholds || learning.statistic !== 'given-label') {
      return { source: 'bundle', byClass: Object.fromEntries(model.classes.map((c) => [c, { ...(model.thresholds[c] as Thresholds) }])) };
    }
    const windowMean = this.windowMean(model);
    const means = model.classes.map((c) => {
      const w = windowMean(c);
      return w.mean !== null && w.count >= this.opts.minSamples ? w.mean : (learning.classMeans[c] ?? 1);
    });
    const t = adaptiveThresholds(means, learning);
    return { source: 'online', byClass: Object.fromEntries(model.classes.map((c, i) => [c, t[i] as Thresholds])) };
  }

  /**
   * Refills the live windows with `model`'s latest stored items, so online thresholds and drift carry on across a
   * restart; returns how many items it restored. Throws AuditStoreUnavailable when the store cannot be read.
   */
  restoreLive(model: Pick<Model, 'name' | 'version' | 'classes'>): number {
    const items = this.store.recentOutcomes(model, model.classes, this.live.windowSize);
    this.live.restoreWindows(model, items);
    return items.length;
  }

  /** Commits `records` (throws AuditStoreUnavailable when it cannot), then counts them in the live statistics. */
  record(records: readonly NewAuditRecord[]): void {
    this.store.insert(records);
    for (const r of records) this.live.observe(r.model, r.label, r.labelProbability, r.verdict);
  }

  drift(model: Model): DriftReport {
    return detectDrift(model.classes, model.thresholdLearning, this.windowMean(model), { threshold: this.opts.driftThreshold, minSamples: this.opts.minSamples });
  }

  summary(model: Model, filters: AuditFilters): FullSummary {
    return { ...this.store.summary(filters, model.classes), live: this.live.snapshot(model.classes), drift: this.drift(model), thresholds: this.thresholdsFor(model) };
  }
}

/** Where the trail is kept and how its live statistics are judged. */
export interface AuditTrailOptions extends TrailOptions, Pick<StoreOptions, 'dir' | 'maxBytes'> {
  /** Items per class in the live statistics' sliding window. */
  windowSize: number;
}

/** The trail `opts` describe; never throws (an unusable store answers 503 until it can be used). */
export function openAuditTrail(opts: AuditTrailOptions, events: Pick<StoreOptions, 'onFailure' | 'onRecovery'> = {}): AuditTrail {
  const store = AuditStore.open({ dir: opts.dir, maxBytes: opts.maxBytes, ...events });
  return new AuditTrail(store, new LiveStats(opts.windowSize), {
    onlineThresholds: opts.onlineThresholds,
    driftThreshold: opts.driftThreshold,
    minSamples: opts.minSamples,
  });
}
