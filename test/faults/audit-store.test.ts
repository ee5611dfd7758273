// The audit trail's storage failing under the real process (issue 7): audits answer 503 audit-store-unavailable,
// predictions keep working, nothing acknowledged is lost, nothing refused is stored, and the store comes back without
// a restart once writes succeed again. What is simulated, and how:
// - read-only storage: the server runs unprivileged (as the container's user does) over a trail whose folder and
//   files it may not write; the kernel refuses the writes with EACCES where a read-only mount gives EROFS, and
//   SQLite treats both alike (it opens the database read-only). Root ignores file modes, hence the user switch.
// - a full disk: the kernel's file-size limit on the server (RLIMIT_FSIZE) makes a write that grows a file past it
//   fail with EFBIG mid-run, on the same write path a full disk fails with ENOSPC.
// - a PostgreSQL trail whose server is down: nothing listening at start, then a cluster of the test's own started,
//   crashed (pg_ctl stop -m immediate) and started again under the running service.
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_FILE } from '../../src/audit/sqlite-store.js';
import { png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { listeningPort, startServer, stopServers, until, type StartOptions } from '../fixtures/server-process.js';
import { expectContract } from '../http/contract.js';
import { imagePart } from '../fixtures/multipart.js';
import { postMultipart, send, type Reply } from '../hostile/http-client.js';
import { startCluster, TEST_PG_PORT, type Cluster } from '../fixtures/postgres.js';

const dirs: string[] = [];
const clusters: Cluster[] = [];
afterEach(() => {
  stopServers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const c of clusters.splice(0)) c.destroy();
});

function dataDir(owner?: { uid: number; gid: number }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'asm-fer-store-fault-'));
  dirs.push(dir);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

async function serve(env: Record<string, string>, opts: StartOptions = {}) {
  const p = startServer({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ...env }, opts);
  return { p, port: await listeningPort(p) };
}

const audit = (port: number, image: Buffer): Promise<Reply> => postMultipart(port, '/v1/audit?detect=never', [imagePart(image), { name: 'label', data: 'fear' }]);
const predict = (port: number, image: Buffer): Promise<Reply> => postMultipart(port, '/v1/predict', [imagePart(image)]);
const idsOf = (res: Reply) => (res.body as { results: { id: string }[] }).results.map((r) => r.id);

function expectStoreUnavailable(res: Reply): void {
  expect(res.status, res.text).toBe(503);
  expect(res.body).toMatchObject({ type: 'https://asm-fer.dev/problems/audit-store-unavailable' });
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expectContract('POST', '/v1/audit', { status: res.status, headers: res.headers as Record<string, string>, body: res.body, text: res.text });
}

/** After the store's 1 s back-off, so its next use tries the database again. */
const pastBackOff = () => new Promise((r) => setTimeout(r, 1100));

