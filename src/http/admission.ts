// Admission control for the inference routes: once ASM_FER_MAX_QUEUE requests are already in progress, the next is
// refused 503 before its body is read, parsed or decoded, so an overloaded service spends almost nothing on the work it
// turns away and keeps its cores for the work it accepted (bench/overload.ts, docs/results.md).
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { Overloaded } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { sendProblem } from './problem.js';

const INFERENCE = /^\/(?:v1\/(?:predict|audit)|v2\/models\/[^/]+\/infer)$/;

/**
 * Counts inference requests from arrival to the end of their response and refuses new ones beyond `limit`. Every
 * request carries at least one image, so this never admits more than the batcher's queue could hold; the batcher
 * still refuses a multi-image request that does not fit.
 */
export function admission(limit: number, logger: Logger, metrics: Metrics): RequestHandler {
  let inProgress = 0;
  return (req, res, next) => {
    if (req.method !== 'POST' || !INFERENCE.test(req.path)) return next();
    if (inProgress >= limit) {
      // The unread body is discarded by Node before the connection's next request.
      sendProblem(new Overloaded(`${inProgress} inference requests are in progress, the limit is ${limit} (ASM_FER_MAX_QUEUE)`), req, res, logger, metrics);
      return;
    }
    inProgress++;
    res.once('close', () => inProgress--);
    next();
  };
}
