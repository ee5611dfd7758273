// Turns decoded RGB pixels into the model's input exactly as the training side's eval transform does;
// parity: test/inference/preprocess.parity.test.ts.
import type { InputSpec } from '../bundle/load-bundle.js';
import type { RgbImage } from '../image/decode.js';

/** BT.601 luma weights, applied in float32 to 8-bit R, G, B. */
const LUMA = [0.299, 0.587, 0.114] as const;

/** Elements in one image's tensor: channels * height * width. */
export function tensorSize(spec: InputSpec): number {
  return spec.channels * spec.height * spec.width;
}

/**
 * RGB (H, W, 3) uint8 → (C, H, W) float32: optional luma, then x * scale, then (x - mean[c]) / std[c].
 * The image must already be spec.width x spec.height (decode.ts resizes). Writes into `out` at `offset` when given,
 * so a batch can be filled without copies.
 */
export function preprocess(img: RgbImage, spec: InputSpec, out = new Float32Array(tensorSize(spec)), offset = 0): Float32Array {
  if (img.width !== spec.width || img.height !== spec.height) {
    throw new Error(`preprocess expects ${spec.width}x${spec.height}, got ${img.width}x${img.height}`);
  }
  const plane = spec.width * spec.height;
  const px = img.data;
  if (spec.channels === 1) {
    const scale = Math.fround(spec.scale);
    const mean = Math.fround(spec.mean[0] ?? 0);
    const std = Math.fround(spec.std[0] ?? 1);
    const [wr, wg, wb] = LUMA.map(Math.fround) as [number, number, number];
    for (let i = 0; i < plane; i++) {
      const r = px[3 * i] ?? 0;
      const g = px[3 * i + 1] ?? 0;
      const b = px[3 * i + 2] ?? 0;
      // Math.fround after each step keeps the arithmetic in float32, as numpy does on float32 arrays.
      const y = Math.fround(Math.fround(Math.fround(wr * r) + Math.fround(wg * g)) + Math.fround(wb * b));
      out[offset + i] = Math.fround(Math.fround(Math.fround(y * scale) - mean) / std);
    }
    return out;
  }
  for (let c = 0; c < 3; c++) {
    const scale = Math.fround(spec.scale);
    const mean = Math.fround(spec.mean[c] ?? 0);
    const std = Math.fround(spec.std[c] ?? 1);
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) {
      const x = px[3 * i + c] ?? 0;
      out[base + i] = Math.fround(Math.fround(Math.fround(x * scale) - mean) / std);
    }
  }
  return out;
}
