// Owns the served model (verified bundle, warmed session pool, batcher) and swaps it atomically on reload, retiring
// the old one only after the last request that started on it has finished.
import { loadBundle, type Bundle, type BundleManifest } from '../bundle/load-bundle.js';
import { Conflict, ReloadFailed } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { BatcherOptions } from './batcher.js';
import { createInference, type Inference } from './infer.js';
import { tensorSize } from './preprocess.js';
import { SessionPool, type PoolOptions } from '../onnx/session-pool.js';

/** What the host needs from a session pool (tests substitute a stub around the real one). */
export type PoolLike = Pick<SessionPool, 'run' | 'executionProvider' | 'size' | 'close'>;

/** A loaded bundle with its running pool: what startModel returns and a reload swaps in. */
export interface LoadedModel {
  bundle: Bundle;
  pool: PoolLike;
}

export interface ServedModel extends LoadedModel {
  manifest: BundleManifest;
  inference: Inference;
}

interface Entry extends ServedModel {
  users: number;
  retired?: () => void;
}

type HostMetrics = Pick<Metrics, 'observeBatch' | 'observeInference' | 'recordInferenceRequest' | 'recordCancelledImages' | 'setModelInfo' | 'recordReload'>;

/** How the expression model's sessions run (the rest of PoolOptions comes from the bundle). */
export type SessionSettings = Pick<PoolOptions, 'preferredProviders' | 'workers' | 'intraOpThreads' | 'loneThreads'>;

/** How requests are merged into batches; maxInFlight follows the pool's size. */
export type BatchSettings = Omit<BatcherOptions, 'maxInFlight' | 'retryAfterSeconds'>;

/** Pool options for `bundle`; `extra` carries test-only knobs (injected provider list, crash hook) and event hooks. */
export function poolOptions(sessions: SessionSettings, bundle: Bundle, extra: Partial<PoolOptions> = {}): PoolOptions {
  return {
    modelPath: bundle.modelPath,
    inputName: bundle.manifest.input.name,
    outputName: bundle.manifest.output.name,
    ...sessions,
    ...extra,
  };
}

/**
 * Reads and fully verifies the bundle in `dir` (schema, sha256, ONNX I/O names), starts its sessions and runs one
 * zero image through every session (each worker's, and the lone-run one): the first run allocates arenas and picks
 * kernels, and readiness must wait for it.
 */
export async function startModel(dir: string, sessions: SessionSettings, extra: Partial<PoolOptions> = {}): Promise<LoadedModel & { pool: SessionPool }> {
  const bundle = await loadBundle(dir);
  const pool = await SessionPool.start(poolOptions(sessions, bundle, extra));
  try {
    const { input } = bundle.manifest;
    await pool.warmUp(() => ({ data: new Float32Array(tensorSize(input)), dims: [1, input.channels, input.height, input.width] }));
  } catch (err) {
    await pool.close();
    throw err;
  }
  return { bundle, pool };
}

export class ModelHost {
  private entry: Entry;
  private reloading = false;

  /** `load` is how reload gets the next model; src/service.ts passes startModel bound to the config. */
  constructor(
    first: LoadedModel,
    private readonly batching: BatchSettings,
    private readonly metrics: HostMetrics,
    private readonly load: () => Promise<LoadedModel>,
  ) {
    this.entry = this.serve(first);
  }

  /** The model new requests use. */
  get current(): ServedModel {
    return this.entry;
  }

  /** Runs `fn` against the current model, which stays alive (even across a reload) until `fn` settles. */
  async use<T>(fn: (model: ServedModel) => Promise<T>): Promise<T> {
    const entry = this.entry;
    entry.users++;
    try {
      return await fn(entry);
    } finally {
      entry.users--;
      if (entry.users === 0) entry.retired?.();
    }
  }

  /**
   * Loads the bundle again and swaps it in; the old model keeps serving the requests that started on it, then stops.
   * Throws Conflict while another reload runs and ReloadFailed (old model untouched) when the new one cannot load.
   */
  async reload(): Promise<ServedModel> {
    if (this.reloading) throw new Conflict('a reload is already running');
    this.reloading = true;
    try {
      let next: LoadedModel;
      try {
        next = await this.load();
      } catch (err) {
        this.metrics.recordReload('failed');
        throw new ReloadFailed((err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error');
      }
      const old = this.entry;
      this.entry = this.serve(next);
      this.metrics.recordReload('ok');
      void this.retire(old);
      return this.entry;
    } finally {
      this.reloading = false;
    }
  }

  /** Stops the current model's sessions once its last request has finished. */
  async close(): Promise<void> {
    await this.retire(this.entry);
  }

  private serve(model: LoadedModel): Entry {
    const { manifest } = model.bundle;
    const inference = createInference(
      model.pool,
      manifest.input,
      manifest.classes.length,
      { ...this.batching, maxInFlight: Math.max(1, model.pool.size) },
      this.metrics,
    );
    this.metrics.setModelInfo(manifest.name, manifest.version, model.pool.executionProvider);
    return { ...model, manifest, inference, users: 0 };
  }

  private async retire(entry: Entry): Promise<void> {
    if (entry.users > 0) await new Promise<void>((resolve) => (entry.retired = resolve));
    await entry.pool.close();
  }
}
