// Per-project label maps (GET/PUT/DELETE /label-studio/projects/{project}/label-map) and silent projects (the sweep
// finds annotation changes no webhook announced), through HTTP against the real app and a fake Label Studio
// (fake-label-studio.ts), with the tiny real model. Issue 33, items 1 and 2.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { until } from '../fixtures/server-process.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from '../http/contract.js';
import { LEGACY_TOKEN, annotationPayload, ferplusConfig, startFakeLabelStudio, type FakeLabelStudio } from './fake-label-studio.js';

const SECRET = 'label-studio-secret-for-project-tests';
const bearer = `Bearer ${SECRET}`;
/** A team's own names: "Smile" is happiness in project 3 and contempt in project 4; "Neutral" matches by name. */
const SMILE_CONFIG = ferplusConfig(['Smile', 'Neutral']);

let ls: FakeLabelStudio;
let dataDir: string;
let t: TestApp;
let image: Buffer;
const logged: Record<string, unknown>[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });

const start = (env: Record<string, string> = {}) =>
  startTestApp(
    {
      LABEL_STUDIO_URL: ls.url,
      LABEL_STUDIO_API_KEY: LEGACY_TOKEN,
      ASM_FER_LABEL_STUDIO_SECRET: SECRET,
      ASM_FER_DATA_DIR: dataDir,
      ASM_FER_LABEL_STUDIO_TIMEOUT_MS: '2000',
      ASM_FER_LABEL_STUDIO_RETRY_MAX_MS: '300',
      // The default map, for every project without its own.
      ASM_FER_LABEL_STUDIO_LABEL_MAP: 'Glad=happiness',
      // Sweeps at start only, unless a test asks for periodic ones: what a sweep finds is then up to the test.
      ASM_FER_LABEL_STUDIO_SWEEP_MS: '0',
      ...env,
    },
    { logger },
  );
const restart = async (env: Record<string, string> = {}) => {
  await t.close();
  t = await start(env);
};

function addTask(id: number, project: number) {
  ls.tasks.set(id, { id, project, data: { image: `/data/upload/${project}/face-${id}.png` } });
  ls.files.set(`/data/upload/${project}/face-${id}.png`, image);
}
const labelMap = (project: number | string) => `/label-studio/projects/${project}/label-map`;
const put = (project: number | string, body: unknown) => request(t.app).put(labelMap(project)).set('authorization', bearer).send(body as object);
const setup = (project: number, schema = SMILE_CONFIG) => request(t.app).post('/label-studio/setup').set('authorization', bearer).send({ project: `${project}.1700000000`, schema });
const webhook = (body: ReturnType<typeof annotationPayload>) => {
  ls.annotations.set(body.annotation.id, body.annotation);
  return request(t.app).post('/label-studio/webhook').set('authorization', bearer).send(body);
};
const health = async () => {
  const res = await request(t.app).get('/label-studio/health').set('authorization', bearer);
  expectContract('GET', '/label-studio/health', res);
  return res.body as { silent_projects: { project: number; since: string; missed: number }[] };
};
const silentGauge = async () => sample((await request(t.app).get('/metrics')).text, 'asm_fer_label_studio_silent_projects');
const predictionsOf = (task: number) => [...ls.predictions.values()].filter((p) => p.task === task);
const recordsOf = async (project: number) => (await t.trail.store.list({ datasetId: `label-studio project ${project}` }, { limit: 1000 })).items;
const now = () => new Date().toISOString();

