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

const STAGES = ['intake', 'decode', 'queue', 'infer', 'total'];

/** The header's stages in order, each with its duration in ms; fails on anything not `name;dur=<ms>`. */
function stages(header: string | undefined): [string, number][] {
  expect(header).toBeDefined();
  return (header as string).split(', ').map((metric) => {
    const m = /^([a-z]+);dur=(\d+\.\d{2})$/.exec(metric);
    expect(m, `Server-Timing metric ${metric}`).not.toBeNull();
    return [m?.[1] as string, Number(m?.[2])];
  });
}

function expectTimings(header: string | undefined): Record<string, number> {
  const parsed = stages(header);
  expect(parsed.map(([name]) => name)).toEqual(STAGES);
  const ms = Object.fromEntries(parsed);
  // Every image was decoded and classified, and the stages happen one after another within the request's total.
  expect(ms.decode).toBeGreaterThan(0);
  expect(ms.infer).toBeGreaterThan(0);
  expect((ms.intake as number) + (ms.decode as number) + (ms.queue as number) + (ms.infer as number)).toBeLessThanOrEqual((ms.total as number) + 0.05);
  return ms;
}

describe('Server-Timing', () => {
  it('When one image is predicted, then the answer times intake, decode, queue, infer and total', async () => {
    const res = await request(t.app).post('/v1/predict?detect=never').attach('image', await png(), 'face.png');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/predict', res);
    expectTimings(res.headers['server-timing']);
  });

  it('When the request takes the validator path (no intake of its own), then it is timed the same way', async () => {
    // A boundary-less spelling the image routes' own intake leaves to the validator (image-intake.ts).
    const boundary = 'b0undary';
    const image = await png();
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\nContent-Type: image/png\r\n\r\n`),
      image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await request(t.app).post('/v1/predict').set('Content-Type', `multipart/form-data;boundary="${boundary}"`).send(body);
    expect(res.status).toBe(200);
    expectTimings(res.headers['server-timing']);
  });

  it('When labels are audited, then the answer carries the same stages', async () => {
    const res = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', 'happiness');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/audit', res);
    expectTimings(res.headers['server-timing']);
  });

});

describe('Server-Timing across origins', () => {
  it('When a browser on an allowed origin predicts, then CORS lets it read the header', async () => {
    const origin = 'http://labeller.example';
    const cross = await startTestApp({ ASM_FER_CORS_ORIGINS: origin });
    try {
      const res = await request(cross.app).post('/v1/predict').set('Origin', origin).attach('image', await png(), 'face.png');
      expect(res.status).toBe(200);
      expect(res.headers['access-control-expose-headers']).toContain('Server-Timing');
      expectTimings(res.headers['server-timing']);
    } finally {
      await cross.close();
    }
  });
});
