// Ranking labels over HTTP (issue 17): POST /v1/audit gives each item its quality, mistakenness and class
// reliability; GET /v1/audits sorts and filters by the scores with cursors that carry the sort, and exports them;
// GET /v1/models shows the bundle's calibration (without split ids), labelQuality and reliability; a bundle without
// those sections ranks by self-confidence and reports no reliability.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../../src/audit/export.js';
import { jpeg, png, solidPng } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { BACKENDS, freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { startTestApp, type TestApp } from '../fixtures/tiny-model.js';
import { expectContract } from './contract.js';

interface Ranked {
  id: string;
  label: string;
  predicted: string;
  probabilities: Record<string, number>;
  quality: number;
  mistakenness: number;
  reliability: unknown;
}

/** The formulas of openapi.yaml's LabelQualityScore and Mistakenness, written out again from the probabilities. */
function expectedScores(r: Ranked, score: 'self-confidence' | 'normalized-margin') {
  const p = r.probabilities;
  const own = p[r.label] as number;
  const other = Math.max(...Object.entries(p).filter(([c]) => c !== r.label).map(([, v]) => v));
  const entropy = -Object.values(p).reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0);
  return {
    quality: score === 'self-confidence' ? own : (own - other + 1) / 2,
    mistakenness: ((r.predicted !== r.label ? 1 : -1) * Math.exp(-entropy) + 1) / 2,
  };
}

