// Edges of the contract an outside tester found (issue 20): each answer is the one openapi.yaml documents, a 4xx
// problem and never a 500.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import request from 'supertest';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../../src/audit/export.js';
import { png } from '../fixtures/make-images.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

let t: TestApp;
let inferUrl: string;
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_MAX_FILES: '3' });
  inferUrl = `/v2/models/${t.bundle.manifest.name}/infer`;
});
afterAll(() => t.close());

const zeros = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 48, 48], datatype: 'FP32', data: new Array(2304).fill(0) }] });

/** POSTs `body` to the v2 infer route as raw bytes (supertest would JSON-encode a Buffer) with `encoding`. */
function compressed(body: Buffer | string, encoding: string) {
  return request(t.app)
    .post(inferUrl)
    .set('Content-Type', 'application/json')
    .set('Content-Encoding', encoding)
    .serialize((b: unknown) => b as string)
    .send(body as string);
}

describe('POST /v2/models/{name}/infer with a compressed body', () => {
  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ] as const)('serves a valid %s body', async (encoding, compress) => {
    const res = await compressed(compress(Buffer.from(zeros)), encoding);
    expect(res.status).toBe(200);
    expectContract('POST', '/v2/models/{name}/infer', res);
  });

  it.each(['gzip', 'deflate', 'br'])('answers 400 problem for a %s body that does not inflate', async (encoding) => {
    const res = await compressed('this is not compressed', encoding);
    expect(res.status).toBe(400);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(/does not decompress as its Content-Encoding says/);
  });

  it('answers 400 problem for a gzip body with Content-Length: 0', async () => {
    const res = await compressed('', 'gzip').set('Content-Length', '0');
    expect(res.status).toBe(400);
    expectContract('POST', '/v2/models/{name}/infer', res);
    expect(res.body.detail).toMatch(/Content-Encoding/);
  });

  it('answers 415 problem for an encoding it does not know', async () => {
    const res = await compressed('x', 'zstd');
    expect(res.status).toBe(415);
    expectContract('POST', '/v2/models/{name}/infer', res);
  });
});

describe('a method a path does not have', () => {
  it.each([
    ['delete', '/v1/models', 'GET'],
    ['put', '/v1/predict', 'POST'],
    ['get', '/v1/audit', 'POST'],
    ['patch', '/v2/health/ready', 'GET'],
    ['head', '/v1/models', 'GET'],
  ] as const)('%s %s is 405 problem with Allow: %s', async (method, url, allow) => {
    const res = await request(t.app)[method](url);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe(allow);
    if (method === 'head') return;
    expect(res.type).toBe('application/problem+json');
    expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/method-not-allowed', status: 405 });
  });
});

describe('GET /v2/models/{name}', () => {
  it('answers a name over 128 characters 404, as any other name', async () => {
    const res = await request(t.app).get(`/v2/models/${'a'.repeat(129)}`);
    expect(res.status).toBe(404);
    expectContract('GET', '/v2/models/{name}', res);
    const ready = await request(t.app).get(`/v2/models/${'b'.repeat(1000)}/ready`);
    expect(ready.status).toBe(404);
    expectContract('GET', '/v2/models/{name}/ready', ready);
  });
});

describe('POST /v1/predict parts', () => {
  it('answers too many text parts 413, as too many parts', async () => {
    // ASM_FER_MAX_FILES=3 allows 18 text parts.
    let req = request(t.app).post('/v1/predict').attach('image', await png(), 'a.png');
    for (let i = 0; i < 19; i++) req = req.field('box', '0,0,8,8');
    const res = await req;
    expect(res.status).toBe(413);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toMatch(/too many text parts/);
  });

  it.each([
    ['small', 8],
    ['over the text part limit', 48],
  ])('answers a %s image part without a filename 400, saying an image part needs one', async (_, side) => {
    const boundary = 'edge-boundary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"\r\nContent-Type: image/png\r\n\r\n`),
      await png(side, side),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await request(t.app).post('/v1/predict').set('Content-Type', `multipart/form-data; boundary=${boundary}`).send(body);
    expect(res.status).toBe(400);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.detail).toMatch(/filename/);
  });

  it('refuses a box of zero width or height by the contract pattern, and takes a 1 x 1 box at the origin', async () => {
    const doc = parse(readFileSync('openapi.yaml', 'utf8')) as { components: { schemas: { Box: { pattern: string } } } };
    const pattern = new RegExp(doc.components.schemas.Box.pattern, 'u');
    expect(pattern.test('0,0,0,0')).toBe(false);
    expect(pattern.test('0,0,1,1')).toBe(true);
    const refused = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png').field('box', '0,0,0,0');
    expect(refused.status).toBe(400);
    expectContract('POST', '/v1/predict', refused);
    const served = await request(t.app).post('/v1/predict').attach('image', await png(), 'a.png').field('box', '0,0,1,1');
    expect(served.status).toBe(200);
    expectContract('POST', '/v1/predict', served);
  });
});

