// Admission control: with ASM_FER_MAX_QUEUE requests already in progress, the next inference request is refused 503
// with Retry-After before its body is even read; the admitted ones finish, and then the service admits again.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png, textFile } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from '../http/contract.js';

let t: TestApp;
// A long queue delay keeps the two admitted single-image requests waiting in the batcher, so a refusal that arrives
// while both are still queued was answered without waiting for them (no wall-clock bound: it flaked on a loaded machine).
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_MAX_QUEUE: '2', ASM_FER_MAX_QUEUE_DELAY_MS: '4000', ASM_FER_IDLE_QUEUE_DELAY_MS: '4000', ASM_FER_MAX_BATCH_SIZE: '8' });
});
afterAll(() => t.close());

describe('admission under overload', () => {
  it('refuses beyond ASM_FER_MAX_QUEUE requests in progress without reading the body, then recovers', async () => {
    const img = await png();
    const admitted = [0, 1].map((i) => request(t.app).post('/v1/predict').attach('image', img, `${i}.png`).then((r) => r));
    const deadline = Date.now() + 10_000;
    while (t.host.current.inference.queued < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(t.host.current.inference.queued).toBe(2);

    // Not an image at all: had the body been parsed, this would be 415.
    const refused = await request(t.app).post('/v1/predict').attach('image', textFile, 'x.png');
    expect(t.host.current.inference.queued).toBe(2); // both admitted still wait: the refusal did not wait for them
    expect(refused.status).toBe(503);
    expectContract('POST', '/v1/predict', refused);
    expect(refused.body.type).toBe('https://asm-fer.dev/problems/overloaded');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    const v2 = await request(t.app).post(`/v2/models/${t.bundle.manifest.name}/infer`).send({ inputs: [] });
    expect(v2.status).toBe(503);

    expect((await Promise.all(admitted)).map((r) => r.status)).toEqual([200, 200]);
    expect((await request(t.app).post('/v1/predict').attach('image', img, 'after.png')).status).toBe(200);
    expect((await request(t.app).get('/v2/health/live')).status).toBe(200);
  });
});
