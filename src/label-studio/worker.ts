// Drains the Label Studio event queue behind the webhook: one event at a time, in arrival order per annotation;
// transient failures (Label Studio or the image unreachable, the service overloaded, the trail unavailable) retry with
// exponential back-off, permanent ones are recorded with their reason. Started with the service; a restart resumes
// whatever was left pending, since the queue is on disk.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { asEventFailure, processEvent, sweep, type BackendDeps } from './backend.js';

export interface WorkerOptions {
  /** First retry delay; each further attempt doubles it. */
  retryBaseMs: number;
  /** Longest delay between attempts. */
  retryMaxMs: number;
  /** Pause between the end of one sweep and the start of the next; 0: sweep at start only. */
  sweepMs: number;
}

type WorkerMetrics = Pick<Metrics, 'recordLabelStudioEvent' | 'recordLabelStudioFailure' | 'recordLabelStudioSwept'>;

/** Delay before attempt `attempts + 1`: base * 2^attempts, capped, with up to 20 % jitter so retries do not march in step. */
export function backoffMs(attempts: number, opts: Pick<WorkerOptions, 'retryBaseMs' | 'retryMaxMs'>, random = Math.random): number {
  const d = Math.min(opts.retryMaxMs, opts.retryBaseMs * 2 ** Math.min(attempts, 30));
  return Math.round(d * (1 - 0.2 * random()));
}

export class EventWorker {
  private timer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The sweep in progress, if any: at most one at a time, so a slow Label Studio never has sweeps pile up. */
  private sweeping: Promise<void> | undefined;
  /** When the last sweep that ended well began: webhooks since then are what a project was heard by. */
  private lastSweepMs: number | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly deps: BackendDeps,
    private readonly opts: WorkerOptions,
    private readonly metrics: WorkerMetrics,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Starts draining (what a restart left pending first) and sweeps Label Studio for what changed while the service
   * was down, then every `sweepMs` after the last sweep ended (a webhook lost in a network split or refused is not
   * resent); a sweep that fails (Label Studio unreachable) is tried again with the same back-off.
   */
  start(): void {
    this.stopped = false;
    this.wake();
    this.sweep(0, true);
  }

  private sweep(failures: number, first = false): void {
    if (this.stopped) return;
    const startedMs = this.now();
    this.sweeping = sweep(this.deps, startedMs, this.lastSweepMs).then(
      (r) => {
        this.lastSweepMs = startedMs;
        this.metrics.recordLabelStudioSwept(r.queued);
        // The start-up sweep always reports; a periodic one only when it found something, so an idle project is quiet.
        const { silent, failed, ...counts } = r;
        if (first || r.queued > 0) this.logger.info({ ...counts, periodic: !first }, 'label studio sweep done: annotations no webhook brought are queued');
        else this.logger.debug(counts, 'label studio sweep done: nothing missed');
        for (const s of silent) {
          this.logger.warn(
            { project: s.projectId, missed: s.missed },
            `Label Studio project ${s.projectId} is silent: ${s.missed} annotation change(s) came without a webhook; check that the project's webhook sends Authorization: Bearer <ASM_FER_LABEL_STUDIO_SECRET>`,
          );
        }
        for (const f of failed) {
          this.metrics.recordLabelStudioFailure(f.reason);
          this.logger.warn({ project: f.projectId, reason: f.reason }, `label studio sweep skipped project ${f.projectId}: ${f.reason}`);
        }
        if (r.queued > 0) this.wake();
        if (this.opts.sweepMs > 0 && !this.stopped) {
          this.sweepTimer = setTimeout(() => this.sweep(0), this.opts.sweepMs);
          this.sweepTimer.unref();
        }
      },
      (err: unknown) => {
        const f = asEventFailure(err);
        this.metrics.recordLabelStudioFailure(f.reason);
        const wait = backoffMs(failures, this.opts);
        this.logger.warn({ reason: f.reason, detail: f.message, retryInMs: wait }, 'label studio sweep failed; will retry');
        // What it queued before failing is drained now, not at the next webhook.
        this.wake();
        this.sweepTimer = setTimeout(() => this.sweep(failures + 1, first), wait);
        this.sweepTimer.unref();
      },
    );
  }

  /** Something was queued: drain now rather than at the next timer. */
  wake(): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.drain()
      .catch((err: unknown) => this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'label studio queue unusable; draining again later'))
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
  }

  /** Stops after the event in progress; resolves once it has settled (its outcome is on disk, or it stays pending). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.sweepTimer);
    await Promise.all([this.running, this.sweeping]);
  }

  private schedule(): void {
    if (this.stopped) return;
    let due: number | undefined;
    try {
      due = this.deps.queue.nextDueMs();
    } catch (err) {
      this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'label studio queue unreadable; trying again in a second');
      due = this.now() + 1000;
    }
    if (due === undefined) return;
    this.timer = setTimeout(() => this.wake(), Math.max(0, due - this.now()));
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    while (!this.stopped) {
      const job = this.deps.queue.claim(this.now());
      if (!job) return;
      const started = this.now();
      try {
        const outcome = await processEvent(this.deps, job.key, job.event, this.now, job.attempts);
        this.deps.queue.complete(job.seq, outcome, this.now());
        this.metrics.recordLabelStudioEvent(outcome.kind, (this.now() - job.receivedMs) / 1000);
        this.logger.info({ event: job.key, outcome, ms: this.now() - started }, 'label studio event done');
      } catch (err) {
        const f = asEventFailure(err);
        this.metrics.recordLabelStudioFailure(f.reason);
        if (f.transient) {
          const at = this.now() + backoffMs(job.attempts, this.opts);
          this.deps.queue.retry(job.seq, f.reason, at);
          this.logger.warn({ event: job.key, reason: f.reason, detail: f.message, attempts: job.attempts + 1, retryInMs: at - this.now() }, 'label studio event failed; will retry');
        } else {
          this.deps.queue.fail(job.seq, f.reason, this.now());
          this.metrics.recordLabelStudioEvent('failed', (this.now() - job.receivedMs) / 1000);
          this.logger.warn({ event: job.key, reason: f.reason, detail: f.message }, 'label studio event failed for good');
        }
      }
    }
  }
}
