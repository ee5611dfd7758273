// SIGTERM on the real process: readiness turns false at once, while the request already in flight still completes;
// new connections are refused; the process exits 0. With ASM_FER_SHUTDOWN_DELAY_MS it keeps serving new requests
// that long while readiness already says 503, so a polling load balancer moves away before the listener closes.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { png } from '../fixtures/make-images.js';
import { FIXTURE_BUNDLE_DIR } from '../fixtures/paths.js';
import { listeningPort, startServer, stopServers, until } from '../fixtures/server-process.js';
import { imagePart, multipart } from '../fixtures/multipart.js';

afterEach(stopServers);

/** Status codes of the HTTP responses in `raw`, in order. */
const statuses = (raw: string) => [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('SIGTERM', () => {
  it('turns readiness false immediately while the in-flight request drains', async () => {
    // A long queue delay holds one lone image in the batcher while the signal arrives.
    const p = startServer({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ASM_FER_MAX_QUEUE_DELAY_MS: '2000', ASM_FER_IDLE_QUEUE_DELAY_MS: '2000' });
    const port = await listeningPort(p);
    const { body, contentType } = multipart([imagePart(await png())]);

    // One connection carries the predict and, pipelined behind it once the signal has landed, a readiness probe: the
    // listener is closed by then, so only an open connection can still ask.
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    socket.on('data', (d: Buffer) => (raw += d.toString()));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(`POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body);
    await until(async () => /^asm_fer_queue_depth 1$/m.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));

    p.child.kill('SIGTERM');
    await until(() => p.out().includes('"msg":"shutting down"'));
    socket.write('GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect(fetch(`http://127.0.0.1:${port}/v2/health/live`)).rejects.toThrow();

    await until(() => statuses(raw).length === 2, 10_000);
    expect(statuses(raw)).toEqual([200, 503]);
    expect(raw).toContain('"results":[');
    expect(raw).toContain('https://asm-fer.dev/problems/not-ready');
    socket.end();
    await closed;
    expect(await p.exited).toBe(0);
    const log = p.out();
    // Refused while the predict was still waiting in the batcher, not after it drained.
    expect(log.indexOf('"problem":"not-ready"')).toBeGreaterThan(log.indexOf('"msg":"shutting down"'));
    expect(log.indexOf('"problem":"not-ready"')).toBeLessThan(log.indexOf('"route":"/v1/predict","status":200'));
    expect(log).toContain('"msg":"stopped"');
  });

  // Long enough that a readiness probe, a liveness probe and a predict all fit inside it on a loaded 2-core machine
  // (1.5 s was once missed by 70 ms there); the exit must still wait for all of it.
  const DELAY_MS = 4000;
  it('with ASM_FER_SHUTDOWN_DELAY_MS, answers readiness 503 but still serves requests until the delay is over', async () => {
    const p = startServer({ ASM_FER_MODEL_DIR: FIXTURE_BUNDLE_DIR, ASM_FER_LOG_LEVEL: 'info', ASM_FER_SHUTDOWN_DELAY_MS: String(DELAY_MS) });
    const port = await listeningPort(p);
    const base = `http://127.0.0.1:${port}`;
    const image = await png();
    const form = () => {
      const f = new FormData();
      f.append('image', new Blob([new Uint8Array(image)], { type: 'image/png' }), 'a.png');
      return f;
    };
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    await until(() => p.out().includes('"msg":"shutting down"'));
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(503);
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    const served = await fetch(`${base}/v1/predict`, { method: 'POST', body: form() });
    expect(served.status).toBe(200);
    expect(Date.now() - signalled).toBeLessThan(DELAY_MS);
    expect(await p.exited).toBe(0);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(DELAY_MS);
  });
});
