// The Kubernetes manifests' environment, parsed by the service's own schema: deploy/check_manifests.py
// (make test-deploy) checks that every name is one src/config.ts reads; this checks that the values are ones it accepts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config.js';

type Manifest = { kind: string; data?: Record<string, string>; stringData?: Record<string, string> };

const manifest = (path: string): Manifest => parseAllDocuments(readFileSync(path, 'utf8'))[0]!.toJS() as Manifest;

describe('deploy/kubernetes environment', () => {
  const configMap = manifest('deploy/kubernetes/configmap.yaml');
  const secret = manifest('deploy/kubernetes/examples/secret.yaml');

  it('every ConfigMap value is a string, as Kubernetes requires of ConfigMap data', () => {
    expect(configMap.kind).toBe('ConfigMap');
    for (const [key, value] of Object.entries(configMap.data ?? {})) expect(typeof value, key).toBe('string');
  });

  it('the ConfigMap with the example Secret configures a service loadConfig accepts, on the image port and data volume', () => {
    const config = loadConfig({ ...configMap.data, ...secret.stringData });
    expect(config).toMatchObject({ PORT: 8080, ASM_FER_DATA_DIR: '/app/data', ASM_FER_WORKERS: 2, ASM_FER_INTRA_OP_THREADS: 1 });
    expect(config.ASM_FER_API_KEY).toBe(secret.stringData?.ASM_FER_API_KEY);
  });
});
