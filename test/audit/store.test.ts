// The audit store on its own, on both backends (SQLite and PostgreSQL): what is committed survives a reopen, every
// filter, cursor pages in each sort, the summary figures on a known set, the upgrade of first-, second- and third-layout
// databases, and a storage failure reported as AuditStoreUnavailable rather than thrown through. The failures each
// backend has of its own (a full SQLite file; a PostgreSQL server read-only or out of connections) follow; a PostgreSQL
// server that is down, then up again: test/faults/audit-store.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { toCsv, toJsonl } from '../../src/audit/export.js';
import { rankLabel } from '../../src/audit/label-quality.js';
import { PostgresBackend } from '../../src/audit/postgres-store.js';
import { decodeCursor, type AuditFilters, type AuditSort } from '../../src/audit/query.js';
import type { NewAuditRecord } from '../../src/audit/judge.js';
import { DB_FILE, SqliteBackend } from '../../src/audit/sqlite-store.js';
import { SqlAuditStore, type AuditStore, type StoreEvents } from '../../src/audit/store.js';
import type { Verdict } from '../../src/audit/judge.js';
import { AuditStoreUnavailable } from '../../src/errors.js';
import { BACKENDS, freshTrail, type BackendKind } from '../fixtures/backends.js';
import { adminQuery } from '../fixtures/postgres.js';

const cleanups: (() => Promise<void> | void)[] = [];
const stores: AuditStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'asm-fer-store-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A fresh, empty place for a trail on `kind`: a folder, or a new database's URL (removed after the test). */
async function freshPlace(kind: BackendKind): Promise<string> {
  const place = await freshTrail(kind);
  cleanups.push(place.drop);
  return place.where;
}

const pgOptions = (url: string) => ({ url, poolSize: 4, acquireTimeoutMs: 2000, queryTimeoutMs: 10_000 });

async function open(kind: BackendKind, where: string, opts: { maxBytes?: number; poolSize?: number; acquireTimeoutMs?: number } & StoreEvents = {}): Promise<AuditStore> {
  const backend = kind === 'sqlite' ? new SqliteBackend({ dir: where, maxBytes: opts.maxBytes }) : new PostgresBackend({ ...pgOptions(where), ...pick(opts) });
  const s = await SqlAuditStore.open(backend, opts);
  stores.push(s);
  return s;
}

function pick(o: { poolSize?: number; acquireTimeoutMs?: number }): { poolSize?: number; acquireTimeoutMs?: number } {
  return Object.fromEntries(Object.entries({ poolSize: o.poolSize, acquireTimeoutMs: o.acquireTimeoutMs }).filter(([, v]) => v !== undefined));
}

/** A store on a fresh, empty trail. */
const openFresh = async (kind: BackendKind) => open(kind, await freshPlace(kind));

/**
 * The audit trail's first layout (version 1), as databases written before face detection have it; in PostgreSQL's
 * types the same layout, with its version in asm_fer_schema.
 */
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

/** The second layout (version 2): the first plus face, before the ranking scores. */
const LAYOUT_2 = LAYOUT_1.replace('image BLOB\n', 'image BLOB, face TEXT\n').replace('PRAGMA user_version = 1', 'PRAGMA user_version = 2');

/** The third layout (version 3): the second plus the ranking scores, before withdrawal. */
const LAYOUT_3 = LAYOUT_2.replace('face TEXT\n', 'face TEXT, quality REAL, mistakenness REAL\n').replace('PRAGMA user_version = 2', 'PRAGMA user_version = 3');

/** The fourth layout (version 4): the third plus withdrawal, before supersession. */
const LAYOUT_4 = LAYOUT_3.replace('mistakenness REAL\n', 'mistakenness REAL, withdrawn_ms INTEGER\n').replace('PRAGMA user_version = 3', 'PRAGMA user_version = 4');

