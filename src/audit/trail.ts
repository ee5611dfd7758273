// The audit trail as the audit routes use it: which thresholds judge the next items (the bundle's, or re-estimated
// online), committing audited items and then counting them in the live statistics, and the summary with its live and
// drift sections. On a shared trail (PostgreSQL, several replicas) the windows behind drift and online thresholds are
// read from the stored records of every replica (shared-windows.ts) instead of kept by this process.
import type { BundleManifest, Thresholds } from '../bundle/load-bundle.js';
import { detectDrift, type DriftReport } from './drift.js';
import type { NewAuditRecord, ThresholdSource } from './judge.js';
import { LiveStats, type LiveSnapshot } from './live-stats.js';
import { adaptiveThresholds } from './online-thresholds.js';
import { PostgresBackend, type PostgresOptions } from './postgres-store.js';
import type { AuditFilters } from './query.js';
import { SharedWindows } from './shared-windows.js';
import { SqliteBackend, type SqliteOptions } from './sqlite-store.js';
import { SqlAuditStore, type AuditStore, type StoreEvents } from './store.js';
import type { AuditSummary } from './summary.js';

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

type WindowMean = (label: string) => { mean: number | null; count: number };

export class AuditTrail {
  constructor(
    readonly store: AuditStore,
    readonly live: LiveStats,
    private readonly opts: TrailOptions,
    /** Set when the store is shared: the windows of every replica, read from it. */
    private readonly shared?: SharedWindows,
  ) {}

  /** The windows drift and online thresholds use: this process's, or (shared trail) every replica's, read now. */
  private async windows(model: Model): Promise<LiveStats> {
    return this.shared ? this.shared.read(model, model.classes) : this.live;
  }

  /** Live means are used only when they describe `model`. */
  private windowMean(model: Model, windows: LiveStats): WindowMean {
    const current = windows.model;
    const same = current?.name === model.name && current.version === model.version;
    return (label) => (same ? windows.windowMean(label) : { mean: null, count: 0 });
  }

  /**
   * Online: mu_k is the window mean of each class with at least minSamples items, else the training mean (as training
   * keeps the previous mu of a class without samples), and the training rule turns the means into thresholds.
   * Throws AuditStoreUnavailable when a shared trail's windows cannot be read.
   */
  async thresholdsFor(model: Model): Promise<ThresholdChoice> {
    if (!this.online(model)) return this.choose(model, undefined);
    return this.choose(model, this.windowMean(model, await this.windows(model)));
  }

  private online(model: Model): boolean {
    return this.opts.onlineThresholds && model.thresholdLearning.statistic === 'given-label';
  }

  private choose(model: Model, windowMean: WindowMean | undefined): ThresholdChoice {
    const learning = model.thresholdLearning;
    if (windowMean === undefined || !this.online(model)) {
      return { source: 'bundle', byClass: Object.fromEntries(model.classes.map((c) => [c, { ...(model.thresholds[c] as Thresholds) }])) };
    }
    const means = model.classes.map((c) => {
      const w = windowMean(c);
      return w.mean !== null && w.count >= this.opts.minSamples ? w.mean : (learning.classMeans[c] ?? 1);
    });
    const t = adaptiveThresholds(means, learning);
    return { source: 'online', byClass: Object.fromEntries(model.classes.map((c, i) => [c, t[i] as Thresholds])) };
  }

  /**
   * Refills this process's windows with `model`'s latest stored items, so online thresholds and drift carry on across
   * a restart; returns how many items it restored (none on a shared trail, whose windows are read when needed).
   * Rejects with AuditStoreUnavailable when the store cannot be read.
   */
  async restoreLive(model: Pick<Model, 'name' | 'version' | 'classes'>): Promise<number> {
    if (this.shared) return 0;
    const items = await this.store.recentOutcomes(model, model.classes, this.live.windowSize);
    this.live.restoreWindows(model, items);
    return items.length;
  }

  /** Commits `records` (throws AuditStoreUnavailable when it cannot), then counts them in the live statistics. */
  async record(records: readonly NewAuditRecord[]): Promise<void> {
    await this.store.insert(records);
    for (const r of records) this.live.observe(r.model, r.label, r.labelProbability, r.verdict);
  }

  /**
   * Marks record `id` withdrawn (its label deleted where it was made); the record stays in the trail and in the
   * summaries and windows, which count what was submitted. False when there is no such record; throws
   * AuditStoreUnavailable when the store cannot be written.
   */
  withdraw(id: string, timeMs: number): Promise<boolean> {
    return this.store.markWithdrawn(id, timeMs);
  }

  private driftOf(model: Model, windows: LiveStats): DriftReport {
    return detectDrift(model.classes, model.thresholdLearning, this.windowMean(model, windows), { threshold: this.opts.driftThreshold, minSamples: this.opts.minSamples });
  }

  async summary(model: Model, filters: AuditFilters): Promise<FullSummary> {
    const stored = await this.store.summary(filters, model.classes);
    const windows = await this.windows(model);
    return {
      ...stored,
      live: this.live.snapshot(model.classes, this.shared ? windows : undefined),
      drift: this.driftOf(model, windows),
      thresholds: this.choose(model, this.windowMean(model, windows)),
    };
  }

  /**
   * Live statistics and drift without waiting, for a metrics scrape: a shared trail's last windows read (a stale read
   * starts a new one for the next scrape); before the first read, or when it fails, this process's own.
   */
  statsNow(model: Model): { live: LiveSnapshot; drift: DriftReport } {
    const windows = this.shared?.latest(model, model.classes) ?? this.live;
    return { live: this.live.snapshot(model.classes, windows === this.live ? undefined : windows), drift: this.driftOf(model, windows) };
  }
}

/** Where the trail is kept: an SQLite file under a folder (the default), or a shared PostgreSQL database. */
export type TrailDatabase = ({ kind: 'sqlite' } & SqliteOptions) | ({ kind: 'postgres' } & PostgresOptions);

/** Where the trail is kept and how its live statistics are judged. */
export interface AuditTrailOptions extends TrailOptions {
  database: TrailDatabase;
  /** Items per class in the live statistics' sliding window. */
  windowSize: number;
  /** How long windows read from a shared trail are reused before they are read again. */
  sharedStatsTtlMs: number;
}

/** The trail `opts` describe; never rejects (an unusable store answers 503 until it can be used). */
export async function openAuditTrail(opts: AuditTrailOptions, events: StoreEvents = {}): Promise<AuditTrail> {
  const { database } = opts;
  const backend = database.kind === 'postgres' ? new PostgresBackend(database) : new SqliteBackend(database);
  const store = await SqlAuditStore.open(backend, events);
  const shared = store.shared ? new SharedWindows(store, opts.windowSize, opts.sharedStatsTtlMs) : undefined;
  return new AuditTrail(store, new LiveStats(opts.windowSize), { onlineThresholds: opts.onlineThresholds, driftThreshold: opts.driftThreshold, minSamples: opts.minSamples }, shared);
}
