// The ML backend routes and the audit-on-submit queue against a fake Label Studio (fake-label-studio.ts), in-process,
// with the tiny real model.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { auditIdOf } from '../../src/label-studio/backend.js';
import { eventKey } from '../../src/label-studio/queue.js';
import { freshTrail } from '../fixtures/backends.js';
import { adminQuery } from '../fixtures/postgres.js';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { until } from '../fixtures/server-process.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from '../http/contract.js';
import { LEGACY_TOKEN, PERSONAL_TOKEN, annotationPayload, ferplusConfig, startFakeLabelStudio, type FakeLabelStudio } from './fake-label-studio.js';

const SECRET = 'label-studio-secret-for-tests';
const basic = `Basic ${Buffer.from(`asm-fer:${SECRET}`).toString('base64')}`;
const bearer = `Bearer ${SECRET}`;

let ls: FakeLabelStudio;
let dataDir: string;
let t: TestApp;
let image: Buffer;
/** The service's warn-and-above log lines, parsed. */
const logged: Record<string, unknown>[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });

const lsEnv = (token = LEGACY_TOKEN) => ({
  LABEL_STUDIO_URL: ls.url,
  LABEL_STUDIO_API_KEY: token,
  ASM_FER_LABEL_STUDIO_SECRET: SECRET,
  ASM_FER_DATA_DIR: dataDir,
  ASM_FER_LABEL_STUDIO_TIMEOUT_MS: '2000',
  ASM_FER_LABEL_STUDIO_RETRY_MAX_MS: '300',
});

function addTask(id: number, project = 1) {
  ls.tasks.set(id, { id, project, data: { image: `/data/upload/${project}/face-${id}.png` } });
  ls.files.set(`/data/upload/${project}/face-${id}.png`, image);
}

/** Sends a webhook as Label Studio would, after making the fake hold (or drop) the annotation as Label Studio would. */
const webhook = (body: unknown) => {
  const b = body as { action?: string; annotation?: Record<string, unknown>; annotations?: { id: number }[] };
  if (b.annotation && typeof b.annotation.id === 'number' && typeof b.annotation.updated_at === 'string') ls.annotations.set(b.annotation.id, b.annotation);
  for (const a of b.annotations ?? []) ls.annotations.delete(a.id);
  return request(t.app).post('/label-studio/webhook').set('authorization', bearer).send(body as object);
};
const predictionsOf = (task: number) => [...ls.predictions.values()].filter((p) => p.task === task);
const recordsOf = async (annotation: number) =>
  (await t.trail.store.list({ datasetId: 'label-studio project 1' }, { limit: 1000 })).items.filter((r) => r.itemId?.endsWith(`annotation ${annotation}`));

beforeAll(async () => {
  ls = await startFakeLabelStudio();
  image = await png(48, 48);
  ls.projects.set(1, { label_config: ferplusConfig() });
  for (let i = 1; i <= 10; i++) addTask(i);
  dataDir = mkdtempSync(path.join(tmpdir(), 'asm-fer-ls-'));
  t = await startTestApp(lsEnv(), { logger });
});
afterAll(async () => {
  await t?.close();
  await ls?.close();
  rmSync(dataDir, { recursive: true, force: true });
});
afterEach(() => {
  ls.mode = 'up';
});

