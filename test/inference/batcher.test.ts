import { describe, expect, it } from 'vitest';
import { Overloaded } from '../../src/errors.js';
import { Batcher } from '../../src/inference/batcher.js';

/** A runBatch that records batch sizes and resolves only when released. */
function gatedRunner() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  const run = (items: number[]) => {
    batches.push(items);
    return new Promise<number[]>((resolve) => gates.push(() => resolve(items.map((x) => x * 10))));
  };
  const releaseAll = () => gates.splice(0).forEach((g) => g());
  return { run, batches, releaseAll };
}

describe('Batcher', () => {
  it('merges concurrent requests into one batch and returns outputs in order', async () => {
    const batches: number[][] = [];
    const b = new Batcher(async (items: number[]) => (batches.push(items), items.map((x) => x * 10)), {
      maxBatchSize: 8,
      maxQueueDelayMs: 20,
      maxQueue: 100,
      maxInFlight: 1,
    });
    const [a, c] = await Promise.all([b.run([1, 2]), b.run([3])]);
    expect(a).toEqual([10, 20]);
    expect(c).toEqual([30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('tells a request how long its items queued and how long their batch ran', async () => {
    const gate = gatedRunner();
    const b = new Batcher(gate.run, { maxBatchSize: 8, maxQueueDelayMs: 20, maxQueue: 100, maxInFlight: 1 });
    const first = { queueMs: 0, inferMs: 0 };
    const second = { queueMs: 0, inferMs: 0 };
    // Waits for a batch to have started, not for a fixed time: on a loaded machine a 5 ms timer can fire before the
    // batcher's setImmediate, and the two items then merged into one batch.
    const started = async (n: number) => {
      while (gate.batches.length < n) await new Promise((r) => setImmediate(r));
    };
    // At least `ms` on the batcher's clock: a timer can fire up to a millisecond early by performance.now()
    // (libuv rounds its loop time), and the batcher measures with performance.now().
    const atLeast = async (ms: number) => {
      const from = performance.now();
      while (performance.now() - from < ms) await new Promise((r) => setTimeout(r, 1));
    };
    const a = b.run([1], undefined, first);
    await started(1);
    // Arrives while the first batch runs: it waits for that batch to end, then runs in the next.
    const c = b.run([2], undefined, second);
    await atLeast(30);
    gate.releaseAll();
    await a;
    await started(2);
    await atLeast(5);
    gate.releaseAll();
    await c;
    expect(gate.batches).toEqual([[1], [2]]);
    expect(first.queueMs).toBeLessThan(20);
    expect(first.inferMs).toBeGreaterThanOrEqual(30);
    expect(second.queueMs).toBeGreaterThanOrEqual(30);
    expect(second.inferMs).toBeGreaterThanOrEqual(4);
  });

  it('dispatches at once when a full batch is waiting', async () => {
    const batches: number[][] = [];
    const b = new Batcher(async (items: number[]) => (batches.push(items), items), {
      maxBatchSize: 2,
      maxQueueDelayMs: 10_000,
      maxQueue: 100,
      maxInFlight: 1,
    });
    const started = performance.now();
    await b.run([1, 2]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(batches).toEqual([[1, 2]]);
  });

  it('dispatches without the queue delay when no batch is running, still merging what arrived in the same turn', async () => {
    const batches: number[][] = [];
    const b = new Batcher(async (items: number[]) => (batches.push(items), items), {
      maxBatchSize: 8,
      maxQueueDelayMs: 10_000,
      maxQueue: 100,
      maxInFlight: 1,
    });
    const started = performance.now();
    const [a, c] = await Promise.all([b.run([1]), b.run([2])]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect([a, c]).toEqual([[1], [2]]);
    expect(batches).toEqual([[1, 2]]);
  });

  it('waits idleQueueDelayMs when set, even with no batch running', async () => {
    const g = gatedRunner();
    const b = new Batcher(g.run, { maxBatchSize: 8, maxQueueDelayMs: 0, idleQueueDelayMs: 30, maxQueue: 100, maxInFlight: 1 });
    const first = b.run([1]);
    await new Promise((r) => setTimeout(r, 5));
    expect(g.batches).toEqual([]);
    const second = b.run([2]);
    await new Promise((r) => setTimeout(r, 60));
    expect(g.batches).toEqual([[1, 2]]);
    g.releaseAll();
    expect(await Promise.all([first, second])).toEqual([[10], [20]]);
  });

  it('keeps the queue delay for items that arrive while a batch is running', async () => {
    const g = gatedRunner();
    const b = new Batcher(g.run, { maxBatchSize: 8, maxQueueDelayMs: 10_000, maxQueue: 100, maxInFlight: 2 });
    const first = b.run([1]);
    await new Promise((r) => setTimeout(r, 5));
    expect(g.batches).toEqual([[1]]);
    const second = b.run([2]);
    await new Promise((r) => setTimeout(r, 20));
    // A worker is free, but one batch is running: [2] waits for more items (or the delay), as before.
    expect(g.batches).toEqual([[1]]);
    g.releaseAll();
    await first;
    await new Promise((r) => setTimeout(r, 5));
    expect(g.batches).toEqual([[1], [2]]);
    g.releaseAll();
    await expect(second).resolves.toEqual([20]);
  });

  it('never exceeds maxBatchSize', async () => {
    const sizes: number[] = [];
    const b = new Batcher(async (items: number[]) => (sizes.push(items.length), items), {
      maxBatchSize: 3,
      maxQueueDelayMs: 1,
      maxQueue: 100,
      maxInFlight: 1,
    });
    await b.run([1, 2, 3, 4, 5, 6, 7]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(3);
    expect(sizes.reduce((s, n) => s + n, 0)).toBe(7);
  });

  it('keeps merging while every worker is busy', async () => {
    const g = gatedRunner();
    const b = new Batcher(g.run, { maxBatchSize: 16, maxQueueDelayMs: 0, maxQueue: 100, maxInFlight: 1 });
    const first = b.run([1]);
    await new Promise((r) => setTimeout(r, 5));
    const rest = Promise.all([b.run([2]), b.run([3]), b.run([4])]);
    await new Promise((r) => setTimeout(r, 5));
    expect(g.batches).toEqual([[1]]);
    g.releaseAll();
    await first;
    await new Promise((r) => setTimeout(r, 5));
    g.releaseAll();
    expect(await rest).toEqual([[20], [30], [40]]);
    expect(g.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('refuses a request whose items do not fit in the queue with Overloaded', async () => {
    const g = gatedRunner();
    const b = new Batcher(g.run, { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueue: 2, maxInFlight: 1, retryAfterSeconds: 3 });
    const running = b.run([1]);
    await new Promise((r) => setTimeout(r, 5));
    const waiting = b.run([2, 3]);
    expect(b.queued).toBe(2);
    const refused = b.run([4]);
    await expect(refused).rejects.toBeInstanceOf(Overloaded);
    await expect(refused).rejects.toMatchObject({ status: 503, retryAfter: 3 });
    const drain = setInterval(g.releaseAll, 1);
    await Promise.all([running, waiting]);
    clearInterval(drain);
  });

  it('rejects every item of a batch whose run fails, and keeps serving', async () => {
    let fail = true;
    const b = new Batcher(
      async (items: number[]) => {
        if (fail) throw new Error('boom');
        return items;
      },
      { maxBatchSize: 4, maxQueueDelayMs: 1, maxQueue: 10, maxInFlight: 1 },
    );
    await expect(b.run([1, 2])).rejects.toThrow('boom');
    fail = false;
    await expect(b.run([5])).resolves.toEqual([5]);
  });

  it('reports each batch size and queue wait to the observer', async () => {
    const seen: [number, number[]][] = [];
    const b = new Batcher(async (items: number[]) => items, { maxBatchSize: 4, maxQueueDelayMs: 5, maxQueue: 10, maxInFlight: 1 }, {
      onBatch: (size, waits) => seen.push([size, waits]),
    });
    await b.run([1, 2]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.[0]).toBe(2);
    expect(seen[0]?.[1]).toHaveLength(2);
    expect(seen[0]?.[1].every((w) => w >= 0 && w < 5)).toBe(true);
  });

  describe('cancellation', () => {
    it("takes a cancelled request's waiting items out of the queue: no batch runs them, the others still run", async () => {
      const { run, batches, releaseAll } = gatedRunner();
      let cancelled = 0;
      const b = new Batcher(run, { maxBatchSize: 2, maxQueueDelayMs: 10_000, maxQueue: 100, maxInFlight: 1 }, { onCancelled: (n) => (cancelled += n) });
      const first = b.run([1, 2]);
      const controller = new AbortController();
      const gone = b.run([3, 4, 5], controller.signal);
      const kept = b.run([6, 7]);
      expect(batches).toEqual([[1, 2]]);
      const reason = new Error('timed out');
      controller.abort(reason);
      await expect(gone).rejects.toBe(reason);
      expect(cancelled).toBe(3);
      expect(b.queued).toBe(2);
      releaseAll();
      await expect(first).resolves.toEqual([10, 20]);
      await new Promise((r) => setTimeout(r, 0));
      releaseAll();
      await expect(kept).resolves.toEqual([60, 70]);
      expect(batches).toEqual([[1, 2], [6, 7]]);
    });

    it('refuses a request whose signal has already aborted, without queueing it', async () => {
      const { run, batches } = gatedRunner();
      let cancelled = 0;
      const b = new Batcher(run, { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueue: 100, maxInFlight: 1 }, { onCancelled: (n) => (cancelled += n) });
      const reason = new Error('client gone');
      await expect(b.run([1, 2], AbortSignal.abort(reason))).rejects.toBe(reason);
      expect(batches).toEqual([]);
      expect(b.queued).toBe(0);
      expect(cancelled).toBe(2);
    });

    it('drops the outputs of a batch already running when its request aborts, and counts nothing as cancelled', async () => {
      const { run, batches, releaseAll } = gatedRunner();
      let cancelled = 0;
      const b = new Batcher(run, { maxBatchSize: 4, maxQueueDelayMs: 0, maxQueue: 100, maxInFlight: 1 }, { onCancelled: (n) => (cancelled += n) });
      const controller = new AbortController();
      const running = b.run([1], controller.signal);
      expect(batches).toEqual([[1]]);
      controller.abort(new Error('late'));
      releaseAll();
      await expect(running).resolves.toEqual([10]);
      expect(cancelled).toBe(0);
    });
  });
});
