import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('GET /v2/health/live', () => {
  it('answers 200 while the process runs, ready or not', async () => {
    t.readiness.ready = false;
    const res = await request(t.app).get('/v2/health/live');
    t.readiness.ready = true;
    expect(res.status).toBe(200);
    expectContract('GET', '/v2/health/live', res);
  });
});

describe('a request reaching a stopping process', () => {
  it('is refused with 503 not-ready that says the service is stopping, not that the model is missing', async () => {
    t.readiness.ready = false;
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    t.readiness.ready = true;
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.type).toMatch(/not-ready$/);
    expect(res.body.detail).toMatch(/stopping/);
    expect(res.body.detail).not.toMatch(/not loaded/);
  });
});

describe('GET /v2/health/ready', () => {
  it('answers 200 once the model is loaded and warmed up', async () => {
    const res = await request(t.app).get('/v2/health/ready');
    expect(res.status).toBe(200);
    expectContract('GET', '/v2/health/ready', res);
    expect(res.body).toEqual({ status: 'ready' });
  });

  it('answers 503 problem+json with Retry-After while not ready', async () => {
    t.readiness.ready = false;
    const res = await request(t.app).get('/v2/health/ready');
    t.readiness.ready = true;
    expect(res.status).toBe(503);
    expectContract('GET', '/v2/health/ready', res);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body.type).toMatch(/not-ready$/);
  });

  it('makes inference routes answer 503 while not ready', async () => {
    t.readiness.ready = false;
    const res = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    t.readiness.ready = true;
    expect(res.status).toBe(503);
    expectContract('POST', '/v1/predict', res);
  });
});
