// GET /v1/models: what is served — classes, thresholds, input contract, execution provider, provenance summary.
import { Router } from 'express';
import type { components } from './api.gen.js';
import type { HttpDeps } from './server.js';

type ModelList = components['schemas']['ModelList'];

export function modelsRouter(deps: HttpDeps): Router {
  const { manifest: m } = deps;
  const router = Router();
  router.get('/v1/models', (_req, res) => {
    const body: ModelList = {
      models: [
        {
          name: m.name,
          version: m.version,
          classes: [...m.classes],
          thresholds: Object.fromEntries(m.classes.map((c) => [c, { clean: m.thresholds[c]?.clean ?? 1, noisy: m.thresholds[c]?.noisy ?? 0 }])),
          input: { ...m.input },
          executionProvider: deps.executionProvider,
          provenance: {
            dataset: m.provenance.dataset,
            noise: m.provenance.noise,
            method: m.provenance.method,
            evalSplit: m.provenance.evalSplit,
            accuracy: m.provenance.metrics.accuracy,
            createdAt: m.provenance.createdAt,
          },
        },
      ],
    };
    res.json(body);
  });
  return router;
}
