// A pool of worker threads, one onnxruntime session each; chooses the execution provider and runs batches.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InferenceInterrupted } from '../errors.js';
import type { OutputTensor, WorkerInit, WorkerReply, WorkerRequest } from './protocol.js';
import { availableProviders, planProviders, sessionOptions, type ProviderPlan } from './providers.js';

/** tsx's ESM API entry (its `import` condition; require.resolve would pick the CommonJS one). */
function tsxEsmApiUrl(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const rel = pkg.exports['./esm/api']?.import.default;
  if (!rel) throw new Error('tsx does not export ./esm/api; run from dist/ (npm run build) instead');
  return pathToFileURL(path.join(path.dirname(pkgJson), rel)).href;
}

/**
 * The compiled worker next to this file (dist/), or, when running from source under vitest, a tiny eval'd bootstrap
 * that registers tsx's loader inside the worker and then imports the TypeScript entry. (`execArgv: ['--import', tsx]`
 * does not reach a worker's entry module on Node 20.)
 */
function workerEntry(): { entry: URL | string; eval: boolean } {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js, eval: false };
  const tsxApi = tsxEsmApiUrl();
  const ts = new URL('./worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(ts)}); });`;
  return { entry: bootstrap, eval: true };
}

export interface PoolOptions {
  modelPath: string;
  inputName: string;
  outputName: string;
  /** More outputs to fetch after outputName (runAll returns them in this order); a detector has several. */
  extraOutputs?: readonly string[];
  preferredProviders: readonly string[];
  workers: number;
  intraOpThreads: number;
  /**
   * Intra-op threads of a second session on the first worker, which runs a batch that starts while no other batch
   * runs (a lone request on an idle service), so that it uses the cores the other workers would; more than
   * intraOpThreads to have one (issue 32). Unset or not more: none. Its options are sessionOptions', spinning off
   * too: spinning within a run shaved a little more off a quiet machine (batch 1 of the 48-px model on 2 cores, 2.0
   * against 2.3-2.5 ms), but with another process on one core a spinning thread waits on its descheduled partner, and
   * a lone request fell from 150 to 80 images/s (docs/results.md).
   */
  loneThreads?: number;
  /** Injected in tests; defaults to what onnxruntime-node reports. */
  available?: readonly string[];
  /** Tests only: lets crashNextRun() make a worker exit mid-request. */
  testHooks?: boolean;
  /** Told about each worker that died and each respawn, for logs and metrics. */
  onWorkerEvent?: (event: WorkerEvent) => void;
}

export type WorkerEvent = { kind: 'exited'; slot: number; reason: string } | { kind: 'respawned'; slot: number } | { kind: 'respawn-failed'; slot: number; reason: string };

interface Pending {
  resolve: (outputs: OutputTensor[]) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  alive: boolean;
  /** Whether its worker holds the lone-run session. */
  lone: boolean;
}

type Ready = Extract<WorkerReply, { kind: 'ready' }>;

/** Longest pause between respawn attempts of a worker that keeps failing to start. */
const MAX_RESPAWN_BACKOFF_MS = 5_000;

