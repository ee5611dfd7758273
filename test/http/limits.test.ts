// Limits beyond the multipart ones in errors.test.ts: JSON body size, images per v2 tensor, and the request timeout.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const zeros = (batch: number) => ({ inputs: [{ name: 'input', shape: [batch, 1, 48, 48], datatype: 'FP32', data: new Array(batch * 2304).fill(0) }] });

describe('JSON and batch limits', () => {
  let t: TestApp;
  let url: string;
  // One zero image is ~4.7 kB of JSON; three are over 12 kB.
  beforeAll(async () => {
    t = await startTestApp({ ASM_FER_MAX_JSON_BYTES: String(12 * 1024), ASM_FER_MAX_FILES: '2' });
    url = `/v2/models/${t.bundle.manifest.name}/infer`;
  });
  afterAll(() => t.close());

  it('serves a body under ASM_FER_MAX_JSON_BYTES', async () => {
    expect((await request(t.app).post(url).send(zeros(2))).status).toBe(200);
  });

  it('answers 413 problem for a JSON body over ASM_FER_MAX_JSON_BYTES', async () => {
    const res = await request(t.app).post(url).send(zeros(3));
    expect(res.status).toBe(413);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(/larger than 12288 bytes \(ASM_FER_MAX_JSON_BYTES\)/);
  });

  it('answers 413 problem for a tensor batch over ASM_FER_MAX_FILES', async () => {
    // The batch dimension is checked before the data, so a short body shows the batch limit alone refusing it.
    const res = await request(t.app).post(url).send({ inputs: [{ name: 'input', shape: [3, 1, 48, 48], datatype: 'FP32', data: [0] }] });
    expect(res.status).toBe(413);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(/batch of 3 images; the limit is 2/);
  });
});

describe('request timeout', () => {
  let t: TestApp;
  // A queue delay far beyond the timeout: a lone image waits for company and the request runs out of time.
  beforeAll(async () => {
    t = await startTestApp({ ASM_FER_REQUEST_TIMEOUT_MS: '150', ASM_FER_MAX_QUEUE_DELAY_MS: '6000', ASM_FER_IDLE_QUEUE_DELAY_MS: '6000' });
  });
  afterAll(() => t.close());

  it('answers 503 request-timeout with Retry-After once ASM_FER_REQUEST_TIMEOUT_MS has passed', async () => {
    const started = performance.now();
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    // long before the batch would have run: the timeout answered, not the batch (slack for loaded CI cores)
    expect(performance.now() - started).toBeLessThan(4500);
    expect(res.status).toBe(503);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.type).toBe('https://asm-fer.dev/problems/request-timeout');
    expect(res.body.detail).toMatch(/within 150 ms/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, 'asm_fer_rejected_requests_total{reason="request-timeout"}')).toBe(1);
    expect(sample(text, 'asm_fer_http_request_duration_seconds_count{route="/v1/predict",method="POST",status="503"}')).toBe(1);
  });

  it('leaves fast requests alone', async () => {
    expect((await request(t.app).get('/v1/models')).status).toBe(200);
  });
});