beforeAll(async () => {
  ls = await startFakeLabelStudio();
  image = await png(48, 48);
  for (const p of [3, 4, 5]) ls.projects.set(p, { label_config: SMILE_CONFIG });
  for (const p of [6, 8]) ls.projects.set(p, { label_config: ferplusConfig() });
  dataDir = mkdtempSync(path.join(tmpdir(), 'asm-fer-ls-projects-'));
  t = await start();
});
afterAll(async () => {
  await t?.close();
  await ls?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('a project’s label map', () => {
  it('is the default (ASM_FER_LABEL_STUDIO_LABEL_MAP) until the project has its own', async () => {
    const res = await request(t.app).get(labelMap(3)).set('authorization', bearer);
    expect(res.status).toBe(200);
    expectContract('GET', '/label-studio/projects/{project}/label-map', res);
    expect(res.body).toEqual({ project: 3, labelMap: { Glad: 'happiness' }, source: 'default', updatedAt: null });
  });

  it('is set with PUT, read back with GET and removed with DELETE', async () => {
    const set = await put(9, { Happy: 'happiness', Fearful: 'fear' });
    expect(set.status).toBe(200);
    expectContract('PUT', '/label-studio/projects/{project}/label-map', set);
    expect(set.body).toEqual({ project: 9, labelMap: { Happy: 'happiness', Fearful: 'fear' }, source: 'project', updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect((await request(t.app).get(labelMap(9)).set('authorization', bearer)).body).toEqual(set.body);
    // Another project is untouched.
    expect((await request(t.app).get(labelMap(10)).set('authorization', bearer)).body.source).toBe('default');
    const removed = await request(t.app).delete(labelMap(9)).set('authorization', bearer);
    expect(removed.status).toBe(200);
    expectContract('DELETE', '/label-studio/projects/{project}/label-map', removed);
    expect(removed.body).toEqual({ project: 9, labelMap: { Glad: 'happiness' }, source: 'default', updatedAt: null });
  });

  it.each([
    ['an array', ['Happy', 'happiness'], /must be object/],
    ['a class that is not a string', { Happy: 3 }, /\/body\/Happy must be string/],
    ['an empty choice name', { '': 'fear' }, /property name must be valid|must NOT have fewer than 1 characters/],
    ['an empty class', { Happy: '' }, /must NOT have fewer than 1 characters/],
    ['more than 256 choices', Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`choice ${i}`, 'fear'])), /must NOT have more than 256 properties/],
  ])('refuses %s with a 400 problem saying what is wrong', async (_what, body, detail) => {
    const res = await put(11, body);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expectContract('PUT', '/label-studio/projects/{project}/label-map', res);
    expect(res.body.detail).toMatch(detail);
  });

  it('refuses a JSON body that is no object, saying so (not as a syntax error)', async () => {
    for (const [raw, kind] of [['42', 'a number'], ['"Happy=happiness"', 'a string'], ['null', 'null'], ['true', 'a boolean']]) {
      const res = await request(t.app).put(labelMap(11)).set('authorization', bearer).set('content-type', 'application/json').send(raw);
      expect(res.status, raw).toBe(400);
      expectContract('PUT', '/label-studio/projects/{project}/label-map', res);
      expect(res.body.detail).toBe(`the JSON body must be an object; this one is ${kind}`);
    }
  });

  it('refuses a class the model does not have with a 422 naming it, and keeps the map it had', async () => {
    await put(12, { Happy: 'happiness' });
    const res = await put(12, { Happy: 'joy', Sad: 'sadness', Meh: 'boredom' });
    expect(res.status).toBe(422);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expectContract('PUT', '/label-studio/projects/{project}/label-map', res);
    expect(res.body).toMatchObject({ type: expect.stringMatching(/\/label-map$/), unknownClasses: ['joy', 'boredom'], validLabels: t.bundle.manifest.classes });
    expect(res.body.detail).toMatch(/"joy", "boredom" \(of choice\(s\) "Happy", "Meh"\)/);
    expect((await request(t.app).get(labelMap(12)).set('authorization', bearer)).body.labelMap).toEqual({ Happy: 'happiness' });
  });

  it('refuses a project id that is not a positive integer, a body that is not JSON, and a request without the secret', async () => {
    for (const project of ['abc', '0', '1.5']) {
      const res = await put(project, { Happy: 'happiness' });
      expect(res.status, project).toBe(400);
      expect(res.body.detail, project).toMatch(/project/);
    }
    const text = await request(t.app).put(labelMap(13)).set('authorization', bearer).set('content-type', 'text/plain').send('Happy=happiness');
    expect(text.status).toBe(415);
    expectContract('PUT', '/label-studio/projects/{project}/label-map', text);
    expect(text.body.detail).toMatch(/must be application\/json/);
    const anonymous = await request(t.app).put(labelMap(13)).send({ Happy: 'happiness' });
    expect(anonymous.status).toBe(401);
    expectContract('PUT', '/label-studio/projects/{project}/label-map', anonymous);
  });
});

describe('two projects mapping the same choice name to different classes', () => {
  it('are each set up, pre-annotated and audited with their own map', async () => {
    expect((await put(3, { Smile: 'happiness' })).status).toBe(200);
    expect((await put(4, { Smile: 'contempt' })).status).toBe(200);
    expect((await setup(3)).status).toBe(200);
    expect((await setup(4)).status).toBe(200);

    // Project 5 has no map of its own, and the default does not know "Smile": refused, and logged naming it.
    const refused = await setup(5);
    expect(refused.status).toBe(422);
    expect(refused.body.unmappedChoices).toEqual(['Smile']);
    expect(refused.body.detail).toMatch(/PUT \/label-studio\/projects\/<id>\/label-map/);
    expect(logged.filter((l) => l.project === '5.1700000000')).toEqual([expect.objectContaining({ level: 40, unmappedChoices: ['Smile'] })]);

    // Pre-annotations: the likelier of the project's two classes, under the project's choice names.
    const { probabilities } = (await request(t.app).post('/v1/predict').attach('image', image, 'a.png')).body.results[0];
    for (const [project, cls] of [[3, 'happiness'], [4, 'contempt']] as const) {
      addTask(project * 10 + 1, project);
      const res = await request(t.app)
        .post('/label-studio/predict')
        .set('authorization', bearer)
        .send({ tasks: [{ id: project * 10 + 1, data: { image: `/data/upload/${project}/face-${project * 10 + 1}.png` } }], label_config: SMILE_CONFIG, project: `${project}.1700000000` });
      expect(res.status).toBe(200);
      const smile = probabilities[cls] as number;
      const neutral = probabilities.neutral as number;
      expect(res.body.results[0], `project ${project}`).toMatchObject({ score: Math.max(smile, neutral), result: [{ value: { choices: [smile > neutral ? 'Smile' : 'Neutral'] } }] });
    }

    // Audits: the same submitted "Smile" is happiness in project 3 and contempt in project 4.
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 301, task: 31, project: 3, choice: 'Smile' }));
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 401, task: 41, project: 4, choice: 'Smile' }));
    await until(() => predictionsOf(31).length === 1 && predictionsOf(41).length === 1, 10_000);
    expect((await recordsOf(3)).map((r) => [r.itemId, r.label])).toEqual([['task 31 annotation 301', 'happiness']]);
    expect((await recordsOf(4)).map((r) => [r.itemId, r.label])).toEqual([['task 41 annotation 401', 'contempt']]);
    // The verdict written back speaks the project's names.
    for (const task of [31, 41]) expect(['Smile', 'Neutral']).toContain((predictionsOf(task)[0]?.result[0] as { value: { choices: string[] } }).value.choices[0]);
  });

  it('keeps the maps across a restart (label-studio.db)', async () => {
    await restart();
    expect((await request(t.app).get(labelMap(3)).set('authorization', bearer)).body).toMatchObject({ labelMap: { Smile: 'happiness' }, source: 'project' });
    expect((await request(t.app).get(labelMap(4)).set('authorization', bearer)).body).toMatchObject({ labelMap: { Smile: 'contempt' }, source: 'project' });
    expect((await setup(4)).status).toBe(200);
    expect((await setup(5)).status).toBe(422);
  });
});

