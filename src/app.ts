// createApp(deps): wires the model host (bundle, session pool, batcher), the face detector, the audit trail and
// metrics into the HTTP app; never listens.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { AuditTrail } from './audit/trail.js';
import type { Config } from './config.js';
import type { FaceDetector } from './faces/detector.js';
import type { ModelHost } from './inference/model-host.js';
import type { Metrics } from './metrics.js';
import { createHttpApp, type HttpApp, type Readiness } from './http/server.js';

/** openapi.yaml and package.json sit at the repository root, one level above src/ and dist/. */
export const API_SPEC_PATH = fileURLToPath(new URL('../openapi.yaml', import.meta.url));
const PACKAGE_JSON = fileURLToPath(new URL('../package.json', import.meta.url));

export interface AppDeps {
  config: Config;
  host: ModelHost;
  detector: FaceDetector;
  metrics: Metrics;
  logger: Logger;
  readiness: Readiness;
  trail: AuditTrail;
}

export function createApp(deps: AppDeps): HttpApp {
  const { host, metrics, trail } = deps;
  metrics.trackQueueDepth(() => host.current.inference.queued);
  metrics.trackAuditStats(() => {
    const { manifest } = host.current;
    return { live: trail.live.snapshot(manifest.classes), drift: trail.drift(manifest) };
  });
  const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
  return createHttpApp({ ...deps, apiSpecPath: API_SPEC_PATH, serverVersion: version });
}
