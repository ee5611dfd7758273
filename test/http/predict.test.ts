import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpeg, png, solidPng } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const CLASSES = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'];

describe('POST /v1/predict', () => {
  it('returns label, confidence and every class probability for one image', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'face.png');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    const [r] = res.body.results;
    expect(Object.keys(r.probabilities)).toEqual(CLASSES);
    const sum = Object.values<number>(r.probabilities).reduce((s, p) => s + p, 0);
    expect(sum).toBeCloseTo(1, 5);
    expect(r.confidence).toBe(Math.max(...Object.values<number>(r.probabilities)));
    expect(r.probabilities[r.label]).toBe(r.confidence);
  });

  it('returns one result per image, in request order', async () => {
    const a = await jpeg(120, 90);
    const b = await solidPng(48, 48);
    const single = async (img: Buffer) => (await request(t.app).post('/v1/predict').attach('image', img, 'x')).body.results[0];
    const [ra, rb] = [await single(a), await single(b)];
    const res = await request(t.app).post('/v1/predict').attach('image', a, 'a.jpg').attach('image', b, 'b.png');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.results).toHaveLength(2);
    for (const c of CLASSES) {
      expect(res.body.results[0].probabilities[c]).toBeCloseTo(ra.probabilities[c], 5);
      expect(res.body.results[1].probabilities[c]).toBeCloseTo(rb.probabilities[c], 5);
    }
  });

  it('accepts RGBA PNG, a 1x1 image and a large JPEG', async () => {
    const res = await request(t.app)
      .post('/v1/predict')
      .attach('image', await png(48, 48, 4), 'rgba.png')
      .attach('image', await png(1, 1), 'dot.png')
      .attach('image', await jpeg(640, 480), 'big.jpg');
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(3);
  });

  it('judges the bytes, not the declared content type or file name', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), { filename: 'face.txt', contentType: 'text/plain' });
    expect(res.status).toBe(200);
  });

  it('names the model that answered', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'face.png');
    expect(res.body.model).toEqual({ name: t.bundle.manifest.name, version: t.bundle.manifest.version });
  });

  it('answers 400 when there is no image part', async () => {
    const res = await request(t.app).post('/v1/predict').field('note', 'no image here');
    expect(res.status).toBe(400);
    expect(res.type).toBe('application/problem+json');
    expectContract('POST', '/v1/predict', res);
  });

  it('answers 400 when an image is sent under another part name', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png').attach('file', await png(), 'b.png');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
  });
});
