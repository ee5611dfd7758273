// Micro-batching in the manner of Triton's dynamic batcher: items from concurrent requests wait at most
// maxQueueDelayMs to be merged into one call of up to maxBatchSize; a full queue refuses new work (Overloaded); the
// items of a request that is cancelled (timed out, client gone) leave the queue at once, so no batch runs them.
// When no batch is running at all, waiting only adds latency (nothing else is being served, so nothing is likely to
// arrive within the delay): the batch then waits idleQueueDelayMs instead, by default 0, which closes it at the end of
// the current event-loop turn and still merges the requests that arrived together; under load a batch is running,
// and the items behind it merge as before.
import { Overloaded } from '../errors.js';

export interface BatcherOptions {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** The wait when no batch is running; 0 (the default) dispatches at the end of the event-loop turn. */
  idleQueueDelayMs?: number;
  /** Items allowed to wait; a request whose items do not all fit is refused whole. */
  maxQueue: number;
  /** Batches running at once; one per session worker, so waiting items keep merging while all are busy. */
  maxInFlight: number;
  /** Sent as Retry-After when the queue is full. */
  retryAfterSeconds?: number;
}

export interface BatchObserver {
  /** Called once per dispatched batch with its size and each item's time in the queue. */
  onBatch?(size: number, queueWaitSeconds: number[]): void;
  /** Called with the number of items a cancelled request took out of the queue (or never put in). */
  onCancelled?(items: number): void;
}

/**
 * Where a request's items spent their time, filled in by the batcher (ms): `queueMs` until its last item left the
 * queue, `inferMs` for the batch that carried that item (the call to runBatch, worker round trip included).
 */
export interface RunTiming {
  queueMs: number;
  inferMs: number;
}

interface Entry<I, O> {
  item: I;
  enqueuedAt: number;
  timing: RunTiming | undefined;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, O> {
  private readonly queue: Entry<I, O>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  /** runBatch receives 1..maxBatchSize items and must return one output per item, in order. */
  constructor(
    private readonly runBatch: (items: I[]) => Promise<O[]>,
    private readonly opts: BatcherOptions,
    private readonly observer: BatchObserver = {},
  ) {
    if (opts.maxBatchSize < 1 || opts.maxQueue < 1 || opts.maxInFlight < 1) throw new Error('batcher sizes must be >= 1');
  }

  /** Items waiting for a batch (not counting running ones). */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Runs every item through some batch; resolves with their outputs in order. Rejects with Overloaded when full, and
   * with `signal`'s reason once it aborts while some of its items still wait: those leave the queue (a batch already
   * running cannot be stopped, so a request whose items all run resolves as usual). `timing`, when given, is told
   * where the items' time went.
   */
  run(items: readonly I[], signal?: AbortSignal, timing?: RunTiming): Promise<O[]> {
    if (signal?.aborted) {
      this.observer.onCancelled?.(items.length);
      return Promise.reject(signal.reason);
    }
    if (this.queue.length + items.length > this.opts.maxQueue) {
      return Promise.reject(
        new Overloaded(`inference queue is full (${this.queue.length} waiting, limit ${this.opts.maxQueue})`, this.opts.retryAfterSeconds ?? 1),
      );
    }
    const now = performance.now();
    const entries: Entry<I, O>[] = [];
    const outputs = items.map(
      (item) =>
        new Promise<O>((resolve, reject) => {
          const entry = { item, enqueuedAt: now, timing, resolve, reject };
          entries.push(entry);
          this.queue.push(entry);
        }),
    );
    const all = Promise.all(outputs);
    if (signal) {
      const onAbort = () => this.drop(entries, signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      void all.then(
        () => signal.removeEventListener('abort', onAbort),
        () => signal.removeEventListener('abort', onAbort),
      );
    }
    this.schedule();
    return all;
  }

  /** Takes `entries` that are still waiting out of the queue and rejects them with `reason`. */
  private drop(entries: readonly Entry<I, O>[], reason: unknown): void {
    const mine = new Set(entries);
    const waiting = this.queue.filter((e) => mine.has(e));
    if (waiting.length === 0) return;
    const kept = this.queue.filter((e) => !mine.has(e));
    this.queue.splice(0, this.queue.length, ...kept);
    this.observer.onCancelled?.(waiting.length);
    for (const e of waiting) e.reject(reason);
  }

  private schedule(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const oldest = this.queue[0] as Entry<I, O>;
      const waited = performance.now() - oldest.enqueuedAt;
      if (this.queue.length < this.opts.maxBatchSize) {
        const idle = this.inFlight === 0;
        const delay = idle ? (this.opts.idleQueueDelayMs ?? 0) : this.opts.maxQueueDelayMs;
        // A zero maxQueueDelayMs asks for no wait at all, not even for the rest of this turn.
        if (idle && delay === 0 && this.opts.maxQueueDelayMs > 0) {
          this.armImmediate();
          return;
        }
        if (waited < delay) {
          this.armTimer(delay - waited);
          return;
        }
      }
      this.dispatch();
    }
  }

  private armTimer(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, Math.max(0, Math.ceil(ms)));
  }

  /** The idle path: dispatch once this event-loop turn's other arrivals (its I/O callbacks) have queued. */
  private armImmediate(): void {
    if (this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      if (this.inFlight === 0 && this.queue.length > 0) this.dispatch();
      // What is left (more than a batch, or the state changed meanwhile) follows the usual rules; with more workers,
      // items behind the batch just sent wait for company as under load.
      this.schedule();
    });
  }

  private dispatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    const batch = this.queue.splice(0, this.opts.maxBatchSize);
    const now = performance.now();
    this.observer.onBatch?.(batch.length, batch.map((e) => (now - e.enqueuedAt) / 1000));
    for (const e of batch) if (e.timing) e.timing.queueMs = Math.max(e.timing.queueMs, now - e.enqueuedAt);
    this.inFlight++;
    let call: Promise<O[]>;
    try {
      call = this.runBatch(batch.map((e) => e.item));
    } catch (err) {
      call = Promise.reject(err);
    }
    call
      .then((outs) => {
        if (outs.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${outs.length} outputs`);
        const ran = performance.now() - now;
        for (const e of batch) if (e.timing) e.timing.inferMs = Math.max(e.timing.inferMs, ran);
        batch.forEach((e, i) => e.resolve(outs[i] as O));
      })
      .catch((err: unknown) => batch.forEach((e) => e.reject(err)))
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}
