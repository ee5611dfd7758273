import { describe, expect, it } from 'vitest';
import type { InputSpec } from '../../src/bundle/load-bundle.js';
import { preprocess, tensorSize } from '../../src/inference/preprocess.js';

const grey: InputSpec = {
  name: 'input', layout: 'NCHW', dtype: 'float32', channels: 1, height: 1, width: 2,
  color: 'bt601-luma', resize: 'bilinear-fill', scale: 1 / 255, mean: [0.5], std: [0.5],
};
const rgb: InputSpec = { ...grey, channels: 3, color: 'rgb', mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2] };
const image = (data: number[]) => ({ data: Uint8Array.from(data), width: 2, height: 1, format: 'png' as const });

describe('preprocess', () => {
  it('takes BT.601 luma, scales and normalises for a one-channel model', () => {
    const out = preprocess(image([255, 255, 255, 255, 0, 0]), grey);
    expect(out).toHaveLength(2);
    expect(out[0]).toBeCloseTo(1, 5);
    expect(out[1]).toBeCloseTo((0.299 - 0.5) / 0.5, 5);
  });

  it('lays three channels out planar (C, H, W) with per-channel mean and std', () => {
    const out = preprocess(image([255, 0, 51, 0, 255, 102]), rgb);
    expect(Array.from(out).map((x) => Number(x.toFixed(4)))).toEqual([
      (1 - 0.1) / 0.5, (0 - 0.1) / 0.5,
      (0 - 0.2) / 0.25, (1 - 0.2) / 0.25,
      (0.2 - 0.3) / 2, (0.4 - 0.3) / 2,
    ].map((x) => Number(x.toFixed(4))));
  });

  it('writes into a batch buffer at an offset', () => {
    const batch = new Float32Array(2 * tensorSize(grey)).fill(9);
    preprocess(image([0, 0, 0, 0, 0, 0]), grey, batch, 2);
    expect(Array.from(batch)).toEqual([9, 9, -1, -1]);
  });

  it('refuses pixels that are not at the model size', () => {
    expect(() => preprocess({ ...image([0, 0, 0]), width: 1 }, grey)).toThrow(/expects 2x1/);
  });
});
