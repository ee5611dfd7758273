import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundle, type Bundle } from '../../src/bundle/load-bundle.js';
import { planProviders, sessionOptions } from '../../src/onnx/providers.js';
import { SessionPool, type PoolOptions } from '../../src/onnx/session-pool.js';
import { DETECTOR_VARIANTS } from '../../src/faces/blazeface.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { TSX } from '../fixtures/server-process.js';

const execFileAsync = promisify(execFile);

interface Loaded {
  executionProvider: string;
  attempts: string[];
  failures: string[];
  dims?: number[];
}

/** test/onnx/start-pool.child.ts with these options: what the pool loaded, and everything written to stderr. */
async function startPoolInChild(opts: PoolOptions, dims?: number[]): Promise<{ loaded: Loaded; stderr: string }> {
  const args = ['--import', TSX, 'test/onnx/start-pool.child.ts', JSON.stringify(opts), ...(dims ? [JSON.stringify(dims)] : [])];
  const { stdout, stderr } = await execFileAsync(process.execPath, args, { timeout: 25_000 });
  return { loaded: JSON.parse(stdout) as Loaded, stderr };
}

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

  it('logs errors only, so model-loading warnings do not read as faults', () => {
    expect(sessionOptions(1).logSeverityLevel).toBe(3);
  });
});

describe('SessionPool', () => {
  let bundle: Bundle;
  let pool: SessionPool;
  const cpuPool = (): PoolOptions => ({ modelPath: bundle.modelPath, inputName: 'input', outputName: 'probabilities', preferredProviders: ['cpu'], workers: 1, intraOpThreads: 1 });
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
    // In a child process, because onnxruntime reports the failed load natively, in red, on stderr: expected here,
    // so it is checked instead of printed.
    const child = await startPoolInChild({ ...cpuPool(), preferredProviders: ['cuda', 'cpu'], available: ['cuda', 'cpu'] }, [2, 1, 48, 48]);
    expect(child.loaded.attempts).toEqual(['cuda', 'cpu']);
    expect(child.loaded.dims).toEqual([2, 8]);
    if (child.loaded.executionProvider === 'cuda') {
      expect(child.loaded.failures).toEqual([]);
    } else {
      expect(child.loaded.executionProvider).toBe('cpu');
      expect(child.loaded.failures).toHaveLength(1);
      expect(child.loaded.failures[0]).toMatch(/^cuda: /);
      // What the service's log shows above its fallback line: onnxruntime's own error, naming the library it missed.
      if (child.stderr !== '') expect(child.stderr).toContain('[E:onnxruntime');
    }
  });

  it('starts the shipped face detector without a line on stderr', async () => {
    // Both BlazeFace graphs hold initializers no node uses; at onnxruntime's default log level each session start
    // printed a coloured warning per initializer (sessionOptions' logSeverityLevel).
    const variant = DETECTOR_VARIANTS['blazeface-back-256'];
    const [first, ...rest] = variant.outputs.flatMap((o) => [o.scores, o.boxes]);
    const child = await startPoolInChild({ ...cpuPool(), modelPath: variant.modelPath, inputName: variant.inputName, outputName: first as string, extraOutputs: rest });
    expect(child.loaded.executionProvider).toBe('cpu');
    expect(child.stderr).toBe('');
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

describe('SessionPool lone-run session (issue 32)', () => {
  let bundle: Bundle;
  let plain: SessionPool;
  let lone: SessionPool;
  const opts = (extra: Partial<PoolOptions>): PoolOptions => ({
    modelPath: bundle.modelPath,
    inputName: 'input',
    outputName: 'probabilities',
    preferredProviders: ['cpu'],
    workers: 2,
    intraOpThreads: 1,
    ...extra,
  });
  // Distinct images, so that a run answered from the wrong input or the wrong session would show.
  const images = (n: number, seed: number) => Float32Array.from({ length: n * 48 * 48 }, (_, i) => Math.sin(i * 0.37 + seed));

  beforeAll(async () => {
    bundle = await loadBundle(FIXTURE_BUNDLE_DIR);
    [plain, lone] = await Promise.all([SessionPool.start(opts({})), SessionPool.start(opts({ loneThreads: 2, testHooks: true }))]);
  });
  afterAll(() => Promise.all([plain.close(), lone.close()]));

  it('has one only when asked for more threads than a worker has', async () => {
    expect(plain.loneThreads).toBeUndefined();
    expect(lone.loneThreads).toBe(2);
    const same = await SessionPool.start(opts({ workers: 1, intraOpThreads: 2, loneThreads: 2 }));
    try {
      expect(same.loneThreads).toBeUndefined();
      await same.run(images(1, 0), [1, 1, 48, 48]);
      expect(same.loneRuns).toBe(0);
    } finally {
      await same.close();
    }
  });

  it('runs each batch that starts on an idle pool there, with the same probabilities as a worker session', async () => {
    const before = lone.loneRuns;
    for (let seed = 0; seed < 4; seed++) {
      const n = seed + 1;
      const [a, b] = [await lone.run(images(n, seed), [n, 1, 48, 48]), await plain.run(images(n, seed), [n, 1, 48, 48])];
      expect(a.dims).toEqual([n, 8]);
      a.data.forEach((p, i) => expect(p).toBeCloseTo(b.data[i] as number, 5));
    }
    expect(lone.loneRuns - before).toBe(4);
  });

  it('leaves batches that start beside another to the workers own sessions', async () => {
    const before = lone.loneRuns;
    const outs = await Promise.all([0, 1, 2, 3, 4, 5].map((seed) => lone.run(images(2, seed), [2, 1, 48, 48])));
    // Only the first found the pool idle; the rest started while it (or another) ran.
    expect(lone.loneRuns - before).toBe(1);
    for (const [seed, out] of outs.entries()) {
      const ref = await plain.run(images(2, seed), [2, 1, 48, 48]);
      out.data.forEach((p, i) => expect(p).toBeCloseTo(ref.data[i] as number, 5));
    }
  });

  it('is back after its worker crashed and was restarted', async () => {
    lone.crashNextRun();
    await expect(lone.run(images(1, 0), [1, 1, 48, 48])).rejects.toThrow(/restarted/);
    const deadline = Date.now() + 20_000;
    while (lone.alive < lone.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(lone.alive).toBe(2);
    const before = lone.loneRuns;
    const out = await lone.run(images(1, 9), [1, 1, 48, 48]);
    const ref = await plain.run(images(1, 9), [1, 1, 48, 48]);
    expect(lone.loneRuns - before).toBe(1);
    out.data.forEach((p, i) => expect(p).toBeCloseTo(ref.data[i] as number, 5));
  });
});
