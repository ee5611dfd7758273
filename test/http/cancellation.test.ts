// A request that timed out or whose client went away stops its work: images not yet decoded are skipped, detections
// and inferences still queued leave their queues, and /metrics counts what was cancelled.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { threeFaces } from '../fixtures/photos.js';
import { sample } from '../fixtures/prom.js';
import { replaceRun, startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

const metrics = async (t: TestApp) => {
  const text = (await request(t.app).get('/metrics')).text;
  return (series: string) => sample(text, series) ?? 0;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a request that times out', () => {
  let t: TestApp;
  /** Holds every batch until opened: the worker stays busy, so what queues behind it waits. */
  let gate: { opened: Promise<void>; open(): void };
  const closeGate = () => {
    let open = () => {};
    const opened = new Promise<void>((r) => (open = r));
    gate = { opened, open };
  };
  // A blocker's batch holds the only worker, and the next batch may wait far longer than a request may (an idle
  // service runs a batch at once, so without the blocker the images would already be running): the request's images
  // are still queued when the timeout answers.
  beforeAll(async () => {
    closeGate();
    t = await startTestApp(
      { ASM_FER_REQUEST_TIMEOUT_MS: '300', ASM_FER_MAX_QUEUE_DELAY_MS: '1500' },
      { wrap: replaceRun((pool) => async (data, dims) => (await gate.opened, pool.run(data, dims))) },
    );
  });
  afterAll(() => t.close());

  /** Sends a one-image predict whose batch holds the worker until the gate opens; resolves once that batch runs. */
  async function blocker(): Promise<Promise<number>> {
    closeGate();
    const before = (await metrics(t))('asm_fer_batch_executions_total');
    const answered = request(t.app).post('/v1/predict').attach('image', await png(), 'blocker.png').then((r) => r.status);
    for (let i = 0; i < 400 && (await metrics(t))('asm_fer_batch_executions_total') === before; i++) await sleep(5);
    return answered;
  }

  it('leaves the inference queue when answered 503, and no batch runs its images afterwards', async () => {
    const img = await png();
    const blocked = await blocker();
    const res = await request(t.app).post('/v1/predict').attach('image', img, 'a.png').attach('image', img, 'b.png').attach('image', img, 'c.png');
    expect(res.status).toBe(503);
    expectContract('POST', '/v1/predict', res);
    expect(res.body.type).toBe('https://asm-fer.dev/problems/request-timeout');
    const now = await metrics(t);
    expect(now('asm_fer_queue_depth')).toBe(0);
    // Where each image was when the answer went out depends on the machine's load (on busy cores the 300 ms can
    // pass while the images are still being decoded); wherever it was, it is cancelled there and goes no further.
    const cancelled = ['decode', 'detection', 'inference'].map((stage) => now(`asm_fer_cancelled_images_total{stage="${stage}"}`));
    expect(cancelled.reduce((a, b) => a + b, 0)).toBe(3);
    // This request and the blocker, which started first and so timed out first; its image was running, not queued.
    expect(now('asm_fer_cancelled_requests_total{reason="timeout"}')).toBe(2);
    // A batch already running finishes.
    gate.open();
    expect(await blocked).toBe(503);
    // Past the queue delay the batch would have run; only the blocker's ever does.
    await sleep(1700);
    const later = await metrics(t);
    expect(later('asm_fer_batch_executions_total')).toBe(1);
    expect(later('asm_fer_decoded_pixels_reserved')).toBe(0);
  });

  it('does not commit the audit records of a request it already answered', async () => {
    const blocked = await blocker();
    const res = await request(t.app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', t.bundle.manifest.classes[0] as string);
    expect(res.status).toBe(503);
    gate.open();
    await blocked;
    await sleep(1700);
    expect((await request(t.app).get('/v1/audits')).body.items).toEqual([]);
  });
});

describe('a request whose client goes away', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('decodes and detects nothing more once the connection closes, and never reaches the classifier', async () => {
    const photo = threeFaces();
    const n = 16;
    let req = request(t.app).post('/v1/predict?detect=always');
    for (let i = 0; i < n; i++) req = req.attach('image', photo, `p${i}.jpg`);
    const answered = req.then(
      () => 'answered',
      () => 'aborted',
    );
    // Abort once the detector has run on the first image: most of the request's images are still to come.
    for (let i = 0; i < 1000 && (await metrics(t))('asm_fer_detection_duration_seconds_count') === 0; i++) await sleep(5);
    req.abort();
    expect(await answered).toBe('aborted');
    // Every image ends either detected or cancelled; wait for the one or two in flight to finish.
    let m = await metrics(t);
    const accounted = () =>
      m('asm_fer_detection_duration_seconds_count') + m('asm_fer_cancelled_images_total{stage="decode"}') + m('asm_fer_cancelled_images_total{stage="detection"}');
    for (let i = 0; i < 200 && accounted() < n; i++) {
      await sleep(25);
      m = await metrics(t);
    }
    expect(accounted()).toBe(n);
    expect(m('asm_fer_detection_duration_seconds_count')).toBeLessThan(n);
    expect(m('asm_fer_cancelled_requests_total{reason="client-gone"}')).toBe(1);
    await sleep(200);
    m = await metrics(t);
    expect(m('asm_fer_detection_duration_seconds_count') + m('asm_fer_cancelled_images_total{stage="decode"}') + m('asm_fer_cancelled_images_total{stage="detection"}')).toBe(n);
    expect(m('asm_fer_batch_executions_total')).toBe(0);
    expect(m('asm_fer_decoded_pixels_reserved')).toBe(0);
    // The service carries on.
    expect((await request(t.app).post('/v1/predict').attach('image', await png(), 'ok.png')).status).toBe(200);
  });
});