function inPostgres(layout: string): string {
  const version = /PRAGMA user_version = (\d)/.exec(layout)?.[1];
  return layout
    .replace('INTEGER PRIMARY KEY AUTOINCREMENT', 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY')
    .replace('time_ms INTEGER', 'time_ms BIGINT')
    .replace('withdrawn_ms INTEGER', 'withdrawn_ms BIGINT')
    .replace(/ REAL /g, ' DOUBLE PRECISION ')
    .replace('BLOB', 'BYTEA')
    .replace(/PRAGMA user_version = \d;/, `CREATE TABLE asm_fer_schema (version INTEGER NOT NULL); INSERT INTO asm_fer_schema VALUES (${version});`);
}

/** Writes an old `layout` into the empty trail at `where` and inserts rows with `?` parameters into it. */
async function writeOldLayout(kind: BackendKind, where: string, layout: string, rows: { sql: string; params: unknown[] }[]): Promise<void> {
  if (kind === 'sqlite') {
    const old = new Database(path.join(where, DB_FILE));
    old.exec(layout);
    for (const r of rows) old.prepare(r.sql).run(...r.params);
    old.close();
    return;
  }
  await adminQuery(where, inPostgres(layout));
  for (const r of rows) {
    let i = 0;
    await adminQuery(where, r.sql.replace(/\?/g, () => `$${++i}`), r.params);
  }
}

/** The layout version the trail at `where` records. */
async function layoutVersion(kind: BackendKind, where: string): Promise<number> {
  if (kind === 'postgres') return Number((await adminQuery(where, 'SELECT version FROM asm_fer_schema'))[0]?.version);
  const check = new Database(path.join(where, DB_FILE), { readonly: true });
  try {
    return check.pragma('user_version', { simple: true }) as number;
  } finally {
    check.close();
  }
}

async function indexNames(kind: BackendKind, where: string): Promise<string[]> {
  if (kind === 'postgres') return (await adminQuery(where, `SELECT indexname AS name FROM pg_indexes WHERE tablename = 'audits'`)).map((r) => String(r.name));
  const check = new Database(path.join(where, DB_FILE), { readonly: true });
  try {
    return (check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).all() as { name: string }[]).map((r) => r.name);
  } finally {
    check.close();
  }
}

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

