// Drains the Label Studio event queue behind the webhook: one event at a time, in arrival order per annotation;
// transient failures (Label Studio or the image unreachable, the service overloaded, the trail unavailable) retry with
// exponential back-off, permanent ones are recorded with their reason. Started with the service; a restart resumes
// whatever was left pending, since the queue is on disk. On a shared queue (PostgreSQL) every replica runs one: each
// event is leased to one of them, renewed while it works, and taken over by another if the holder dies.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { asEventFailure, EventFailure, processEvent, sweep, type BackendDeps } from './backend.js';
import type { QueuedEvent } from './queue.js';

export interface WorkerOptions {
  /** First retry delay; each further attempt doubles it. */
  retryBaseMs: number;
  /** Longest delay between attempts. */
  retryMaxMs: number;
  /** Pause between the end of one sweep and the start of the next; 0: sweep at start only. */
  sweepMs: number;
  /**
   * How long a claim holds without being renewed: the longest an event waits for another replica after its holder
   * died. Renewed every third of it while the event is worked on.
   */
  leaseMs: number;
  /**
   * On a shared queue, the longest an idle worker goes without looking for work other replicas queued (their
   * notifications wake it sooner; this covers one lost while its listening connection was down); 0: never.
   */
  pollMs: number;
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
    if (this.deps.queue.shared) this.deps.queue.onEnqueued(() => this.wake());
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
        void this.schedule();
      });
  }

  /** Stops after the event in progress; resolves once it has settled (its outcome is on disk, or it stays pending). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.sweepTimer);
    await Promise.all([this.running, this.sweeping]);
  }

  private async schedule(): Promise<void> {
    if (this.stopped) return;
    let due: number | undefined;
    try {
      due = await this.deps.queue.nextDueMs();
    } catch (err) {
      this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'label studio queue unreadable; trying again in a second');
      due = this.now() + 1000;
    }
    // A wake that came meanwhile drains now and schedules again when it is done.
    if (this.stopped || this.running) return;
    if (this.deps.queue.shared && this.opts.pollMs > 0) due = Math.min(due ?? Infinity, this.now() + this.opts.pollMs);
    if (due === undefined) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), Math.max(0, due - this.now()));
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    while (!this.stopped) {
      const job = await this.deps.queue.claim(this.now(), this.opts.leaseMs);
      if (!job) return;
      if (job.reclaimed) {
        // Its holder stopped renewing the lease without an outcome: a replica that died (or stalled past its lease).
        this.metrics.recordLabelStudioFailure('lease-expired');
        this.logger.warn({ event: job.key, attempts: job.attempts }, 'label studio event reclaimed: the claim of the replica that held it ran out');
      }
      const lease = this.keep(job);
      const started = this.now();
      try {
        const outcome = await processEvent(this.deps, job.key, job.event, this.now, job.attempts, lease.stillHeld);
        lease.stop();
        if (!(await this.deps.queue.complete(job.seq, job.claim, outcome, this.now()))) {
          this.lost(job);
          continue;
        }
        this.metrics.recordLabelStudioEvent(outcome.kind, (this.now() - job.receivedMs) / 1000);
        this.logger.info({ event: job.key, outcome, ms: this.now() - started }, 'label studio event done');
      } catch (err) {
        lease.stop();
        const f = asEventFailure(err);
        if (f.reason === 'claim-lost') {
          this.lost(job);
          continue;
        }
        this.metrics.recordLabelStudioFailure(f.reason);
        if (f.transient) {
          const at = this.now() + backoffMs(job.attempts, this.opts);
          if (!(await this.deps.queue.retry(job.seq, job.claim, f.reason, at))) this.lost(job);
          else this.logger.warn({ event: job.key, reason: f.reason, detail: f.message, attempts: job.attempts + 1, retryInMs: at - this.now() }, 'label studio event failed; will retry');
        } else if (!(await this.deps.queue.fail(job.seq, job.claim, f.reason, this.now()))) {
          this.lost(job);
        } else {
          this.metrics.recordLabelStudioEvent('failed', (this.now() - job.receivedMs) / 1000);
          this.logger.warn({ event: job.key, reason: f.reason, detail: f.message }, 'label studio event failed for good');
        }
      }
    }
  }

  /** The claim ran out and another replica took the event over: its outcome is theirs to record. */
  private lost(job: QueuedEvent): void {
    this.metrics.recordLabelStudioFailure('claim-lost');
    this.logger.warn({ event: job.key }, 'label studio event left to another replica: this claim ran out before its outcome was recorded');
  }

  /**
   * Renews the job's lease every third of it while the job runs. `stillHeld` renews it once more and throws when it is
   * lost, so nothing is written to Label Studio under a claim another replica has taken over.
   */
  private keep(job: QueuedEvent): { stillHeld: () => Promise<void>; stop: () => void } {
    let renewing: Promise<unknown> | undefined;
    const renew = () => this.deps.queue.renew(job.seq, job.claim, this.now() + this.opts.leaseMs);
    const timer = setInterval(() => {
      // One renewal at a time; one that fails (the database briefly unreachable) is tried again at the next tick.
      renewing ??= renew()
        .catch(() => true)
        .finally(() => (renewing = undefined));
    }, Math.max(1, Math.floor(this.opts.leaseMs / 3)));
    timer.unref();
    return {
      stillHeld: async () => {
        if (!(await renew())) throw new EventFailure('claim-lost', true, 'the claim on this event ran out and another replica took it over');
      },
      stop: () => clearInterval(timer),
    };
  }
}
