import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundle, type Bundle } from '../../src/bundle/load-bundle.js';
import { planProviders, sessionOptions } from '../../src/onnx/providers.js';
import { SessionPool } from '../../src/onnx/session-pool.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';

describe('planProviders', () => {
  it('keeps the preference order, restricted to what onnxruntime offers', () => {
    expect(planProviders(['cuda', 'cpu'], ['cpu', 'webgpu', 'cuda'])).toEqual({ attempts: ['cuda', 'cpu'], unavailable: [] });
  });

  it('skips preferred providers this build lacks and reports them', () => {
    expect(planProviders(['tensorrt', 'cuda', 'cpu'], ['cpu', 'cuda'])).toEqual({ attempts: ['cuda', 'cpu'], unavailable: ['tensorrt'] });
  });

  it('always ends with cpu, even when not preferred', () => {
    expect(planProviders(['cuda'], ['cpu'])).toEqual({ attempts: ['cpu'], unavailable: ['cuda'] });
  });

  it('ignores duplicates', () => {
    expect(planProviders(['cpu', 'cpu'], ['cpu']).attempts).toEqual(['cpu']);
  });
});

describe('sessionOptions', () => {
  it('sets intra-op threads per worker and full graph optimisation', () => {
    expect(sessionOptions(3)).toMatchObject({ intraOpNumThreads: 3, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  });
});

describe('SessionPool', () => {
  let bundle: Bundle;
  let pool: SessionPool;
  const start = (preferredProviders: string[], available?: string[]) =>
    SessionPool.start({
      modelPath: bundle.modelPath,
      inputName: 'input',
      outputName: 'probabilities',
      preferredProviders,
      available,
      workers: 1,
      intraOpThreads: 1,
    });

  beforeAll(async () => {
    bundle = await loadBundle(FIXTURE_BUNDLE_DIR);
    pool = await start(['cpu']);
  });
  afterAll(() => pool.close());

  it('runs a batch and returns one probability row per image', async () => {
    const n = 3;
    const out = await pool.run(new Float32Array(n * 48 * 48), [n, 1, 48, 48]);
    expect(out.dims).toEqual([n, 8]);
    for (let i = 0; i < n; i++) {
      const row = out.data.slice(i * 8, (i + 1) * 8);
      expect(row.reduce((s, p) => s + p, 0)).toBeCloseTo(1, 5);
    }
  });

  it('reports the provider it loaded with', () => {
    expect(pool.executionProvider).toBe('cpu');
    expect(pool.size).toBe(1);
  });

  it('falls back to cpu when a preferred provider fails to load, and says why', async () => {
    // Offered (injected) but known to no onnxruntime build, so creating its session fails on every machine, as it
    // does for a provider whose libraries are missing.
    const fallback = await start(['no-such-provider', 'cpu'], ['no-such-provider', 'cpu']);
    try {
      expect(fallback.plan.attempts).toEqual(['no-such-provider', 'cpu']);
      expect(fallback.executionProvider).toBe('cpu');
      expect(fallback.failures).toHaveLength(1);
      expect(fallback.failures[0]).toMatch(/^no-such-provider: /);
    } finally {
      await fallback.close();
    }
  });

  it('loads with cuda where its libraries are installed, and otherwise falls back to cpu saying why', async () => {
    // onnxruntime-node always lists cuda; whether its session loads depends on the machine (CUDA libraries, a GPU).
    const pool = await start(['cuda', 'cpu'], ['cuda', 'cpu']);
    try {
      expect(pool.plan.attempts).toEqual(['cuda', 'cpu']);
      if (pool.executionProvider === 'cuda') {
        expect(pool.failures).toEqual([]);
      } else {
        expect(pool.executionProvider).toBe('cpu');
        expect(pool.failures).toHaveLength(1);
        expect(pool.failures[0]).toMatch(/^cuda: /);
      }
      const out = await pool.run(new Float32Array(2 * 48 * 48), [2, 1, 48, 48]);
      expect(out.dims).toEqual([2, 8]);
    } finally {
      await pool.close();
    }
  });

  it('refuses to start when the session input name differs from the bundle', async () => {
    await expect(
      SessionPool.start({ modelPath: bundle.modelPath, inputName: 'pixels', outputName: 'probabilities', preferredProviders: ['cpu'], workers: 1, intraOpThreads: 1 }),
    ).rejects.toThrow(/session inputs are \[input\], expected \[pixels\]/);
  });

  it('refuses to start when an extra output is missing from the model', async () => {
    await expect(
      SessionPool.start({ modelPath: bundle.modelPath, inputName: 'input', outputName: 'probabilities', extraOutputs: ['logits'], preferredProviders: ['cpu'], workers: 1, intraOpThreads: 1 }),
    ).rejects.toThrow(/expected probabilities, logits/);
  });

  it('keeps the event loop turning while a batch runs in the worker', async () => {
    const n = 256;
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const out = await pool.run(new Float32Array(n * 48 * 48), [n, 1, 48, 48]);
    spinning = false;
    // Run on the main thread, session.run would hold the loop for the whole batch and allow ~1 turn.
    expect(turns).toBeGreaterThan(10);
    // The turns were taken while the whole batch ran, not beside a run that failed early.
    expect(out.dims).toEqual([n, 8]);
  });
});
