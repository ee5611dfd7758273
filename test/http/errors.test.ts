// Every refusal is RFC 9457 problem+json from src/http/problem.ts, and the service keeps serving afterwards.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpeg, png, solidPng, textFile, truncated } from '../fixtures/make-images.js';
import { replaceRun, startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_MAX_FILE_BYTES: String(64 * 1024), ASM_FER_MAX_FILES: '3', ASM_FER_MAX_PIXELS: '1000000', ASM_FER_MAX_QUEUE: '2' });
});
afterAll(() => t.close());

async function stillServes() {
  const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'ok.png');
  expect(res.status).toBe(200);
}

describe('problem responses', () => {
  it('415 for a text file named .png, decided by magic bytes', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', textFile, { filename: 'face.png', contentType: 'image/png' });
    expect(res.status).toBe(415);
    expect(res.type).toBe('application/problem+json');
    expectContract('POST', '/v1/predict', res);
    expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/unsupported-media-type', status: 415, index: 0 });
    await stillServes();
  });

  it('422 for a truncated JPEG, naming the offending part', async () => {
    const res = await request(t.app)
      .post('/v1/predict')
      .attach('image', await png(), 'ok.png')
      .attach('image', truncated(await jpeg(200, 200)), 'cut.jpg');
    expect(res.status).toBe(422);
    expectContract('POST', '/v1/predict', res);
    expect(res.body).toMatchObject({ title: 'Unreadable image', index: 1 });
    await stillServes();
  });

  it('413 for a part over the byte limit', async () => {
    const big = Buffer.concat([await png(), Buffer.alloc(70 * 1024)]);
    const res = await request(t.app).post('/v1/predict').attach('image', big, 'big.png');
    expect(res.status).toBe(413);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toBe('an image part is larger than 65536 bytes (ASM_FER_MAX_FILE_BYTES)');
    await stillServes();
  });

  it('413 for more image parts than allowed', async () => {
    const img = await png(8, 8);
    let req = request(t.app).post('/v1/predict');
    for (let i = 0; i < 4; i++) req = req.attach('image', img, `${i}.png`);
    const res = await req;
    expect(res.status).toBe(413);
    expectContract('POST', '/v1/predict', res);
    // multer says only "Too many files"; the client needs the number to split its batch.
    expect(res.body.detail).toBe('more than 3 image parts; the limit is 3 per request (ASM_FER_MAX_FILES)');
    await stillServes();
  });

  it('413 for an image over the pixel limit', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await solidPng(1200, 1000), 'huge.png');
    expect(res.status).toBe(413);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toMatch(/1200x1000 = 1200000 pixels, the limit is 1000000/);
    await stillServes();
  });

  it('503 with Retry-After when the images do not fit in the queue', async () => {
    const img = await png(8, 8);
    const res = await request(t.app).post('/v1/predict').attach('image', img, 'a.png').attach('image', img, 'b.png').attach('image', img, 'c.png');
    expect(res.status).toBe(503);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.type).toMatch(/overloaded$/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await stillServes();
  });

  it('400 for a malformed multipart body', async () => {
    const res = await request(t.app).post('/v1/predict').set('Content-Type', 'multipart/form-data; boundary=x').send('--x\r\nbroken');
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
    await stillServes();
  });

  it('404 problem for an unknown path', async () => {
    const res = await request(t.app).get('/v1/nothing');
    expect(res.status).toBe(404);
    expect(res.type).toBe('application/problem+json');
    expect(res.body.status).toBe(404);
  });

  it('echoes a valid X-Request-Id and generates one otherwise', async () => {
    const given = await request(t.app).get('/v2/health/live').set('X-Request-Id', 'abc-123');
    expect(given.headers['x-request-id']).toBe('abc-123');
    const bad = await request(t.app).get('/v2/health/live').set('X-Request-Id', 'has spaces and \u00e9');
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('unexpected failures', () => {
  it('500 problem without internals, and the next request is served', async () => {
    let fail = true;
    const u = await startTestApp({}, {
      wrap: replaceRun((pool) => (data, dims) =>
        fail ? Promise.reject(new Error('ENOENT /secret/models/model.onnx at Worker.run')) : pool.run(data, dims),
      ),
    });
    try {
      const res = await request(u.app).post('/v1/predict').attach('image', await png(), 'a.png');
      expect(res.status).toBe(500);
      expect(res.type).toBe('application/problem+json');
      expect(JSON.stringify(res.body)).not.toMatch(/secret|ENOENT|Worker/);
      fail = false;
      const next = await request(u.app).post('/v1/predict').attach('image', await png(), 'a.png');
      expect(next.status).toBe(200);
    } finally {
      await u.close();
    }
  });
});

describe('request bodies', () => {
  it('415 for a body that is not multipart/form-data', async () => {
    const res = await request(t.app).post('/v1/predict').set('Content-Type', 'application/json').send('{"image":"x"}');
    expect(res.status).toBe(415);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toMatch(/must be multipart\/form-data.*; this request has Content-Type application\/json$/);
  });

  it('415 for an empty POST, saying what to send (not "unsupported media type undefined")', async () => {
    const res = await request(t.app).post('/v1/predict');
    expect(res.status).toBe(415);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toBe(
      'the request body must be multipart/form-data, one file part per image (curl -F image=@face.png); this request has no Content-Type header',
    );
  });
});
