// The audit store on its own: what is committed survives a reopen, every filter, cursor pages in each sort, the summary
// figures on a known set, the upgrade of first- and second-layout databases, and a storage failure reported as
// AuditStoreUnavailable rather than thrown through.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { rankLabel } from '../../src/audit/label-quality.js';
import { decodeCursor, type AuditFilters, type AuditSort } from '../../src/audit/query.js';
import type { NewAuditRecord } from '../../src/audit/judge.js';
import { AuditStore, DB_FILE } from '../../src/audit/store.js';
import type { Verdict } from '../../src/audit/judge.js';
import { AuditStoreUnavailable } from '../../src/errors.js';

const dirs: string[] = [];
const stores: AuditStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'asm-fer-store-'));
  dirs.push(d);
  return d;
}

function open(dir: string, maxBytes?: number): AuditStore {
  const s = AuditStore.open({ dir, maxBytes });
  stores.push(s);
  return s;
}

/** The audit trail's first layout (user_version 1), as databases written before face detection have it. */
const LAYOUT_1 = `
CREATE TABLE audits (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL, model_name TEXT NOT NULL,
  model_version TEXT NOT NULL, label TEXT NOT NULL, verdict TEXT NOT NULL CHECK (verdict IN ('clean', 'ambiguous', 'noisy')),
  label_probability REAL NOT NULL, threshold_clean REAL NOT NULL, threshold_noisy REAL NOT NULL,
  threshold_source TEXT NOT NULL CHECK (threshold_source IN ('bundle', 'online')), predicted TEXT NOT NULL,
  confidence REAL NOT NULL, probabilities TEXT NOT NULL, item_id TEXT, annotator_id TEXT, dataset_id TEXT,
  image_sha256 TEXT NOT NULL, image BLOB
);
CREATE INDEX audits_time ON audits (time_ms);
PRAGMA user_version = 1;
`;

/** The second layout (user_version 2): the first plus face, before the ranking scores. */
const LAYOUT_2 = LAYOUT_1.replace('image BLOB\n', 'image BLOB, face TEXT\n').replace('PRAGMA user_version = 1', 'PRAGMA user_version = 2');

const T0 = Date.parse('2026-01-01T00:00:00Z');
let n = 0;

function rec(label: string, predicted: string, verdict: Verdict, p: number, extra: Partial<NewAuditRecord> = {}): NewAuditRecord {
  n++;
  const probabilities = { [label]: p, [predicted]: 0.9 };
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    timeMs: T0 + n * 1000,
    model: { name: 'm', version: '1' },
    label,
    verdict,
    labelProbability: p,
    thresholds: { clean: 0.8, noisy: 0.2 },
    thresholdSource: 'bundle',
    predicted,
    confidence: 0.9,
    probabilities,
    quality: p,
    mistakenness: rankLabel(probabilities, label, predicted, 'self-confidence').mistakenness,
    itemId: null,
    annotatorId: null,
    datasetId: null,
    imageSha256: 'a'.repeat(64),
    image: null,
    face: { index: 0, box: { x: 0, y: 0, width: 48, height: 48, relative: { x: 0, y: 0, width: 1, height: 1 } }, score: null },
    ...extra,
  };
}

/** Ten records with known figures: labels a/b/c, annotators x/y (and none), datasets d1/d2, versions 1/2. */
function knownSet(): NewAuditRecord[] {
  return [
    rec('a', 'a', 'clean', 0.9, { annotatorId: 'x', datasetId: 'd1' }),
    rec('a', 'a', 'clean', 0.8, { annotatorId: 'x', datasetId: 'd1' }),
    rec('a', 'b', 'noisy', 0.1, { annotatorId: 'y', datasetId: 'd1' }),
    rec('a', 'c', 'ambiguous', 0.4, { annotatorId: 'y', datasetId: 'd2' }),
    rec('b', 'b', 'clean', 0.7, { annotatorId: 'x', datasetId: 'd2' }),
    rec('b', 'a', 'noisy', 0.05, { annotatorId: 'x', datasetId: 'd2', model: { name: 'm', version: '2' } }),
    rec('b', 'a', 'noisy', 0.15, { annotatorId: 'y', model: { name: 'm', version: '2' } }),
    rec('c', 'c', 'clean', 0.95, { model: { name: 'm', version: '2' } }),
    rec('c', 'a', 'ambiguous', 0.3, { itemId: 'item-9', model: { name: 'm', version: '2' } }),
    rec('c', 'b', 'noisy', 0.02, { itemId: 'item-10', annotatorId: 'y', model: { name: 'm', version: '2' } }),
  ];
}

