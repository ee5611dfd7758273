// Face boxes: the i-th `box` part crops the i-th image before preprocessing; bad boxes are refused clearly.
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png, solidPng } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
let face: Buffer;
let scene: Buffer;
beforeAll(async () => {
  t = await startTestApp();
  face = await png(48, 48);
  // The 48x48 face pasted at (30, 20) into a 120x90 grey scene.
  scene = await sharp(await solidPng(120, 90)).composite([{ input: face, left: 30, top: 20 }]).png().toBuffer();
});
afterAll(() => t.close());

const probs = (res: request.Response, i = 0) => res.body.results[i].probabilities as Record<string, number>;

describe('POST /v1/predict with box parts', () => {
  it('crops to the box before preprocessing: the boxed face scores as the face alone', async () => {
    const alone = await request(t.app).post('/v1/predict').attach('image', face, 'face.png');
    const whole = await request(t.app).post('/v1/predict').attach('image', scene, 'scene.png');
    const boxed = await request(t.app).post('/v1/predict').attach('image', scene, 'scene.png').field('box', '30,20,48,48');
    expect(boxed.status).toBe(200);
    expectContract('POST', '/v1/predict', boxed);
    for (const c of t.bundle.manifest.classes) expect(probs(boxed)[c]).toBeCloseTo(probs(alone)[c] as number, 6);
    expect(Object.keys(probs(whole)).some((c) => Math.abs((probs(whole)[c] as number) - (probs(boxed)[c] as number)) > 1e-4)).toBe(true);
  });

  it('pairs the i-th box with the i-th image', async () => {
    const res = await request(t.app)
      .post('/v1/predict')
      .attach('image', face, 'face.png')
      .attach('image', scene, 'scene.png')
      .field('box', '0,0,48,48')
      .field('box', '30,20,48,48');
    expect(res.status).toBe(200);
    for (const c of t.bundle.manifest.classes) expect(probs(res, 1)[c]).toBeCloseTo(probs(res, 0)[c] as number, 6);
  });

  it('answers 422 box-outside-image naming the image when a box leaves it', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', face, 'a.png').attach('image', scene, 'b.png').field('box', '0,0,48,48').field('box', '100,50,48,48');
    expect(res.status).toBe(422);
    expectContract('POST', '/v1/predict', res);
    expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/box-outside-image', index: 1 });
    expect(res.body.detail).toMatch(/x=100,y=50,width=48,height=48 does not lie inside the 120x90 image/);
  });

  it('answers 400 when the box count differs from the image count', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', face, 'a.png').attach('image', face, 'b.png').field('box', '0,0,10,10');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toMatch(/2 image part\(s\) and 1 box part\(s\)/);
  });

  it.each(['10,10,20', 'a,b,c,d', '-1,0,5,5', '0,0,0,10'])('answers 400 for the malformed box %j', async (box) => {
    const res = await request(t.app).post('/v1/predict').attach('image', face, 'a.png').field('box', box);
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
  });
});

describe('POST /v1/audit with box parts', () => {
  it('audits the boxed region', async () => {
    const alone = await request(t.app).post('/v1/audit').attach('image', face, 'face.png').field('label', 'fear');
    const boxed = await request(t.app).post('/v1/audit').attach('image', scene, 'scene.png').field('label', 'fear').field('box', '30,20,48,48');
    expect(boxed.status).toBe(200);
    expectContract('POST', '/v1/audit', boxed);
    expect(boxed.body.results[0].labelProbability).toBeCloseTo(alone.body.results[0].labelProbability, 6);
  });
});
