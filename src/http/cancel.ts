// Each request's cancellation: an AbortSignal that fires when the request runs past ASM_FER_REQUEST_TIMEOUT_MS (after
// its 503 is sent) or when the client goes away before its answer, so the work behind it stops where it stands —
// images not yet decoded are skipped, queued detections and inferences leave their queues.
import type { RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { RequestTimeout, SlowRequest } from '../errors.js';
import type { DetectMode, FindOptions } from '../faces/find-faces.js';
import type { ServedModel } from '../inference/model-host.js';
import type { Metrics } from '../metrics.js';
import type { HttpDeps } from './deps.js';
import { sendProblem } from './problem.js';

/** The abort reason when the connection closed before the answer was written; never sent to anyone. */
export class ClientGone extends Error {
  override name = 'ClientGone';
}

/** The request's signal (set by `cancellation`; a signal that never aborts where that middleware did not run). */
export function signalOf(res: Response): AbortSignal {
  return (res.locals.signal as AbortSignal | undefined) ?? new AbortController().signal;
}

/**
 * Answers a request still unanswered after `ms` — 408 request-too-slow while its body is still arriving (the client
 * is slow), else 503 request-timeout (the service is) — and then aborts its signal; a connection that closes before
 * the answer aborts it too. The handler's late failure is dropped by sendProblem.
 */
export function cancellation(ms: number, logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const controller = new AbortController();
    res.locals.signal = controller.signal;
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      const err = req.complete ? new RequestTimeout(ms) : new SlowRequest(`the request body did not arrive within ${ms} ms (ASM_FER_REQUEST_TIMEOUT_MS)`);
      sendProblem(err, req, res, logger, metrics);
      metrics.recordCancelledRequest('timeout');
      controller.abort(err);
    }, ms);
    res.once('close', () => {
      clearTimeout(timer);
      if (res.writableFinished || controller.signal.aborted) return;
      metrics.recordCancelledRequest('client-gone');
      controller.abort(new ClientGone('the client closed the connection before the answer'));
    });
    next();
  };
}

/**
 * Runs one image request's work under its signal and its share of the pixel budget: `work` gets the face-search
 * options (limits, detector, lease, signal) and the signal; the pixels it reserved are given back when it settles,
 * answered or not, since only then are its decoded images no longer held.
 */
export async function withRequestWork<T>(
  deps: Pick<HttpDeps, 'config' | 'detector' | 'pixels' | 'metrics'>,
  res: Response,
  mode: DetectMode,
  model: Pick<ServedModel, 'manifest'>,
  work: (search: FindOptions, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const { config, detector, pixels, metrics } = deps;
  const signal = signalOf(res);
  const lease = pixels.lease();
  try {
    return await work(
      {
        mode,
        spec: model.manifest.input,
        maxPixels: config.ASM_FER_MAX_PIXELS,
        autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE,
        detector,
        pixels: lease,
        signal,
        onCancelled: (n) => metrics.recordCancelledImages('decode', n),
      },
      signal,
    );
  } finally {
    lease.release();
  }
}