// The ranked listing on both trail backends (SQLite, PostgreSQL).
describe.each(BACKENDS)('on %s', (kind) => {
  let t: TestApp;
  let place: FreshTrail;
  /** Every item POSTed in beforeAll, oldest first. */
  const sent: Ranked[] = [];

  beforeAll(async () => {
    place = await freshTrail(kind);
    t = await startTestApp(place.env);
    const classes = t.bundle.manifest.classes;
    const images = [await png(), await jpeg(80, 80), await png(60, 40), await solidPng(48, 48), await jpeg(50, 70)];
    for (let r = 0; r < 3; r++) {
      const req = request(t.app).post('/v1/audit').field('annotatorId', `ann-${r}`);
      images.forEach((img, i) => req.attach('image', img, `i${i}`).field('label', classes[(r * 5 + i) % classes.length] as string));
      const res = await req;
      expect(res.status).toBe(200);
      sent.push(...(res.body.results as Ranked[]));
    }
  });
  afterAll(async () => {
    await t.close();
    await place.drop();
  });

  /** `sent` in the order a sort promises: by key ascending, newest (later sent) first on ties. */
  function ordered(key: (r: Ranked) => number): string[] {
    return sent
      .map((r, i) => ({ r, i }))
      .sort((a, b) => key(a.r) - key(b.r) || b.i - a.i)
      .map(({ r }) => r.id);
  }

  /** Follows nextCursor from `first` to the end, sending only the cursor after the first page, as the Link says it may. */
  async function walk(first: string): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let url: string | null = first;
    let pages = 0;
    while (url !== null && pages < 50) {
      const res: request.Response = await request(t.app).get(url);
      expect(res.status, url).toBe(200);
      expectContract('GET', '/v1/audits', res);
      ids.push(...res.body.items.map((x: { id: string }) => x.id));
      pages++;
      url = res.body.nextCursor === null ? null : `/v1/audits?limit=4&cursor=${encodeURIComponent(res.body.nextCursor)}`;
    }
    return { ids, pages };
  }

  describe('POST /v1/audit ranking fields', () => {
    it("gives each item quality by the bundle's score, mistakenness, and its submitted class's reliability", () => {
      const m = t.bundle.manifest;
      expect(m.labelQuality?.score).toBe('self-confidence');
      for (const r of sent) {
        const want = expectedScores(r, 'self-confidence');
        expect(r.quality).toBeCloseTo(want.quality, 12);
        expect(r.mistakenness).toBeCloseTo(want.mistakenness, 12);
        expect(r.quality).toBeGreaterThanOrEqual(0);
        expect(r.mistakenness).toBeLessThanOrEqual(1);
        expect(r.reliability).toEqual(m.reliability?.perClass[r.label]);
      }
      expect(sent.some((r) => r.predicted !== r.label && r.mistakenness > 0.5)).toBe(true);
      // The ordering tests below mean something only if the scores differ.
      expect(new Set(sent.map((r) => r.quality)).size).toBeGreaterThan(5);
      expect(new Set(sent.map((r) => r.mistakenness)).size).toBeGreaterThan(5);
    });

    it('stores the same scores it answered', async () => {
      const first = sent[0] as Ranked;
      const res = await request(t.app).get(`/v1/audits/${first.id}`);
      expectContract('GET', '/v1/audits/{id}', res);
      expect(res.body).toMatchObject({ quality: first.quality, mistakenness: first.mistakenness });
    });
  });

  describe('GET /v1/audits?sort=', () => {
    it('quality: lowest first across pages, the cursor alone continuing the sort', async () => {
      const { ids, pages } = await walk('/v1/audits?sort=quality&limit=4');
      expect(pages).toBe(4);
      expect(ids).toEqual(ordered((r) => r.quality));
    });

    it('mistakenness: highest first across pages', async () => {
      const { ids } = await walk('/v1/audits?sort=mistakenness&limit=4');
      expect(ids).toEqual(ordered((r) => -r.mistakenness));
    });

    it('time: newest first, as without sort', async () => {
      const { ids } = await walk('/v1/audits?sort=time&limit=4');
      expect(ids).toEqual(sent.map((r) => r.id).reverse());
      expect((await walk('/v1/audits?limit=4')).ids).toEqual(ids);
    });

    it('keeps the sort in the Link header and the X-Next-Cursor of an export', async () => {
      const res = await request(t.app).get('/v1/audits?sort=mistakenness&limit=2&format=csv');
      expect(res.headers.link).toMatch(/sort=mistakenness/);
      const next = await request(t.app).get(`/v1/audits?limit=2&cursor=${res.headers['x-next-cursor']}`);
      expect(next.body.items.map((x: { id: string }) => x.id)).toEqual(ordered((r) => -r.mistakenness).slice(2, 4));
    });

    it.each([
      ['quality', 'mistakenness'],
      ['quality', 'time'],
      ['time', 'quality'],
    ])('answers 400 problem+json for a %s cursor sent with sort=%s', async (from, to) => {
      const page = await request(t.app).get(`/v1/audits?sort=${from}&limit=2`);
      const res = await request(t.app).get(`/v1/audits?sort=${to}&limit=2&cursor=${page.body.nextCursor}`);
      expect(res.status).toBe(400);
      expectContract('GET', '/v1/audits', res);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body.detail).toContain(`sort=${from}`);
      expect(res.body.detail).toContain(`sort=${to}`);
    });

    it('rejects an unknown sort with 400', async () => {
      const res = await request(t.app).get('/v1/audits?sort=label');
      expect(res.status).toBe(400);
      expectContract('GET', '/v1/audits', res);
    });
  });

  describe('GET /v1/audits score filters', () => {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

    it('maxQuality keeps records whose quality is at most the bound', async () => {
      const bound = median(sent.map((r) => r.quality));
      const res = await request(t.app).get(`/v1/audits?maxQuality=${bound}&limit=100`);
      expect(res.status).toBe(200);
      expect(new Set(res.body.items.map((x: { id: string }) => x.id))).toEqual(new Set(sent.filter((r) => r.quality <= bound).map((r) => r.id)));
    });

    it('minMistakenness keeps records at or above the bound, combined with sort and other filters', async () => {
      const bound = median(sent.map((r) => r.mistakenness));
      const res = await request(t.app).get(`/v1/audits?minMistakenness=${bound}&annotatorId=ann-1&sort=mistakenness&limit=100`);
      expect(res.status).toBe(200);
      const want = sent.filter((r, i) => r.mistakenness >= bound && Math.floor(i / 5) === 1);
      expect(res.body.items.map((x: { id: string }) => x.id)).toEqual(ordered((r) => -r.mistakenness).filter((id) => want.some((w) => w.id === id)));
    });

    it('the summary takes the same filters', async () => {
      const bound = median(sent.map((r) => r.quality));
      const res = await request(t.app).get(`/v1/audits/summary?maxQuality=${bound}`);
      expect(res.status).toBe(200);
      expectContract('GET', '/v1/audits/summary', res);
      expect(res.body.total).toBe(sent.filter((r) => r.quality <= bound).length);
    });

    it.each(['maxQuality=1.5', 'minMistakenness=-0.1', 'maxQuality=low'])('answers 400 for %s', async (q) => {
      const res = await request(t.app).get(`/v1/audits?${q}`);
      expect(res.status).toBe(400);
      expectContract('GET', '/v1/audits', res);
    });
  });

  describe('GET /v1/audits exports', () => {
    it('CSV carries quality and mistakenness columns', async () => {
      const res = await request(t.app).get('/v1/audits?format=csv&sort=quality&limit=100');
      expect(res.status).toBe(200);
      const [header, ...rows] = res.text.trimEnd().split('\r\n');
      const columns = (header as string).split(',');
      expect(columns).toEqual([...CSV_COLUMNS]);
      const q = columns.indexOf('quality');
      const mk = columns.indexOf('mistakenness');
      const byId = new Map(sent.map((r) => [r.id, r]));
      expect(rows).toHaveLength(sent.length);
      for (const row of rows) {
        const cells = row.split(',');
        const r = byId.get(cells[0] as string) as Ranked;
        expect(Number(cells[q])).toBe(r.quality);
        expect(Number(cells[mk])).toBe(r.mistakenness);
      }
    });

    it('JSON Lines records carry both scores', async () => {
      const res = await request(t.app).get('/v1/audits?format=jsonl&sort=mistakenness&limit=100');
      const lines = res.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Ranked);
      expect(lines.map((l) => l.id)).toEqual(ordered((r) => -r.mistakenness));
      for (const l of lines) expect(l).toMatchObject({ quality: expect.any(Number), mistakenness: expect.any(Number) });
    });
  });

  describe('GET /v1/models ranking sections', () => {
    it('shows calibration without the split ids, labelQuality and reliability', async () => {
      const res = await request(t.app).get('/v1/models');
      expectContract('GET', '/v1/models', res);
      const m = t.bundle.manifest;
      const [model] = res.body.models;
      const { ids, ...split } = m.calibration?.split ?? { ids: [] };
      expect(ids.length).toBeGreaterThan(0);
      expect(model.calibration).toEqual({ split, temperature: m.calibration?.temperature, folded: true, ece: m.calibration?.ece, nll: m.calibration?.nll });
      expect(JSON.stringify(res.body)).not.toContain(ids[0]);
      expect(model.labelQuality).toEqual(m.labelQuality);
      expect(model.reliability).toEqual(m.reliability);
    });
  });
});

