// A session worker that dies with a whole merged batch in hand: every request in that batch is answered 503 at once
// (none hangs), the worker comes back, and the same load is then served in full.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';

let t: TestApp;
// A generous queue delay merges the concurrent requests into one batch, so one crash hits them all.
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_WORKERS: '1', ASM_FER_MAX_QUEUE_DELAY_MS: '200', ASM_FER_IDLE_QUEUE_DELAY_MS: '200' }, { pool: { testHooks: true } });
});
afterAll(() => t.close());

const predictMany = async (n: number) => {
  const img = await png();
  return Promise.all(Array.from({ length: n }, (_, i) => request(t.app).post('/v1/predict').attach('image', img, `${i}.png`)));
};

describe('session worker crash under concurrent load', () => {
  it('answers every request of the lost batch 503 with Retry-After, then serves them all once respawned', async () => {
    t.pool.crashNextRun();
    const started = performance.now();
    const lost = await predictMany(6);
    expect(lost.map((r) => r.status)).toEqual(new Array(6).fill(503));
    expect(lost.every((r) => r.body.type === 'https://asm-fer.dev/problems/inference-interrupted' && Number(r.headers['retry-after']) > 0)).toBe(true);
    // Answered as soon as the worker died, far inside the request timeout.
    expect(performance.now() - started).toBeLessThan(5_000);

    const deadline = Date.now() + 20_000;
    while (t.pool.alive < t.pool.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(t.pool.alive).toBe(t.pool.size);

    const served = await predictMany(6);
    expect(served.map((r) => r.status)).toEqual(new Array(6).fill(200));
  });
});