describe('the /label-studio routes', () => {
  it('need the secret, as the basic-auth password or a bearer token', async () => {
    expect((await request(t.app).get('/label-studio/health')).status).toBe(401);
    expect((await request(t.app).get('/label-studio/health').set('authorization', `Basic ${Buffer.from('x:wrong-secret-xxxxxxxx').toString('base64')}`)).status).toBe(401);
    const res = await request(t.app).get('/label-studio/health').set('authorization', basic);
    expect(res.status).toBe(200);
    expectContract('GET', '/label-studio/health', res);
    expect(res.body).toEqual({ status: 'UP', model_version: `${t.bundle.manifest.name}-${t.bundle.manifest.version}`, silent_projects: [] });
    expect((await request(t.app).get('/label-studio/health').set('authorization', bearer)).status).toBe(200);
  });

  it('count and log a refused webhook under its route and reason (Label Studio does not resend it)', async () => {
    const series = 'asm_fer_label_studio_rejected_webhooks_total{reason="unauthorized"}';
    const before = sample((await request(t.app).get('/metrics')).text, series) ?? 0;
    const res = await request(t.app).post('/label-studio/webhook').set('authorization', 'Bearer wrong-secret-0123456789').send({ action: 'ANNOTATION_CREATED' });
    expect(res.status).toBe(401);
    const metrics = (await request(t.app).get('/metrics')).text;
    expect(sample(metrics, series)).toBe(before + 1);
    expect(metrics.split('\n').some((l) => l.startsWith('asm_fer_http_request_duration_seconds_count{') && l.includes('route="/label-studio/webhook"') && l.includes('status="401"'))).toBe(true);
    expect(metrics).not.toMatch(/route="unmatched"[^\n]*status="401"/);
    expect(logged.filter((l) => String(l.msg).startsWith('label studio webhook refused')).at(-1)).toMatchObject({ level: 40, route: '/label-studio/webhook', status: 401, reason: 'unauthorized' });
    // Other routes are not webhooks.
    expect((await request(t.app).get('/label-studio/health')).status).toBe(401);
    expect(sample((await request(t.app).get('/metrics')).text, series)).toBe(before + 1);
  });

  it('answer 403 on a service without the Label Studio settings', async () => {
    const plain = await startTestApp();
    try {
      const res = await request(plain.app).post('/label-studio/webhook').set('authorization', bearer).send({ action: 'ANNOTATION_CREATED' });
      expect(res.status).toBe(403);
      expect(res.body.detail).toMatch(/LABEL_STUDIO_URL/);
    } finally {
      await plain.close();
    }
  });
});

describe('POST /label-studio/setup', () => {
  it('accepts a FER+ config and answers the bundle’s model version', async () => {
    const res = await request(t.app).post('/label-studio/setup').set('authorization', basic).send({ project: '1.1700000000', schema: ferplusConfig(), access_token: 'ignored', hostname: ls.url });
    expect(res.status).toBe(200);
    expectContract('POST', '/label-studio/setup', res);
    expect(res.body.model_version).toBe(`${t.bundle.manifest.name}-${t.bundle.manifest.version}`);
  });

  it('refuses choices that map onto no class, naming them', async () => {
    const res = await request(t.app).post('/label-studio/setup').set('authorization', basic).send({ schema: ferplusConfig(['happiness', 'Joy']) });
    expect(res.status).toBe(422);
    expectContract('POST', '/label-studio/setup', res);
    expect(res.body).toMatchObject({ type: expect.stringMatching(/label-config$/), unmappedChoices: ['Joy'], validLabels: t.bundle.manifest.classes });
    expect(res.body.detail).toContain('"Joy"');
  });

  it('logs a refusal as one line naming the project and the unmapped choices (Label Studio shows only "422 Client Error")', async () => {
    const res = await request(t.app).post('/label-studio/setup').set('authorization', basic).send({ project: '7.1700000000', schema: ferplusConfig(['happiness', 'Joy', 'Meh']) });
    expect(res.status).toBe(422);
    const lines = logged.filter((l) => l.project === '7.1700000000');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, unmappedChoices: ['Joy', 'Meh'], msg: expect.stringMatching(/^Label Studio project 7\.1700000000: labeling config refused: .*"Joy"/) });
  });

  it('refuses a config without a single-choice image question', async () => {
    const res = await request(t.app)
      .post('/label-studio/setup')
      .set('authorization', basic)
      .send({ schema: '<View><Image name="i" value="$image"/><Choices name="c" toName="i" choice="multiple"><Choice value="fear"/></Choices></View>' });
    expect(res.status).toBe(422);
    expect(res.body.detail).toMatch(/choice="single"/);
  });
});

