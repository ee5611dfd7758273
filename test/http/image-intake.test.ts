// The image routes' own intake (src/http/image-intake.ts) answers every request as the generic validator behind it
// would: the same body sent with a Content-Type spelling the intake leaves to the validator gets the same answer.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { imagePart, multipart, type Part } from '../fixtures/multipart.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ ASM_FER_MAX_FILE_BYTES: String(64 * 1024), ASM_FER_MAX_FILES: '2' });
});
afterAll(() => t.close());

const BOUNDARY = 'intake-equivalence-5c1e';

/** The same request twice: through the intake, and (a charset parameter before the boundary) through the validator. */
async function bothWays(path: string, parts: Part[], opts: { unterminated?: boolean } = {}) {
  const { body } = multipart(parts, { boundary: BOUNDARY, ...opts });
  const send = (contentType: string) => request(t.app).post(path).set('Content-Type', contentType).send(body);
  const intake = await send(`multipart/form-data; boundary=${BOUNDARY}`);
  const validator = await send(`multipart/form-data; charset=utf-8; boundary=${BOUNDARY}`);
  return { intake, validator };
}

describe('POST /v1/predict and /v1/audit through their own intake', () => {
  const cases: [string, string, () => Promise<Part[]>, { unterminated?: boolean }?][] = [
    ['an accepted request', '/v1/predict?detect=never', async () => [imagePart(await png())]],
    ['an unknown text part', '/v1/predict', async () => [imagePart(await png()), { name: 'colour', data: 'red' }]],
    ['no image part', '/v1/predict', async () => [{ name: 'box', data: '0,0,4,4' }]],
    ['an image sent as a text part', '/v1/predict', async () => [{ name: 'image', data: 'not a file' }]],
    ['a box that breaks the pattern', '/v1/predict', async () => [imagePart(await png()), { name: 'box', data: '0,0,0,4' }]],
    ['an unknown file part', '/v1/predict', async () => [imagePart(await png()), { ...imagePart(await png()), name: 'picture' }]],
    ['a part over the byte limit', '/v1/predict', async () => [imagePart(Buffer.concat([await png(), Buffer.alloc(70 * 1024)]))]],
    ['more image parts than allowed', '/v1/predict', async () => Promise.all([1, 2, 3].map(async () => imagePart(await png())))],
    ['a text part over 1024 bytes', '/v1/predict', async () => [imagePart(await png()), { name: 'box', data: 'x'.repeat(2000) }]],
    ['an unterminated body', '/v1/predict', async () => [imagePart(await png())], { unterminated: true }],
    ['an audit without its label', '/v1/audit?detect=never', async () => [imagePart(await png())]],
    ['an audit with an empty label', '/v1/audit?detect=never', async () => [imagePart(await png()), { name: 'label', data: '' }]],
  ];
  for (const [what, path, parts, opts] of cases) {
    it(`answers ${what} as the validator does`, async () => {
      const { intake, validator } = await bothWays(path, await parts(), opts);
      expect(intake.status).toBe(validator.status);
      expect(intake.type).toBe(validator.type);
      const { results: _a, ...intakeBody } = intake.body as Record<string, unknown>;
      const { results: _b, ...validatorBody } = validator.body as Record<string, unknown>;
      expect(intakeBody).toEqual(validatorBody);
    });
  }

  it('counts its requests under the route template', async () => {
    await request(t.app).post('/v1/predict?detect=never').attach('image', await png(), 'a.png').expect(200);
    const metrics = await request(t.app).get('/metrics');
    expect(metrics.text).toMatch(/route="\/v1\/predict",method="POST",status="200"/);
  });
});
