// The entry point as an operator sees it: one-line refusals, readiness after warm-up, graceful stop on SIGTERM.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE_DIR } from './fixtures/paths.js';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const children: ReturnType<typeof spawn>[] = [];

// A test that fails before its child exits must not leave a server running.
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [tsx, 'src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', ASM_FER_HOST: '127.0.0.1', ASM_FER_INTRA_OP_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, out: () => stdout, err: () => stderr };
}

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
