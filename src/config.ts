// The service's configuration: parsed once from the environment, validated, frozen. The only reader of process.env.
import os from 'node:os';
import { z } from 'zod';

const MiB = 1024 * 1024;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** "true"/"1" or "false"/"0", so a flag reads the same in a shell, a compose file and a Kubernetes manifest. */
const flag = z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1');

const providers = z
  .string()
  .transform((s) => s.split(',').map((p) => p.trim().toLowerCase()).filter((p) => p.length > 0))
  .pipe(z.array(z.enum(['cuda', 'tensorrt', 'webgpu', 'cpu'])).min(1));

/** Each key is the environment variable's name; the description is what `--help`-style docs would show. */
export const configSchema = z.object({
  PORT: int(0, 65535).default(8080).describe('TCP port to listen on (0 picks a free one).'),
  ASM_FER_HOST: z.string().min(1).default('0.0.0.0').describe('Interface to bind.'),
  ASM_FER_MODEL_DIR: z.string().min(1).default('models/default').describe('Folder holding model.json and the ONNX file it names.'),
  ASM_FER_EXECUTION_PROVIDERS: providers
    .default(['cpu'])
    .describe('Comma-separated ONNX Runtime execution providers in order of preference, e.g. "cuda,cpu". CPU is always the last resort.'),
  // Unset: from the machine's core count by sessionDefaults() below.
  ASM_FER_WORKERS: int(1, 64).optional().describe('Worker threads, one ONNX session each; a crashed worker is respawned. Default: from the core count (docs/configuration.md, "Threads").'),
  ASM_FER_INTRA_OP_THREADS: int(1, 256)
    .optional()
    .describe('ONNX Runtime intra-op threads per session (workers x threads <= cores). Default: from the core count (docs/configuration.md, "Threads").'),
  ASM_FER_LONE_RUN_THREADS: int(1, 256)
    .optional()
    .describe(
      'Intra-op threads of one more expression-model session (on the first worker) that runs a batch starting while no other batch runs, so a lone request uses the cores the idle workers would. Default: workers x intra-op threads; at most ASM_FER_INTRA_OP_THREADS: no such session (docs/configuration.md, "Threads").',
    ),
  ASM_FER_MAX_BATCH_SIZE: int(1, 1024).default(16).describe('Most images merged into one inference call.'),
  ASM_FER_MAX_QUEUE_DELAY_MS: z.coerce.number().min(0).max(10_000).default(2).describe('Longest wait for more images before a partial batch runs, while another batch is running.'),
  ASM_FER_IDLE_QUEUE_DELAY_MS: z.coerce
    .number()
    .min(0)
    .max(10_000)
    .default(0)
    .describe('Longest wait for more images when no batch is running; 0 runs the images that arrived together at once (an idle service gains nothing by waiting).'),
  ASM_FER_MAX_QUEUE: int(1, 100_000).default(256).describe('Images allowed to wait for a batch, and inference requests allowed in progress; beyond either, requests get 503 with Retry-After.'),
  ASM_FER_MAX_FILE_BYTES: int(1, 1024 * MiB).default(10 * MiB).describe('Largest accepted image part, in bytes.'),
  ASM_FER_MAX_FILES: int(1, 1024).default(32).describe('Most images in one request (image parts, or the batch dimension of a v2 tensor).'),
  ASM_FER_MAX_PIXELS: int(1, 1_000_000_000).default(40_000_000).describe('Largest accepted image area (width x height), checked before decoding.'),
  // Decoded RGB costs about 3.3 bytes a pixel while held (bench/memory-abuse.ts); 160 M pixels, about 530 MB, plus the
  // models, the heap and what the garbage collector has not yet freed keeps the process under its 1.5 GiB ceiling.
  ASM_FER_REQUEST_PIXEL_BUDGET: int(1, 10_000_000_000)
    .default(80_000_000)
    .describe("Most decoded pixels one request may cost: every image's area, plus the detector's letterbox and the face crops when detecting; checked from the headers before decoding, 413 beyond."),
  ASM_FER_PROCESS_PIXEL_BUDGET: int(1, 10_000_000_000)
    .default(160_000_000)
    .describe('Most decoded pixels all requests in progress may hold at once (at least ASM_FER_REQUEST_PIXEL_BUDGET); a request that would pass it gets 503 with Retry-After.'),
  ASM_FER_MAX_JSON_BYTES: int(1024, 1024 * MiB)
    .default(16 * MiB)
    .describe('Largest accepted JSON request body (the v2 infer tensor), in bytes.'),
  ASM_FER_REQUEST_TIMEOUT_MS: int(1, 600_000)
    .default(30_000)
    .describe('Longest time a request may take before it is answered 503 (request-timeout) with Retry-After.'),
  ASM_FER_API_KEY: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe(
      'Bearer key for the audit routes (/v1/audit, /v1/audits*) and POST /v1/models/reload; unset leaves the audit routes open and disables reload over HTTP (SIGHUP still reloads).',
    ),
  ASM_FER_DATA_DIR: z.string().min(1).default('./data').describe('Folder of the audit trail (SQLite database audits.db with its WAL files); created when missing.'),
  ASM_FER_AUDIT_DB: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL (unset: the SQLite trail under ASM_FER_DATA_DIR)')
    .optional()
    .describe(
      'PostgreSQL URL of a shared audit trail (postgres://user:password@host:5432/db); unset keeps the embedded SQLite trail under ASM_FER_DATA_DIR. Replicas that share it also share the live windows, drift and online thresholds.',
    ),
  ASM_FER_AUDIT_DB_POOL_SIZE: int(1, 1000).default(10).describe('PostgreSQL trail: most connections this process holds.'),
  ASM_FER_AUDIT_DB_ACQUIRE_TIMEOUT_MS: int(1, 600_000)
    .default(2000)
    .describe('PostgreSQL trail: longest wait for a connection (every one busy, or the server slow to answer) before the request gets 503 audit-store-unavailable.'),
  ASM_FER_AUDIT_DB_QUERY_TIMEOUT_MS: int(1, 600_000).default(10_000).describe('PostgreSQL trail: longest a statement may run (statement_timeout) before the request gets 503.'),
  ASM_FER_STATS_CACHE_MS: int(0, 3_600_000)
    .default(2000)
    .describe('Shared (PostgreSQL) trail: windows read from it for drift, online thresholds and the live summary are reused this long before they are read again.'),
  ASM_FER_SHUTDOWN_DELAY_MS: int(0, 600_000)
    .default(0)
    .describe('On SIGTERM, answer /v2/health/ready 503 this long while still serving, so a load balancer stops sending before the listener closes.'),
  ASM_FER_AUDIT_STORE_IMAGES: flag.default(false).describe('Keep each audited image in the audit trail, not only its sha256.'),
  ASM_FER_AUDIT_MAX_BYTES: int(64 * 1024, Number.MAX_SAFE_INTEGER)
    .optional()
    .describe('Largest size of the audit database in bytes; beyond it audits get 503 audit-store-unavailable as on a full disk. Unset: no cap but the disk.'),
  ASM_FER_STATS_WINDOW: int(1, 1_000_000).default(500).describe('Live statistics: the sliding window holds the last this-many audited items of each class.'),
  ASM_FER_DRIFT_THRESHOLD: z.coerce
    .number()
    .gt(0)
    .max(1)
    .default(0.1)
    .describe("Drift: a class is flagged when its window mean probability of the submitted label differs from the bundle's training-time class mean by more than this."),
  ASM_FER_DRIFT_MIN_SAMPLES: int(1, 1_000_000)
    .default(50)
    .describe('Fewest items of a class in the window before it can be flagged for drift or its live mean replaces the training mean in online thresholds.'),
  ASM_FER_ONLINE_THRESHOLDS: flag
    .default(false)
    .describe("Audit with thresholds re-estimated from the window's class means by the training rule (Adaptive Threshold Learning) instead of the bundle's."),
  ASM_FER_DETECTOR: z
    .enum(['blazeface-back-256', 'blazeface-front-128'])
    .default('blazeface-back-256')
    .describe('Face detector: the 256 px "back" BlazeFace (small faces, group photos) or the 128 px "front" one (one large face, faster).'),
  ASM_FER_DETECT_MIN_SCORE: z.coerce.number().gt(0).lt(1).default(0.5).describe('Face detection score threshold (sigmoid of the logit), as MediaPipe uses.'),
  ASM_FER_DETECT_IOU: z.coerce.number().gt(0).lt(1).default(0.3).describe('Detections overlapping by at least this IoU are merged into one face (weighted non-maximum suppression).'),
  ASM_FER_DETECT_MAX_FACES: int(1, 256).default(16).describe('Most faces reported (and classified) per image; the highest-scoring are kept.'),
  ASM_FER_DETECT_AUTO_MAX_SIDE: int(0, 100_000)
    .default(160)
    .describe('detect=auto treats an image whose longer side is at most this many pixels as a face crop and does not run the detector.'),
  ASM_FER_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((o) => o.trim()).filter((o) => o.length > 0))
    .pipe(z.array(z.union([z.literal('*'), z.url({ protocol: /^https?$/ }).refine((o) => URL.canParse(o) && new URL(o).origin === o, 'must be a bare origin like https://app.example.com')])))
    .describe('Comma-separated browser origins allowed to call the API (CORS), or "*" for any; empty (the default) sends no CORS headers.'),
  LABEL_STUDIO_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('Label Studio to audit annotations of (e.g. http://localhost:8080): tasks, images and predictions are read and written there, and images are fetched from nowhere else.'),
  LABEL_STUDIO_API_KEY: z
    .string()
    .min(6, 'must be at least 6 characters')
    .optional()
    .describe("Label Studio token: a personal access token (a JWT, from Account & Settings) or a legacy token; sent only to LABEL_STUDIO_URL, never logged."),
  ASM_FER_LABEL_STUDIO_SECRET: z
    .string()
    .min(16, 'must be at least 16 characters')
    .optional()
    .describe(
      'Shared secret of the Label Studio routes (/label-studio/*): sent as the basic-auth password of the ML backend connection or as "Authorization: Bearer <secret>" by the webhook. Unset: the routes answer 403.',
    ),
  ASM_FER_LABEL_STUDIO_LABEL_MAP: z
    .string()
    .default('')
    .transform((s, ctx) => {
      const map: Record<string, string> = {};
      for (const pair of s.split(',').map((p) => p.trim()).filter((p) => p.length > 0)) {
        const at = pair.lastIndexOf('=');
        if (at <= 0 || at === pair.length - 1) {
          ctx.addIssue({ code: 'custom', message: `"${pair}" is not Choice=class` });
          return z.NEVER;
        }
        map[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
      }
      return Object.freeze(map);
    })
    .describe(
      'Label Studio choices that are not named like a model class, mapped onto one: "Happy=happiness,Sad=sadness" (others match a class by name, ignoring case). The default of every project without a map of its own (PUT /label-studio/projects/{id}/label-map).',
    ),
  ASM_FER_LABEL_STUDIO_TIMEOUT_MS: int(100, 600_000).default(10_000).describe('Time limit of each call to Label Studio (task, project, image, prediction).'),
  ASM_FER_LABEL_STUDIO_RETRY_MAX_MS: int(100, 86_400_000)
    .default(300_000)
    .describe('Longest wait between attempts at an annotation event that failed for a reason that may pass (Label Studio or the image unreachable); attempts start 1 s apart and double.'),
  ASM_FER_LABEL_STUDIO_SWEEP_MS: int(0, 86_400_000)
    .default(300_000)
    .describe(
      'Pause between sweeps of the connected projects for annotations no webhook brought (a webhook lost or refused), counted from the end of the last sweep; each costs one task-list call per 100 tasks and one annotation list per annotated task. 0: sweep at start only.',
    ),
  ASM_FER_LABEL_STUDIO_LEASE_MS: int(100, 3_600_000)
    .default(15_000)
    .describe(
      'PostgreSQL queue (ASM_FER_AUDIT_DB): how long a replica\'s claim on an annotation event holds unless renewed (it is renewed every third of it while the event is worked on); the longest an event waits after the replica holding it died. Replicas\' clocks must agree to well within it.',
    ),
  ASM_FER_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),
});

