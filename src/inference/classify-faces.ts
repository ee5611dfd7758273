// Faces → the served model's classification of each: preprocess every face's pixels, run them through the batcher
// in one request, classify each probability row. Shared by /v1/predict (every face) and /v1/audit (the labelled one).
import type { RgbImage } from '../image/decode.js';
import type { RunTiming } from './batcher.js';
import { classify, type Classification } from './classify.js';
import type { ServedModel } from './model-host.js';
import { preprocess } from './preprocess.js';

/**
 * faces: (N,) → (N,) classifications in the same order; no faces, no inference request. A `signal` that aborts takes
 * the faces still waiting out of the batcher's queue; `timing` is told their queue wait and inference time.
 */
export async function classifyFaces(
  model: Pick<ServedModel, 'manifest' | 'inference'>,
  faces: readonly { pixels: RgbImage }[],
  signal?: AbortSignal,
  timing?: RunTiming,
): Promise<Classification[]> {
  if (faces.length === 0) return [];
  const { input, classes } = model.manifest;
  const rows = await model.inference.probabilities(faces.map((face) => preprocess(face.pixels, input)), signal, timing);
  return rows.map((row) => classify(row, classes));
}
