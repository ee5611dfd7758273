// A stand-in for the part of Label Studio's REST API the backend calls (tasks, projects, uploaded images, predictions,
// the token refresh), in-process on loopback, with switches to make it unreachable or failing. The real Label Studio
// is exercised by e2e.test.ts; this one makes outages and token forms testable in seconds.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const LEGACY_TOKEN = 'legacy-token-0123456789abcdef';
/** A JWT-shaped personal access token (a refresh token); the fake exchanges it for ACCESS_TOKEN. */
export const PERSONAL_TOKEN = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('{"token_type":"refresh"}').toString('base64url')}.c2lnbmF0dXJl`;
const ACCESS_TOKEN = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ token_type: 'access', exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url')}.YWNjZXNz`;

export interface FakePrediction {
  id: number;
  task: number;
  result: unknown[];
  score: number;
  model_version: string;
}

export interface FakeLabelStudio {
  url: string;
  tasks: Map<number, { id: number; project: number; data: Record<string, unknown> }>;
  projects: Map<number, { label_config: string }>;
  files: Map<string, Buffer>;
  predictions: Map<number, FakePrediction>;
  /** Annotations by id, as Label Studio serialises them (what the task's annotation list answers). */
  annotations: Map<number, Record<string, unknown>>;
  /** Every request: method, path, the Authorization header it carried, and when (Date.now()) it arrived. */
  requests: { method: string; path: string; authorization: string | undefined; ms: number }[];
  /** 'up', 'down' (connections dropped), or an HTTP status every API call answers with. */
  mode: 'up' | 'down' | number;
  /**
   * One-shot faults: the next request matching method and path answers `status`, before doing its work, or, with
   * `lost`, after (the work is done, the answer is lost: what a timeout or a crash looks like to the caller).
   */
  faults: { method: string; path: RegExp; status: number; lost?: boolean }[];
  /**
   * Lasting delays of the answers to writes (POST and DELETE of predictions) matching method and path (and, with
   * `tasks`, a prediction of one of those tasks): the work is done at once, the answer comes `ms` later, so a caller
   * can be stopped between the two (a replica killed after its prediction was stored, before it knew).
   */
  delays: { method: string; path: RegExp; ms: number; tasks?: ReadonlySet<number> }[];
  /** Added before every answer of the API, as a Label Studio across a network (or busy) takes; 0 by default. */
  latencyMs: number;
  /** The task of every prediction POSTed, in arrival order, whether or not its answer arrived: the write-backs. */
  predictionPosts: number[];
  /** When (Date.now()) each task's latest prediction POST arrived. */
  predictionPostedMs: Map<number, number>;
  close(): Promise<void>;
}