/** RFC 4180 fields of one CSV line. */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (at <= line.length) {
    if (line[at] === '"') {
      let value = '';
      at++;
      for (;;) {
        const q = line.indexOf('"', at);
        if (line[q + 1] === '"') {
          value += line.slice(at, q + 1);
          at = q + 2;
        } else {
          value += line.slice(at, q);
          at = q + 2;
          break;
        }
      }
      out.push(value);
    } else {
      const end = line.indexOf(',', at) === -1 ? line.length : line.indexOf(',', at);
      out.push(line.slice(at, end));
      at = end + 1;
    }
  }
  return out;
}

describe('GET /v1/audits?format=csv', () => {
  it("never lets a cell split on ',', ';' or tab start a formula: ;=cmd|' /C calc'!A0;", async () => {
    const hostile = ";=cmd|' /C calc'!A0;";
    const audited = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', t.bundle.manifest.classes[0] as string).field('annotatorId', hostile).field('itemId', '\t@SUM(1+1)');
    expect(audited.status).toBe(200);
    const res = await request(t.app).get('/v1/audits?format=csv&limit=1');
    expect(res.status).toBe(200);
    expectContract('GET', '/v1/audits', res);
    const line = res.text.split('\r\n')[1] as string;
    const fields = csvFields(line);
    expect(fields).toHaveLength(CSV_COLUMNS.length);
    expect(fields[CSV_COLUMNS.indexOf('annotatorId')]).toBe(";'=cmd|' /C calc'!A0;");
    expect(fields[CSV_COLUMNS.indexOf('itemId')]).toBe("'\t'@SUM(1+1)");
    expect(line).toContain(`";'=cmd|' /C calc'!A0;"`);
    // Whatever a spreadsheet splits on, quotes honoured or not, no piece starts like a formula.
    for (const sep of [',', ';', '\t']) {
      for (const piece of line.split(sep)) expect(piece.replace(/^[" ]+/, ''), `split on ${JSON.stringify(sep)}`).not.toMatch(/^[=+\-@]/);
    }
  });
});

describe('GET /v1/audits/summary after a restart', () => {
  it('names the model of the refilled live windows by {name, version} only', async () => {
    const data = mkdtempSync(path.join(tmpdir(), 'asm-fer-edges-'));
    try {
      const first = await startTestApp({ ASM_FER_DATA_DIR: data });
      const audited = await request(first.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', first.bundle.manifest.classes[0] as string);
      expect(audited.status).toBe(200);
      await first.close();
      const second = await startTestApp({ ASM_FER_DATA_DIR: data });
      try {
        const res = await request(second.app).get('/v1/audits/summary');
        expect(res.status).toBe(200);
        expectContract('GET', '/v1/audits/summary', res);
        const { name, version } = second.bundle.manifest;
        expect(res.body.live.model).toEqual({ name, version });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

// Found by the contract fuzz (test/contract/fuzz.ts): a form-encoded space (`+`, as browsers and URLSearchParams send
// it) in a text filter was refused 400 "must be url encoded" by the validator's reserved-character check.
describe('GET /v1/audits with a form-encoded text filter', () => {
  it("reads '+' as a space and ':' '/' '@' as typed, in every text filter", async () => {
    const annotator = 'ann 7: a/b@c';
    const audited = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', t.bundle.manifest.classes[0] as string).field('annotatorId', annotator);
    expect(audited.status).toBe(200);
    const res = await request(t.app).get('/v1/audits?annotatorId=ann+7:+a/b@c');
    expect(res.status).toBe(200);
    expectContract('GET', '/v1/audits', res);
    expect(res.body.items.map((r: { annotatorId: string }) => r.annotatorId)).toEqual([annotator]);
    for (const name of ['label', 'predicted', 'datasetId', 'modelVersion']) {
      const filtered = await request(t.app).get(`/v1/audits/summary?${name}=a+b:c`);
      expect(filtered.status, name).toBe(200);
    }
  });
});

describe('openapi.yaml as the fuzzer reads it', () => {
  const doc = parse(readFileSync('openapi.yaml', 'utf8'));
  it('describes image parts with format binary at the top, so clients send each one as a file', () => {
    const parts = doc.components.schemas.ImageParts;
    expect(parts.format).toBe('binary');
    expect(parts.items.format).toBe('binary');
  });

  it('takes one image part and several alike', async () => {
    const one = await request(t.app).post('/v1/predict?detect=never').attach('image', await png(), 'a.png');
    expect(one.status).toBe(200);
    const two = await request(t.app).post('/v1/predict?detect=never').attach('image', await png(), 'a.png').attach('image', await png(), 'b.png');
    expect(two.status).toBe(200);
    expect(two.body.results).toHaveLength(2);
  });
});
