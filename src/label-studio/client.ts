// The few Label Studio REST calls asm-fer makes (task, project, image, predictions), authenticated with either token
// form, and never leaving the configured Label Studio origin. The token appears only in request headers: never in an
// error, a log line or the trail.

/** Why a call failed, as a short fixed slug (a metric label and the queue's last_error), and whether to retry it. */
export class LabelStudioError extends Error {
  override name = 'LabelStudioError';
  constructor(
    readonly reason: string,
    readonly transient: boolean,
    detail: string,
  ) {
    super(detail);
  }
}

export interface LabelStudioOptions {
  /** The Label Studio origin (and optional base path), e.g. http://localhost:8080. */
  url: string;
  /** A legacy token ("Token <key>") or a personal access token (a JWT refresh token, exchanged for access tokens). */
  apiKey: string;
  /** Per-call time limit. */
  timeoutMs: number;
  /** Largest image accepted, in bytes (ASM_FER_MAX_FILE_BYTES). */
  maxImageBytes: number;
  /** Tests only: the fetch to use. */
  fetch?: typeof fetch;
}

export interface LsTask {
  id: number;
  project: number;
  data: Record<string, unknown>;
}

export interface NewPrediction {
  task: number;
  result: unknown[];
  score: number;
  model_version: string;
  /** Label Studio's per-prediction label-error score (its `mislabeling` field). */
  mislabeling?: number;
}

/** A JWT (three base64url parts) is a personal access token; anything else is a legacy token. */
export function isPersonalAccessToken(key: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]+$/.test(key);
}

