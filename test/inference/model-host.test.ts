// ModelHost swaps models atomically: requests started on the old model finish on it, and only then is it stopped.
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/bundle/load-bundle.js';
import { ModelHost, type LoadedModel } from '../../src/inference/model-host.js';
import { createMetrics } from '../../src/metrics.js';
import { moduleOptions } from '../../src/service.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { testConfig } from '../fixtures/tiny-model.js';

/** A stub pool answering uniform probabilities once `release()` is called; records when it was closed. */
function stubPool(classes: number) {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const pool = {
    executionProvider: 'cpu',
    size: 1,
    closed: false,
    run: async (_data: Float32Array, dims: number[]) => {
      await gate;
      const n = dims[0] as number;
      return { data: new Float32Array(n * classes).fill(1 / classes), dims: [n, classes] };
    },
    close: async () => {
      pool.closed = true;
    },
  };
  return { pool, release };
}

describe('ModelHost', () => {
  it('keeps the old model alive for a request in flight across a reload, then stops it', async () => {
    const bundle = await loadBundle(FIXTURE_BUNDLE_DIR);
    const k = bundle.manifest.classes.length;
    const old = stubPool(k);
    const next = stubPool(k);
    next.release();
    const renamed = { ...bundle, manifest: { ...bundle.manifest, version: 'next' } };
    const host = new ModelHost({ bundle, pool: old.pool }, moduleOptions(testConfig({ ASM_FER_MAX_QUEUE_DELAY_MS: '0' })).batching, createMetrics({ defaultMetrics: false }), async (): Promise<LoadedModel> => ({ bundle: renamed, pool: next.pool }));

    const inFlight = host.use(async (m) => ({ version: m.manifest.version, rows: await m.inference.probabilities([new Float32Array(48 * 48)]) }));
    const served = await host.reload();
    expect(served.manifest.version).toBe('next');
    expect(host.current.manifest.version).toBe('next');
    expect(old.pool.closed).toBe(false);

    old.release();
    const done = await inFlight;
    expect(done.version).toBe(bundle.manifest.version);
    expect(done.rows).toHaveLength(1);
    await new Promise((r) => setImmediate(r));
    expect(old.pool.closed).toBe(true);
    expect(next.pool.closed).toBe(false);
    await host.close();
    expect(next.pool.closed).toBe(true);
  });

  it('refuses a second reload while one runs, and keeps the model when loading fails', async () => {
    const bundle = await loadBundle(FIXTURE_BUNDLE_DIR);
    const { pool, release } = stubPool(bundle.manifest.classes.length);
    release();
    let finish: (m: LoadedModel) => void = () => {};
    let fail = false;
    const host = new ModelHost({ bundle, pool }, moduleOptions(testConfig()).batching, createMetrics({ defaultMetrics: false }), () =>
      fail ? Promise.reject(new Error('sha256 mismatch\nsecond line')) : new Promise<LoadedModel>((r) => (finish = r)),
    );
    const first = host.reload();
    await expect(host.reload()).rejects.toMatchObject({ status: 409 });
    finish({ bundle, pool });
    await first;
    fail = true;
    const before = host.current;
    await expect(host.reload()).rejects.toMatchObject({ status: 422, message: 'sha256 mismatch' });
    expect(host.current).toBe(before);
  });
});