describe.each(BACKENDS)('AuditStore on %s', (kind) => {
  it('keeps committed records across a close and reopen, with every field', async () => {
    const where = await freshPlace(kind);
    const records = knownSet();
    const face = { index: 2, box: { x: 410, y: 96, width: 120, height: 121, relative: { x: 0.4271, y: 0.15, width: 0.125, height: 0.1891 } }, score: 0.8125 };
    records[0] = { ...records[0], image: Buffer.from([1, 2, 3]), itemId: 'item-1', face } as NewAuditRecord;
    await (await open(kind, where)).insert(records);
    await stores.pop()?.close();
    const again = await open(kind, where);
    const first = await again.get(records[0]?.id as string);
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
      withdrawnAt: null,
      supersededAt: null,
      supersededBy: null,
    });
    expect(await again.image(records[0]?.id as string)).toEqual(Buffer.from([1, 2, 3]));
    expect(await again.image(records[1]?.id as string)).toBeNull();
    expect(await again.image('00000000-0000-4000-8000-999999999999')).toBeUndefined();
    expect((await again.get(records[2]?.id as string))?.suggestedLabel).toBe('b');
    expect((await again.list({}, { limit: 100 })).items).toHaveLength(10);
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
  ])('filters by %s', async (_name, filters, positions) => {
    const store = await openFresh(kind);
    n = 0;
    const records = knownSet();
    await store.insert(records);
    const got = (await store.list(filters, { limit: 100 })).items.map((r) => r.id);
    expect(got).toEqual(positions.map((i) => records[i - 1]?.id).reverse());
  });

  it('pages newest first with cursors that stay valid while records are added', async () => {
    const store = await openFresh(kind);
    const records = knownSet();
    await store.insert(records);
    const p1 = await store.list({}, { limit: 4 });
    expect(p1.items.map((r) => r.id)).toEqual(records.slice(6).map((r) => r.id).reverse());
    await store.insert([rec('a', 'a', 'clean', 0.99)]);
    const p2 = await store.list({}, { limit: 4, after: decodeCursor(p1.nextCursor as string) });
    const p3 = await store.list({}, { limit: 4, after: decodeCursor(p2.nextCursor as string) });
    expect([...p2.items, ...p3.items].map((r) => r.id)).toEqual(records.slice(0, 6).map((r) => r.id).reverse());
    expect(p3.nextCursor).toBeNull();
    expect(decodeCursor('not-a-cursor')).toBeUndefined();
  });

  it.each<[AuditSort, (r: NewAuditRecord) => number]>([
    ['quality', (r) => r.quality],
    ['mistakenness', (r) => -r.mistakenness],
  ])('pages by %s, worst label first, newest first on ties, with cursors of that sort', async (sort, key) => {
    const store = await openFresh(kind);
    const records = [...knownSet(), rec('a', 'b', 'noisy', 0.1), rec('a', 'b', 'noisy', 0.1)];
    await store.insert(records);
    const want = records
      .map((r, i) => ({ r, i }))
      .sort((x, y) => key(x.r) - key(y.r) || y.i - x.i)
      .map(({ r }) => r.id);
    const got: string[] = [];
    let after: ReturnType<typeof decodeCursor>;
    for (let page = 0; page < 10; page++) {
      const p = await store.list({}, { limit: 3, sort, after });
      got.push(...p.items.map((r) => r.id));
      if (p.nextCursor === null) break;
      after = decodeCursor(p.nextCursor);
      expect(after?.sort).toBe(sort);
    }
    expect(got).toEqual(want);
    await expect(store.list({}, { limit: 3, sort: 'time', after })).rejects.toThrow(/cursor/);
  });

  it('gives the last N outcomes of each label for one model, oldest first, to refill the live windows', async () => {
    const store = await openFresh(kind);
    const v2 = { model: { name: 'm', version: '2' } };
    await store.insert([rec('a', 'a', 'clean', 0.1), rec('a', 'a', 'clean', 0.2, v2), rec('b', 'b', 'noisy', 0.3)]);
    await store.insert([rec('a', 'b', 'ambiguous', 0.4), rec('a', 'a', 'clean', 0.5), rec('a', 'a', 'noisy', 0.6, v2)]);
    expect(await store.recentOutcomes({ name: 'm', version: '1' }, ['a', 'b', 'c'], 2)).toEqual([
      { label: 'a', labelProbability: 0.4, verdict: 'ambiguous' },
      { label: 'a', labelProbability: 0.5, verdict: 'clean' },
      { label: 'b', labelProbability: 0.3, verdict: 'noisy' },
    ]);
    expect((await store.recentOutcomes({ name: 'm', version: '2' }, ['a'], 5)).map((o) => o.labelProbability)).toEqual([0.2, 0.6]);
  });

  it('sums a known set per class and annotator, with noise rates and the confusion matrix', async () => {
    const store = await openFresh(kind);
    await store.insert(knownSet());
    const s = await store.summary({}, ['c', 'b', 'a']);
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
    const filtered = await store.summary({ datasetId: 'd1' }, ['a', 'b', 'c']);
    expect(filtered.total).toBe(3);
    expect(filtered.annotators.map((x) => [x.annotatorId, x.count])).toEqual([
      ['x', 2],
      ['y', 1],
    ]);
  });

  it('commits nothing of a batch that fails part-way (a duplicate id)', async () => {
    const store = await openFresh(kind);
    const [first, second] = knownSet() as [NewAuditRecord, NewAuditRecord];
    await store.insert([first]);
    await expect(store.insert([second, first])).rejects.toThrow();
    expect((await store.list({}, { limit: 10 })).items.map((r) => r.id)).toEqual([first.id]);
    // A constraint violation is the caller's bug, not the storage's: the store stays available.
    expect(store.available).toBe(true);
  });

  it('upgrades a first-layout database in place: old records keep face null, new ones store theirs', async () => {
    const where = await freshPlace(kind);
    await writeOldLayout(kind, where, LAYOUT_1, [
      {
        sql: `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
          threshold_source, predicted, confidence, probabilities, image_sha256) VALUES (?, ?, 'm', '1', 'a', 'clean', 0.9, 0.8, 0.2, 'bundle', 'a', 0.9, '{"a":0.9}', ?)`,
        params: ['20000000-0000-4000-8000-000000000001', T0, 'b'.repeat(64)],
      },
    ]);
    const store = await open(kind, where);
    expect(store.available).toBe(true);
    expect(await store.get('20000000-0000-4000-8000-000000000001')).toMatchObject({ label: 'a', imageSha256: 'b'.repeat(64), face: null });
    const fresh = rec('b', 'b', 'clean', 0.7);
    await store.insert([fresh]);
    expect((await store.get(fresh.id))?.face).toEqual(fresh.face);
    await store.close();
    expect(await layoutVersion(kind, where)).toBe(5);
  });

  it('upgrades a second-layout database: old records get quality (self-confidence) and mistakenness from their probabilities', async () => {
    const where = await freshPlace(kind);
    const olds = [
      { id: '30000000-0000-4000-8000-000000000001', label: 'a', probabilities: { a: 0.7, b: 0.2, c: 0.1 } },
      { id: '30000000-0000-4000-8000-000000000002', label: 'c', probabilities: { a: 0.05, b: 0.9, c: 0.05 } },
      { id: '30000000-0000-4000-8000-000000000003', label: 'b', probabilities: { a: 0, b: 1, c: 0 } },
    ];
    const predicted = (p: Record<string, number>) => (Object.entries(p).sort((x, y) => y[1] - x[1])[0] as [string, number])[0];
    await writeOldLayout(
      kind,
      where,
      LAYOUT_2,
      olds.map((o, i) => {
        const top = predicted(o.probabilities);
        return {
          sql: `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
        threshold_source, predicted, confidence, probabilities, image_sha256) VALUES (?, ?, 'm', '1', ?, 'clean', ?, 0.8, 0.2, 'bundle', ?, ?, ?, ?)`,
          params: [o.id, T0 + i, o.label, o.probabilities[o.label as 'a'], top, o.probabilities[top as 'a'], JSON.stringify(o.probabilities), 'c'.repeat(64)],
        };
      }),
    );

    const store = await open(kind, where);
    expect(store.available).toBe(true);
    for (const o of olds) {
      const got = await store.get(o.id);
      const want = rankLabel(o.probabilities, o.label, predicted(o.probabilities), 'self-confidence');
      expect(got?.quality).toBeCloseTo(o.probabilities[o.label as 'a'], 12);
      expect(got?.quality).toBeCloseTo(want.quality, 12);
      expect(got?.mistakenness).toBeCloseTo(want.mistakenness, 12);
    }
    expect((await store.get(olds[2]?.id as string))?.mistakenness).toBe(0);
    expect((await store.list({}, { limit: 10, sort: 'mistakenness' })).items.map((r) => r.id)).toEqual([olds[1]?.id, olds[0]?.id, olds[2]?.id]);
    const fresh = rec('b', 'a', 'noisy', 0.01);
    await store.insert([fresh]);
    expect(await store.get(fresh.id)).toMatchObject({ quality: fresh.quality, mistakenness: fresh.mistakenness });
    await store.close();
    expect(await layoutVersion(kind, where)).toBe(5);
    expect(await indexNames(kind, where)).toEqual(expect.arrayContaining(['audits_quality', 'audits_mistakenness']));
  });

  it('upgrades a third-layout database: old records stand (withdrawnAt null) and can be withdrawn', async () => {
    const where = await freshPlace(kind);
    const ids = ['40000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-000000000002'];
    await writeOldLayout(
      kind,
      where,
      LAYOUT_3,
      ids.map((id, i) => ({
        sql: `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
        threshold_source, predicted, confidence, probabilities, image_sha256, quality, mistakenness) VALUES (?, ?, 'm', '1', 'a', 'clean', 0.9, 0.8, 0.2, 'bundle', 'a', 0.9, '{"a":0.9}', ?, 0.9, 0)`,
        params: [id, T0 + i, 'd'.repeat(64)],
      })),
    );
    const store = await open(kind, where);
    expect(store.available).toBe(true);
    for (const id of ids) expect(await store.get(id)).toMatchObject({ quality: 0.9, mistakenness: 0, withdrawnAt: null });
    expect(await store.markWithdrawn(ids[0] as string, T0 + 5000)).toBe(true);
    expect((await store.get(ids[0] as string))?.withdrawnAt).toBe(new Date(T0 + 5000).toISOString());
    expect((await store.list({ withdrawn: false }, { limit: 10 })).items.map((r) => r.id)).toEqual([ids[1]]);
    await store.close();
    expect(await layoutVersion(kind, where)).toBe(5);
  });

  it('upgrades a fourth-layout database: the earlier records of each label are marked superseded by the next, the last stays current', async () => {
    const where = await freshPlace(kind);
    // [item, annotator, dataset]: three audits of one label, another annotator's label of the same item, a label
    // without annotator or dataset audited twice, a record that names no item.
    const labels: [string | null, string | null, string | null][] = [
      ['task 1', 'x', 'd1'], ['task 1', 'x', 'd1'], ['task 1', 'y', 'd1'], ['task 1', 'x', 'd1'], ['task 2', null, null], ['task 2', null, null], [null, null, null],
    ];
    const ids = labels.map((_, i) => `50000000-0000-4000-8000-00000000000${i + 1}`);
    await writeOldLayout(
      kind,
      where,
      LAYOUT_4,
      labels.map(([item, annotator, dataset], i) => ({
        sql: `INSERT INTO audits (id, time_ms, model_name, model_version, label, verdict, label_probability, threshold_clean, threshold_noisy,
        threshold_source, predicted, confidence, probabilities, item_id, annotator_id, dataset_id, image_sha256, quality, mistakenness)
        VALUES (?, ?, 'm', '1', 'a', 'clean', 0.9, 0.8, 0.2, 'bundle', 'a', 0.9, '{"a":0.9}', ?, ?, ?, ?, 0.9, 0)`,
        params: [ids[i], T0 + i * 1000, item, annotator, dataset, 'e'.repeat(64)],
      })),
    );
    const store = await open(kind, where);
    expect(store.available).toBe(true);
    const at = (i: number) => new Date(T0 + i * 1000).toISOString();
    const marks = async () => Promise.all(ids.map(async (id) => [(await store.get(id))?.supersededBy ?? null, (await store.get(id))?.supersededAt ?? null]));
    expect(await marks()).toEqual([[ids[1], at(1)], [ids[3], at(3)], [null, null], [null, null], [ids[5], at(5)], [null, null], [null, null]]);
    expect((await store.list({ current: true }, { limit: 10 })).items.map((r) => r.id)).toEqual([ids[6], ids[5], ids[3], ids[2]]);
    // A new audit of the label continues the chain.
    const next = rec('a', 'a', 'clean', 0.9, { itemId: 'task 1', annotatorId: 'x', datasetId: 'd1' });
    await store.insert([next]);
    expect(await store.get(ids[3] as string)).toMatchObject({ supersededBy: next.id, supersededAt: new Date(next.timeMs).toISOString() });
    await store.close();
    expect(await layoutVersion(kind, where)).toBe(5);
    expect(await indexNames(kind, where)).toEqual(expect.arrayContaining(['audits_item']));
  });

  it('marks the current verdict of a label superseded by its newer audit, in the same commit, and filters current verdicts', async () => {
    const store = await openFresh(kind);
    n = 0;
    const label = (extra: Partial<NewAuditRecord> = {}) => ({ itemId: 'task 7 annotation 70', annotatorId: '3', datasetId: 'label-studio project 1', ...extra });
    const first = rec('a', 'a', 'clean', 0.9, label());
    const other = rec('b', 'b', 'clean', 0.9, label({ annotatorId: '4' }));
    const unnamed = rec('a', 'a', 'clean', 0.9);
    await store.insert([first, other, unnamed]);
    // Two updates in one batch: applied in order, each naming the next; another model's audit is the same label's verdict.
    const second = rec('b', 'a', 'noisy', 0.1, label());
    const third = rec('c', 'c', 'clean', 0.8, label({ model: { name: 'm', version: '2' } }));
    await store.insert([second, third]);
    const again = rec('a', 'a', 'clean', 0.9);
    await store.insert([again]);
    expect(await store.get(first.id)).toMatchObject({ supersededBy: second.id, supersededAt: new Date(second.timeMs).toISOString(), withdrawnAt: null });
    expect(await store.get(second.id)).toMatchObject({ supersededBy: third.id, supersededAt: new Date(third.timeMs).toISOString() });
    for (const r of [third, other, unnamed, again]) expect(await store.get(r.id)).toMatchObject({ supersededBy: null, supersededAt: null });
    // A record that fails to insert (a duplicate id) supersedes nothing: the batch is all or none.
    await expect(store.insert([rec('a', 'a', 'clean', 0.9, label()), { ...third }])).rejects.toThrow();
    expect((await store.get(third.id))?.supersededBy).toBeNull();

    expect(await store.markWithdrawn(other.id, T0 + 60_000)).toBe(true);
    const ids = async (filters: AuditFilters) => (await store.list(filters, { limit: 100 })).items.map((r) => r.id);
    expect(await ids({ current: true })).toEqual([again.id, third.id, unnamed.id]);
    expect(await ids({ current: false })).toEqual([second.id, other.id, first.id]);
    expect(await ids({ current: true, withdrawn: false, label: 'c' })).toEqual([third.id]);
    expect((await store.summary({ current: true }, ['a', 'b', 'c'])).total).toBe(3);
    expect((await store.summary({}, ['a', 'b', 'c'])).total).toBe(6);
    const page = (await store.list({ current: false, label: 'a' }, { limit: 1 })).items;
    const csv = toCsv(page).split('\r\n');
    const header = csv[0]?.split(',') ?? [];
    expect(csv[1]?.split(',')[header.indexOf('supersededBy')]).toBe(second.id);
    expect(csv[1]?.split(',')[header.indexOf('supersededAt')]).toBe(new Date(second.timeMs).toISOString());
    expect(JSON.parse(toJsonl(page))).toMatchObject({ supersededBy: second.id, supersededAt: new Date(second.timeMs).toISOString() });
  });

  it('marks a record withdrawn once (a repeat keeps the first time), keeps it in lists and the summary, and filters by it', async () => {
    const where = await freshPlace(kind);
    n = 0;
    const records = knownSet();
    const store = await open(kind, where);
    await store.insert(records);
    const [third, fifth] = [records[2] as NewAuditRecord, records[4] as NewAuditRecord];
    const before = await store.summary({}, ['a', 'b', 'c']);
    expect(await store.markWithdrawn(third.id, T0 + 60_000)).toBe(true);
    expect(await store.markWithdrawn(third.id, T0 + 90_000)).toBe(true);
    expect(await store.markWithdrawn(fifth.id, T0 + 70_000)).toBe(true);
    expect(await store.markWithdrawn('00000000-0000-4000-8000-999999999999', T0)).toBe(false);
    await stores.pop()?.close();
    const again = await open(kind, where);
    expect(await again.get(third.id)).toMatchObject({ id: third.id, label: third.label, verdict: third.verdict, withdrawnAt: new Date(T0 + 60_000).toISOString() });
    expect((await again.get((records[0] as NewAuditRecord).id))?.withdrawnAt).toBeNull();
    expect((await again.list({}, { limit: 100 })).items).toHaveLength(10);
    expect((await again.list({ withdrawn: true }, { limit: 100 })).items.map((r) => r.id)).toEqual([fifth.id, third.id]);
    expect((await again.list({ withdrawn: false, label: 'a' }, { limit: 100 })).items.map((r) => r.id)).toEqual([records[3]?.id, records[1]?.id, records[0]?.id]);
    // Counted as the audited traffic it was.
    expect(await again.summary({}, ['a', 'b', 'c'])).toEqual(before);
    const csv = toCsv((await again.list({ withdrawn: true }, { limit: 1 })).items).split('\r\n');
    const column = csv[0]?.split(',').indexOf('withdrawnAt') as number;
    expect(column).toBeGreaterThan(0);
    expect(csv[1]?.split(',')[column]).toBe(new Date(T0 + 70_000).toISOString());
    expect(JSON.parse(toJsonl((await again.list({ withdrawn: true }, { limit: 1 })).items)).withdrawnAt).toBe(new Date(T0 + 70_000).toISOString());
  });
});

