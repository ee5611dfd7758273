// Open Inference Protocol (KServe v2): server and model metadata, model readiness, and inference on pre-processed
// FP32 tensors that agrees with /v1/predict on the same image.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/image/decode.js';
import { preprocess } from '../../src/inference/preprocess.js';
import { jpeg, png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
let name: string;
// cuda is preferred but (injected) not offered by this onnxruntime build, so the sessions load on cpu: the provider
// reported is the one loaded, not the one preferred. Not offered rather than failing to load, which would print
// onnxruntime's native load error into the test log (test/onnx/session-pool.test.ts checks that path) and would load
// cuda on a machine that has it.
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_EXECUTION_PROVIDERS: 'cuda,cpu', ASM_FER_MAX_FILES: '4' }, { pool: { available: ['cpu'] } });
  name = t.bundle.manifest.name;
});
afterAll(() => t.close());

/** The tensor the service itself would make from `img`, as a plain array. */
async function tensorOf(img: Buffer): Promise<number[]> {
  const spec = t.bundle.manifest.input;
  return [...preprocess(await decodeImage(img, { width: spec.width, height: spec.height, maxPixels: 1e8 }), spec)];
}

const inferBody = (data: number[], batch = 1, extra: Record<string, unknown> = {}) => ({
  inputs: [{ name: 'input', shape: [batch, 1, 48, 48], datatype: 'FP32', data }],
  ...extra,
});

describe('GET /v2', () => {
  it('returns server metadata', async () => {
    const res = await request(t.app).get('/v2');
    expect(res.status).toBe(200);
    expectContract('GET', '/v2', res);
    expect(res.body).toEqual({ name: 'asm-fer', version: '0.1.0', extensions: [] });
  });
});

describe('GET /v2/models/{name}', () => {
  it('describes the tensors, platform and the execution provider actually loaded', async () => {
    const res = await request(t.app).get(`/v2/models/${name}`);
    expect(res.status).toBe(200);
    expectContract('GET', '/v2/models/{name}', res);
    expect(res.body).toMatchObject({
      name,
      versions: [t.bundle.manifest.version],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, 48, 48] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 8] }],
      executionProvider: 'cpu',
    });
    expect(t.pool.plan).toEqual({ attempts: ['cpu'], unavailable: ['cuda'] });
  });

  it('answers 404 problem for another name', async () => {
    const res = await request(t.app).get('/v2/models/other-model');
    expect(res.status).toBe(404);
    expectContract('GET', '/v2/models/{name}', res);
    expect(res.body.detail).toContain(name);
  });
});

describe('GET /v2/models/{name}/ready', () => {
  it('is ready once warmed up, 503 while not, 404 for another name', async () => {
    const ok = await request(t.app).get(`/v2/models/${name}/ready`);
    expect(ok.status).toBe(200);
    expectContract('GET', '/v2/models/{name}/ready', ok);
    expect(ok.body).toEqual({ name, ready: true });
    t.readiness.ready = false;
    try {
      const no = await request(t.app).get(`/v2/models/${name}/ready`);
      expect(no.status).toBe(503);
      expectContract('GET', '/v2/models/{name}/ready', no);
    } finally {
      t.readiness.ready = true;
    }
    expect((await request(t.app).get('/v2/models/x/ready')).status).toBe(404);
  });
});

describe('POST /v2/models/{name}/infer', () => {
  it('returns the same probabilities as /v1/predict for the same images, batched, echoing the id', async () => {
    const a = await png();
    const b = await jpeg(80, 60);
    const data = [...(await tensorOf(a)), ...(await tensorOf(b))];
    const res = await request(t.app)
      .post(`/v2/models/${name}/infer`)
      .send(inferBody(data, 2, { id: 'req-7', outputs: [{ name: 'probabilities' }] }));
    expect(res.status).toBe(200);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body).toMatchObject({ model_name: name, model_version: t.bundle.manifest.version, id: 'req-7' });
    const [out] = res.body.outputs;
    expect(out).toMatchObject({ name: 'probabilities', shape: [2, 8], datatype: 'FP32' });
    const v1 = await request(t.app).post('/v1/predict').attach('image', a, 'a.png').attach('image', b, 'b.jpg');
    const classes = t.bundle.manifest.classes;
    v1.body.results.forEach((r: { probabilities: Record<string, number> }, i: number) => {
      classes.forEach((c, j) => expect(out.data[i * 8 + j]).toBeCloseTo(r.probabilities[c] as number, 6));
    });
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['wrong input name', { inputs: [{ name: 'pixels', shape: [1, 1, 48, 48], datatype: 'FP32', data: new Array(2304).fill(0) }] }, /the model's input is "input"/],
    ['wrong datatype', { inputs: [{ name: 'input', shape: [1, 1, 48, 48], datatype: 'INT8', data: new Array(2304).fill(0) }] }, /takes FP32/],
    ['wrong shape', { inputs: [{ name: 'input', shape: [1, 3, 48, 48], datatype: 'FP32', data: new Array(6912).fill(0) }] }, /takes \[B, 1, 48, 48\]/],
    ['data length off', { inputs: [{ name: 'input', shape: [1, 1, 48, 48], datatype: 'FP32', data: [0, 1, 2] }] }, /has 3 values; .* needs 2304/],
    ['unknown output', inferBody(new Array(2304).fill(0), 1, { outputs: [{ name: 'logits' }] }), /no output named "logits"/],
    ['two inputs', { inputs: [{ name: 'input', shape: [1], datatype: 'FP32', data: [0] }, { name: 'x', shape: [1], datatype: 'FP32', data: [0] }] }, /one input/],
    ['no inputs member', { outputs: [] }, /inputs/],
    ['non-numeric data', { inputs: [{ name: 'input', shape: [1, 1, 48, 48], datatype: 'FP32', data: ['a'] }] }, /data/],
  ];
  it.each(bad)('answers 400 problem for %s', async (_what, body, detail) => {
    const res = await request(t.app).post(`/v2/models/${name}/infer`).send(body);
    expect(res.status).toBe(400);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(detail);
  });

  it('answers 400 problem for malformed JSON', async () => {
    const res = await request(t.app).post(`/v2/models/${name}/infer`).set('Content-Type', 'application/json').send('{"inputs": [');
    expect(res.status).toBe(400);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(/malformed JSON/);
  });

  it('answers 415 problem for a body that is not JSON', async () => {
    const res = await request(t.app).post(`/v2/models/${name}/infer`).set('Content-Type', 'text/plain').send('hello');
    expect(res.status).toBe(415);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toBe('the request body must be application/json; this request has Content-Type text/plain');
  });

  it('answers 404 problem for another model name', async () => {
    const res = await request(t.app).post('/v2/models/other/infer').send(inferBody(new Array(2304).fill(0)));
    expect(res.status).toBe(404);
    expectContract('POST', '/v2/models/{name}/infer', res);
  });
});