describe('POST /label-studio/predict', () => {
  it('answers one prediction per task in task order; a task whose image is elsewhere gets none', async () => {
    const predict = await request(t.app).post('/v1/predict').attach('image', image, 'a.png');
    const expected = predict.body.results[0];
    const tasks = [
      { id: 1, data: { image: `/data/upload/1/face-1.png` } },
      { id: 99, data: { image: 'https://elsewhere.example/face.png' } },
      { id: 2, data: { image: `${ls.url}/data/upload/1/face-2.png` } },
    ];
    const res = await request(t.app).post('/label-studio/predict').set('authorization', basic).send({ tasks, label_config: ferplusConfig(), project: '1.1700000000' });
    expect(res.status).toBe(200);
    expectContract('POST', '/label-studio/predict', res);
    const version = `${t.bundle.manifest.name}-${t.bundle.manifest.version}`;
    expect(res.body.model_version).toBe(version);
    expect(res.body.results).toHaveLength(3);
    for (const i of [0, 2]) {
      expect(res.body.results[i]).toEqual({
        result: [{ from_name: 'expression', to_name: 'image', type: 'choices', value: { choices: [expected.label] } }],
        score: expected.confidence,
        model_version: version,
      });
    }
    expect(res.body.results[1]).toEqual({ model_version: version, error: 'foreign-image-url' });
    // The foreign URL was never fetched.
    expect(ls.requests.some((r) => r.path.includes('elsewhere'))).toBe(false);
  });
});

