// Execution-provider choice (an ordered preference list crossed with what this onnxruntime build offers) and the
// session options every worker uses; tested in test/onnx/session-pool.test.ts by injecting the "available" list.
import { listSupportedBackends, type InferenceSession } from 'onnxruntime-node';

export type SessionOptions = Omit<InferenceSession.SessionOptions, 'executionProviders'>;

export interface ProviderPlan {
  /** Providers to try in order; always ends with cpu. */
  attempts: string[];
  /** Preferred providers this onnxruntime build does not offer at all. */
  unavailable: string[];
}

/**
 * The preference list crossed with what onnxruntime offers (immich's SUPPORTED_PROVIDERS idea). Providers are tried
 * one at a time so the one actually loaded is known; cpu is the last resort even when not listed.
 */
export function planProviders(preferred: readonly string[], available: readonly string[]): ProviderPlan {
  const offered = new Set(available.map((p) => p.toLowerCase()));
  const attempts: string[] = [];
  const unavailable: string[] = [];
  for (const p of preferred) {
    if (attempts.includes(p)) continue;
    if (offered.has(p) || p === 'cpu') attempts.push(p);
    else unavailable.push(p);
  }
  if (!attempts.includes('cpu')) attempts.push('cpu');
  return { attempts, unavailable };
}

/** Providers this onnxruntime-node build knows about (CUDA appears here even when its libraries are missing). */
export function availableProviders(): string[] {
  return listSupportedBackends().map((b) => b.name);
}

/** Session options for every worker; each value has its reason. */
export function sessionOptions(intraOpThreads: number): SessionOptions {
  return {
    // Per worker: workers x intra-op threads should not exceed the cores, or sessions fight over them.
    intraOpNumThreads: intraOpThreads,
    // One operator runs at a time in a CNN chain; a second pool of inter-op threads would only idle.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Full fusion costs a little start-up time and pays back on every batch.
    graphOptimizationLevel: 'all',
    // The arena keeps the largest batch's buffers; fine for a fixed-size model serving bounded batches.
    enableCpuMemArena: true,
    // Idle intra-op threads otherwise spin for a while after each batch, burning the cores that HTTP parsing and
    // decoding need; on 2 shared cores turning it off doubled in-process images/s and cut CPU per image by 40% (E5).
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    // Errors and fatal only (3). The shipped BlazeFace graphs carry constant-folding leftovers that no node uses, and at
    // warning level every session start printed a coloured "Removing initializer ..." line per leftover, read as a
    // fault by anyone starting the service. Real failures still print: a session error is level 3, and a provider
    // library that cannot load (cuda on a machine without it) is reported by onnxruntime's process-wide logger,
    // which this option does not touch.
    logSeverityLevel: 3,
  };
}
