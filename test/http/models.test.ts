import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('GET /v1/models', () => {
  it('describes the served model from its bundle', async () => {
    const res = await request(t.app).get('/v1/models');
    expect(res.status).toBe(200);
    expectContract('GET', '/v1/models', res);
    const m = t.bundle.manifest;
    const [model] = res.body.models;
    expect(model).toMatchObject({
      name: m.name,
      version: m.version,
      classes: m.classes,
      thresholds: m.thresholds,
      input: m.input,
      provenance: { dataset: m.provenance.dataset, method: m.provenance.method, accuracy: m.provenance.metrics.accuracy },
    });
  });

  it('reports the execution provider the sessions loaded with', async () => {
    const res = await request(t.app).get('/v1/models');
    expect(res.body.models[0].executionProvider).toBe('cpu');
    expect(res.body.models[0].executionProvider).toBe(t.pool.executionProvider);
  });
});