describe('POST /label-studio/webhook', () => {
  it('queues the event, audits the submitted choice into the trail and writes the verdict back as a prediction', async () => {
    const res = await webhook(annotationPayload('ANNOTATION_CREATED', { id: 101, task: 1, project: 1, choice: 'fear', completedBy: 42 }));
    expect(res.status).toBe(200);
    expectContract('POST', '/label-studio/webhook', res);
    expect(res.body).toEqual({ events: 1, queued: 1 });
    await until(() => predictionsOf(1).length === 1, 10_000);
    const [record] = await recordsOf(101);
    expect(record).toMatchObject({ label: 'fear', annotatorId: '42', datasetId: 'label-studio project 1', itemId: 'task 1 annotation 101' });
    expect(record?.id).toBe(auditIdOf(eventKey({ annotationId: 101, action: 'ANNOTATION_CREATED', updatedAt: '2026-12-04T10:00:00.000000Z' })));
    const [p] = predictionsOf(1);
    expect(p).toMatchObject({
      score: record?.labelProbability,
      model_version: `asm-fer audit: ${record?.verdict} (quality ${record?.quality.toFixed(2)})`,
      result: [{ from_name: 'expression', to_name: 'image', type: 'choices', value: { choices: [record?.predicted] } }],
    });
  });

  it('audits an event delivered twice once', async () => {
    const body = annotationPayload('ANNOTATION_CREATED', { id: 102, task: 2, project: 1, choice: 'happiness' });
    const [a, b] = await Promise.all([webhook(body), webhook(body)]);
    expect([a.body.queued, b.body.queued].sort()).toEqual([0, 1]);
    await until(() => predictionsOf(2).length === 1, 10_000);
    expect((await webhook(body)).body).toEqual({ events: 1, queued: 0 });
    await new Promise((r) => setTimeout(r, 200));
    expect(await recordsOf(102)).toHaveLength(1);
    expect(predictionsOf(2)).toHaveLength(1);
  });

  it('replaces the annotation’s verdict on an update and removes it on deletion', async () => {
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 103, task: 3, project: 1, choice: 'anger' }));
    await until(() => predictionsOf(3).length === 1, 10_000);
    const first = predictionsOf(3)[0]?.id;
    await webhook(annotationPayload('ANNOTATION_UPDATED', { id: 103, task: 3, project: 1, choice: 'neutral', updatedAt: '2026-12-04T10:05:00.000000Z' }));
    await until(() => predictionsOf(3).length === 1 && predictionsOf(3)[0]?.id !== first, 10_000);
    expect((await recordsOf(103)).map((r) => r.label).sort()).toEqual(['anger', 'neutral']);
    expect((await webhook({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: 103 }], project: { id: 1 } })).body).toEqual({ events: 1, queued: 1 });
    await until(() => predictionsOf(3).length === 0, 10_000);
    // The trail keeps what was audited: the replaced verdict's record superseded by the update's, the current one
    // withdrawn; neither is a current verdict any more.
    const kept = await recordsOf(103);
    expect(kept).toHaveLength(2);
    const neutral = kept.find((r) => r.label === 'neutral');
    expect(neutral).toMatchObject({ withdrawnAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), supersededAt: null });
    expect(kept.find((r) => r.label === 'anger')).toMatchObject({ withdrawnAt: null, supersededBy: neutral?.id, supersededAt: neutral?.time });
    const current = await request(t.app).get('/v1/audits').query({ datasetId: 'label-studio project 1', current: 'true' });
    expect(current.body.items.map((r: { id: string }) => r.id)).not.toContain(neutral?.id);
    expect(current.body.items.filter((r: { itemId: string }) => r.itemId.endsWith('annotation 103'))).toEqual([]);
    const listed = await request(t.app).get('/v1/audits').query({ datasetId: 'label-studio project 1', withdrawn: 'true' });
    expectContract('GET', '/v1/audits', listed);
    expect(listed.body.items.map((r: { id: string }) => r.id)).toEqual([neutral?.id]);
  });

  it('answers at once while Label Studio is unreachable, then audits once it is back', async () => {
    ls.mode = 'down';
    const started = Date.now();
    const res = await webhook(annotationPayload('ANNOTATION_CREATED', { id: 104, task: 4, project: 1, choice: 'sadness' }));
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
    await until(() => ls.requests.filter((r) => r.path === '/api/tasks/4').length >= 2, 10_000);
    expect(predictionsOf(4)).toHaveLength(0);
    const metrics = (await request(t.app).get('/metrics')).text;
    expect(metrics).toMatch(/asm_fer_label_studio_event_failures_total\{reason="ls-unreachable"\} [1-9]/);
    expect(metrics).toMatch(/asm_fer_label_studio_queue_depth [1-9]/);
    ls.mode = 503;
    await until(() => ls.requests.filter((r) => r.path === '/api/tasks/4').length >= 3, 10_000);
    ls.mode = 'up';
    await until(() => predictionsOf(4).length === 1, 10_000);
    expect(await recordsOf(104)).toHaveLength(1);
    expect((await request(t.app).get('/metrics')).text).toMatch(/asm_fer_label_studio_queue_depth 0/);
  });

  it('writes one prediction when Label Studio stored it but its answer was lost, and retries a failed replacement', async () => {
    ls.faults.push({ method: 'POST', path: /^\/api\/predictions\/$/, status: 502, lost: true });
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 109, task: 9, project: 1, choice: 'fear' }));
    await until(async () => (await request(t.app).get('/metrics')).text.includes('asm_fer_label_studio_queue_depth 0') && predictionsOf(9).length > 0, 10_000);
    expect((await request(t.app).get('/metrics')).text).toMatch(/asm_fer_label_studio_event_failures_total\{reason="ls-http"\} [1-9]/);
    expect(predictionsOf(9)).toHaveLength(1);
    const first = predictionsOf(9)[0]?.id;
    // The update's new prediction is written, but deleting the old one fails once: both are retried to one prediction.
    ls.faults.push({ method: 'DELETE', path: /^\/api\/predictions\/\d+\/$/, status: 503 });
    await webhook(annotationPayload('ANNOTATION_UPDATED', { id: 109, task: 9, project: 1, choice: 'happiness', updatedAt: '2026-12-04T11:00:00.000000Z' }));
    await until(async () => (await request(t.app).get('/metrics')).text.includes('asm_fer_label_studio_queue_depth 0') && !predictionsOf(9).some((p) => p.id === first), 10_000);
    expect(predictionsOf(9)).toHaveLength(1);
    expect((await recordsOf(109)).map((r) => r.label).sort()).toEqual(['fear', 'happiness']);
  });

  it('gives up on an event whose image is missing, with its reason, and goes on with the next', async () => {
    ls.tasks.set(5, { id: 5, project: 1, data: { image: '/data/upload/1/missing.png' } });
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 105, task: 5, project: 1, choice: 'fear' }));
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 106, task: 6, project: 1, choice: 'fear' }));
    await until(() => predictionsOf(6).length === 1, 10_000);
    expect((await request(t.app).get('/metrics')).text).toMatch(/asm_fer_label_studio_event_failures_total\{reason="image-not-found"\} 1/);
    expect(await recordsOf(105)).toHaveLength(0);
  });

  it('refuses a malformed annotation event with a 400 and ignores actions it does not audit', async () => {
    const bad = await webhook({ action: 'ANNOTATION_CREATED', annotation: { id: 1 } });
    expect(bad.status).toBe(400);
    expectContract('POST', '/label-studio/webhook', bad);
    expect((await webhook({ action: 'PROJECT_UPDATED', project: { id: 1 } })).body).toEqual({ events: 0, queued: 0 });
  });

  it('answers 415 to a body that is not JSON, naming application/json', async () => {
    const res = await request(t.app).post('/label-studio/webhook').set('authorization', bearer).set('content-type', 'text/plain').send('{"action": "ANNOTATION_CREATED"}');
    expect(res.status).toBe(415);
    expectContract('POST', '/label-studio/webhook', res);
    expect(res.body.detail).toBe('the request body must be application/json; this request has Content-Type text/plain');
  });

  it('never lets the Label Studio token reach a response, the trail or the queue', async () => {
    const bodies = [(await request(t.app).get('/metrics')).text, JSON.stringify((await request(t.app).get('/v1/audits?limit=1000')).body)];
    for (const b of bodies) expect(b).not.toContain(LEGACY_TOKEN);
    for (const f of readdirSync(dataDir)) expect(readFileSync(path.join(dataDir, f)).includes(LEGACY_TOKEN)).toBe(false);
  });
});