/** Seconds-since-epoch `exp` of a JWT, or undefined when it has none. */
function jwtExpiryMs(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** An access token is renewed this long before it expires, so a call never starts with one about to lapse. */
const ACCESS_MARGIN_MS = 30_000;
/** Same-origin redirects followed for an image (Label Studio may redirect to a resolved storage URL on its origin). */
const MAX_REDIRECTS = 3;

export class LabelStudioClient {
  private readonly base: URL;
  private readonly fetch: typeof fetch;
  private access: { token: string; expiresMs: number } | undefined;

  constructor(private readonly opts: LabelStudioOptions) {
    this.base = new URL(opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
    this.fetch = opts.fetch ?? fetch;
  }

  get origin(): string {
    return this.base.origin;
  }

  getTask(id: number): Promise<LsTask> {
    return this.json<LsTask>('GET', `api/tasks/${id}`, undefined, 'task');
  }

  async getLabelConfig(projectId: number): Promise<string> {
    const p = await this.json<{ label_config?: unknown }>('GET', `api/projects/${projectId}`, undefined, 'project');
    if (typeof p.label_config !== 'string') throw new LabelStudioError('ls-bad-response', false, `project ${projectId} came without a label_config`);
    return p.label_config;
  }

  async createPrediction(p: NewPrediction): Promise<number> {
    const created = await this.json<{ id?: unknown }>('POST', 'api/predictions/', p, 'prediction');
    if (typeof created.id !== 'number') throw new LabelStudioError('ls-bad-response', false, 'Label Studio created a prediction without an id');
    return created.id;
  }

  /** One page (from 1) of project `projectId`'s tasks: ids and annotation counts, and how many tasks there are. */
  async listTasks(projectId: number, page: number, pageSize: number): Promise<{ tasks: { id: number; total_annotations?: number }[]; total: number }> {
    const body = await this.json<{ tasks?: unknown; total?: unknown }>('GET', `api/tasks/?project=${projectId}&page=${page}&page_size=${pageSize}`, undefined, 'task');
    if (!Array.isArray(body.tasks) || typeof body.total !== 'number') throw new LabelStudioError('ls-bad-response', true, 'the task list has no tasks or total');
    return { tasks: body.tasks as { id: number; total_annotations?: number }[], total: body.total };
  }

  /** The annotations of task `taskId`, as Label Studio serialises them (the same fields its webhook sends). */
  async listAnnotations(taskId: number): Promise<Record<string, unknown>[]> {
    const list = await this.json<unknown>('GET', `api/tasks/${taskId}/annotations/`, undefined, 'annotation');
    if (!Array.isArray(list)) throw new LabelStudioError('ls-bad-response', true, 'the annotation list is not a list');
    return list as Record<string, unknown>[];
  }

  /** The predictions of task `taskId` (id, model version, score). */
  async listPredictions(taskId: number): Promise<{ id: number; model_version: string; score: number | null }[]> {
    const list = await this.json<unknown>('GET', `api/predictions/?task=${taskId}`, undefined, 'prediction');
    if (!Array.isArray(list)) throw new LabelStudioError('ls-bad-response', true, 'the prediction list is not a list');
    return list as { id: number; model_version: string; score: number | null }[];
  }

  /** Deletes prediction `id`; one already gone counts as deleted. */
  async deletePrediction(id: number): Promise<void> {
    const res = await this.call('DELETE', new URL(`api/predictions/${id}/`, this.base), undefined);
    if (res.status === 404 || res.ok) return;
    throw httpFailure(res.status, 'prediction');
  }

  /**
   * The bytes of a task's image URL: relative (/data/upload/..., /data/local-files/?d=...) or absolute on the Label
   * Studio origin; any other origin, scheme or redirect target is refused (permanent), so a task cannot make the
   * service fetch from elsewhere with the token.
   */
  async fetchImage(raw: string): Promise<Buffer> {
    let url = this.sameOrigin(raw);
    for (let hop = 0; ; hop++) {
      const res = await this.call('GET', url, undefined, 'manual');
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers.get('location');
        if (!location || hop >= MAX_REDIRECTS) throw new LabelStudioError('image-redirect', false, `the image URL redirects ${location ? 'too often' : 'without a Location'}`);
        url = this.sameOrigin(new URL(location, url).href);
        continue;
      }
      if (!res.ok) {
        // A missing file will not appear by retrying; anything else (5xx, auth while a token is being fixed) may.
        throw res.status === 404 ? new LabelStudioError('image-not-found', false, `the image is not on Label Studio (404)`) : new LabelStudioError('image-unreachable', true, `fetching the image answered ${res.status}`);
      }
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (declared > this.opts.maxImageBytes) throw new LabelStudioError('image-too-large', false, `the image is ${declared} bytes, the limit is ${this.opts.maxImageBytes}`);
      const body = Buffer.from(await res.arrayBuffer());
      if (body.length > this.opts.maxImageBytes) throw new LabelStudioError('image-too-large', false, `the image is ${body.length} bytes, the limit is ${this.opts.maxImageBytes}`);
      return body;
    }
  }

  /** `raw` resolved against Label Studio's URL; refused unless it is on the same origin over http(s). */
  private sameOrigin(raw: string): URL {
    let url: URL;
    try {
      url = new URL(raw, this.base.origin);
    } catch {
      throw new LabelStudioError('foreign-image-url', false, 'the task image is not a URL');
    }
    if (url.origin !== this.base.origin || !/^https?:$/.test(url.protocol)) {
      throw new LabelStudioError('foreign-image-url', false, `the task image is not on the Label Studio origin ${this.base.origin}; asm-fer fetches images only from there`);
    }
    return url;
  }

  private async json<T>(method: string, path: string, body: unknown, what: string): Promise<T> {
    const res = await this.call(method, new URL(path, this.base), body);
    if (!res.ok) throw httpFailure(res.status, what);
    try {
      return (await res.json()) as T;
    } catch {
      throw new LabelStudioError('ls-bad-response', true, `Label Studio's ${what} answer is not JSON`);
    }
  }

  /** One authenticated call; with a personal access token, a 401 renews the access token once and tries again. */
  private async call(method: string, url: URL, body: unknown, redirect: 'error' | 'manual' = 'error'): Promise<Response> {
    const send = async () =>
      this.fetch(url, {
        method,
        redirect,
        headers: { authorization: await this.authorization(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    try {
      let res = await send();
      if (res.status === 401 && isPersonalAccessToken(this.opts.apiKey)) {
        this.access = undefined;
        res = await send();
      }
      return res;
    } catch (err) {
      if (err instanceof LabelStudioError) throw err;
      // fetch's message can hold the URL, never the token; the slug is what gets stored.
      throw new LabelStudioError('ls-unreachable', true, `Label Studio did not answer ${method} ${url.pathname}: ${(err as Error).name}`);
    }
  }

  private async authorization(): Promise<string> {
    const key = this.opts.apiKey;
    if (!isPersonalAccessToken(key)) return `Token ${key}`;
    if (this.access && this.access.expiresMs - ACCESS_MARGIN_MS > Date.now()) return `Bearer ${this.access.token}`;
    const res = await this.fetch(new URL('api/token/refresh', this.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh: key }),
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    if (!res.ok) throw new LabelStudioError(res.status === 401 ? 'ls-unauthorized' : 'ls-http', true, `exchanging the personal access token for an access token answered ${res.status}`);
    const { access } = (await res.json()) as { access?: unknown };
    if (typeof access !== 'string') throw new LabelStudioError('ls-bad-response', true, 'the token refresh answer has no access token');
    this.access = { token: access, expiresMs: jwtExpiryMs(access) ?? Date.now() + 60_000 };
    return `Bearer ${access}`;
  }
}

/**
 * A non-2xx answer as an error. Not-found and bad-request do not heal by retrying; 401/403 do once an operator fixes
 * the token (the queue keeps the events meanwhile), 408/429/5xx once Label Studio recovers.
 */
function httpFailure(status: number, what: string): LabelStudioError {
  if (status === 404) return new LabelStudioError(`${what}-not-found`, false, `Label Studio has no such ${what} (404)`);
  if (status === 401 || status === 403) return new LabelStudioError('ls-unauthorized', true, `Label Studio refused the token for the ${what} (${status}); check LABEL_STUDIO_API_KEY`);
  if (status === 408 || status === 429 || status >= 500) return new LabelStudioError('ls-http', true, `Label Studio answered ${status} for the ${what}`);
  return new LabelStudioError('ls-rejected', false, `Label Studio answered ${status} for the ${what}`);
}
