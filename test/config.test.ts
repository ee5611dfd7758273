import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, sessionDefaults } from '../src/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults when nothing is set', () => {
    const c = loadConfig({}, 2);
    expect(c).toMatchObject({
      PORT: 8080,
      ASM_FER_MODEL_DIR: 'models/default',
      ASM_FER_EXECUTION_PROVIDERS: ['cpu'],
      ASM_FER_WORKERS: 2,
      ASM_FER_INTRA_OP_THREADS: 1,
      ASM_FER_LONE_RUN_THREADS: 2,
      ASM_FER_MAX_FILE_BYTES: 10 * 1024 * 1024,
      ASM_FER_MAX_FILES: 32,
      ASM_FER_MAX_PIXELS: 40_000_000,
      ASM_FER_LOG_LEVEL: 'info',
    });
  });

  it('parses numbers and the provider preference list', () => {
    const c = loadConfig({ PORT: '9000', ASM_FER_EXECUTION_PROVIDERS: 'CUDA, cpu', ASM_FER_MAX_BATCH_SIZE: '4' });
    expect(c.PORT).toBe(9000);
    expect(c.ASM_FER_EXECUTION_PROVIDERS).toEqual(['cuda', 'cpu']);
    expect(c.ASM_FER_MAX_BATCH_SIZE).toBe(4);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ ASM_FER_WORKERS: '' }, 2).ASM_FER_WORKERS).toBe(2);
  });

  it('picks workers x intra-op threads from the core count unless they are set', () => {
    expect([1, 2, 3, 4, 8, 16, 64].map((cores) => sessionDefaults(cores))).toEqual([
      { workers: 1, intraOpThreads: 1 },
      { workers: 2, intraOpThreads: 1 },
      { workers: 3, intraOpThreads: 1 },
      { workers: 4, intraOpThreads: 1 },
      { workers: 4, intraOpThreads: 2 },
      { workers: 8, intraOpThreads: 2 },
      { workers: 32, intraOpThreads: 2 },
    ]);
    expect(loadConfig({}, 8)).toMatchObject({ ASM_FER_WORKERS: 4, ASM_FER_INTRA_OP_THREADS: 2 });
    expect(loadConfig({ ASM_FER_WORKERS: '1' }, 8)).toMatchObject({ ASM_FER_WORKERS: 1, ASM_FER_INTRA_OP_THREADS: 2 });
    expect(loadConfig({ ASM_FER_INTRA_OP_THREADS: '1' }, 8)).toMatchObject({ ASM_FER_WORKERS: 8, ASM_FER_INTRA_OP_THREADS: 1 });
    expect(loadConfig({ ASM_FER_INTRA_OP_THREADS: '2' }, 2)).toMatchObject({ ASM_FER_WORKERS: 1, ASM_FER_INTRA_OP_THREADS: 2 });
  });

  it("gives a lone batch every session thread the pool has, unless told otherwise", () => {
    expect(loadConfig({}, 1)).toMatchObject({ ASM_FER_WORKERS: 1, ASM_FER_INTRA_OP_THREADS: 1, ASM_FER_LONE_RUN_THREADS: 1 });
    expect(loadConfig({}, 8)).toMatchObject({ ASM_FER_LONE_RUN_THREADS: 8 });
    expect(loadConfig({ ASM_FER_WORKERS: '3' }, 2)).toMatchObject({ ASM_FER_LONE_RUN_THREADS: 3 });
    expect(loadConfig({ ASM_FER_LONE_RUN_THREADS: '1' }, 4)).toMatchObject({ ASM_FER_WORKERS: 4, ASM_FER_LONE_RUN_THREADS: 1 });
    expect(() => loadConfig({ ASM_FER_LONE_RUN_THREADS: '0' })).toThrow(/ASM_FER_LONE_RUN_THREADS/);
  });

  it('has decoded-pixel budgets of 80 M per request and 160 M for the process, and refuses a process budget below the request one', () => {
    expect(loadConfig({})).toMatchObject({ ASM_FER_REQUEST_PIXEL_BUDGET: 80_000_000, ASM_FER_PROCESS_PIXEL_BUDGET: 160_000_000 });
    const attempt = () => loadConfig({ ASM_FER_REQUEST_PIXEL_BUDGET: '1000', ASM_FER_PROCESS_PIXEL_BUDGET: '999' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/^invalid ASM_FER_PROCESS_PIXEL_BUDGET="999": must be at least ASM_FER_REQUEST_PIXEL_BUDGET \(1000\)$/);
  });

  it('returns a frozen object', () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.ASM_FER_EXECUTION_PROVIDERS)).toBe(true);
  });

  it.each([
    ['ASM_FER_WORKERS', 'two'],
    ['ASM_FER_WORKERS', '0'],
    ['PORT', '70000'],
    ['ASM_FER_EXECUTION_PROVIDERS', 'cuda,tpu'],
    ['ASM_FER_LOG_LEVEL', 'loud'],
    ['ASM_FER_REQUEST_TIMEOUT_MS', '0'],
    ['ASM_FER_MAX_JSON_BYTES', '10'],
  ])('rejects %s=%s with one line naming the variable', (key, value) => {
    const attempt = () => loadConfig({ [key]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(new RegExp(`^invalid ${key}=`));
    try {
      attempt();
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('has safe defaults for the request timeout, JSON size and the API key (none: reload disabled, audit routes open)', () => {
    const c = loadConfig({});
    expect(c.ASM_FER_REQUEST_TIMEOUT_MS).toBe(30_000);
    expect(c.ASM_FER_MAX_JSON_BYTES).toBe(16 * 1024 * 1024);
    expect(c.ASM_FER_API_KEY).toBeUndefined();
  });

  it('defaults the audit trail to ./data, images off, drift at 0.1 after 50 items, online thresholds off', () => {
    expect(loadConfig({})).toMatchObject({
      ASM_FER_DATA_DIR: './data',
      ASM_FER_AUDIT_STORE_IMAGES: false,
      ASM_FER_STATS_WINDOW: 500,
      ASM_FER_DRIFT_THRESHOLD: 0.1,
      ASM_FER_DRIFT_MIN_SAMPLES: 50,
      ASM_FER_ONLINE_THRESHOLDS: false,
    });
    expect(loadConfig({}).ASM_FER_AUDIT_MAX_BYTES).toBeUndefined();
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('reads the flag value %s as %s', (value, expected) => {
    expect(loadConfig({ ASM_FER_ONLINE_THRESHOLDS: value }).ASM_FER_ONLINE_THRESHOLDS).toBe(expected);
  });

  it.each([
    ['ASM_FER_AUDIT_STORE_IMAGES', 'yes'],
    ['ASM_FER_DRIFT_THRESHOLD', '0'],
    ['ASM_FER_STATS_WINDOW', '0'],
    ['ASM_FER_AUDIT_MAX_BYTES', '1000'],
  ])('rejects %s=%s', (key, value) => {
    expect(() => loadConfig({ [key]: value })).toThrow(new RegExp(`^invalid ${key}=`));
  });

  it('names a bad API key without echoing it', () => {
    expect(() => loadConfig({ ASM_FER_API_KEY: 'short-secret' })).toThrow(/^invalid ASM_FER_API_KEY=\(hidden\): must be at least 16 characters$/);
  });

  it('selects a PostgreSQL trail by a postgres:// or postgresql:// URL, never echoes it, and keeps the SQLite cap for SQLite', () => {
    expect(loadConfig({}).ASM_FER_AUDIT_DB).toBeUndefined();
    expect(loadConfig({ ASM_FER_AUDIT_DB: 'postgresql://u:p@db:5432/audits' }).ASM_FER_AUDIT_DB).toBe('postgresql://u:p@db:5432/audits');
    expect(loadConfig({ ASM_FER_AUDIT_DB: 'postgres://db/audits' })).toMatchObject({ ASM_FER_AUDIT_DB_POOL_SIZE: 10, ASM_FER_AUDIT_DB_ACQUIRE_TIMEOUT_MS: 2000, ASM_FER_STATS_CACHE_MS: 2000 });
    const mysql = () => loadConfig({ ASM_FER_AUDIT_DB: 'mysql://u:secret@db/audits' });
    expect(mysql).toThrow(/^invalid ASM_FER_AUDIT_DB=\(hidden\): must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(mysql).not.toThrow(/secret/);
    expect(() => loadConfig({ ASM_FER_AUDIT_DB: 'postgres://db/audits', ASM_FER_AUDIT_MAX_BYTES: '1000000' })).toThrow(/^invalid ASM_FER_AUDIT_MAX_BYTES: it caps the SQLite trail only/);
    expect(() => loadConfig({ ASM_FER_AUDIT_DB_POOL_SIZE: '0' })).toThrow(/^invalid ASM_FER_AUDIT_DB_POOL_SIZE=/);
  });
});