describe('a restart and the personal-access-token form', () => {
  it('audits, once, an annotation made while the service was down, and removes the verdict of one deleted meanwhile', async () => {
    await t.close();
    // Label Studio's webhooks failed while asm-fer was down: the annotations changed without a word.
    const missed = annotationPayload('ANNOTATION_CREATED', { id: 110, task: 10, project: 1, choice: 'disgust', updatedAt: '2026-12-04T12:00:00.000000Z' }).annotation;
    ls.annotations.set(110, missed);
    ls.annotations.delete(102);
    t = await startTestApp(lsEnv());
    await until(() => predictionsOf(10).length === 1 && predictionsOf(2).length === 0, 10_000);
    expect(await recordsOf(110)).toHaveLength(1);
    // Annotation 102, deleted while the service was down, is found by the sweep and its record marked.
    await until(async () => (await recordsOf(102))[0]?.withdrawnAt != null, 10_000);
    expect((await recordsOf(110))[0]?.withdrawnAt).toBeNull();
    // Everything else was already queued: nothing audited twice, no other verdict removed.
    await until(async () => (await request(t.app).get('/metrics')).text.includes('asm_fer_label_studio_queue_depth 0'), 10_000);
    for (const a of [101, 103, 104, 106, 109]) expect((await recordsOf(a)).length, `annotation ${a}`).toBe(a === 103 || a === 109 ? 2 : 1);
    expect(predictionsOf(1)).toHaveLength(1);
    expect(predictionsOf(9)).toHaveLength(1);
  });

  it('resumes the queue left by a stopped service, once, authenticating with an access token from the PAT', async () => {
    ls.mode = 'down';
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 107, task: 7, project: 1, choice: 'surprise' }));
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 108, task: 8, project: 1, choice: 'contempt' }));
    await t.close();
    ls.mode = 'up';
    const seen = ls.requests.length;
    t = await startTestApp(lsEnv(PERSONAL_TOKEN));
    await until(() => predictionsOf(7).length === 1 && predictionsOf(8).length === 1, 10_000);
    expect(await recordsOf(107)).toHaveLength(1);
    expect(await recordsOf(108)).toHaveLength(1);
    const after = ls.requests.slice(seen);
    expect(after[0]?.path).toBe('/api/token/refresh');
    expect(after.filter((r) => r.path.startsWith('/api/tasks')).every((r) => r.authorization?.startsWith('Bearer ') && !r.authorization.includes(PERSONAL_TOKEN))).toBe(true);
  });

  it('sweeps the connected projects again every ASM_FER_LABEL_STUDIO_SWEEP_MS, finding an annotation no webhook brought', async () => {
    await t.close();
    const seen = ls.requests.length;
    const sweeps = () => ls.requests.slice(seen).filter((r) => r.path.startsWith('/api/tasks/?project=1&page=1')).length;
    t = await startTestApp({ ...lsEnv(), ASM_FER_LABEL_STUDIO_SWEEP_MS: '300' });
    // A webhook makes project 1 one to sweep (as the earlier tests did); a second sweep has then begun, so the
    // start-up sweep is over.
    addTask(13);
    const hook = await webhook(annotationPayload('ANNOTATION_CREATED', { id: 113, task: 13, project: 1, choice: 'anger' }));
    expect(hook.status).toBe(200);
    // 0 where the start-up sweep, still running on a loaded machine, had found the annotation first: audited once either way.
    expect([0, 1]).toContain(hook.body.queued);
    await until(() => sweeps() >= 2, 10_000);
    // Made while asm-fer runs, its webhook lost (a network split): only a later sweep can find it.
    addTask(12);
    ls.annotations.set(112, annotationPayload('ANNOTATION_CREATED', { id: 112, task: 12, project: 1, choice: 'fear' }).annotation);
    await until(() => predictionsOf(12).length === 1, 10_000);
    await new Promise((r) => setTimeout(r, 700));
    expect(await recordsOf(112)).toHaveLength(1);
    expect(predictionsOf(12)).toHaveLength(1);
    expect(await recordsOf(113)).toHaveLength(1);
  });
});

