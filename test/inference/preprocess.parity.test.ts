// The tensors Python computed for the parity images must come out of decode + preprocess within each case's tolerance.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InputSpec } from '../../src/bundle/load-bundle.js';
import { decodeImage } from '../../src/image/decode.js';
import { preprocess } from '../../src/inference/preprocess.js';
import { PARITY_DIR, PARITY_JSON } from '../fixtures/paths.js';

interface ParityCase {
  file: string;
  shape: number[];
  tensor: number[];
  tolerance: { maxAbs: number; meanAbs: number };
}
const parity = JSON.parse(readFileSync(PARITY_JSON, 'utf8')) as { input: InputSpec; cases: ParityCase[] };

describe('preprocess parity with training/asm_fer/data/preprocess.py', () => {
  it('covers grey, RGB, RGBA, resized and EXIF-rotated inputs', () => {
    expect(parity.cases.length).toBeGreaterThanOrEqual(5);
  });

  it.each(parity.cases.map((c) => [c.file, c] as const))('%s matches within its stated tolerance', async (_name, c) => {
    const spec = parity.input;
    const img = await decodeImage(readFileSync(path.join(PARITY_DIR, c.file)), { width: spec.width, height: spec.height, maxPixels: 40_000_000 });
    const out = preprocess(img, spec);
    expect([1, ...[spec.channels, spec.height, spec.width]]).toEqual(c.shape);
    expect(out).toHaveLength(c.tensor.length);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < out.length; i++) {
      const d = Math.abs((out[i] as number) - (c.tensor[i] as number));
      max = Math.max(max, d);
      sum += d;
    }
    expect(max).toBeLessThanOrEqual(c.tolerance.maxAbs);
    expect(sum / out.length).toBeLessThanOrEqual(c.tolerance.meanAbs);
  });
});
