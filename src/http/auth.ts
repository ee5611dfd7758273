// The optional API key (ASM_FER_API_KEY) in front of the audit and admin routes, compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { Forbidden, Unauthorized } from '../errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Comparing digests keeps the comparison constant-time whatever the lengths. */
function checkKey(req: Request, key: string): void {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
  if (!m || !timingSafeEqual(digest(m[1] as string), digest(key))) throw new Unauthorized('send Authorization: Bearer <ASM_FER_API_KEY>');
}

/** Audit routes: open when no key is configured, otherwise the key is required. */
export function apiKeyIfConfigured(key: string | undefined): RequestHandler {
  return (req, _res, next) => {
    if (key !== undefined) checkKey(req, key);
    next();
  };
}

/**
 * Admin routes: without a configured key the route is off (403); loopback-only would still admit any sidecar sharing
 * the network namespace, and SIGHUP already gives operators a keyless reload.
 */
export function apiKeyRequired(key: string | undefined, disabled: string): RequestHandler {
  return (req, _res, next) => {
    if (key === undefined) throw new Forbidden(disabled);
    checkKey(req, key);
    next();
  };
}