describe('on a PostgreSQL trail', () => {
  it('answers 503 audit-store-unavailable where the queue is needed while its database cannot be reached', async () => {
    const down = await startTestApp({ ...lsEnv(), ASM_FER_AUDIT_DB: 'postgres://postgres@127.0.0.1:1/none', ASM_FER_AUDIT_DB_ACQUIRE_TIMEOUT_MS: '500' });
    try {
      const body = annotationPayload('ANNOTATION_CREATED', { id: 301, task: 1, project: 1, choice: 'neutral' });
      const hook = await request(down.app).post('/label-studio/webhook').set('authorization', bearer).send(body);
      expect(hook.status).toBe(503);
      expectContract('POST', '/label-studio/webhook', hook);
      expect(hook.body.type).toMatch(/audit-store-unavailable$/);
      expect(hook.body.detail).toMatch(/Label Studio queue/);
      const health = await request(down.app).get('/label-studio/health').set('authorization', bearer);
      expect(health.status).toBe(503);
      expectContract('GET', '/label-studio/health', health);
      const map = await request(down.app).put('/label-studio/projects/1/label-map').set('authorization', bearer).send({ Smile: 'happiness' });
      expect(map.status).toBe(503);
      expectContract('PUT', '/label-studio/projects/{project}/label-map', map);
    } finally {
      await down.close();
    }
  });

  it('audits into it through the same trail functions, the queue in the same database', async () => {
    const trail = await freshTrail('postgres');
    const queueDir = mkdtempSync(path.join(tmpdir(), 'asm-fer-ls-pg-'));
    const pg = await startTestApp({ ...lsEnv(), ...trail.env, ASM_FER_DATA_DIR: queueDir });
    try {
      ls.tasks.set(11, { id: 11, project: 2, data: { image: '/data/upload/2/face-11.png' } });
      ls.files.set('/data/upload/2/face-11.png', image);
      ls.projects.set(2, { label_config: ferplusConfig() });
      const body = annotationPayload('ANNOTATION_CREATED', { id: 201, task: 11, project: 2, choice: 'neutral' });
      ls.annotations.set(201, body.annotation);
      const res = await request(pg.app).post('/label-studio/webhook').set('authorization', bearer).send(body);
      expect(res.body).toEqual({ events: 1, queued: 1 });
      await until(() => predictionsOf(11).length === 1, 10_000);
      const { items } = await pg.trail.store.list({ datasetId: 'label-studio project 2' }, { limit: 10 });
      expect(items.map((r) => [r.itemId, r.label])).toEqual([['task 11 annotation 201', 'neutral']]);
      expect(predictionsOf(11)[0]?.score).toBe(items[0]?.labelProbability);
      expect(readdirSync(queueDir)).not.toContain('label-studio.db');
      await until(async () => (await adminQuery(trail.where, `SELECT key FROM ls_events WHERE state = 'done'`)).length === 1, 10_000);
      expect(await adminQuery(trail.where, 'SELECT key, state FROM ls_events')).toEqual([{ key: `201:ANNOTATION_CREATED:${body.annotation.updated_at}`, state: 'done' }]);
      // Deleted: the PostgreSQL record is marked withdrawn as the SQLite one is.
      ls.annotations.delete(201);
      await request(pg.app).post('/label-studio/webhook').set('authorization', bearer).send({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: 201 }], project: { id: 2 } });
      await until(() => predictionsOf(11).length === 0, 10_000);
      await until(async () => (await pg.trail.store.get(items[0]?.id as string))?.withdrawnAt != null, 10_000);
    } finally {
      await pg.close();
      await trail.drop();
      rmSync(queueDir, { recursive: true, force: true });
    }
  });
});
