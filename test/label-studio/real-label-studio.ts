// The real Label Studio (PyPI label-studio, pinned in requirements.txt, installed into test/label-studio/.venv by
// `make test-label-studio`) started on loopback with a temporary data folder and a known user token, for e2e.test.ts
// and the screenshot in docs/label-studio.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const LS_BIN = 'test/label-studio/.venv/bin/label-studio';
export const LS_PORT = 18480;
export const LS_URL = `http://127.0.0.1:${LS_PORT}`;
export const LS_USER = 'e2e@asm-fer.test';
export const LS_PASSWORD = 'e2e-password-0123';
/** The legacy token the user is created with (LABEL_STUDIO_USER_TOKEN), enabled by LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN. */
export const LS_TOKEN = 'asmfer-e2e-token-0123456789abcdef';

export interface RealLabelStudio {
  url: string;
  /** The folder Label Studio serves /data/local-files/ from. */
  filesDir: string;
  child: ChildProcess;
  log(): string;
  /** Calls the API with the legacy token; throws on a non-2xx answer, naming it. */
  api<T = unknown>(method: string, apiPath: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

export async function startLabelStudio(): Promise<RealLabelStudio> {
  if (!existsSync(LS_BIN)) throw new Error(`${LS_BIN} is missing: run \`make test-label-studio\`, which installs test/label-studio/requirements.txt into test/label-studio/.venv`);
  const root = mkdtempSync(path.join(tmpdir(), 'asm-fer-label-studio-'));
  const filesDir = path.join(root, 'files');
  mkdirSync(filesDir);
  const child = spawn(path.resolve(LS_BIN), ['start', '--no-browser', '--internal-host', '127.0.0.1', '--port', String(LS_PORT)], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: root,
      LABEL_STUDIO_BASE_DATA_DIR: path.join(root, 'data'),
      LABEL_STUDIO_USERNAME: LS_USER,
      LABEL_STUDIO_PASSWORD: LS_PASSWORD,
      LABEL_STUDIO_USER_TOKEN: LS_TOKEN,
      LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN: 'true',
      // asm-fer runs on loopback: Label Studio blocks local addresses for ML backends and webhooks by default (SSRF).
      ML_BLOCK_LOCAL_IP: 'false',
      SSRF_PROTECTION_ENABLED: 'false',
      LOCAL_FILES_SERVING_ENABLED: 'true',
      LOCAL_FILES_DOCUMENT_ROOT: filesDir,
      // Webhooks are sent in the request that saves the annotation (no RQ worker in a plain `label-studio start`).
      WEBHOOK_TIMEOUT: '5',
      LOG_LEVEL: 'WARNING',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: false,
  });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await new Promise((r) => child.once('exit', r));
      clearTimeout(killed);
    }
    rmSync(root, { recursive: true, force: true });
  };
  const api = async <T>(method: string, apiPath: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${LS_URL}${apiPath}`, {
      method,
      headers: { authorization: `Token ${LS_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Label Studio ${method} ${apiPath} answered ${res.status}: ${text.slice(0, 500)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  // The first start migrates a new database: about a minute on a busy 2-core machine.
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`label-studio exited with ${child.exitCode}: ${log.slice(-2000)}`);
    }
    try {
      const res = await fetch(`${LS_URL}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) {
        // The user exists once the API accepts its token.
        await api('GET', '/api/current-user/whoami');
        break;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`label-studio did not answer /health within 240 s: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return { url: LS_URL, filesDir, child, log: () => log, api, stop };
}
