// Shared by the E5, overload and soak benchmarks: real FER+ images as multipart bodies, the service as a child
// process, autocannon runs, and the child's memory read from /proc.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { multipart, type Part } from '../test/fixtures/multipart.js';
import { startServer } from '../test/fixtures/server-process.js';

export const BOUNDARY = 'asmferbenchboundary';

/** The first `n` FER+ PNGs of `dir` (sorted, so every run sends the same ones). */
export function ferplusPngs(dir: string, n: number): Buffer[] {
  const names = readdirSync(dir).filter((f) => f.endsWith('.png')).sort().slice(0, n);
  if (names.length === 0) throw new Error(`no PNG files in ${dir}`);
  return names.map((f) => readFileSync(path.join(dir, f)));
}

/** Each image upscaled to side x side and saved as a JPEG, so the service has real decoding and resizing to do. */
export function largeJpegs(pngs: Buffer[], side: number): Promise<Buffer[]> {
  return Promise.all(pngs.map((p) => sharp(p).resize(side, side, { kernel: 'lanczos3' }).jpeg({ quality: 90 }).toBuffer()));
}

/** A multipart body with the benchmarks' boundary (BOUNDARY), built by the tests' byte-exact builder. */
export const multipartBody = (parts: Part[]): Buffer => multipart(parts, { boundary: BOUNDARY }).body;

export const predictBody = (image: Buffer) => multipartBody([{ name: 'image', data: image, filename: 'face' }]);

/**
 * E5 measures classifying whole images, so the larger JPEGs are not searched for faces (detect=auto would run the
 * detector on them, not on the 48x48 crops); the detector's own cost is measured by bench/detect-consistency.ts.
 */
export const PREDICT_PATH = '/v1/predict?detect=never';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Service {
  child: ChildProcess;
  base: string;
  stop(): Promise<void>;
}

/**
 * Starts src/main.ts (test/fixtures/server-process.ts) on a free port with `env` and the service's own defaults, and
 * waits for readiness (on `fixedPort` when given). `nodeArgs` go before the entry (e.g. --cpu-prof). Its audit trail goes to a temporary folder,
 * removed by stop(), so no run adds to another's.
 */
export async function startService(env: Record<string, string>, nodeArgs: string[] = [], fixedPort?: number): Promise<Service> {
  const port = fixedPort ?? (await freePort());
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'asm-fer-bench-'));
  const { child } = startServer(
    { PORT: String(port), ASM_FER_LOG_LEVEL: 'warn', ASM_FER_DATA_DIR: dataDir, ...env },
    { nodeArgs, baseEnv: {}, output: 'stderr' },
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('server not ready after 60 s');
    if (await fetch(`${base}/v2/health/ready`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    base,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Current and peak resident memory of a process, in bytes (Linux /proc: VmRSS and VmHWM). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

export interface LoadResult {
  /** 2xx responses per second. */
  okPerSec: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Status code → count, for everything autocannon saw. */
  statuses: Record<string, number>;
}

/** Drives `path` with POSTs cycling through `bodies` (multipart unless contentType says otherwise). */
export async function load(
  base: string,
  path: string,
  bodies: Buffer[],
  opts: { connections: number; duration?: number; amount?: number; overallRate?: number; contentType?: string; timeout?: number },
): Promise<LoadResult> {
  const started = performance.now();
  const result = await autocannon({
    url: `${base}${path}`,
    connections: opts.connections,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.duration ?? 10 }),
    ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
    timeout: opts.timeout ?? 30,
    requests: bodies.map((body) => ({ method: 'POST', path, headers: { 'content-type': opts.contentType ?? `multipart/form-data; boundary=${BOUNDARY}` }, body })),
  });
  const seconds = (performance.now() - started) / 1000;
  const statuses: Record<string, number> = {};
  for (const [code, n] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = n.count ?? 0;
  return {
    okPerSec: result['2xx'] / seconds,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
  };
}

/** The 1-minute load average and the core count, to print beside every number measured on a shared machine. */
export function loadNote(): string {
  return `loadavg ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.availableParallelism()} cores`;
}

/** CPU seconds (user + system, every thread) a process has used so far (Linux /proc, clock ticks of 1/100 s). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds the main thread of a process has used (the event loop: HTTP, multipart, decoding, routing, JSON); the
 * rest of cpuSecondsOf is its other threads (session workers, onnxruntime's intra-op threads, libuv's pool, V8's GC).
 */
export function mainThreadCpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** One series' value from Prometheus text, NaN when absent. */
export function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : Number.NaN;
}

export interface Traffic {
  path: string;
  body: Buffer;
}

export interface StatusLoad {
  seconds: number;
  /** Response times in ms, by status code. */
  latencies: Map<number, number[]>;
  /** 503 responses that lacked a Retry-After header. */
  missingRetryAfter: number;
  errors: number;
  timeouts: number;
}

/** Like load(), but keeps every response's status and time, checks Retry-After on 503s, and mixes paths. */
export function loadByStatus(
  base: string,
  traffic: Traffic[],
  opts: { connections: number; duration: number; overallRate?: number; timeout?: number; onResponse?: (status: number, ms: number) => void },
): Promise<StatusLoad> {
  const latencies = new Map<number, number[]>();
  let missingRetryAfter = 0;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: base,
        connections: opts.connections,
        duration: opts.duration,
        timeout: opts.timeout ?? 30,
        ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
        requests: traffic.map((t) => ({
          method: 'POST' as const,
          path: t.path,
          headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
          body: t.body,
          onResponse: (status: number, _body: string, _ctx: object, headers?: Record<string, string | string[] | undefined>) => {
            if (status === 503 && headers?.['retry-after'] === undefined && headers?.['Retry-After'] === undefined) missingRetryAfter++;
          },
        })),
      },
      (err, result) => {
        if (err) return reject(err as Error);
        resolve({ seconds: (performance.now() - started) / 1000, latencies, missingRetryAfter, errors: result.errors, timeouts: result.timeouts });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      const list = latencies.get(status) ?? [];
      list.push(ms);
      latencies.set(status, list);
      opts.onResponse?.(status, ms);
    });
  });
}

/** The q-quantile (0..1) of `xs`, NaN when empty. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
