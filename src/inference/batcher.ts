// Micro-batching in the manner of Triton's dynamic batcher: items from concurrent requests wait at most
// maxQueueDelayMs to be merged into one call of up to maxBatchSize; a full queue refuses new work (Overloaded).
import { Overloaded } from '../errors.js';

export interface BatcherOptions {
  maxBatchSize: number;
  maxQueueDelayMs: number;
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
}

interface Entry<I, O> {
  item: I;
  enqueuedAt: number;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, O> {
  private readonly queue: Entry<I, O>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;

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

  /** Runs every item through some batch; resolves with their outputs in order. Rejects with Overloaded when full. */
  run(items: readonly I[]): Promise<O[]> {
    if (this.queue.length + items.length > this.opts.maxQueue) {
      return Promise.reject(
        new Overloaded(`inference queue is full (${this.queue.length} waiting, limit ${this.opts.maxQueue})`, this.opts.retryAfterSeconds ?? 1),
      );
    }
    const now = performance.now();
    const outputs = items.map(
      (item) => new Promise<O>((resolve, reject) => this.queue.push({ item, enqueuedAt: now, resolve, reject })),
    );
    this.schedule();
    return Promise.all(outputs);
  }

  private schedule(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const oldest = this.queue[0] as Entry<I, O>;
      const waited = performance.now() - oldest.enqueuedAt;
      if (this.queue.length < this.opts.maxBatchSize && waited < this.opts.maxQueueDelayMs) {
        this.armTimer(this.opts.maxQueueDelayMs - waited);
        return;
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

  private dispatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.opts.maxBatchSize);
    const now = performance.now();
    this.observer.onBatch?.(batch.length, batch.map((e) => (now - e.enqueuedAt) / 1000));
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
        batch.forEach((e, i) => e.resolve(outs[i] as O));
      })
      .catch((err: unknown) => batch.forEach((e) => e.reject(err)))
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}