describe('AuditStore: both backends', () => {
  it('answer the same records the same way: every sort and page, CSV, JSON Lines, the summary', async () => {
    n = 0;
    const records = [
      ...knownSet(),
      rec('a', 'b', 'noisy', 0.1, { annotatorId: 'x' }),
      rec('c', 'c', 'clean', 0.97, { datasetId: 'd1' }),
      // item-9 audited again: its first record is superseded.
      rec('a', 'a', 'clean', 0.9, { itemId: 'item-9' }),
    ];
    const [sqlite, postgres] = await Promise.all(BACKENDS.map(openFresh));
    for (const store of [sqlite, postgres] as AuditStore[]) {
      await store.insert(records);
      for (const i of [2, 5, 9]) await store.markWithdrawn((records[i] as NewAuditRecord).id, T0 + 100_000 + i);
    }
    const read = async (store: AuditStore) => {
      const out: unknown[] = [];
      for (const sort of ['time', 'quality', 'mistakenness'] as const) {
        for (const filters of [{}, { verdict: ['noisy', 'ambiguous'] as Verdict[] }, { annotatorId: 'x', maxQuality: 0.9 }, { withdrawn: true }, { withdrawn: false, label: 'b' }, { current: true }, { current: false }]) {
          let after: ReturnType<typeof decodeCursor>;
          for (let page = 0; page < 10; page++) {
            const p = await store.list(filters, { limit: 3, sort, after });
            out.push(p, toCsv(p.items), toJsonl(p.items));
            if (p.nextCursor === null) break;
            after = decodeCursor(p.nextCursor);
          }
        }
      }
      out.push(await store.summary({}, ['c', 'b', 'a']), await store.summary({ datasetId: 'd1', verdict: ['clean'] }, ['a', 'b', 'c']), await store.summary({ current: false }, ['a', 'b', 'c']));
      out.push(await store.recentOutcomes({ name: 'm', version: '2' }, ['a', 'b', 'c'], 2));
      return out;
    };
    expect(await read(postgres as AuditStore)).toEqual(await read(sqlite as AuditStore));
  });
});