type Parsed = z.infer<typeof configSchema>;
export type Config = Readonly<
  Omit<Parsed, 'ASM_FER_WORKERS' | 'ASM_FER_INTRA_OP_THREADS' | 'ASM_FER_LONE_RUN_THREADS'> & {
    ASM_FER_WORKERS: number;
    ASM_FER_INTRA_OP_THREADS: number;
    ASM_FER_LONE_RUN_THREADS: number;
  }
>;

/**
 * Workers x intra-op threads for a machine with `cores` cores: one session thread per core, in single-threaded
 * workers up to 4 cores and in workers of 2 intra-op threads above. Separate sessions never wait for each other, so
 * the event loop (HTTP, multipart, decoding: about a fifth of an image's CPU under load) can share their cores, while
 * the intra-op threads of one session meet at a barrier after every operator and stall whenever the event loop
 * takes a sibling's core; and unlike 1 x 1, 2 x 1 leaves inference both cores when the machine is quiet. On 2 shared
 * cores (issue 22, bench/e5-workers.ts) 1 x 1, 2 x 1 and 1 x 2 measured within noise of each other (284 / 283 / 266
 * images/s at 3.08 / 3.07 / 3.45 CPU ms per image in one run; 2 x 1 / 1 x 2: 184 / 194 at 3.92 / 3.71 in a more
 * contended one), so the rule follows that reasoning; a second worker costs 95 MiB. Above 4 cores, 2 threads per
 * worker bound the sessions' memory (an arena and a model copy each) as cores grow; not measured (no larger machine
 * here). With `intraOpThreads` set, workers = cores / it.
 */