describe('AuditStore', () => {
  it('keeps committed records across a close and reopen, with every field', () => {
    const dir = tempDir();
    const records = knownSet();
    const face = { index: 2, box: { x: 410, y: 96, width: 120, height: 121, relative: { x: 0.4271, y: 0.15, width: 0.125, height: 0.1891 } }, score: 0.8125 };
    records[0] = { ...records[0], image: Buffer.from([1, 2, 3]), itemId: 'item-1', face } as NewAuditRecord;
    open(dir).insert(records);
    stores.pop()?.close();
    const again = open(dir);
    const first = again.get(records[0]?.id as string);
    expect(first).toEqual({
      id: records[0]?.id,
      time: new Date(records[0]?.timeMs as number).toISOString(),
      model: { name: 'm', version: '1' },
      label: 'a',
      verdict: 'clean',
      labelProbability: 0.9,
      thresholds: { clean: 0.8, noisy: 0.2 },
      thresholdSource: 'bundle',
      predicted: 'a',
      confidence: 0.9,
      suggestedLabel: null,
      probabilities: { a: 0.9 },
      itemId: 'item-1',
      annotatorId: 'x',
      datasetId: 'd1',
      imageSha256: 'a'.repeat(64),
      imageStored: true,
      face,
      quality: 0.9,
      mistakenness: records[0]?.mistakenness,
    });
    expect(again.image(records[0]?.id as string)).toEqual(Buffer.from([1, 2, 3]));
    expect(again.image(records[1]?.id as string)).toBeNull();
    expect(again.get(records[2]?.id as string)?.suggestedLabel).toBe('b');
    expect(again.list({}, { limit: 100 }).items).toHaveLength(10);
  });

  it.each<[string, AuditFilters, number[]]>([
    ['verdict', { verdict: ['noisy'] }, [3, 6, 7, 10]],
    ['several verdicts', { verdict: ['noisy', 'ambiguous'] }, [3, 4, 6, 7, 9, 10]],
    ['label', { label: 'b' }, [5, 6, 7]],
    ['predicted label', { predicted: 'a' }, [1, 2, 6, 7, 9]],
    ['annotator', { annotatorId: 'y' }, [3, 4, 7, 10]],
    ['dataset', { datasetId: 'd2' }, [4, 5, 6]],
    ['model version', { modelVersion: '1' }, [1, 2, 3, 4, 5]],
    ['time range (from inclusive, to exclusive)', { from: new Date(T0 + 3000), to: new Date(T0 + 6000) }, [3, 4, 5]],
    ['several filters at once', { label: 'a', verdict: ['clean'], annotatorId: 'x' }, [1, 2]],
    ['maximum quality (inclusive)', { maxQuality: 0.15 }, [3, 6, 7, 10]],
    ['minimum mistakenness', { minMistakenness: 0.5 }, [3, 4, 6, 7, 9, 10]],
  ])('filters by %s', (_name, filters, positions) => {
    const store = open(tempDir());
    n = 0;
    const records = knownSet();
    store.insert(records);
    const got = store.list(filters, { limit: 100 }).items.map((r) => r.id);
    expect(got).toEqual(positions.map((i) => records[i - 1]?.id).reverse());
  });

  it('pages newest first with cursors that stay valid while records are added', () => {
    const store = open(tempDir());
    const records = knownSet();
    store.insert(records);
    const p1 = store.list({}, { limit: 4 });
    expect(p1.items.map((r) => r.id)).toEqual(records.slice(6).map((r) => r.id).reverse());
    store.insert([rec('a', 'a', 'clean', 0.99)]);
    const p2 = store.list({}, { limit: 4, after: decodeCursor(p1.nextCursor as string) });
    const p3 = store.list({}, { limit: 4, after: decodeCursor(p2.nextCursor as string) });
    expect([...p2.items, ...p3.items].map((r) => r.id)).toEqual(records.slice(0, 6).map((r) => r.id).reverse());
    expect(p3.nextCursor).toBeNull();
    expect(decodeCursor('not-a-cursor')).toBeUndefined();
  });

  it.each<[AuditSort, (r: NewAuditRecord) => number]>([
    ['quality', (r) => r.quality],
    ['mistakenness', (r) => -r.mistakenness],
  ])('pages by %s, worst label first, newest first on ties, with cursors of that sort', (sort, key) => {
    const store = open(tempDir());
    const records = [...knownSet(), rec('a', 'b', 'noisy', 0.1), rec('a', 'b', 'noisy', 0.1)];
    store.insert(records);
    const want = records
      .map((r, i) => ({ r, i }))
      .sort((x, y) => key(x.r) - key(y.r) || y.i - x.i)
      .map(({ r }) => r.id);
    const got: string[] = [];
    let after: ReturnType<typeof decodeCursor>;
    for (let page = 0; page < 10; page++) {
      const p = store.list({}, { limit: 3, sort, after });
      got.push(...p.items.map((r) => r.id));
      if (p.nextCursor === null) break;
      after = decodeCursor(p.nextCursor);
      expect(after?.sort).toBe(sort);
    }
    expect(got).toEqual(want);
    expect(() => store.list({}, { limit: 3, sort: 'time', after })).toThrow(/cursor/);
  });

  it('gives the last N outcomes of each label for one model, oldest first, to refill the live windows', () => {
    const store = open(tempDir());
    const v2 = { model: { name: 'm', version: '2' } };
    store.insert([rec('a', 'a', 'clean', 0.1), rec('a', 'a', 'clean', 0.2, v2), rec('b', 'b', 'noisy', 0.3)]);
    store.insert([rec('a', 'b', 'ambiguous', 0.4), rec('a', 'a', 'clean', 0.5), rec('a', 'a', 'noisy', 0.6, v2)]);
    expect(store.recentOutcomes({ name: 'm', version: '1' }, ['a', 'b', 'c'], 2)).toEqual([
      { label: 'a', labelProbability: 0.4, verdict: 'ambiguous' },
      { label: 'a', labelProbability: 0.5, verdict: 'clean' },
      { label: 'b', labelProbability: 0.3, verdict: 'noisy' },
    ]);
    expect(store.recentOutcomes({ name: 'm', version: '2' }, ['a'], 5).map((o) => o.labelProbability)).toEqual([0.2, 0.6]);
  });

  it('sums a known set per class and annotator, with noise rates and the confusion matrix', () => {
    const store = open(tempDir());
    store.insert(knownSet());
    const s = store.summary({}, ['c', 'b', 'a']);
    expect(s.total).toBe(10);
    expect(s.classes.map((c) => c.label)).toEqual(['c', 'b', 'a']);
    const a = s.classes.find((c) => c.label === 'a');
    expect(a).toMatchObject({ count: 4, verdicts: { clean: 2, ambiguous: 1, noisy: 1 }, noiseRate: 0.25 });
    expect(a?.meanLabelProbability).toBeCloseTo((0.9 + 0.8 + 0.1 + 0.4) / 4, 12);
    expect(s.classes.find((c) => c.label === 'b')).toMatchObject({ count: 3, verdicts: { clean: 1, ambiguous: 0, noisy: 2 } });
    expect(s.annotators.map((x) => [x.annotatorId, x.count, x.verdicts.noisy])).toEqual([
      ['x', 4, 1],
      ['y', 4, 3],
    ]);
    expect(s.annotators[1]?.noiseRate).toBe(0.75);
    expect(s.confusion.labels).toEqual(['c', 'b', 'a']);
    // rows: submitted c, b, a; columns: predicted c, b, a
    expect(s.confusion.counts).toEqual([
      [1, 1, 1],
      [0, 1, 2],
      [1, 1, 2],
    ]);
    const filtered = store.summary({ datasetId: 'd1' }, ['a', 'b', 'c']);
    expect(filtered.total).toBe(3);
    expect(filtered.annotators.map((x) => [x.annotatorId, x.count])).toEqual([
      ['x', 2],
      ['y', 1],
    ]);
  });

  it('reports a full store (size cap reached) as unavailable, commits nothing of the failed batch, and still reads', () => {
    const dir = tempDir();
    const store = open(dir, 64 * 1024);
    const big = (i: number) => rec('a', 'a', 'clean', 0.9, { id: `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`, image: Buffer.alloc(8 * 1024, i) });
    let stored = 0;
    let failure: unknown;
    for (let i = 0; i < 40 && failure === undefined; i++) {
      try {
        store.insert([big(2 * i), big(2 * i + 1)]);
        stored += 2;
      } catch (err) {
        failure = err;
      }
    }
    expect(failure).toBeInstanceOf(AuditStoreUnavailable);
    expect((failure as Error).message).toMatch(/SQLITE_FULL/);
    expect(stored).toBeGreaterThan(0);
    // The store reopens after its back-off; what was committed is all there, nothing of the failed pair.
    const reopened = open(dir, 64 * 1024);
    expect(reopened.list({}, { limit: 100 }).items).toHaveLength(stored);
  });

  it('upgrades a first-layout database in place: old records keep face null, new ones store theirs', () => {
    const dir = tempDir();
    const old = new Database(path.join(dir, DB_FILE));
    old.exec(LAYOUT_1);
    old
      .prepare(
        `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
          threshold_source, predicted, confidence, probabilities, image_sha256) VALUES (?, ?, 'm', '1', 'a', 'clean', 0.9, 0.8, 0.2, 'bundle', 'a', 0.9, '{"a":0.9}', ?)`,
      )
      .run('20000000-0000-4000-8000-000000000001', T0, 'b'.repeat(64));
    old.close();

    const store = open(dir);
    expect(store.available).toBe(true);
    expect(store.get('20000000-0000-4000-8000-000000000001')).toMatchObject({ label: 'a', imageSha256: 'b'.repeat(64), face: null });
    const fresh = rec('b', 'b', 'clean', 0.7);
    store.insert([fresh]);
    expect(store.get(fresh.id)?.face).toEqual(fresh.face);
    store.close();
    const check = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(3);
    check.close();
  });

  it('upgrades a second-layout database: old records get quality (self-confidence) and mistakenness from their probabilities', () => {
    const dir = tempDir();
    const old = new Database(path.join(dir, DB_FILE));
    old.exec(LAYOUT_2);
    const insert = old.prepare(
      `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
        threshold_source, predicted, confidence, probabilities, image_sha256) VALUES (?, ?, 'm', '1', ?, 'clean', ?, 0.8, 0.2, 'bundle', ?, ?, ?, ?)`,
    );
    const olds = [
      { id: '30000000-0000-4000-8000-000000000001', label: 'a', probabilities: { a: 0.7, b: 0.2, c: 0.1 } },
      { id: '30000000-0000-4000-8000-000000000002', label: 'c', probabilities: { a: 0.05, b: 0.9, c: 0.05 } },
      { id: '30000000-0000-4000-8000-000000000003', label: 'b', probabilities: { a: 0, b: 1, c: 0 } },
    ];
    const predicted = (p: Record<string, number>) => (Object.entries(p).sort((x, y) => y[1] - x[1])[0] as [string, number])[0];
    olds.forEach((o, i) => {
      const top = predicted(o.probabilities);
      insert.run(o.id, T0 + i, o.label, o.probabilities[o.label as 'a'], top, o.probabilities[top as 'a'], JSON.stringify(o.probabilities), 'c'.repeat(64));
    });
    old.close();

    const store = open(dir);
    expect(store.available).toBe(true);
    for (const o of olds) {
      const got = store.get(o.id);
      const want = rankLabel(o.probabilities, o.label, predicted(o.probabilities), 'self-confidence');
      expect(got?.quality).toBeCloseTo(o.probabilities[o.label as 'a'], 12);
      expect(got?.quality).toBeCloseTo(want.quality, 12);
      expect(got?.mistakenness).toBeCloseTo(want.mistakenness, 12);
    }
    expect(store.get(olds[2]?.id as string)?.mistakenness).toBe(0);
    expect(store.list({}, { limit: 10, sort: 'mistakenness' }).items.map((r) => r.id)).toEqual([olds[1]?.id, olds[0]?.id, olds[2]?.id]);
    const fresh = rec('b', 'a', 'noisy', 0.01);
    store.insert([fresh]);
    expect(store.get(fresh.id)).toMatchObject({ quality: fresh.quality, mistakenness: fresh.mistakenness });
    store.close();
    const check = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(3);
    const indexes = (check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).all() as { name: string }[]).map((r) => r.name);
    expect(indexes).toEqual(expect.arrayContaining(['audits_quality', 'audits_mistakenness']));
    check.close();
  });

  it('is unavailable while its folder cannot be created, and opens once it can', async () => {
    const root = tempDir();
    const blocker = path.join(root, 'blocker');
    writeFileSync(blocker, 'a file where the data folder should go');
    const failures: unknown[] = [];
    let recoveries = 0;
    const store = AuditStore.open({ dir: path.join(blocker, 'data'), onFailure: (e) => failures.push(e), onRecovery: () => recoveries++ });
    stores.push(store);
    expect(store.available).toBe(false);
    expect(() => store.list({}, { limit: 1 })).toThrow(AuditStoreUnavailable);
    expect(failures).toHaveLength(1);
    rmSync(blocker);
    await new Promise((r) => setTimeout(r, 1100));
    expect(store.list({}, { limit: 1 }).items).toEqual([]);
    expect(store.available).toBe(true);
    expect(recoveries).toBe(1);
  });
});
