// The entry point as an operator sees it: one-line refusals, readiness after warm-up, graceful stop on SIGTERM.
import { afterEach, describe, expect, it } from 'vitest';
import { png } from './fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from './fixtures/paths.js';
import { listeningPort, startServer as start, stopServers, until } from './fixtures/server-process.js';

// A test that fails before its child exits must not leave a server running.
afterEach(stopServers);

describe('src/main.ts', () => {
  it('refuses a bad variable with one line naming it', async () => {
    const p = start({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_WORKERS: 'many' });
    expect(await p.exited).toBe(1);
    expect(p.err().trim().split('\n')).toHaveLength(1);
    expect(p.err()).toMatch(/^asm-fer: cannot start: invalid ASM_FER_WORKERS="many"/);
  });

  it('refuses a missing bundle with one line', async () => {
    const p = start({ ASM_FER_MODEL_DIR: 'test/fixtures/no-such-bundle' });
    expect(await p.exited).toBe(1);
    expect(p.err().trim().split('\n')).toHaveLength(1);
    expect(p.err()).toMatch(/cannot read .*no-such-bundle\/model\.json: ENOENT/);
  });

  it('finishes a request in flight when SIGTERM arrives, then exits; SIGHUP reloads the model', async () => {
    // A long queue delay keeps one lone image waiting in the batcher while the signal arrives.
    const p = start({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ASM_FER_MAX_QUEUE_DELAY_MS: '1500', ASM_FER_IDLE_QUEUE_DELAY_MS: '1500' });
    const port = await listeningPort(p);
    const base = `http://127.0.0.1:${port}`;

    p.child.kill('SIGHUP');
    await until(() => p.out().includes('"msg":"model reloaded"'));

    const form = new FormData();
    form.append('image', new Blob([await png()], { type: 'image/png' }), 'a.png');
    const inFlight = fetch(`${base}/v1/predict`, { method: 'POST', body: form });
    await until(async () => /^asm_fer_queue_depth 1$/m.test(await (await fetch(`${base}/metrics`)).text()));
    p.child.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { results: unknown[] }).results).toHaveLength(1);
    expect(await p.exited).toBe(0);
    const log = p.out();
    expect(log.indexOf('"msg":"shutting down"')).toBeLessThan(log.indexOf('"route":"/v1/predict","status":200'));
    expect(log).toContain('"msg":"stopped"');
  });

  it('serves once warmed up and stops cleanly on SIGTERM', async () => {
    const p = start({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info' });
    const deadline = Date.now() + 30_000;
    let port: number | undefined;
    while (port === undefined && Date.now() < deadline) {
      const m = /"port":(\d+)/.exec(p.out());
      if (m) port = Number(m[1]);
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(port).toBeDefined();
    const ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`);
    expect(ready.status).toBe(200);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('"msg":"stopped"');
  });
});
