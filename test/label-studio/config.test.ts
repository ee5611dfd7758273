import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { moduleOptions } from '../../src/service.js';

const ls = { LABEL_STUDIO_URL: 'http://127.0.0.1:18480', LABEL_STUDIO_API_KEY: 'token-0123456789', ASM_FER_LABEL_STUDIO_SECRET: 'secret-0123456789abcdef' };

describe('Label Studio settings', () => {
  it('are all or nothing, naming the missing one', () => {
    expect(loadConfig(ls).LABEL_STUDIO_URL).toBe(ls.LABEL_STUDIO_URL);
    expect(() => loadConfig({ ...ls, ASM_FER_LABEL_STUDIO_SECRET: undefined })).toThrow(/invalid ASM_FER_LABEL_STUDIO_SECRET=\(unset\)/);
    expect(() => loadConfig({ LABEL_STUDIO_URL: ls.LABEL_STUDIO_URL })).toThrow(/LABEL_STUDIO_API_KEY/);
  });

  it('never echo the token or the secret', () => {
    for (const key of ['LABEL_STUDIO_API_KEY', 'ASM_FER_LABEL_STUDIO_SECRET'] as const) {
      let err: unknown;
      try {
        loadConfig({ ...ls, [key]: 'short' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(`${key}=(hidden)`);
      expect((err as Error).message).not.toContain('short');
    }
  });

  it('sweep every 5 minutes by default; 0 turns the periodic sweep off', () => {
    expect(loadConfig({}).ASM_FER_LABEL_STUDIO_SWEEP_MS).toBe(300_000);
    expect(loadConfig({ ASM_FER_LABEL_STUDIO_SWEEP_MS: '0' }).ASM_FER_LABEL_STUDIO_SWEEP_MS).toBe(0);
    expect(() => loadConfig({ ASM_FER_LABEL_STUDIO_SWEEP_MS: '-1' })).toThrow(/ASM_FER_LABEL_STUDIO_SWEEP_MS/);
  });

  it('lease a claim on the shared queue for 15 s by default, at least 100 ms; the queue follows the trail', () => {
    expect(loadConfig({}).ASM_FER_LABEL_STUDIO_LEASE_MS).toBe(15_000);
    expect(() => loadConfig({ ASM_FER_LABEL_STUDIO_LEASE_MS: '50' })).toThrow(/ASM_FER_LABEL_STUDIO_LEASE_MS/);
    expect(moduleOptions(loadConfig({ ...ls, ASM_FER_DATA_DIR: '/data' })).labelStudio?.queue).toEqual({ kind: 'sqlite', dir: '/data' });
    expect(moduleOptions(loadConfig({ ...ls, ASM_FER_AUDIT_DB: 'postgres://u:p@db/a', ASM_FER_LABEL_STUDIO_LEASE_MS: '2000' })).labelStudio).toMatchObject({
      queue: { kind: 'postgres', url: 'postgres://u:p@db/a', poolSize: 10 },
      worker: { leaseMs: 2000, pollMs: 5000 },
    });
  });

  it('parse the choice map and refuse a pair without "="', () => {
    expect(loadConfig({ ASM_FER_LABEL_STUDIO_LABEL_MAP: 'Happy=happiness, Sad = sadness' }).ASM_FER_LABEL_STUDIO_LABEL_MAP).toEqual({ Happy: 'happiness', Sad: 'sadness' });
    expect(() => loadConfig({ ASM_FER_LABEL_STUDIO_LABEL_MAP: 'Happy' })).toThrow(/ASM_FER_LABEL_STUDIO_LABEL_MAP.*"Happy" is not Choice=class/);
  });
});
