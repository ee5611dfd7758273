// The audit trail of the real process, on both backends (SQLite, PostgreSQL): nothing acknowledged is lost when the
// process is killed with SIGKILL right after its 200s, and everything survives a normal restart; the live windows
// carry on from the stored records while the since-start figures start again from nothing.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_FILE } from '../../src/audit/sqlite-store.js';
import { BACKENDS, freshTrail, type FreshTrail } from '../fixtures/backends.js';
import { jpeg, png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { listeningPort, startServer, stopServers } from '../fixtures/server-process.js';

const trails: FreshTrail[] = [];
afterEach(async () => {
  stopServers();
  for (const t of trails.splice(0)) await t.drop();
});

async function trailOn(kind: (typeof BACKENDS)[number]): Promise<FreshTrail> {
  const t = await freshTrail(kind);
  trails.push(t);
  return t;
}

async function serve(trail: FreshTrail) {
  const p = startServer({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ...trail.env });
  return { p, base: `http://127.0.0.1:${await listeningPort(p)}` };
}

async function auditForm(): Promise<FormData> {
  const form = new FormData();
  form.append('image', new Blob([await png()], { type: 'image/png' }), 'a.png');
  form.append('label', 'happiness');
  form.append('image', new Blob([await jpeg(70, 70)], { type: 'image/jpeg' }), 'b.jpg');
  form.append('label', 'fear');
  form.append('annotatorId', 'durability');
  return form;
}

async function storedIds(base: string): Promise<Set<string>> {
  const res = await fetch(`${base}/v1/audits?limit=10000`);
  expect(res.status).toBe(200);
  return new Set(((await res.json()) as { items: { id: string }[] }).items.map((r) => r.id));
}

interface Summary {
  total: number;
  classes: { label: string; count: number }[];
  annotators: { annotatorId: string; count: number }[];
  live: { since: string; classes: { sinceStart: { count: number }; window: { count: number } }[] };
}

/** Items counted since start and items in the (unfilled) windows of the live statistics. */
function liveCounts(s: Summary): { sinceStart: number; window: number } {
  return {
    sinceStart: s.live.classes.reduce((n, c) => n + c.sinceStart.count, 0),
    window: s.live.classes.reduce((n, c) => n + c.window.count, 0),
  };
}

describe.each(BACKENDS)('audit trail durability on %s', (kind) => {
  it('keeps every acknowledged audit when the process is killed with SIGKILL mid-traffic', async () => {
    const trail = await trailOn(kind);
    const { p, base } = await serve(trail);
    const form = await auditForm();
    const acknowledged: string[] = [];
    let answered = 0;
    // 24 requests at once; the process dies the moment the 8th 200 has been read, others still in flight.
    const requests = Array.from({ length: 24 }, () =>
      fetch(`${base}/v1/audit`, { method: 'POST', body: form }).then(
        async (res) => {
          if (res.status !== 200) return;
          const body = (await res.json()) as { results: { id: string }[] };
          acknowledged.push(...body.results.map((r) => r.id));
          if (++answered === 8) p.child.kill('SIGKILL');
        },
        () => undefined,
      ),
    );
    await Promise.all(requests);
    await p.exited;
    expect(p.child.signalCode).toBe('SIGKILL');
    expect(acknowledged.length).toBeGreaterThanOrEqual(16);
    // SQLite: the WAL was never checkpointed by a clean close: the records live in it, and recovery must replay it.
    if (kind === 'sqlite') expect(existsSync(path.join(trail.where, `${DB_FILE}-wal`))).toBe(true);

    const again = await serve(trail);
    const stored = await storedIds(again.base);
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    const one = await fetch(`${again.base}/v1/audits/${acknowledged[0]}`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { annotatorId: string }).annotatorId).toBe('durability');
  });

  it('keeps everything across a normal restart (SIGTERM, start again); the live windows carry on, since-start begins at 0', async () => {
    const trail = await trailOn(kind);
    const first = await serve(trail);
    const posted = await fetch(`${first.base}/v1/audit`, { method: 'POST', body: await auditForm() });
    expect(posted.status).toBe(200);
    const ids = ((await posted.json()) as { results: { id: string }[] }).results.map((r) => r.id);
    const before = (await (await fetch(`${first.base}/v1/audits/summary`)).json()) as Summary;
    expect(liveCounts(before)).toEqual({ sinceStart: 2, window: 2 });
    first.p.child.kill('SIGTERM');
    expect(await first.p.exited).toBe(0);

    const restarted = Date.now();
    const second = await serve(trail);
    expect([...(await storedIds(second.base))].sort()).toEqual([...ids].sort());
    const summary = (await (await fetch(`${second.base}/v1/audits/summary`)).json()) as Summary;
    expect(summary.total).toBe(2);
    expect(summary.annotators).toEqual([expect.objectContaining({ annotatorId: 'durability', count: 2 })]);
    expect(summary.classes.filter((c) => c.count > 0).map((c) => c.label).sort()).toEqual(['fear', 'happiness']);
    // What this process has audited: nothing yet, counted from its own start; the windows hold the stored items.
    expect(liveCounts(summary)).toEqual({ sinceStart: 0, window: 2 });
    expect(summary.live.classes.map((c) => c.window)).toEqual(before.live.classes.map((c) => c.window));
    expect(Date.parse(summary.live.since)).toBeGreaterThanOrEqual(restarted);

    const again = await fetch(`${second.base}/v1/audit`, { method: 'POST', body: await auditForm() });
    expect(again.status).toBe(200);
    const after = (await (await fetch(`${second.base}/v1/audits/summary`)).json()) as Summary;
    expect(after.total).toBe(4);
    expect(liveCounts(after)).toEqual({ sinceStart: 2, window: 4 });
    expect(after.live.since).toBe(summary.live.since);
  });
});
