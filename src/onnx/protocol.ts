// The messages between the session pool and its workers (structured-clone safe): what a worker is started with, what
// it is asked and what it answers.
import type { SessionOptions } from './providers.js';

/** What the pool sends a worker at start (structured-clone safe). */
export interface WorkerInit {
  modelPath: string;
  inputName: string;
  /** Outputs every run returns, in this order. */
  outputNames: string[];
  /** Providers to try, in order; the first whose session loads is used. */
  attempts: string[];
  sessionOptions: SessionOptions;
  /** A second session for lone runs (PoolOptions.loneThreads), on the CPU provider only; absent: none. */
  loneSessionOptions?: SessionOptions;
  /** Enables the `crash-next` message; only tests set it (PoolOptions.testHooks), never config or HTTP. */
  testHooks: boolean;
}

export type WorkerRequest = { kind: 'run'; id: number; data: Float32Array; dims: number[]; lone: boolean } | { kind: 'crash-next' };

export type WorkerReply =
  | { kind: 'ready'; provider: string; failures: string[]; inputNames: string[]; outputNames: string[]; lone: boolean }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: OutputTensor[] }
  | { kind: 'error'; id: number; message: string };

export interface OutputTensor {
  data: Float32Array;
  dims: number[];
}