export async function startFakeLabelStudio(): Promise<FakeLabelStudio> {
  let nextId = 1;
  const fake: Omit<FakeLabelStudio, 'url' | 'close'> = {
    tasks: new Map(),
    projects: new Map(),
    files: new Map(),
    predictions: new Map(),
    annotations: new Map(),
    requests: [],
    mode: 'up',
    faults: [],
    delays: [],
    latencyMs: 0,
    predictionPosts: [],
    predictionPostedMs: new Map(),
  };
  const authorised = (req: IncomingMessage) => req.headers.authorization === `Token ${LEGACY_TOKEN}` || req.headers.authorization === `Bearer ${ACCESS_TOKEN}`;
  const send = (res: ServerResponse, status: number, body?: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(body === undefined ? undefined : JSON.stringify(body));
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    fake.requests.push({ method: req.method ?? '', path: url.pathname + url.search, authorization: req.headers.authorization, ms: Date.now() });
    if (fake.mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (typeof fake.mode === 'number') return send(res, fake.mode, { detail: 'failing on purpose' });
    if (fake.latencyMs > 0) await new Promise((r) => setTimeout(r, fake.latencyMs));
    const at = fake.faults.findIndex((f) => f.method === req.method && f.path.test(url.pathname));
    const fault = at >= 0 ? fake.faults.splice(at, 1)[0] : undefined;
    if (fault && !fault.lost) return send(res, fault.status, { detail: 'failing once on purpose' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : {};
    const delay = fake.delays.find((d) => d.method === req.method && d.path.test(url.pathname) && (d.tasks === undefined || d.tasks.has(body.task as number)))?.ms ?? 0;
    const later = (r: ServerResponse, status: number, b?: unknown) => void setTimeout(() => send(r, status, b), delay);
    const answer = fault ? (r: ServerResponse, _status: number, _body?: unknown) => send(r, fault.status, { detail: 'done, answer lost on purpose' }) : delay > 0 ? later : send;
    if (req.method === 'POST' && url.pathname === '/api/token/refresh') {
      return body.refresh === PERSONAL_TOKEN ? send(res, 200, { access: ACCESS_TOKEN }) : send(res, 401, { detail: 'bad refresh token' });
    }
    if (!authorised(req)) return send(res, 401, { detail: 'Authentication credentials were not provided.' });
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && url.pathname === '/api/tasks/') {
      const all = [...fake.tasks.values()].filter((t) => t.project === Number(url.searchParams.get('project'))).sort((a, b) => a.id - b.id);
      const size = Number(url.searchParams.get('page_size') ?? 100);
      const page = Number(url.searchParams.get('page') ?? 1);
      const slice = all.slice((page - 1) * size, page * size);
      if (page > 1 && slice.length === 0) return send(res, 404, { detail: 'Invalid page.' });
      const count = (id: number) => [...fake.annotations.values()].filter((a) => a.task === id).length;
      return send(res, 200, { tasks: slice.map((t) => ({ ...t, total_annotations: count(t.id) })), total: all.length });
    }
    if (req.method === 'GET' && (m = /^\/api\/tasks\/(\d+)\/annotations\/?$/.exec(url.pathname))) {
      return send(res, 200, [...fake.annotations.values()].filter((a) => a.task === Number(m?.[1])));
    }
    if (req.method === 'GET' && (m = /^\/api\/tasks\/(\d+)\/?$/.exec(url.pathname))) {
      const task = fake.tasks.get(Number(m[1]));
      return task ? send(res, 200, task) : send(res, 404, { detail: 'Not found.' });
    }
    if (req.method === 'GET' && (m = /^\/api\/projects\/(\d+)\/?$/.exec(url.pathname))) {
      const project = fake.projects.get(Number(m[1]));
      return project ? send(res, 200, { id: Number(m[1]), ...project }) : send(res, 404, { detail: 'Not found.' });
    }
    if (req.method === 'GET' && url.pathname.startsWith('/data/')) {
      const file = fake.files.get(url.pathname + url.search);
      if (!file) return send(res, 404, { detail: 'Not found.' });
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': file.length }).end(file);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/api/predictions/') {
      const p = { id: nextId++, task: body.task as number, result: body.result as unknown[], score: body.score as number, model_version: body.model_version as string };
      fake.predictions.set(p.id, p);
      fake.predictionPosts.push(p.task);
      fake.predictionPostedMs.set(p.task, Date.now());
      return answer(res, 201, p);
    }
    if (req.method === 'DELETE' && (m = /^\/api\/predictions\/(\d+)\/?$/.exec(url.pathname))) {
      return fake.predictions.delete(Number(m[1])) ? answer(res, 204) : send(res, 404, { detail: 'Not found.' });
    }
    if (req.method === 'GET' && url.pathname === '/api/predictions/') {
      return send(res, 200, [...fake.predictions.values()].filter((p) => p.task === Number(url.searchParams.get('task'))));
    }
    send(res, 404, { detail: 'no such route in the fake' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  });
}

export const FERPLUS_CHOICES = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'];

/** A labeling config with one single-choice question about an image, as a FER+ project has it. */
export function ferplusConfig(choices: readonly string[] = FERPLUS_CHOICES, extra = ''): string {
  return `<View>
  <Image name="image" value="$image"/>
  <Choices name="expression" toName="image" choice="single" showInLine="true">
${choices.map((c) => `    <Choice value="${c}"/>`).join('\n')}
  </Choices>${extra}
</View>`;
}

/** An annotation as Label Studio's webhook serialises it (the fields the backend reads, plus a few it ignores). */
export function annotationPayload(action: string, a: { id: number; task: number; project: number; choice: string; completedBy?: number; updatedAt?: string }) {
  const updatedAt = a.updatedAt ?? '2026-12-04T10:00:00.000000Z';
  return {
    action,
    annotation: {
      id: a.id,
      task: a.task,
      project: a.project,
      completed_by: a.completedBy ?? 7,
      created_at: updatedAt,
      updated_at: updatedAt,
      was_cancelled: false,
      lead_time: 3.2,
      result: [{ id: 'r1', from_name: 'expression', to_name: 'image', type: 'choices', value: { choices: [a.choice] }, origin: 'manual' }],
    },
    task: { id: a.task, project: a.project, data: { image: `/data/upload/${a.project}/face-${a.task}.png` } },
    project: { id: a.project, title: 'faces' },
  };
}