describe('AuditStore on sqlite: storage failures', () => {
  it('reports a full store (size cap reached) as unavailable, commits nothing of the failed batch, and still reads', async () => {
    const dir = tempDir();
    const store = await open('sqlite', dir, { maxBytes: 64 * 1024 });
    const big = (i: number) => rec('a', 'a', 'clean', 0.9, { id: `10000000-0000-4000-8000-${String(i).padStart(12, '0')}`, image: Buffer.alloc(8 * 1024, i) });
    let stored = 0;
    let failure: unknown;
    for (let i = 0; i < 40 && failure === undefined; i++) {
      try {
        await store.insert([big(2 * i), big(2 * i + 1)]);
        stored += 2;
      } catch (err) {
        failure = err;
      }
    }
    expect(failure).toBeInstanceOf(AuditStoreUnavailable);
    expect((failure as Error).message).toMatch(/SQLITE_FULL/);
    expect(stored).toBeGreaterThan(0);
    // The store reopens after its back-off; what was committed is all there, nothing of the failed pair.
    const reopened = await open('sqlite', dir, { maxBytes: 64 * 1024 });
    expect((await reopened.list({}, { limit: 100 })).items).toHaveLength(stored);
  });

  it('is unavailable while its folder cannot be created, and opens once it can', async () => {
    const root = tempDir();
    const blocker = path.join(root, 'blocker');
    writeFileSync(blocker, 'a file where the data folder should go');
    const failures: unknown[] = [];
    let recoveries = 0;
    const store = await open('sqlite', path.join(blocker, 'data'), { onFailure: (e) => failures.push(e), onRecovery: () => recoveries++ });
    expect(store.available).toBe(false);
    await expect(store.list({}, { limit: 1 })).rejects.toThrow(AuditStoreUnavailable);
    await expect(store.markWithdrawn('00000000-0000-4000-8000-000000000001', T0)).rejects.toThrow(AuditStoreUnavailable);
    expect(failures).toHaveLength(1);
    rmSync(blocker);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await store.list({}, { limit: 1 })).items).toEqual([]);
    expect(store.available).toBe(true);
    expect(recoveries).toBe(1);
  });
});

