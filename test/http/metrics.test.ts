import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());


describe('GET /metrics', () => {
  it('exposes process metrics and the model info gauge under the asm_fer_ prefix', async () => {
    const res = await request(t.app).get('/metrics');
    expect(res.status).toBe(200);
    expectContract('GET', '/metrics', res);
    expect(res.text).toMatch(/^asm_fer_process_cpu_seconds_total /m);
    const m = t.bundle.manifest;
    expect(sample(res.text, `asm_fer_model_info{name="${m.name}",version="${m.version}",execution_provider="cpu"}`)).toBe(1);
    const names = [...res.text.matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1]);
    expect(names.every((n) => n?.startsWith('asm_fer_'))).toBe(true);
  });

  it('counts predictions by class and observes batch size, inference and request time', async () => {
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png').attach('image', await png(), 'b.png');
    const label = res.body.results[0].label as string;
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, `asm_fer_predictions_total{class="${label}"}`)).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'asm_fer_batch_size_sum')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'asm_fer_inference_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'asm_fer_queue_wait_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'asm_fer_http_request_duration_seconds_count{route="/v1/predict",method="POST",status="200"}')).toBe(1);
  });

  it('counts audit verdicts by class and verdict', async () => {
    const res = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', 'fear');
    const v = res.body.results[0].verdict as string;
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, `asm_fer_audit_verdicts_total{class="fear",verdict="${v}"}`)).toBe(1);
  });

  it('labels unknown paths with a fixed route, not the raw URL', async () => {
    await request(t.app).get('/no/such/path/12345');
    const text = (await request(t.app).get('/metrics')).text;
    expect(text).not.toContain('12345');
    expect(text).toContain('route="unmatched"');
  });
});
