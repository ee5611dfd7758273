import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verdict } from '../../src/audit/judge.js';
import { jpeg, png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('POST /v1/audit', () => {
  it('gives each item the label probability, that class thresholds and the ASM verdict', async () => {
    const res = await request(t.app)
      .post('/v1/audit')
      .attach('image', await png(), 'a.png')
      .field('label', 'happiness')
      .attach('image', await jpeg(80, 80), 'b.jpg')
      .field('label', 'fear');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/audit', res);
    expect(res.body.results.map((r: { label: string }) => r.label)).toEqual(['happiness', 'fear']);
    for (const r of res.body.results) {
      expect(r.thresholds).toEqual(t.bundle.manifest.thresholds[r.label]);
      expect(r.labelProbability).toBe(r.probabilities[r.label]);
      expect(r.verdict).toBe(verdict(r.labelProbability, r.thresholds));
      expect(r.predicted).toBe(Object.entries<number>(r.probabilities).sort((x, y) => y[1] - x[1])[0]?.[0]);
      expect(r.suggestedLabel).toBe(r.verdict === 'noisy' ? r.predicted : null);
    }
  });

  it('matches /v1/predict for the same image', async () => {
    const img = await png();
    const audit = await request(t.app).post('/v1/audit').attach('image', img, 'a.png').field('label', 'neutral');
    const predict = await request(t.app).post('/v1/predict').attach('image', img, 'a.png');
    expect(audit.body.results[0].predicted).toBe(predict.body.results[0].label);
    expect(audit.body.results[0].confidence).toBeCloseTo(predict.body.results[0].confidence, 6);
  });

  it('calls a label noisy when its probability is under the noisy threshold, and suggests the prediction', async () => {
    // The tiny model is near-uniform (p ≈ 1/8 < every noisy threshold), so its least likely class is always noisy.
    const img = await png();
    const probs = (await request(t.app).post('/v1/predict').attach('image', img, 'a.png')).body.results[0].probabilities as Record<string, number>;
    const least = Object.entries(probs).sort((x, y) => x[1] - y[1])[0]?.[0] as string;
    expect(probs[least]).toBeLessThan(t.bundle.manifest.thresholds[least]?.noisy as number);
    const res = await request(t.app).post('/v1/audit').attach('image', img, 'a.png').field('label', least);
    expect(res.body.results[0].verdict).toBe('noisy');
    expect(res.body.results[0].suggestedLabel).toBe(res.body.results[0].predicted);
  });

  it('answers 400 listing the valid labels when a label is not a class', async () => {
    const res = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', 'joy');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/audit', res);
    expect(res.body.type).toMatch(/unknown-label$/);
    expect(res.body.validLabels).toEqual(t.bundle.manifest.classes);
    expect(res.body.index).toBe(0);
  });

  it('answers 400 when image and label counts differ', async () => {
    const res = await request(t.app)
      .post('/v1/audit')
      .attach('image', await png(), 'a.png')
      .attach('image', await png(), 'b.png')
      .field('label', 'fear');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/audit', res);
    expect(res.body.detail).toMatch(/2 image part\(s\) and 1 label part\(s\)/);
  });

  it('answers 400 when the label part is missing', async () => {
    const res = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/audit', res);
  });
});
