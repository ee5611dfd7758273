// Each image request's stage timings, answered as a Server-Timing header (W3C Server Timing) so that any client can see
// where its time went: intake (from the request's arrival to its body read, parsed and checked), decode (every image
// probed, decoded and cut to its faces), queue (waiting for a batch), infer (the batch's run, worker round trip
// included) and total (arrival to the answer's headers; JSON encoding and sending follow).
import type { Response } from 'express';
import type { RunTiming } from '../inference/batcher.js';

export class RequestTiming implements RunTiming {
  readonly started = performance.now();
  intakeMs: number | undefined;
  decodeMs: number | undefined;
  queueMs = 0;
  inferMs = 0;

  /** Ends intake, when the handler starts: the body has been read and checked. */
  intakeDone(): void {
    this.intakeMs ??= performance.now() - this.started;
  }

  /** Runs `work` as the decode stage. */
  async decode<T>(work: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await work();
    } finally {
      this.decodeMs = performance.now() - t0;
    }
  }

  /** The header's value, with total up to now; a stage that did not run (no face, no inference) reads 0. */
  header(): string {
    const ms = (v: number | undefined) => (v ?? 0).toFixed(2);
    const total = performance.now() - this.started;
    return `intake;dur=${ms(this.intakeMs)}, decode;dur=${ms(this.decodeMs)}, queue;dur=${ms(this.queueMs)}, infer;dur=${ms(this.inferMs)}, total;dur=${ms(total)}`;
  }
}

/** The request's timing, started by the request context (server.ts); a fresh one where that did not run. */
export function timingOf(res: Response): RequestTiming {
  return ((res.locals.timing as RequestTiming | undefined) ??= new RequestTiming());
}

/** Sends `body` as JSON with the Server-Timing header. */
export function sendTimed(res: Response, body: unknown): void {
  res.setHeader('Server-Timing', timingOf(res).header());
  res.json(body);
}
