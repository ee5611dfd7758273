// The audit trail over HTTP, on both backends (SQLite and PostgreSQL): POST /v1/audit stores what it answers;
// GET /v1/audits filters, pages and exports it; GET /v1/audits/{id}[/image]; the summary; the API key. Then, on
// SQLite, a store that cannot be written answers 503 while /v1/predict keeps working (PostgreSQL's failures:
// test/audit/store.test.ts and test/audit/replicas.test.ts).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../../src/audit/export.js';
import { jpeg, png } from '../fixtures/make-images.js';
import { sample } from '../fixtures/prom.js';
import { BACKENDS, freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

interface Item {
  id: string;
  label: string;
  verdict: string;
  predicted: string;
}

// Every suite but the last runs on both trail backends: SQLite and PostgreSQL.
describe.each(BACKENDS)('on %s', (kind) => {
  let t: TestApp;
  let trail: FreshTrail;
  /** Every item POSTed in beforeAll with the ids it was sent with, oldest first. */
  const sent: (Item & { annotatorId: string; datasetId: string; itemId: string; sha: string })[] = [];
  let before = '';
  let between = '';

  beforeAll(async () => {
    trail = await freshTrail(kind);
    t = await startTestApp(trail.env);
    const classes = t.bundle.manifest.classes;
    const images = [await png(), await jpeg(80, 80), await png(60, 40), await jpeg(50, 70)];
    before = new Date(Date.now() - 1000).toISOString();
    for (let r = 0; r < 4; r++) {
      if (r === 2) {
        await new Promise((res) => setTimeout(res, 20));
        between = new Date().toISOString();
        await new Promise((res) => setTimeout(res, 20));
      }
      const req = request(t.app).post('/v1/audit').field('annotatorId', r % 2 === 0 ? 'ann-even' : '=ann-odd').field('datasetId', `set-${r}`);
      const labels = images.map((_, i) => classes[(r * 3 + i) % classes.length] as string);
      images.forEach((img, i) => {
        req.attach('image', img, `i${i}`).field('label', labels[i] as string).field('itemId', `item-${r}-${i}`);
      });
      const res = await req;
      expect(res.status).toBe(200);
      res.body.results.forEach((it: Item, i: number) =>
        sent.push({ ...it, annotatorId: r % 2 === 0 ? 'ann-even' : '=ann-odd', datasetId: `set-${r}`, itemId: `item-${r}-${i}`, sha: createHash('sha256').update(images[i] as Buffer).digest('hex') }),
      );
    }
  });
  afterAll(async () => {
    await t.close();
    await trail.drop();
  });

  const idsNewestFirst = (items: Item[]) => items.map((x) => x.id);
  const expected = (keep: (s: (typeof sent)[number], i: number) => boolean) => sent.filter(keep).map((s) => s.id).reverse();

  describe('POST /v1/audit and GET /v1/audits/{id}', () => {
    it('stores every answered item with its client ids and the image sha256, and serves it by id', async () => {
      const first = sent[0] as (typeof sent)[number];
      const res = await request(t.app).get(`/v1/audits/${first.id}`);
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits/{id}', res);
      expect(res.body).toMatchObject({ id: first.id, label: first.label, verdict: first.verdict, predicted: first.predicted, itemId: 'item-0-0', annotatorId: 'ann-even', datasetId: 'set-0', imageSha256: first.sha, imageStored: false, thresholdSource: 'bundle' });
      expect(res.body.model).toEqual({ name: t.bundle.manifest.name, version: t.bundle.manifest.version });
    });

    it('answers 404 for an unknown id and 400 for one that is not a uuid', async () => {
      const missing = await request(t.app).get('/v1/audits/00000000-0000-4000-8000-000000000000');
      expect(missing.status).toBe(404);
      expectContract('GET', '/v1/audits/{id}', missing);
      expect((await request(t.app).get('/v1/audits/not-an-id')).status).toBe(400);
    });

    it('answers 404 for the image when images are not kept', async () => {
      const res = await request(t.app).get(`/v1/audits/${sent[0]?.id}/image`);
      expect(res.status).toBe(404);
      expect(res.body.detail).toMatch(/ASM_FER_AUDIT_STORE_IMAGES/);
    });

    it('answers 400 when client id parts do not match the images', async () => {
      const res = await request(t.app)
        .post('/v1/audit')
        .attach('image', await png(), 'a.png')
        .field('label', 'fear')
        .attach('image', await png(), 'b.png')
        .field('label', 'fear')
        .field('itemId', 'only-one');
      expect(res.status).toBe(400);
      expectContract('POST', '/v1/audit', res);
      expect(res.body.detail).toMatch(/2 image part\(s\) and 1 itemId part\(s\)/);
    });
  });

  describe('GET /v1/audits', () => {
    it.each<[string, string, (s: (typeof sent)[number], i: number) => boolean]>([
      ['no filter', '', () => true],
      ['verdict (comma list)', 'verdict=noisy,ambiguous', (s) => s.verdict !== 'clean'],
      ['verdict (repeated)', 'verdict=clean&verdict=noisy', (s) => s.verdict !== 'ambiguous'],
      ['label', 'label=surprise', (s) => s.label === 'surprise'],
      ['predicted label', `predicted=PREDICTED`, (s) => s.predicted === sent[0]?.predicted],
      ['annotator', 'annotatorId=%3Dann-odd', (s) => s.annotatorId === '=ann-odd'],
      ['dataset', 'datasetId=set-2', (s) => s.datasetId === 'set-2'],
      ['model version', 'modelVersion=VERSION', () => true],
      ['another model version', 'modelVersion=0.0.0-other', () => false],
      ['time range', 'from=FROM&to=TO', (_s, i) => i < 8],
      ['time from', 'from=TO', (_s, i) => i >= 8],
    ])('filters by %s', async (_name, query, keep) => {
      const q = query
        .replace('PREDICTED', sent[0]?.predicted as string)
        .replace('VERSION', encodeURIComponent(t.bundle.manifest.version))
        .replace('FROM', encodeURIComponent(before))
        .replace('TO', encodeURIComponent(between));
      const res = await request(t.app).get(`/v1/audits?limit=1000&${q}`);
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits', res);
      expect(idsNewestFirst(res.body.items)).toEqual(expected(keep));
      expect(res.body.nextCursor).toBeNull();
    });

    it('pages with cursors and a Link header until the last page', async () => {
      const seen: string[] = [];
      let url: string | undefined = '/v1/audits?limit=5&verdict=clean,ambiguous,noisy';
      let pages = 0;
      while (url) {
        const res = await request(t.app).get(url);
        expect(res.status).toBe(200);
        seen.push(...idsNewestFirst(res.body.items));
        pages++;
        if (res.body.nextCursor === null) {
          expect(res.headers.link).toBeUndefined();
          url = undefined;
        } else {
          expect(res.headers.link).toBe(`</v1/audits?limit=5&verdict=clean%2Cambiguous%2Cnoisy&cursor=${res.body.nextCursor}>; rel="next"`);
          url = `/v1/audits?limit=5&verdict=clean,ambiguous,noisy&cursor=${res.body.nextCursor}`;
        }
      }
      expect(pages).toBe(Math.ceil(sent.length / 5));
      expect(seen).toEqual(expected(() => true));
    });

    it('exports CSV: a header, one row per record, formula-like cells defused, the next cursor in a header', async () => {
      const res = await request(t.app).get('/v1/audits?format=csv&limit=10');
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits', res);
      const lines = res.text.split('\r\n').filter((l) => l.length > 0);
      expect(lines[0]).toBe(CSV_COLUMNS.join(','));
      expect(lines).toHaveLength(11);
      const json = (await request(t.app).get('/v1/audits?limit=10')).body;
      expect(res.headers['x-next-cursor']).toBe(json.nextCursor);
      const row = (lines[1] as string).split(',');
      const col = (name: (typeof CSV_COLUMNS)[number]) => row[CSV_COLUMNS.indexOf(name)];
      expect(col('id')).toBe(json.items[0].id);
      expect(col('verdict')).toBe(json.items[0].verdict);
      expect(Number(col('labelProbability'))).toBe(json.items[0].labelProbability);
      expect(col('annotatorId')).toBe("'=ann-odd");
      const probabilities = JSON.parse(/"(\{.*\})"$/.exec(lines[1] as string)?.[1]?.replace(/""/g, '"') as string);
      expect(probabilities).toEqual(json.items[0].probabilities);
    });

    it('exports JSON Lines: one record per line, the same as the JSON list', async () => {
      const res = await request(t.app).get('/v1/audits?format=jsonl&limit=1000&label=neutral');
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits', res);
      const json = (await request(t.app).get('/v1/audits?limit=1000&label=neutral')).body;
      expect(res.text.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(json.items);
      expect(res.headers['x-next-cursor']).toBeUndefined();
    });

    it('marks a withdrawn record (withdrawnAt) in every format, lists it with withdrawn=true and without it with withdrawn=false', async () => {
      const gone = sent[1] as (typeof sent)[number];
      const at = Date.now();
      expect(await t.trail.withdraw(gone.id, at)).toBe(true);
      const one = await request(t.app).get(`/v1/audits/${gone.id}`);
      expectContract('GET', '/v1/audits/{id}', one);
      expect(one.body.withdrawnAt).toBe(new Date(at).toISOString());
      expect((await request(t.app).get(`/v1/audits/${(sent[0] as Item).id}`)).body.withdrawnAt).toBeNull();
      const only = await request(t.app).get('/v1/audits?withdrawn=true&limit=1000');
      expectContract('GET', '/v1/audits', only);
      expect(idsNewestFirst(only.body.items)).toEqual([gone.id]);
      expect(idsNewestFirst((await request(t.app).get('/v1/audits?withdrawn=false&limit=1000')).body.items)).toEqual(expected((s) => s.id !== gone.id));
      const csv = (await request(t.app).get('/v1/audits?withdrawn=true&format=csv')).text.split('\r\n');
      expect(csv[1]?.split(',')[CSV_COLUMNS.indexOf('withdrawnAt')]).toBe(new Date(at).toISOString());
      expect(JSON.parse((await request(t.app).get('/v1/audits?withdrawn=true&format=jsonl')).text).withdrawnAt).toBe(new Date(at).toISOString());
      expect((await request(t.app).get('/v1/audits?withdrawn=maybe')).status).toBe(400);
    });

    // As typed into curl or a browser bar: nothing percent-encoded, a "+" offset sign included.
    it('takes times as typed, without percent-encoding, and form-encoded ones too', async () => {
      const local = (iso: string, offset: string) => {
        const sign = offset.startsWith('-') ? -1 : 1;
        const [h, m] = offset.slice(1).split(':').map(Number) as [number, number];
        return `${new Date(Date.parse(iso) + sign * (h * 60 + m) * 60_000).toISOString().slice(0, 23)}${offset}`;
      };
      // As Python's urlencode sends str(datetime): a space separator (form-encoded as "+") and an encoded "+" offset.
      const spaced = (iso: string) => iso.replace('T', ' ').replace('Z', '+00:00');
      const within = (_s: (typeof sent)[number], i: number) => i < 8;
      for (const range of [
        `from=${before}&to=${between}`,
        `from=${local(before, '+05:30')}&to=${local(between, '+05:30')}`,
        `from=${local(before, '-03:00')}&to=${local(between, '+14:00')}`,
        new URLSearchParams({ from: spaced(before), to: spaced(between) }).toString(),
      ]) {
        const list = await request(t.app).get(`/v1/audits?limit=1000&${range}`);
        expect(list.status, range).toBe(200);
        expect(idsNewestFirst(list.body.items)).toEqual(expected(within));
        const summary = await request(t.app).get(`/v1/audits/summary?${range}`);
        expect(summary.status, range).toBe(200);
        expect(summary.body.total).toBe(8);
      }
    });

    it.each([
      ['from=2026-02-30T00:00:00Z'],
      ['from=2026-01-01T00:00:00+25:00'],
      ['from=2026-06-01T00:00:00Z&to=2026-01-01T00:00:00Z'],
      ['from=2026-01-01T00:00:00+01:00&to=2026-01-01T00:00:00+01:00'],
    ])('answers 400 for unencoded %s', async (q) => {
      const res = await request(t.app).get(`/v1/audits?${q}`);
      expect(res.status).toBe(400);
      expectContract('GET', '/v1/audits', res);
    });

    it.each([['cursor=bm90LWEtY3Vyc29y'], ['verdict=dubious'], ['limit=0'], ['from=yesterday'], ['format=xml']])('answers 400 for %s', async (q) => {
      const res = await request(t.app).get(`/v1/audits?${q}`);
      expect(res.status).toBe(400);
      expectContract('GET', '/v1/audits', res);
    });
  });

  describe('GET /v1/audits/summary', () => {
    it('sums the stored records per class and annotator, with the live statistics of this process', async () => {
      const res = await request(t.app).get('/v1/audits/summary');
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits/summary', res);
      const audited = (await request(t.app).get('/v1/audits?limit=1000')).body.items as Item[];
      expect(res.body.total).toBe(audited.length);
      for (const c of res.body.classes) {
        const mine = audited.filter((a) => a.label === c.label);
        expect(c.count).toBe(mine.length);
        expect(c.verdicts.noisy).toBe(mine.filter((a) => a.verdict === 'noisy').length);
        expect(c.noiseRate).toBeCloseTo(c.verdicts.noisy / c.count, 12);
      }
      expect(res.body.annotators.map((a: { annotatorId: string }) => a.annotatorId)).toEqual(['=ann-odd', 'ann-even']);
      const total = (res.body.confusion.counts as number[][]).flat().reduce((x, y) => x + y, 0);
      expect(total).toBe(audited.length);
      const liveCount = res.body.live.classes.reduce((acc: number, c: { sinceStart: { count: number } }) => acc + c.sinceStart.count, 0);
      expect(liveCount).toBe(audited.length);
      // The windows: this process's on SQLite, read from the shared trail on PostgreSQL; the same items here either way.
      expect(res.body.live.windowScope).toBe(kind === 'postgres' ? 'shared' : 'process');
      expect(res.body.live.classes.reduce((acc: number, c: { window: { count: number } }) => acc + c.window.count, 0)).toBe(audited.length);
      expect(res.body.thresholds.source).toBe('bundle');
      expect(res.body.thresholds.byClass).toEqual(t.bundle.manifest.thresholds);
      expect(res.body.drift.classes.map((c: { label: string }) => c.label)).toEqual(t.bundle.manifest.classes);
    });

    it('applies the list filters to the stored figures', async () => {
      const res = await request(t.app).get('/v1/audits/summary?datasetId=set-1');
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(4);
      expect(res.body.annotators).toEqual([expect.objectContaining({ annotatorId: '=ann-odd', count: 4 })]);
    });

    it('exports the live statistics as gauges by class (and verdict)', async () => {
      const text = (await request(t.app).get('/metrics')).text;
      const summary = (await request(t.app).get('/v1/audits/summary')).body;
      const c = summary.live.classes.find((x: { window: { count: number } }) => x.window.count > 0);
      expect(sample(text, `asm_fer_audit_window_label_probability_mean{class="${c.label}"}`)).toBeCloseTo(c.window.meanLabelProbability, 9);
      expect(sample(text, `asm_fer_audit_since_start_label_probability_mean{class="${c.label}"}`)).toBeCloseTo(c.sinceStart.meanLabelProbability, 9);
      expect(sample(text, `asm_fer_audit_window_verdict_ratio{class="${c.label}",verdict="noisy"}`)).toBeCloseTo(c.window.verdictRates.noisy, 9);
      const d = summary.drift.classes.find((x: { label: string }) => x.label === c.label);
      expect(sample(text, `asm_fer_audit_drift_shift{class="${c.label}"}`)).toBeCloseTo(d.shift, 9);
      expect(sample(text, `asm_fer_audit_drift_detected{class="${c.label}"}`)).toBe(d.drifted ? 1 : 0);
    });
  });

  describe('the audit trail with images kept', () => {
    let u: TestApp;
    let place: FreshTrail;
    beforeAll(async () => {
      place = await freshTrail(kind);
      u = await startTestApp({ ...place.env, ASM_FER_AUDIT_STORE_IMAGES: 'true' });
    });
    afterAll(async () => {
      await u.close();
      await place.drop();
    });

    it('serves the audited image back as uploaded', async () => {
      const img = await jpeg(90, 60);
      const posted = await request(u.app).post('/v1/audit').attach('image', img, 'a.jpg').field('label', 'anger');
      const id = posted.body.results[0].id as string;
      const res = await request(u.app).get(`/v1/audits/${id}/image`).buffer(true);
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits/{id}/image', res);
      expect(res.headers['content-type']).toBe('image/jpeg');
      expect(Buffer.compare(res.body as Buffer, img)).toBe(0);
      expect((await request(u.app).get(`/v1/audits/${id}`)).body.imageStored).toBe(true);
    });
  });

  describe('current verdicts', () => {
    let u: TestApp;
    let place: FreshTrail;
    beforeAll(async () => {
      place = await freshTrail(kind);
      u = await startTestApp(place.env);
    });
    afterAll(async () => {
      await u.close();
      await place.drop();
    });

    it('marks an earlier audit of the same item, annotator and dataset superseded; current=true lists and sums only the latest', async () => {
      const img = await png();
      const audit = async (label: string, annotatorId: string) => {
        const res = await request(u.app).post('/v1/audit').attach('image', img, 'a.png').field('label', label).field('itemId', 'task 5 annotation 50').field('annotatorId', annotatorId).field('datasetId', 'set-current');
        expect(res.status).toBe(200);
        return res.body.results[0].id as string;
      };
      const first = await audit('anger', '7');
      const otherAnnotator = await audit('fear', '8');
      const second = await audit('happiness', '7');
      const old = await request(u.app).get(`/v1/audits/${first}`);
      expectContract('GET', '/v1/audits/{id}', old);
      expect(old.body).toMatchObject({ supersededBy: second, supersededAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
      expect((await request(u.app).get(`/v1/audits/${second}`)).body).toMatchObject({ supersededBy: null, supersededAt: null });
      const current = await request(u.app).get('/v1/audits').query({ datasetId: 'set-current', current: 'true' });
      expectContract('GET', '/v1/audits', current);
      expect(idsNewestFirst(current.body.items)).toEqual([second, otherAnnotator]);
      expect(idsNewestFirst((await request(u.app).get('/v1/audits').query({ current: 'false' })).body.items)).toEqual([first]);
      const csv = (await request(u.app).get('/v1/audits').query({ current: 'false', format: 'csv' })).text.split('\r\n');
      expect(csv[1]?.split(',')[CSV_COLUMNS.indexOf('supersededBy')]).toBe(second);
      expect(JSON.parse((await request(u.app).get('/v1/audits').query({ current: 'false', format: 'jsonl' })).text).supersededBy).toBe(second);
      const summary = await request(u.app).get('/v1/audits/summary').query({ current: 'true' });
      expectContract('GET', '/v1/audits/summary', summary);
      expect(summary.body.total).toBe(2);
      expect((await request(u.app).get('/v1/audits/summary')).body.total).toBe(3);
      expect((await request(u.app).get('/v1/audits/summary?current=maybe')).status).toBe(400);
    });
  });

  describe('ASM_FER_API_KEY', () => {
    const KEY = 'audit-api-key-0123456789';
    let u: TestApp;
    let place: FreshTrail;
    beforeAll(async () => {
      place = await freshTrail(kind);
      u = await startTestApp({ ...place.env, ASM_FER_API_KEY: KEY });
    });
    afterAll(async () => {
      await u.close();
      await place.drop();
    });

    it('guards the audit routes (401 with WWW-Authenticate) and leaves /v1/predict open', async () => {
      const img = await png();
      for (const auth of [undefined, 'Bearer wrong-key-0123456789', KEY]) {
        const post = request(u.app).post('/v1/audit').attach('image', img, 'a.png').field('label', 'fear');
        const res = auth === undefined ? await post : await post.set('Authorization', auth);
        expect(res.status).toBe(401);
        expectContract('POST', '/v1/audit', res);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
      for (const url of ['/v1/audits', '/v1/audits/summary', '/v1/audits/00000000-0000-4000-8000-000000000000']) {
        expect((await request(u.app).get(url)).status).toBe(401);
      }
      const ok = await request(u.app).post('/v1/audit').set('Authorization', `Bearer ${KEY}`).attach('image', img, 'a.png').field('label', 'fear');
      expect(ok.status).toBe(200);
      const list = await request(u.app).get('/v1/audits').set('Authorization', `Bearer ${KEY}`);
      expect(list.body.items.map((x: Item) => x.id)).toEqual([ok.body.results[0].id]);
      expect((await request(u.app).post('/v1/predict').attach('image', img, 'a.png')).status).toBe(200);
    });
  });
});

describe('an audit trail that cannot be written', () => {
  it('answers audits 503 audit-store-unavailable while predictions work, and recovers once the folder is usable', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'asm-fer-blocked-'));
    const blocker = path.join(root, 'blocker');
    writeFileSync(blocker, 'a file where the data folder should go');
    const u = await startTestApp({ ASM_FER_DATA_DIR: path.join(blocker, 'data') });
    try {
      const img = await png();
      const res = await request(u.app).post('/v1/audit').attach('image', img, 'a.png').field('label', 'fear');
      expect(res.status).toBe(503);
      expectContract('POST', '/v1/audit', res);
      expect(res.body.type).toBe('https://asm-fer.dev/problems/audit-store-unavailable');
      expect(res.body.detail).not.toContain(root);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      const list = await request(u.app).get('/v1/audits');
      expect(list.status).toBe(503);
      expectContract('GET', '/v1/audits', list);
      expect((await request(u.app).post('/v1/predict').attach('image', img, 'a.png')).status).toBe(200);

      rmSync(blocker);
      await new Promise((r) => setTimeout(r, 1100));
      const again = await request(u.app).post('/v1/audit').attach('image', img, 'a.png').field('label', 'fear');
      expect(again.status).toBe(200);
      expect((await request(u.app).get('/v1/audits')).body.items).toHaveLength(1);
    } finally {
      await u.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('answers 503 once the store is full (ASM_FER_AUDIT_MAX_BYTES) and keeps predicting; nothing of the refused request is stored', async () => {
    const u = await startTestApp({ ASM_FER_AUDIT_MAX_BYTES: String(64 * 1024), ASM_FER_AUDIT_STORE_IMAGES: 'true' });
    try {
      // Large enough to fill the store quickly; a gradient, not a photo, so the whole image is the face (detect=never).
      const img = await jpeg(256, 256);
      let status = 200;
      let accepted = 0;
      for (let i = 0; i < 40 && status === 200; i++) {
        const res = await request(u.app).post('/v1/audit?detect=never').attach('image', img, 'a.jpg').field('label', 'sadness').attach('image', img, 'b.jpg').field('label', 'sadness');
        status = res.status;
        if (status === 200) accepted += 2;
        else {
          expectContract('POST', '/v1/audit', res);
          expect(res.body.type).toBe('https://asm-fer.dev/problems/audit-store-unavailable');
          expect(res.body.detail).toMatch(/SQLITE_FULL/);
        }
      }
      expect(status).toBe(503);
      expect(accepted).toBeGreaterThan(0);
      expect((await request(u.app).post('/v1/predict').attach('image', img, 'a.jpg')).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1100));
      expect((await request(u.app).get('/v1/audits?limit=1000')).body.items).toHaveLength(accepted);
    } finally {
      await u.close();
    }
  });
});