/** Starts one worker and resolves once its session loaded; rejects (after terminating it) when it cannot. */
function spawnWorker(init: WorkerInit): Promise<{ worker: Worker; ready: Ready }> {
  const entry = workerEntry();
  const worker = new Worker(entry.entry, { workerData: init, eval: entry.eval });
  return new Promise((resolve, reject) => {
    const onMessage = (msg: WorkerReply) => {
      off();
      if (msg.kind === 'ready') resolve({ worker, ready: msg });
      else void worker.terminate().then(() => reject(new Error(msg.kind === 'failed' ? msg.message : `unexpected first message ${msg.kind}`)));
    };
    const onError = (err: Error) => {
      off();
      void worker.terminate().then(() => reject(err));
    };
    const onExit = (code: number) => {
      off();
      reject(new Error(`session worker exited with code ${code} during start`));
    };
    // Remove exactly these: Worker keeps internal listeners (port ref counting) that removeAllListeners would break.
    const off = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

export class SessionPool {
  private nextId = 0;
  private closing = false;
  /** Workers respawned since start. */
  restarts = 0;
  /** Batches run on the lone-run session since start. */
  loneRuns = 0;

  private constructor(
    private readonly slots: Slot[],
    /** What each slot's worker is started (and restarted) with: the first one also holds the lone-run session. */
    private readonly inits: WorkerInit[],
    private readonly onWorkerEvent: (event: WorkerEvent) => void,
    /** The provider the sessions actually loaded with. */
    readonly executionProvider: string,
    readonly plan: ProviderPlan,
    /** Providers that were tried and failed, with the first line of their error. */
    readonly failures: string[],
  ) {}

  /** Starts the workers and waits until each has a session; rejects (and stops them) if any cannot load the model. */
  static async start(opts: PoolOptions): Promise<SessionPool> {
    const plan = planProviders(opts.preferredProviders, opts.available ?? availableProviders());
    const init: WorkerInit = {
      modelPath: opts.modelPath,
      inputName: opts.inputName,
      outputNames: [opts.outputName, ...(opts.extraOutputs ?? [])],
      attempts: plan.attempts,
      sessionOptions: sessionOptions(opts.intraOpThreads),
      testHooks: opts.testHooks ?? false,
    };
    if (opts.workers < 1) throw new Error('the pool needs at least one worker');
    const lone = opts.loneThreads !== undefined && opts.loneThreads > opts.intraOpThreads;
    const inits = Array.from({ length: opts.workers }, (_, i) =>
      i === 0 && lone ? { ...init, loneSessionOptions: sessionOptions(opts.loneThreads as number) } : init,
    );
    const started = await Promise.allSettled(inits.map((i) => spawnWorker(i)));
    const workers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const stopAll = () => Promise.all(workers.map((w) => w.worker.terminate()));
    if (failed) {
      await stopAll();
      throw failed.reason;
    }
    const first = (workers[0] as { ready: Ready }).ready;
    const mismatch =
      first.inputNames.length !== 1 || first.inputNames[0] !== opts.inputName
        ? `session inputs are [${first.inputNames.join(', ')}], expected [${opts.inputName}]`
        : !init.outputNames.every((name) => first.outputNames.includes(name))
          ? `session outputs are [${first.outputNames.join(', ')}], expected ${init.outputNames.join(', ')}`
          : undefined;
    if (mismatch) {
      await stopAll();
      throw new Error(mismatch);
    }
    const slots = workers.map((w, index): Slot => ({ index, worker: w.worker, pending: new Map(), alive: true, lone: w.ready.lone }));
    const pool = new SessionPool(slots, inits, opts.onWorkerEvent ?? (() => {}), first.provider, plan, first.failures);
    for (const slot of slots) pool.listen(slot);
    return pool;
  }

  /** Workers the pool keeps running (the configured count, whether or not one is respawning right now). */
  get size(): number {
    return this.slots.length;
  }

  /** The lone-run session's intra-op threads; undefined when the pool has none (not asked for, or not on the CPU). */
  get loneThreads(): number | undefined {
    return this.slots.some((s) => s.lone) ? this.inits[0]?.loneSessionOptions?.intraOpNumThreads : undefined;
  }

  /** Workers with a loaded session right now. */
  get alive(): number {
    return this.slots.filter((s) => s.alive).length;
  }

  private listen(slot: Slot): void {
    const { worker } = slot;
    let crash = '';
    worker.on('message', (msg: WorkerReply) => {
      if (msg.kind !== 'result' && msg.kind !== 'error') return;
      const p = slot.pending.get(msg.id);
      if (!p) return;
      slot.pending.delete(msg.id);
      if (msg.kind === 'result') p.resolve(msg.outputs);
      else p.reject(new Error(`inference failed: ${msg.message}`));
    });
    worker.on('error', (err) => {
      crash = err.message;
    });
    worker.once('exit', (code) => {
      if (slot.worker !== worker) return;
      slot.alive = false;
      const reason = crash ? `crashed: ${crash}` : `exited with code ${code}`;
      const pending = [...slot.pending.values()];
      slot.pending.clear();
      if (this.closing) {
        for (const p of pending) p.reject(new Error('the session pool is closed'));
        return;
      }
      for (const p of pending) p.reject(new InferenceInterrupted(`the session worker running this batch ${reason}; it is being restarted`));
      this.onWorkerEvent({ kind: 'exited', slot: slot.index, reason });
      void this.respawn(slot);
    });
  }

  /** Replaces a dead worker, retrying with growing pauses until one starts or the pool closes. */
  private async respawn(slot: Slot): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        const { worker, ready } = await spawnWorker(this.inits[slot.index] as WorkerInit);
        if (this.closing) {
          await worker.terminate();
          return;
        }
        slot.worker = worker;
        slot.alive = true;
        slot.lone = ready.lone;
        this.restarts++;
        this.listen(slot);
        this.onWorkerEvent({ kind: 'respawned', slot: slot.index });
        return;
      } catch (err) {
        this.onWorkerEvent({ kind: 'respawn-failed', slot: slot.index, reason: err instanceof Error ? err.message : String(err) });
        await new Promise((r) => setTimeout(r, Math.min(MAX_RESPAWN_BACKOFF_MS, 100 * 2 ** attempt)));
      }
    }
  }

  /** Runs one batch (dims[0] = batch size) on the least busy worker; resolves with the output tensor. */
  async run(data: Float32Array, dims: number[]): Promise<OutputTensor> {
    return (await this.runAll(data, dims))[0] as OutputTensor;
  }

  /**
   * As run, resolving with outputName then every extra output, in PoolOptions order. A batch that starts while no
   * other runs goes to the lone-run session when the pool has one; otherwise to the least busy worker's own session.
   */
  runAll(data: Float32Array, dims: number[]): Promise<OutputTensor[]> {
    const live = this.slots.filter((s) => s.alive);
    const loneSlot = live.every((s) => s.pending.size === 0) ? live.find((s) => s.lone) : undefined;
    const slot = loneSlot ?? live.reduce<Slot | undefined>((best, s) => (!best || s.pending.size < best.pending.size ? s : best), undefined);
    if (!slot) return Promise.reject(new InferenceInterrupted('no session worker is running; one is being restarted'));
    if (loneSlot) this.loneRuns++;
    return this.post(slot, data, dims, loneSlot !== undefined);
  }

  /**
   * Runs `input()` once on every session of every live worker (the lone-run one included): a session's first run
   * allocates its arena and picks kernels, which readiness should wait for rather than a user's first request.
   */
  async warmUp(input: () => { data: Float32Array; dims: number[] }): Promise<void> {
    const runs = this.slots.filter((s) => s.alive).flatMap((s) => (s.lone ? [true, false] : [false]).map((lone) => ({ s, lone })));
    await Promise.all(
      runs.map(({ s, lone }) => {
        const { data, dims } = input();
        return this.post(s, data, dims, lone);
      }),
    );
  }

  private post(slot: Slot, data: Float32Array, dims: number[], lone: boolean): Promise<OutputTensor[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const req: WorkerRequest = { kind: 'run', id, data, dims, lone };
      slot.worker.postMessage(req, [data.buffer as ArrayBuffer]);
    });
  }

  /** Tests only (PoolOptions.testHooks): every live worker exits when its next batch arrives, as a native crash would. */
  crashNextRun(): void {
    if (!this.inits[0]?.testHooks) throw new Error('crashNextRun needs a pool started with testHooks');
    const req: WorkerRequest = { kind: 'crash-next' };
    for (const s of this.slots) if (s.alive) s.worker.postMessage(req);
  }

  /** Stops every worker; pending runs reject. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