export function sessionDefaults(cores: number, intraOpThreads?: number): { workers: number; intraOpThreads: number } {
  const sessionThreads = Math.max(1, cores);
  const threads = intraOpThreads ?? (cores <= 4 ? 1 : 2);
  return { workers: Math.max(1, Math.floor(sessionThreads / threads)), intraOpThreads: threads };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Variables named in errors but never echoed. */
const SECRETS = new Set(['ASM_FER_API_KEY', 'ASM_FER_AUDIT_DB', 'LABEL_STUDIO_API_KEY', 'ASM_FER_LABEL_STUDIO_SECRET']);

/**
 * Parses `env` (process.env by default); throws ConfigError whose message is one line naming the bad variable.
 * `cores` sets the default workers and intra-op threads (sessionDefaults).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, cores = os.availableParallelism()): Config {
  const keys = Object.keys(configSchema.shape) as (keyof typeof configSchema.shape)[];
  // Empty strings count as unset so `ASM_FER_WORKERS=` in a compose file means "default", not "0".
  const relevant = Object.fromEntries(keys.map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const parsed = configSchema.safeParse(relevant);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? 'environment');
    // A secret is named, never echoed.
    const shown = SECRETS.has(key) ? '(hidden)' : JSON.stringify(env[key] ?? '');
    throw new ConfigError(`invalid ${key}=${shown}: ${issue?.message ?? 'invalid value'}`);
  }
  if (parsed.data.ASM_FER_AUDIT_DB !== undefined && parsed.data.ASM_FER_AUDIT_MAX_BYTES !== undefined) {
    throw new ConfigError('invalid ASM_FER_AUDIT_MAX_BYTES: it caps the SQLite trail only; a PostgreSQL trail is bounded by its server');
  }
  const { ASM_FER_REQUEST_PIXEL_BUDGET: perRequest, ASM_FER_PROCESS_PIXEL_BUDGET: perProcess } = parsed.data;
  if (perProcess < perRequest) {
    throw new ConfigError(`invalid ASM_FER_PROCESS_PIXEL_BUDGET=${JSON.stringify(String(perProcess))}: must be at least ASM_FER_REQUEST_PIXEL_BUDGET (${perRequest})`);
  }
  const { LABEL_STUDIO_URL: lsUrl, LABEL_STUDIO_API_KEY: lsKey, ASM_FER_LABEL_STUDIO_SECRET: lsSecret } = parsed.data;
  // The backend is all or nothing: its routes need the secret, and auditing needs Label Studio's URL and a token.
  if (lsUrl !== undefined || lsKey !== undefined || lsSecret !== undefined) {
    const missing = [lsUrl === undefined && 'LABEL_STUDIO_URL', lsKey === undefined && 'LABEL_STUDIO_API_KEY', lsSecret === undefined && 'ASM_FER_LABEL_STUDIO_SECRET'].filter((k) => k !== false);
    if (missing.length > 0) throw new ConfigError(`invalid ${missing[0]}=(unset): the Label Studio backend needs LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and ASM_FER_LABEL_STUDIO_SECRET together`);
  }
  const sessions = sessionDefaults(cores, parsed.data.ASM_FER_INTRA_OP_THREADS);
  const workers = parsed.data.ASM_FER_WORKERS ?? sessions.workers;
  const threads = parsed.data.ASM_FER_INTRA_OP_THREADS ?? sessions.intraOpThreads;
  return Object.freeze({
    ...parsed.data,
    ASM_FER_WORKERS: workers,
    ASM_FER_INTRA_OP_THREADS: threads,
    // A lone batch may use every session thread the pool has, which is what the idle workers would have used.
    ASM_FER_LONE_RUN_THREADS: parsed.data.ASM_FER_LONE_RUN_THREADS ?? workers * threads,
    ASM_FER_EXECUTION_PROVIDERS: Object.freeze([...parsed.data.ASM_FER_EXECUTION_PROVIDERS]),
    ASM_FER_CORS_ORIGINS: Object.freeze([...parsed.data.ASM_FER_CORS_ORIGINS]),
  }) as Config;
}