describe('AuditStore on postgres: replicas and storage failures', () => {
  it('migrates an empty database once when several replicas open it at the same moment', async () => {
    const where = await freshPlace('postgres');
    const kind = 'postgres';
    const opened = await Promise.all(Array.from({ length: 4 }, () => open(kind, where)));
    expect(opened.map((s) => s.available)).toEqual([true, true, true, true]);
    await Promise.all(opened.map((s, i) => s.insert([rec('a', 'a', 'clean', 0.5 + i / 10)])));
    expect((await (opened[0] as AuditStore).list({}, { limit: 10 })).items).toHaveLength(4);
    expect(await layoutVersion(kind, where)).toBe(5);
  });
  const pastBackOff = () => new Promise((r) => setTimeout(r, 1100));

  it('answers unavailable, never hangs, when every pooled connection is busy, and serves once one is free', async () => {
    const url = await freshPlace('postgres');
    const store = await open('postgres', url, { poolSize: 1, acquireTimeoutMs: 300 });
    // Another session holds the insert lock, so the store's one connection waits inside its insert.
    const holder = new (await import('pg')).default.Client({ connectionString: url });
    await holder.connect();
    cleanups.push(() => holder.end());
    await holder.query('SELECT pg_advisory_lock($1)', [0x61736d66]);
    const blocked = store.insert([rec('a', 'a', 'clean', 0.9)]);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const refused = await store.list({}, { limit: 1 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AuditStoreUnavailable);
    expect((refused as Error).message).toMatch(/pool-exhausted/);
    expect(Date.now() - started).toBeLessThan(2000);
    // Busy is not down: the store stays available and takes the next request once the lock is released.
    expect(store.available).toBe(true);
    await holder.query('SELECT pg_advisory_unlock($1)', [0x61736d66]);
    await blocked;
    expect((await store.list({}, { limit: 10 })).items).toHaveLength(1);
  });

  it('answers unavailable while the database is read-only, and writes again once it is not', async () => {
    const url = await freshPlace('postgres');
    const store = await open('postgres', url);
    const kept = rec('a', 'a', 'clean', 0.9);
    await store.insert([kept]);
    const name = new URL(url).pathname.slice(1);
    const admin = inject('postgresAdminUrl');
    // As a standby or a database switched to read-only answers: new sessions refuse writes.
    await adminQuery(admin, `ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    await adminQuery(admin, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
    // A withdrawal is a write like an insert: refused as unavailable, so the Label Studio queue retries it.
    const withdrawal = await store.markWithdrawn(kept.id, T0).catch((e: unknown) => e);
    expect(withdrawal).toBeInstanceOf(AuditStoreUnavailable);
    expect((withdrawal as Error).message).toMatch(/25006|57P01|connection-lost/);
    const refused = await store.insert([rec('a', 'a', 'clean', 0.8)]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AuditStoreUnavailable);
    expect((refused as Error).message).toMatch(/25006|57P01|connection-lost/);
    await adminQuery(admin, `ALTER DATABASE ${name} RESET default_transaction_read_only`);
    await adminQuery(admin, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
    await pastBackOff();
    const ok = await store.insert([rec('b', 'b', 'clean', 0.8)]).then(
      () => true,
      // The first use after the terminate may meet a pooled connection that has just died; the next is fresh.
      async () => (await pastBackOff(), await store.insert([rec('b', 'b', 'clean', 0.8)]), true),
    );
    expect(ok).toBe(true);
    expect((await store.list({}, { limit: 10 })).items).toHaveLength(2);
    expect(await store.markWithdrawn(kept.id, T0 + 1)).toBe(true);
    expect((await store.get(kept.id))?.withdrawnAt).toBe(new Date(T0 + 1).toISOString());
  });

  it('maps a full disk (SQLSTATE 53100) to unavailable, and a query bug to an error of its own', () => {
    const backend = new PostgresBackend(pgOptions('postgres://127.0.0.1:1/none'));
    expect(backend.failure(Object.assign(new Error('could not extend file'), { code: '53100' }))).toEqual({ code: 'SQLSTATE 53100', down: true });
    expect(backend.failure(Object.assign(new Error('syntax error'), { code: '42601' }))).toBeUndefined();
    expect(backend.failure(new Error('something else'))).toBeUndefined();
    return backend.close();
  });
});
