// The decoded-pixel budgets: what a request's images decode to is reserved from their headers before any is decoded,
// against ASM_FER_REQUEST_PIXEL_BUDGET (413) and ASM_FER_PROCESS_PIXEL_BUDGET (503 with Retry-After).
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const metric = async (t: TestApp, series: string) => sample((await request(t.app).get('/metrics')).text, series) ?? 0;

/** An all-black PNG: a few kilobytes on the wire, width x height pixels once decoded. */
const blackPng = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();

describe('the request pixel budget (defaults)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('answers 32 copies of a 4000 x 4000 black PNG 413 from the headers, naming the budget, before decoding any', async () => {
    const big = await blackPng(4000, 4000);
    expect(big.length).toBeLessThan(100_000);
    let req = request(t.app).post('/v1/predict?detect=always');
    for (let i = 0; i < 32; i++) req = req.attach('image', big, `black-${i}.png`);
    const started = performance.now();
    const res = await req;
    expect(res.status).toBe(413);
    expectContract('POST', '/v1/predict', res);
    expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/payload-too-large', budget: 'ASM_FER_REQUEST_PIXEL_BUDGET', limit: 80_000_000 });
    expect(res.body.pixels).toBeGreaterThan(32 * 16_000_000);
    expect(res.body.detail).toMatch(/request budget is 80000000 \(ASM_FER_REQUEST_PIXEL_BUDGET\)/);
    // Decoding 512 M pixels takes many seconds; the headers alone take milliseconds.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await metric(t, 'asm_fer_detection_duration_seconds_count')).toBe(0);
    expect(await metric(t, 'asm_fer_decoded_pixels_reserved')).toBe(0);
  });

  it('counts the letterbox and the crops: an image that fits without detection may not fit with it', async () => {
    const u = await startTestApp({ ASM_FER_REQUEST_PIXEL_BUDGET: String(1000 * 1000 + 10_000), ASM_FER_PROCESS_PIXEL_BUDGET: String(1000 * 1000 + 10_000) });
    try {
      const img = await blackPng(1000, 1000);
      const never = await request(u.app).post('/v1/predict?detect=never').attach('image', img, 'a.png');
      expect(never.status).toBe(200);
      const always = await request(u.app).post('/v1/predict?detect=always').attach('image', img, 'a.png');
      expect(always.status).toBe(413);
      expectContract('POST', '/v1/predict', always);
      expect(await metric(u, 'asm_fer_decoded_pixels_reserved')).toBe(0);
    } finally {
      await u.close();
    }
  });
});

describe('the process pixel budget', () => {
  let t: TestApp;
  // One 1000 x 1000 image (detect=never) fits the process budget once; a long queue delay keeps the first request's
  // lease held while the second arrives.
  beforeAll(async () => {
    const budget = String(1_500_000);
    t = await startTestApp({ ASM_FER_REQUEST_PIXEL_BUDGET: budget, ASM_FER_PROCESS_PIXEL_BUDGET: budget, ASM_FER_MAX_QUEUE_DELAY_MS: '1500', ASM_FER_IDLE_QUEUE_DELAY_MS: '1500' });
  });
  afterAll(() => t.close());

  it('answers a request over what the process has left 503 with Retry-After, and serves again once the pixels are given back', async () => {
    const img = await blackPng(1000, 1000);
    const first = request(t.app).post('/v1/predict?detect=never').attach('image', img, 'a.png').then((r) => r);
    for (let i = 0; i < 200 && (await metric(t, 'asm_fer_decoded_pixels_reserved')) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await metric(t, 'asm_fer_decoded_pixels_reserved')).toBe(1000 * 1000 + 48 * 48);
    const second = await request(t.app).post('/v1/predict?detect=never').attach('image', img, 'b.png');
    expect(second.status).toBe(503);
    expectContract('POST', '/v1/predict', second);
    expect(second.body.type).toBe('https://asm-fer.dev/problems/overloaded');
    expect(second.body.detail).toMatch(/process budget of 1500000 \(ASM_FER_PROCESS_PIXEL_BUDGET\)/);
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
    expect((await first).status).toBe(200);
    expect(await metric(t, 'asm_fer_decoded_pixels_reserved')).toBe(0);
    const third = await request(t.app).post('/v1/predict?detect=never').attach('image', await png(), 'c.png');
    expect(third.status).toBe(200);
  });
});
