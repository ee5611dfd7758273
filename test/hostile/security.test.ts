// Security defaults: no internals in any response, and CORS closed unless origins are configured.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { png } from '../fixtures/make-images.js';
import { replaceRun, startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { LEAK } from './leak.js';

describe('responses never show internals', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Every inference fails the way a native error would, with a path and a stack in its message.
    t = await startTestApp({}, {
      wrap: replaceRun(() => () => {
        const err = new Error(`ENOENT: open '${process.cwd()}/models/x/model.onnx'`);
        err.stack = `${err.message}\n    at Worker.run (${process.cwd()}/src/onnx/worker.ts:42:7)`;
        return Promise.reject(err);
      }),
    });
  });
  afterAll(() => t.close());

  it('holds for every GET route, unknown routes and methods, and a 500', async () => {
    const name = t.bundle.manifest.name;
    const responses = await Promise.all([
      request(t.app).get('/v1/models'),
      request(t.app).get('/v2'),
      request(t.app).get(`/v2/models/${name}`),
      request(t.app).get(`/v2/models/${name}/ready`),
      request(t.app).get('/v2/health/live'),
      request(t.app).get('/v2/health/ready'),
      request(t.app).get('/metrics'),
      request(t.app).get('/openapi.yaml'),
      request(t.app).get('/v1/nothing/../../etc/passwd'),
      request(t.app).delete('/v1/predict'),
      request(t.app).post('/v1/predict').attach('image', await png(), 'a.png'),
    ]);
    expect(responses.at(-1)?.status).toBe(500);
    responses.forEach((res, i) => expect(res.text, `response ${i} (${res.status})`).not.toMatch(LEAK));
  });
});

describe('CORS', () => {
  describe('by default', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp();
    });
    afterAll(() => t.close());

    it('sends no CORS headers, even to a preflight', async () => {
      const simple = await request(t.app).get('/v1/models').set('Origin', 'https://evil.example');
      expect(simple.status).toBe(200);
      expect(simple.headers['access-control-allow-origin']).toBeUndefined();
      const preflight = await request(t.app).options('/v1/predict').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
      expect(preflight.status).not.toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect(preflight.type).toBe('application/problem+json');
    });
  });

  describe('with ASM_FER_CORS_ORIGINS', () => {
    let t: TestApp;
    const allowed = 'https://app.example.com';
    beforeAll(async () => {
      t = await startTestApp({ ASM_FER_CORS_ORIGINS: `${allowed}, http://localhost:5173` });
    });
    afterAll(() => t.close());

    it('answers an allowed origin, its preflight and its errors', async () => {
      const preflight = await request(t.app).options('/v1/predict').set('Origin', allowed).set('Access-Control-Request-Method', 'POST');
      expect(preflight.status).toBe(204);
      expect(preflight.headers).toMatchObject({ 'access-control-allow-origin': allowed, 'access-control-allow-methods': 'GET, POST' });
      expect(preflight.headers['access-control-allow-headers']).toMatch(/Content-Type/);
      const ok = await request(t.app).post('/v1/predict').set('Origin', allowed).attach('image', await png(), 'a.png');
      expect(ok.status).toBe(200);
      expect(ok.headers['access-control-allow-origin']).toBe(allowed);
      expect(ok.headers['access-control-expose-headers']).toMatch(/X-Request-Id/);
      expect(ok.headers.vary).toMatch(/Origin/);
      const refused = await request(t.app).post('/v1/predict').set('Origin', allowed).set('Content-Type', 'text/plain').send('x');
      expect(refused.status).toBe(415);
      expect(refused.headers['access-control-allow-origin']).toBe(allowed);
    });

    it('gives any other origin nothing', async () => {
      const res = await request(t.app).get('/v1/models').set('Origin', 'https://app.example.com.evil.example');
      expect(res.status).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      const preflight = await request(t.app).options('/v1/predict').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
      expect(preflight.status).not.toBe(204);
    });
  });

  it('refuses an origin list entry that is not a bare http(s) origin', () => {
    for (const bad of ['app.example.com', 'https://app.example.com/path', 'ftp://files.example.com']) {
      expect(() => loadConfig({ ASM_FER_CORS_ORIGINS: bad }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ ASM_FER_CORS_ORIGINS: bad }), bad).toThrow(/ASM_FER_CORS_ORIGINS/);
    }
    expect(loadConfig({ ASM_FER_CORS_ORIGINS: '*' }).ASM_FER_CORS_ORIGINS).toEqual(['*']);
    expect(loadConfig({}).ASM_FER_CORS_ORIGINS).toEqual([]);
  });
});