describe('a silent project', () => {
  it('is one whose annotations changed with no webhook: /label-studio/health and a metric say so until its next webhook', async () => {
    expect((await health()).silent_projects).toEqual([]);
    expect(await silentGauge()).toBe(0);
    // Project 6 is connected (setup) and its webhook is refused (saved without the secret): it never sends a word.
    expect((await setup(6, ferplusConfig())).status).toBe(200);
    addTask(61, 6);
    ls.annotations.set(601, annotationPayload('ANNOTATION_CREATED', { id: 601, task: 61, project: 6, choice: 'fear', updatedAt: now() }).annotation);
    // Project 8's annotation predates its connection: no webhook's to announce, so it is audited but says nothing.
    addTask(81, 8);
    ls.annotations.set(801, annotationPayload('ANNOTATION_CREATED', { id: 801, task: 81, project: 8, choice: 'fear', updatedAt: '2020-01-01T00:00:00.000000Z' }).annotation);
    expect((await setup(8, ferplusConfig())).status).toBe(200);
    // Project 3's webhook works; an annotation made while asm-fer is down is an outage, not silence.
    addTask(32, 3);
    ls.annotations.set(302, annotationPayload('ANNOTATION_CREATED', { id: 302, task: 32, project: 3, choice: 'Neutral', updatedAt: now() }).annotation);

    await restart();
    await until(() => predictionsOf(61).length === 1 && predictionsOf(81).length === 1 && predictionsOf(32).length === 1, 10_000);
    expect((await health()).silent_projects).toEqual([{ project: 6, since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), missed: 1 }]);
    expect(await silentGauge()).toBe(1);
    expect(logged.filter((l) => l.project === 6 && String(l.msg).includes('is silent'))).toEqual([
      expect.objectContaining({ level: 40, missed: 1, msg: expect.stringMatching(/^Label Studio project 6 is silent: 1 annotation change\(s\) came without a webhook; check .*Authorization: Bearer/) }),
    ]);
    const metrics = (await request(t.app).get('/metrics')).text;
    expect(sample(metrics, 'asm_fer_label_studio_swept_events_total')).toBe(3);

    // The header is fixed: the next webhook of project 6 clears it.
    await webhook(annotationPayload('ANNOTATION_CREATED', { id: 602, task: 61, project: 6, choice: 'anger', updatedAt: now() }));
    expect((await health()).silent_projects).toEqual([]);
    expect(await silentGauge()).toBe(0);
  });

  it('is found by the periodic sweep too, once no webhook came since the sweep before', async () => {
    await restart({ ASM_FER_LABEL_STUDIO_SWEEP_MS: '300' });
    const seen = ls.requests.length;
    const sweepsOf4 = () => ls.requests.slice(seen).filter((r) => r.path.startsWith('/api/tasks/?project=4&page=1')).length;
    await until(() => sweepsOf4() >= 2, 10_000);
    expect((await health()).silent_projects).toEqual([]);
    // Project 4's webhook is lost from now on (a header removed, a network split): only a sweep finds its change.
    addTask(42, 4);
    ls.annotations.set(402, annotationPayload('ANNOTATION_CREATED', { id: 402, task: 42, project: 4, choice: 'Smile', updatedAt: now() }).annotation);
    await until(() => predictionsOf(42).length === 1, 10_000);
    await until(async () => (await health()).silent_projects.length === 1, 10_000);
    expect((await health()).silent_projects).toEqual([{ project: 4, since: expect.any(String), missed: 1 }]);
    expect(await silentGauge()).toBe(1);
    // Heard again: cleared, and later sweeps (which find nothing new) leave it so.
    await webhook(annotationPayload('ANNOTATION_UPDATED', { id: 402, task: 42, project: 4, choice: 'Neutral', updatedAt: now() }));
    await until(async () => (await health()).silent_projects.length === 0, 10_000);
    const after = sweepsOf4();
    await until(() => sweepsOf4() >= after + 2, 10_000);
    expect((await health()).silent_projects).toEqual([]);
  });
});
