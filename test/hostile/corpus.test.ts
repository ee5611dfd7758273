// Runs the hostile-input corpus against the real server process: every case gets the answer its entry names (a 4xx
// problem+json, or a 200 for legitimately unusual input), nothing leaks internals, the process stays up, and its
// memory returns to near where it started.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { listeningPort, startServer, stopServers, type ServerProcess } from '../fixtures/server-process.js';
import { expectContract } from '../http/contract.js';
import { corpus, type Target } from './corpus.js';
import { imagePart } from '../fixtures/multipart.js';
import { postMultipart, send, type Reply } from './http-client.js';
import { LEAK } from './leak.js';

/** Memory may grow by this much over the warmed-up baseline and still count as "returned". */
const RSS_SLACK = 1.25;

let server: ServerProcess;
let target: Target;
let baselineRss = 0;

function rssBytes(): number {
  const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
}

beforeAll(async () => {
  // A short request timeout keeps the slow-upload cases quick.
  server = startServer({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_REQUEST_TIMEOUT_MS: '2000', ASM_FER_LOG_LEVEL: 'info' });
  const port = await listeningPort(server);
  const manifest = JSON.parse(readFileSync(`${FIXTURE_BUNDLE_DIR}/model.json`, 'utf8')) as { name: string; classes: string[] };
  target = { port, model: manifest.name, classes: manifest.classes, maxFiles: 32 };
  // Warm decoders, arenas and the JIT before measuring the baseline.
  for (let i = 0; i < 20; i++) expect((await postMultipart(port, '/v1/predict', [imagePart(await png(64, 64))])).status).toBe(200);
  baselineRss = rssBytes();
}, 90_000);

afterAll(stopServers);

function expectWellFormed(name: string, op: { method: string; path: string } | undefined, res: Reply): void {
  expect(res.status, `${name}: server error`).toBeLessThan(500);
  expect(res.text, `${name}: leaks internals`).not.toMatch(LEAK);
  if (res.status >= 400) {
    expect(String(res.headers['content-type']), name).toMatch(/^application\/problem\+json/);
    expect(res.body, name).toMatchObject({ status: res.status, type: expect.stringMatching(/^https:\/\/asm-fer\.dev\/problems\//) as unknown, title: expect.any(String) as unknown });
  }
  if (op) expectContract(op.method, op.path, { status: res.status, headers: res.headers as Record<string, string>, body: res.body, text: res.text });
}

describe('hostile-input corpus', () => {
  it('has at least 50 cases with unique names', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(50);
    expect(new Set(corpus.map((c) => c.name)).size).toBe(corpus.length);
  });

  it.each(corpus.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const res = await c.run(target);
    expect(c.expect, `${name}: got ${res.status} ${res.text.slice(0, 300)}`).toContain(res.status);
    expectWellFormed(name, c.op, res);
    expect(server.child.exitCode, `${name}: the server died`).toBeNull();
    expect((await send(target.port, 'GET', '/v2/health/live')).status).toBe(200);
  });

  it('keeps serving, and memory returns to near the baseline', async () => {
    expect(server.child.exitCode).toBeNull();
    expect((await postMultipart(target.port, '/v1/predict', [imagePart(await png())])).status).toBe(200);
    // Large bodies are garbage by now but V8 frees them lazily; a few idle ticks let it.
    await new Promise((r) => setTimeout(r, 1000));
    const rss = rssBytes();
    expect(rss, `RSS ${Math.round(rss / 2 ** 20)} MiB vs baseline ${Math.round(baselineRss / 2 ** 20)} MiB`).toBeLessThan(baselineRss * RSS_SLACK);
  });
});
