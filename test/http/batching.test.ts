// Dynamic batching seen from outside: concurrent requests become fewer, larger batches (counted on /metrics), and a
// full queue answers 503 with Retry-After at once.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const metrics = async (t: TestApp) => (await request(t.app).get('/metrics')).text;

/** Polls /metrics until `series` reaches `value` (the requests are in the queue), failing after a few seconds. */
async function until(t: TestApp, series: string, value: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((sample(await metrics(t), series) ?? 0) < value) {
    if (Date.now() > deadline) throw new Error(`${series} never reached ${value}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('dynamic batching', () => {
  let t: TestApp;
  // A long delay, idle too, so the batch closes on size alone: eight concurrent requests must become one batch of eight.
  beforeAll(async () => {
    t = await startTestApp({ ASM_FER_MAX_BATCH_SIZE: '8', ASM_FER_MAX_QUEUE_DELAY_MS: '5000', ASM_FER_IDLE_QUEUE_DELAY_MS: '5000' });
  });
  afterAll(() => t.close());

  it('merges concurrent requests into one batch, counting requests and executions apart', async () => {
    const img = await png();
    const before = await metrics(t);
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => request(t.app).post('/v1/predict').attach('image', img, `${i}.png`)));
    for (const res of responses) {
      expect(res.status).toBe(200);
      expectContract('POST', '/v1/predict', res);
    }
    const text = await metrics(t);
    const delta = (series: string) => (sample(text, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta('asm_fer_inference_requests_total')).toBe(8);
    expect(delta('asm_fer_batch_executions_total')).toBe(1);
    expect(delta('asm_fer_batch_size_sum')).toBe(8);
    expect(delta('asm_fer_batch_size_bucket{le="4"}')).toBe(0);
    expect(delta('asm_fer_batch_size_bucket{le="8"}')).toBe(1);
    expect(delta('asm_fer_queue_wait_seconds_count')).toBe(8);
    expect(sample(text, 'asm_fer_queue_depth')).toBe(0);
  });
});

describe('bounded queue', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ ASM_FER_MAX_BATCH_SIZE: '8', ASM_FER_MAX_QUEUE: '4', ASM_FER_MAX_QUEUE_DELAY_MS: '1500', ASM_FER_IDLE_QUEUE_DELAY_MS: '1500' });
  });
  afterAll(() => t.close());

  it('answers 503 overloaded with Retry-After at once when the queue is full, and serves the queued requests', async () => {
    const img = await png();
    const queued = Array.from({ length: 4 }, (_, i) => request(t.app).post('/v1/predict').attach('image', img, `${i}.png`).then((r) => r));
    await until(t, 'asm_fer_queue_depth', 4);
    const started = performance.now();
    const refused = await request(t.app).post('/v1/predict').attach('image', img, 'extra.png');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(refused.status).toBe(503);
    expectContract('POST', '/v1/predict', refused);
    expect(refused.body.type).toBe('https://asm-fer.dev/problems/overloaded');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    for (const res of await Promise.all(queued)) expect(res.status).toBe(200);
    const text = await metrics(t);
    expect(sample(text, 'asm_fer_rejected_requests_total{reason="overloaded"}')).toBe(1);
    expect(sample(text, 'asm_fer_batch_executions_total')).toBe(1);
  });
});
