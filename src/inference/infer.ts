// Joins the batcher to the session pool: per-image tensors in, per-image probability rows out.
import type { InputSpec } from '../bundle/load-bundle.js';
import type { Metrics } from '../metrics.js';
import { Batcher, type BatcherOptions, type RunTiming } from './batcher.js';
import { tensorSize } from './preprocess.js';
import type { SessionPool } from '../onnx/session-pool.js';

export interface Inference {
  /**
   * tensors: one (C, H, W) float32 per image → one (K,) probability row per image, in order. When `signal` aborts,
   * the images still waiting leave the queue and the promise rejects with its reason; `timing` is told their queue wait
   * and inference time.
   */
  probabilities(tensors: readonly Float32Array[], signal?: AbortSignal, timing?: RunTiming): Promise<Float32Array[]>;
  /** Images waiting for a batch. */
  readonly queued: number;
}

export function createInference(
  pool: Pick<SessionPool, 'run'>,
  spec: InputSpec,
  classCount: number,
  opts: BatcherOptions,
  metrics?: Pick<Metrics, 'observeBatch' | 'observeInference' | 'recordInferenceRequest' | 'recordCancelledImages'>,
): Inference {
  const per = tensorSize(spec);
  const runBatch = async (items: Float32Array[]): Promise<Float32Array[]> => {
    const batch = new Float32Array(items.length * per);
    items.forEach((t, i) => batch.set(t, i * per));
    const started = performance.now();
    const out = await pool.run(batch, [items.length, spec.channels, spec.height, spec.width]);
    metrics?.observeInference((performance.now() - started) / 1000);
    if (out.dims[0] !== items.length || out.dims[1] !== classCount) {
      throw new Error(`model output has shape [${out.dims.join(', ')}], expected [${items.length}, ${classCount}]`);
    }
    return items.map((_, i) => out.data.slice(i * classCount, (i + 1) * classCount));
  };
  const batcher = new Batcher(runBatch, opts, {
    onBatch: (size, waits) => metrics?.observeBatch(size, waits),
    onCancelled: (n) => metrics?.recordCancelledImages('inference', n),
  });
  return {
    probabilities: (tensors, signal, timing) => {
      metrics?.recordInferenceRequest();
      return batcher.run(tensors, signal, timing);
    },
    get queued() {
      return batcher.queued;
    },
  };
}
