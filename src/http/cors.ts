// CORS, off unless ASM_FER_CORS_ORIGINS lists origins: browsers on other origins get no access by default.
import type { RequestHandler } from 'express';

/** Request headers a browser client may send. */
const ALLOWED_HEADERS = 'Authorization, Content-Type, X-Request-Id';
/** Response headers a browser client may read beyond the CORS-safelisted ones. */
const EXPOSED_HEADERS = 'Retry-After, Server-Timing, X-Request-Id';
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * Adds CORS headers for allowed origins and answers their preflights with 204. A request from any other origin gets
 * no CORS headers (the browser then withholds the response); its preflight falls through to routing (404/405).
 */
export function cors(origins: readonly string[]): RequestHandler {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return (req, res, next) => {
    if (origins.length === 0) return next();
    const origin = req.get('origin');
    res.vary('Origin');
    if (!origin || !(any || allowed.has(origin))) return next();
    res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    if (req.method === 'OPTIONS' && req.get('access-control-request-method')) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
      res.status(204).end();
      return;
    }
    next();
  };
}