/** Ids stored in the trail, read from the database file itself. */
function storedIds(dir: string): string[] {
  const db = new Database(path.join(dir, DB_FILE), { readonly: true });
  try {
    return (db.prepare('SELECT id FROM audits').all() as { id: string }[]).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** Incompressible 160 x 160 RGB noise: ~77 KB a PNG, stored whole, and a face crop to detect=auto as well. */
function noisePng(seed: number): Promise<Buffer> {
  const data = Buffer.alloc(160 * 160 * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    data[i] = s >> 16;
  }
  return sharp(data, { raw: { width: 160, height: 160, channels: 3 } }).png().toBuffer();
}

describe('audit store faults in the real process', () => {
  it('a read-only trail: audits and reads 503 while predictions work; writable again, it serves without a restart', async () => {
    // As root the server must drop to another user for file modes to bind it; otherwise it already has.
    const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
    const dir = dataDir(user);
    const image = await png();

    const first = await serve({ ASM_FER_DATA_DIR: dir }, { user });
    const before = await audit(first.port, image);
    expect(before.status, before.text).toBe(200);
    first.p.child.kill('SIGTERM');
    expect(await first.p.exited).toBe(0);

    for (const f of readdirSync(dir)) chmodSync(path.join(dir, f), 0o444);
    chmodSync(dir, 0o555);
    const { p, port } = await serve({ ASM_FER_DATA_DIR: dir }, { user });
    expect(p.out()).toContain('audit trail unusable');
    expectStoreUnavailable(await audit(port, image));
    expect((await send(port, 'GET', '/v1/audits')).status).toBe(503);
    expect((await predict(port, image)).status).toBe(200);
    expect((await send(port, 'GET', '/v2/health/ready')).status).toBe(200);

    chmodSync(dir, 0o755);
    for (const f of readdirSync(dir)) chmodSync(path.join(dir, f), 0o644);
    await pastBackOff();
    const after = await audit(port, image);
    expect(after.status, after.text).toBe(200);
    // The log line may reach the pipe after the response does.
    await until(() => p.out().includes('audit trail usable again'), 5000);
    const list = await send(port, 'GET', '/v1/audits');
    expect((list.body as { items: { id: string }[] }).items.map((r) => r.id).sort()).toEqual([...idsOf(before), ...idsOf(after)].sort());
  }, 60_000);

  it('a disk that fills mid-run: the refused audit is 503 and not stored, predictions work, every acknowledged audit is kept', async () => {
    const dir = dataDir();
    const limit = 1024 * 1024;
    const { p, port } = await serve({ ASM_FER_DATA_DIR: dir, ASM_FER_AUDIT_STORE_IMAGES: 'true' }, { maxFileBytes: limit });
    expect(/^Max file size\s+(\d+)/m.exec(readFileSync(`/proc/${p.child.pid}/limits`, 'utf8'))?.[1]).toBe(String(limit));

    const acknowledged: string[] = [];
    let refused: Reply | undefined;
    // Each audit keeps ~77 KB of image, so the write-ahead log reaches 1 MiB within about 15 audits.
    for (let i = 0; i < 40 && !refused; i++) {
      const res = await audit(port, await noisePng(i));
      if (res.status === 200) acknowledged.push(...idsOf(res));
      else refused = res;
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(refused, 'no audit was refused before the limit').toBeDefined();
    expectStoreUnavailable(refused as Reply);
    expect((refused?.body as { detail: string }).detail).toMatch(/SQLITE_(IOERR|FULL)/);
    await until(() => p.out().includes('audit trail unusable'), 5000);
    expect((await predict(port, await noisePng(1000))).status).toBe(200);
    expect(p.child.exitCode).toBeNull();

    // Closing the failed connection checkpoints the log into the database and removes it, which frees the room the
    // log held: the reopened store takes audits again.
    await pastBackOff();
    const again = await audit(port, await png());
    expect(again.status, again.text).toBe(200);
    acknowledged.push(...idsOf(again));

    p.child.kill('SIGKILL');
    await p.exited;
    expect(storedIds(dir).sort()).toEqual([...acknowledged].sort());
  }, 90_000);

  it('a PostgreSQL trail whose server is down at start and mid-run: audits 503, predictions work; up again, it serves without a restart', async () => {
    // Its own cluster, on the second port: the suite's cluster serves the other files running in parallel.
    const pgPort = TEST_PG_PORT + 1;
    const image = await png();
    const { p, port } = await serve({ ASM_FER_AUDIT_DB: `postgres://postgres@127.0.0.1:${pgPort}/postgres`, ASM_FER_STATS_CACHE_MS: '0' });
    expect(p.out()).toContain('audit trail unusable');
    expectStoreUnavailable(await audit(port, image));
    expect((await send(port, 'GET', '/v1/audits')).status).toBe(503);
    expect((await send(port, 'GET', '/v1/audits/summary')).status).toBe(503);
    expect((await predict(port, image)).status).toBe(200);
    expect((await send(port, 'GET', '/v2/health/ready')).status).toBe(200);

    const cluster = startCluster(pgPort);
    clusters.push(cluster);
    await pastBackOff();
    const first = await audit(port, image);
    expect(first.status, first.text).toBe(200);
    await until(() => p.out().includes('audit trail usable again'), 5000);

    // A crash of the database server: the pool's connections die with it.
    cluster.stop('immediate');
    expectStoreUnavailable(await audit(port, image));
    expect((await predict(port, image)).status).toBe(200);

    cluster.start();
    await pastBackOff();
    const second = await audit(port, image);
    expect(second.status, second.text).toBe(200);
    const list = await send(port, 'GET', '/v1/audits');
    expect((list.body as { items: { id: string }[] }).items.map((r) => r.id).sort()).toEqual([...idsOf(first), ...idsOf(second)].sort());
    expect(p.child.exitCode).toBeNull();
  }, 120_000);
});
