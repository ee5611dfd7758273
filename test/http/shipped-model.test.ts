// The bundle the repository ships (models/default), served the way `make serve` serves it.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const SHIPPED = 'models/default';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_MODEL_DIR: SHIPPED });
});
afterAll(() => t.close());

describe('the shipped bundle', () => {
  it('is under 10 MB (issue 4)', () => {
    const bytes = readdirSync(SHIPPED).reduce((sum, f) => sum + statSync(path.join(SHIPPED, f)).size, 0);
    expect(bytes).toBeLessThan(10_000_000);
  });

  it('answers a prediction with one float probability per class, although its weights are stored as float16', async () => {
    expect(t.bundle.manifest.model.weightDtype).toBe('float16');
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'face.png');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    const [r] = res.body.results;
    expect(Object.keys(r.probabilities)).toEqual(t.bundle.manifest.classes);
    const sum = Object.values<number>(r.probabilities).reduce((s, p) => s + p, 0);
    expect(sum).toBeCloseTo(1, 5);
  });

  it('gives an image and its mirror image the same probabilities: the graph averages both views (issue 8)', async () => {
    expect(t.bundle.manifest.model.testTimeAugmentation).toBe('flip');
    const image = await png();
    const mirrored = await sharp(image).flop().png().toBuffer();
    const res = await request(t.app).post('/v1/predict').attach('image', image, 'a.png').attach('image', mirrored, 'b.png');
    expect(res.status).toBe(200);
    const [a, b] = res.body.results as { probabilities: Record<string, number> }[];
    for (const c of t.bundle.manifest.classes) expect(b?.probabilities[c]).toBeCloseTo(a?.probabilities[c] as number, 5);
  });
});
