// A session worker that dies mid-batch: its request gets 503 with Retry-After, the worker is respawned, and the next
// request is served by a whole pool again.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_WORKERS: '1' }, { pool: { testHooks: true } });
});
afterAll(() => t.close());

describe('session worker crash', () => {
  it('answers the in-flight request 503 inference-interrupted, respawns the worker and serves again', async () => {
    t.pool.crashNextRun();
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    expect(res.status).toBe(503);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.type).toBe('https://asm-fer.dev/problems/inference-interrupted');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);

    const deadline = Date.now() + 20_000;
    while (t.pool.alive < t.pool.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(t.pool.alive).toBe(1);
    expect(t.pool.restarts).toBe(1);

    const next = await request(t.app).post('/v1/predict').attach('image', await png(), 'b.png');
    expect(next.status).toBe(200);
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, 'asm_fer_worker_restarts_total')).toBe(1);
    expect(sample(text, 'asm_fer_rejected_requests_total{reason="inference-interrupted"}')).toBe(1);
  });
});
