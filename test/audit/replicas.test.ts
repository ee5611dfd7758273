// Two server processes writing one trail at the same time, on both backends (two processes over one SQLite file, two
// replicas over one PostgreSQL database): every acknowledged audit is stored exactly once, and both processes list
// and sum the same records. On PostgreSQL the windows behind live statistics, drift and online thresholds are the
// shared traffic of both, while since-start stays each process's own.
import { afterEach, describe, expect, it } from 'vitest';
import { jpeg, png } from '../fixtures/make-images.js';
import { BACKENDS, freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { listeningPort, startServer, stopServers } from '../fixtures/server-process.js';

const trails: FreshTrail[] = [];
afterEach(async () => {
  stopServers();
  for (const t of trails.splice(0)) await t.drop();
});

interface Aggregate {
  count: number;
  meanLabelProbability: number | null;
}
interface Summary {
  total: number;
  classes: unknown[];
  annotators: unknown[];
  confusion: unknown;
  live: { windowScope: string; classes: { label: string; sinceStart: Aggregate; window: Aggregate }[] };
  drift: unknown;
  thresholds: { source: string; byClass: unknown };
}

const LABELS = ['happiness', 'fear', 'sadness'];

async function auditForm(i: number): Promise<FormData> {
  const form = new FormData();
  form.append('image', new Blob([await png(40 + (i % 5), 48)], { type: 'image/png' }), 'a.png');
  form.append('label', LABELS[i % 3] as string);
  form.append('image', new Blob([await jpeg(60, 50 + (i % 7))], { type: 'image/jpeg' }), 'b.jpg');
  form.append('label', LABELS[(i + 1) % 3] as string);
  form.append('annotatorId', `ann-${i % 2}`);
  return form;
}

async function json<T>(url: string): Promise<T> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return (await res.json()) as T;
}

/** Every stored id, paged with cursors. */
async function allIds(base: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: { id: string }[]; nextCursor: string | null } = await json(`${base}/v1/audits?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
    ids.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor;
  } while (cursor !== null);
  return ids;
}

const sum = (s: Summary, part: 'sinceStart' | 'window') => s.live.classes.reduce((n, c) => n + c[part].count, 0);

describe.each(BACKENDS)('two processes writing one trail on %s', (kind) => {
  it('stores every acknowledged audit exactly once, and both list and sum the same records', async () => {
    const trail = await freshTrail(kind);
    trails.push(trail);
    const env = { ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ASM_FER_ONLINE_THRESHOLDS: 'true', ASM_FER_DRIFT_MIN_SAMPLES: '2', ...trail.env };
    const servers = [startServer(env), startServer(env)];
    const bases = await Promise.all(servers.map(async (p) => `http://127.0.0.1:${await listeningPort(p)}`));

    const acknowledged: string[] = [];
    const refused: number[] = [];
    // 24 requests, 6 at a time on each process, so their transactions overlap.
    await Promise.all(
      Array.from({ length: 6 }, async (_, lane) => {
        for (let k = 0; k < 4; k++) {
          const i = lane * 4 + k;
          const res = await fetch(`${bases[i % 2]}/v1/audit`, { method: 'POST', body: await auditForm(i) });
          if (res.status === 200) acknowledged.push(...((await res.json()) as { results: { id: string }[] }).results.map((r) => r.id));
          else refused.push(res.status);
        }
      }),
    );
    // SQLite may refuse a write that waited too long for the other process's lock (503); PostgreSQL never should.
    expect(refused.every((s) => s === 503)).toBe(true);
    if (kind === 'postgres') expect(refused).toEqual([]);
    expect(acknowledged.length).toBeGreaterThanOrEqual(40);

    const lists = await Promise.all(bases.map(allIds));
    for (const ids of lists) {
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual([...acknowledged].sort());
    }
    expect(lists[1]).toEqual(lists[0]);

    const [a, b] = await Promise.all(bases.map((base) => json<Summary>(`${base}/v1/audits/summary`)));
    const durable = ({ total, classes, annotators, confusion }: Summary) => ({ total, classes, annotators, confusion });
    expect(durable(b as Summary)).toEqual(durable(a as Summary));
    expect(a?.total).toBe(acknowledged.length);
    // Since start: each process counts what it audited itself.
    expect(sum(a as Summary, 'sinceStart') + sum(b as Summary, 'sinceStart')).toBe(acknowledged.length);
    expect(sum(a as Summary, 'sinceStart')).toBeLessThan(acknowledged.length);
    if (kind === 'postgres') {
      // The windows (and so drift and online thresholds) are both processes' traffic, the same from either.
      expect(a?.live.windowScope).toBe('shared');
      expect(sum(a as Summary, 'window')).toBe(acknowledged.length);
      expect(b?.live.classes.map((c) => c.window)).toEqual(a?.live.classes.map((c) => c.window));
      expect(b?.drift).toEqual(a?.drift);
      expect(a?.thresholds.source).toBe('online');
      expect(b?.thresholds).toEqual(a?.thresholds);
    } else {
      expect(a?.live.windowScope).toBe('process');
      expect(sum(a as Summary, 'window')).toBe(sum(a as Summary, 'sinceStart'));
    }
  }, 90_000);
});