/**
 * The fixture bundle copied to a temporary folder, its model.json changed by `edit`, served by an app of its own
 * for the describe block that calls this (started before its tests, closed and removed after).
 */
function servedEdited(prefix: string, edit: (manifest: Record<string, any>) => void): () => TestApp {
  let served: TestApp;
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
    await cp(FIXTURE_BUNDLE_DIR, dir, { recursive: true });
    const file = path.join(dir, 'model.json');
    const manifest = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
    edit(manifest);
    await writeFile(file, JSON.stringify(manifest, null, 2));
    served = await startTestApp({ ASM_FER_MODEL_DIR: dir });
  });
  afterAll(async () => {
    await served.close();
    await rm(dir, { recursive: true, force: true });
  });
  return () => served;
}

describe('a bundle without calibration, labelQuality and reliability', () => {
  const bare = servedEdited('asm-fer-bare-', (m) => {
    delete m.calibration;
    delete m.labelQuality;
    delete m.reliability;
  });

  it('ranks by self-confidence and gives reliability null', async () => {
    const res = await request(bare().app).post('/v1/audit').attach('image', await png(), 'a.png').field('label', 'fear');
    expect(res.status).toBe(200);
    expectContract('POST', '/v1/audit', res);
    const [r] = res.body.results as Ranked[];
    expect(r?.reliability).toBeNull();
    expect(r?.quality).toBe(r?.probabilities.fear);
    expect(r?.mistakenness).toBeCloseTo(expectedScores(r as Ranked, 'self-confidence').mistakenness, 12);
  });

  it('shows the three sections as null on GET /v1/models', async () => {
    const res = await request(bare().app).get('/v1/models');
    expectContract('GET', '/v1/models', res);
    expect(res.body.models[0]).toMatchObject({ calibration: null, labelQuality: null, reliability: null });
  });
});

describe('a bundle whose labelQuality score is normalized-margin', () => {
  const margin = servedEdited('asm-fer-margin-', (m) => {
    m.labelQuality.score = 'normalized-margin';
  });

  it('answers quality as the normalized margin', async () => {
    const res = await request(margin().app).post('/v1/audit').attach('image', await jpeg(80, 80), 'a.jpg').field('label', 'sadness').attach('image', await png(), 'b.png').field('label', 'neutral');
    expect(res.status).toBe(200);
    for (const r of res.body.results as Ranked[]) expect(r.quality).toBeCloseTo(expectedScores(r, 'normalized-margin').quality, 12);
  });
});

describe('a bundle calibrated on cross-fitted folds (export --crossfit)', () => {
  const crossfit = servedEdited('asm-fer-crossfit-', (m) => {
    m.calibration.split = { ...m.calibration.split, share: 1, folds: 5 };
  });

  it('loads, and GET /v1/models names the folds (still without the ids)', async () => {
    const res = await request(crossfit().app).get('/v1/models');
    expectContract('GET', '/v1/models', res);
    expect(res.body.models[0].calibration.split).toMatchObject({ share: 1, folds: 5 });
    expect(res.body.models[0].calibration.split).not.toHaveProperty('ids');
  });
});
