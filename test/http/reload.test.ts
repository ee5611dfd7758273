// POST /v1/models/reload: behind the admin token, swaps in a fully validated bundle, and leaves the old model serving
// when the new one fails.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { sample } from '../fixtures/prom.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const TOKEN = 'test-admin-token-0123456789';

let dir: string;
let t: TestApp;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'asm-fer-reload-'));
  await cp(FIXTURE_BUNDLE_DIR, dir, { recursive: true });
  t = await startTestApp({ ASM_FER_MODEL_DIR: dir, ASM_FER_API_KEY: TOKEN });
});
afterAll(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

async function editManifest(edit: (m: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(dir, 'model.json');
  const m = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(m);
  await writeFile(file, JSON.stringify(m, null, 2));
}

const reload = (auth?: string) => {
  const req = request(t.app).post('/v1/models/reload');
  return auth === undefined ? req : req.set('Authorization', auth);
};
const servedVersion = async () => (await request(t.app).get('/v1/models')).body.models[0].version as string;

describe('POST /v1/models/reload', () => {
  it('answers 401 with WWW-Authenticate without the right bearer token', async () => {
    for (const auth of [undefined, 'Bearer wrong-token-0123456789', `Basic ${TOKEN}`]) {
      const res = await reload(auth);
      expect(res.status).toBe(401);
      expectContract('POST', '/v1/models/reload', res);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('swaps in the bundle on disk: the new version is served and reported', async () => {
    await editManifest((m) => (m.version = '2.0.0-reloaded'));
    const res = await reload(`Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/models/reload', res);
    expect(res.body.version).toBe('2.0.0-reloaded');
    expect(await servedVersion()).toBe('2.0.0-reloaded');
    const predicted = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    expect(predicted.body.model.version).toBe('2.0.0-reloaded');
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, `asm_fer_model_info{name="${t.bundle.manifest.name}",version="2.0.0-reloaded",execution_provider="cpu"}`)).toBe(1);
    expect(text).not.toContain(`version="${t.bundle.manifest.version}"`);
    expect(sample(text, 'asm_fer_model_reloads_total{result="ok"}')).toBe(1);
  });

  it('refuses a bundle whose ONNX file does not match its sha256 and keeps the old model serving', async () => {
    const before = await servedVersion();
    await editManifest((m) => {
      m.version = '3.0.0-broken';
      (m.model as Record<string, unknown>).sha256 = '0'.repeat(64);
    });
    const res = await reload(`Bearer ${TOKEN}`);
    expect(res.status).toBe(422);
    expectContract('POST', '/v1/models/reload', res);
    expect(res.body.type).toBe('https://asm-fer.dev/problems/reload-failed');
    expect(res.body.detail).toMatch(/sha256 of .*model\.onnx is [0-9a-f]{64}, model\.json says 0{64}/);
    expect(await servedVersion()).toBe(before);
    const predicted = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    expect(predicted.status).toBe(200);
    expect(predicted.body.model.version).toBe(before);
    const text = (await request(t.app).get('/metrics')).text;
    expect(sample(text, 'asm_fer_model_reloads_total{result="failed"}')).toBe(1);
  });

  it('refuses a manifest that breaks the schema, naming the field', async () => {
    await editManifest((m) => {
      delete m.classes;
    });
    const res = await reload(`Bearer ${TOKEN}`);
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(/does not match bundle\.schema\.json/);
    expect((await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png')).status).toBe(200);
  });
});

describe('POST /v1/models/reload without ASM_FER_API_KEY', () => {
  let u: TestApp;
  beforeAll(async () => {
    u = await startTestApp();
  });
  afterAll(() => u.close());

  it('is disabled: 403 whatever the request says', async () => {
    const res = await request(u.app).post('/v1/models/reload').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(403);
    expectContract('POST', '/v1/models/reload', res);
    expect(res.body.detail).toMatch(/set ASM_FER_API_KEY, or send the process SIGHUP/);
  });
});
