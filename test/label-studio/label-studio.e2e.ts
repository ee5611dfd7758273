// asm-fer as the ML backend of a real Label Studio (PyPI label-studio, pinned in requirements.txt), end to end: a FER+
// project with real face crops (uploaded files and one local file), the backend and an authenticated webhook
// registered through Label Studio's API, pre-annotations, annotations created through the API (some agreeing with the
// model, some deliberately wrong) audited within seconds and written back, then asm-fer stopped mid-queue, an
// annotation made while it was down, and a restart that loses and repeats no audit. Run by `make test-label-studio` (part of `make test`); Label Studio
// is started once for the file. ASM_FER_E2E_SCREENSHOT=<png> also photographs the Data Manager for docs/label-studio.md, and
// ASM_FER_E2E_LATENCY=<json> writes the submit → prediction latencies.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { threeFaces, fourFaces } from '../fixtures/photos.js';
import { listeningPort, startServer, stopServers, until, type ServerProcess } from '../fixtures/server-process.js';
import { LS_PASSWORD, LS_TOKEN, LS_USER, startLabelStudio, type RealLabelStudio } from './real-label-studio.js';
import { screenshotDataManager } from './screenshot.js';

const ASM_PORT = 18401;
const ASM_URL = `http://127.0.0.1:${ASM_PORT}`;
/** Nothing listens here: asm-fer pointed at it finds Label Studio unreachable. */
const NOWHERE = 'http://127.0.0.1:18499';
const SECRET = 'e2e-label-studio-secret-0123';
const CLASSES = ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust', 'fear', 'contempt'];
const CONFIG = `<View>
  <Image name="image" value="$image"/>
  <Choices name="expression" toName="image" choice="single" showInLine="true">
${CLASSES.map((c) => `    <Choice value="${c}"/>`).join('\n')}
  </Choices>
</View>`;

interface Face {
  file: string;
  predicted: string;
  /** The class the model finds least likely: a deliberately wrong label. */
  least: string;
}
interface LsPrediction {
  id: number;
  task: number;
  model_version: string;
  score: number;
  result: { value: { choices: string[] } }[];
  created_at: string;
}
interface AuditRecord {
  id: string;
  itemId: string;
  annotatorId: string;
  label: string;
  verdict: string;
  labelProbability: number;
  predicted: string;
  withdrawnAt: string | null;
}

let ls: RealLabelStudio;
let asm: ServerProcess;
let dataDir: string;
let facesDir: string;
let projectId: number;
let pat: string;
const faces: Face[] = [];
/** task id → its face */
const taskFace = new Map<number, Face>();
/** annotation id → task id, label given */
const given = new Map<number, { task: number; label: string; wrong: boolean }>();
const latencies: number[] = [];
/** Every asm-fer process of the run, for the check that no log line holds a token. */
const started: ServerProcess[] = [];

async function startAsm(lsUrl: string, token: string): Promise<ServerProcess> {
  const p = startServer({
    PORT: String(ASM_PORT),
    ASM_FER_MODEL_DIR: 'models/default',
    ASM_FER_DATA_DIR: dataDir,
    LABEL_STUDIO_URL: lsUrl,
    LABEL_STUDIO_API_KEY: token,
    ASM_FER_LABEL_STUDIO_SECRET: SECRET,
    ASM_FER_LABEL_STUDIO_RETRY_MAX_MS: '1000',
  });
  started.push(p);
  await listeningPort(p);
  return p;
}

async function asmJson<T>(p: string): Promise<T> {
  const res = await fetch(`${ASM_URL}${p}`);
  if (!res.ok) throw new Error(`asm-fer ${p} answered ${res.status}`);
  return (await res.json()) as T;
}

const metric = async (name: string): Promise<number> => {
  const text = await (await fetch(`${ASM_URL}/metrics`)).text();
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

const predictionsOf = (task: number) => ls.api<LsPrediction[]>('GET', `/api/predictions?task=${task}`);
const auditPredictions = async (task: number) => (await predictionsOf(task)).filter((p) => p.model_version.startsWith('asm-fer audit: '));
const trail = async () => (await asmJson<{ items: AuditRecord[] }>(`/v1/audits?datasetId=${encodeURIComponent(`label-studio project ${projectId}`)}&limit=1000`)).items;
const choice = (label: string) => [{ from_name: 'expression', to_name: 'image', type: 'choices', value: { choices: [label] } }];

/** Single-face crops of the two sample photos, each with the shipped model's prediction and least likely class. */
async function makeFaces(): Promise<void> {
  for (const [name, photo] of [['three', threeFaces()], ['four', fourFaces()]] as const) {
    const form = new FormData();
    form.append('image', new Blob([photo]), `${name}.jpg`);
    const found = (await (await fetch(`${ASM_URL}/v1/predict?detect=always`, { method: 'POST', body: form })).json()) as { results: { faces: { box: { x: number; y: number; width: number; height: number } }[] }[] };
    const meta = await sharp(photo).metadata();
    for (const [i, { box }] of (found.results[0]?.faces ?? []).entries()) {
      // A generous square around the face, inside the photo: the detector must find it (and only it) again.
      const side = Math.round(Math.max(box.width, box.height) * 1.8);
      const left = Math.max(0, Math.min((meta.width as number) - side, Math.round(box.x + box.width / 2 - side / 2)));
      const top = Math.max(0, Math.min((meta.height as number) - side, Math.round(box.y + box.height / 2 - side / 2)));
      const file = path.join(facesDir, `${name}-${i}.jpg`);
      await sharp(photo).extract({ left, top, width: side, height: side }).resize(320, 320).jpeg({ quality: 90 }).toFile(file);
      const crop = new FormData();
      crop.append('image', new Blob([readFileSync(file)]), 'face.jpg');
      const r = (await (await fetch(`${ASM_URL}/v1/predict`, { method: 'POST', body: crop })).json()) as { results: { faces: { label: string; probabilities: Record<string, number> }[] }[] };
      const one = r.results[0]?.faces;
      if (one?.length !== 1) continue;
      const probs = Object.entries((one[0] as { probabilities: Record<string, number> }).probabilities).sort((a, b) => a[1] - b[1]);
      // A face the model is sure of, so that its own choice is a fair "correct" label.
      if ((probs.at(-1)?.[1] ?? 0) < 0.5) continue;
      faces.push({ file, predicted: (one[0] as { label: string }).label, least: probs[0]?.[0] as string });
    }
  }
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'asm-fer-e2e-data-'));
  facesDir = mkdtempSync(path.join(tmpdir(), 'asm-fer-e2e-faces-'));
  ls = await startLabelStudio();
  // asm-fer authenticates with a personal access token (a JWT refresh token), the form Label Studio now defaults to.
  pat = (await ls.api<{ token: string }>('POST', '/api/token/')).token;
  asm = await startAsm(ls.url, pat);
  await makeFaces();
}, 420_000);

afterAll(async () => {
  stopServers();
  await ls?.stop();
  for (const d of [dataDir, facesDir]) if (d) rmSync(d, { recursive: true, force: true });
}, 60_000);

describe('asm-fer as the ML backend of a real Label Studio', () => {
  it('has real single-face crops to label', () => {
    expect(faces.length).toBeGreaterThanOrEqual(5);
  });

  it('connects: a FER+ project, uploaded and local-file tasks, the backend (basic auth) and an authenticated webhook', async () => {
    projectId = (await ls.api<{ id: number }>('POST', '/api/projects', { title: 'faces (asm-fer e2e)', label_config: CONFIG })).id;
    // All but the last face as uploaded files (/data/upload/...), the last one served from local files (/data/local-files/?d=...).
    const form = new FormData();
    // One form field per file: Label Studio reads one file per field name.
    for (const [i, f] of faces.slice(0, -1).entries()) form.append(`file${i}`, new Blob([readFileSync(f.file)], { type: 'image/jpeg' }), path.basename(f.file));
    const imported = await fetch(`${ls.url}/api/projects/${projectId}/import`, { method: 'POST', headers: { authorization: `Token ${LS_TOKEN}` }, body: form });
    expect(imported.status).toBe(201);
    const local = faces.at(-1) as Face;
    mkdirSync(path.join(ls.filesDir, 'faces'));
    copyFileSync(local.file, path.join(ls.filesDir, 'faces', path.basename(local.file)));
    const storage = await ls.api<{ id: number }>('POST', '/api/storages/localfiles', { project: projectId, path: path.join(ls.filesDir, 'faces'), title: 'faces', use_blob_urls: true, regex_filter: '.*\\.jpg' });
    await ls.api('POST', `/api/storages/localfiles/${storage.id}/sync`);
    const tasks = (await ls.api<{ tasks: { id: number; data: { image: string } }[] }>('GET', `/api/tasks?project=${projectId}&page_size=100`)).tasks;
    expect(tasks).toHaveLength(faces.length);
    for (const t of tasks) {
      const f = faces.find((x) => t.data.image.endsWith(path.basename(x.file)));
      expect(f, t.data.image).toBeDefined();
      taskFace.set(t.id, f as Face);
    }
    expect(tasks.filter((t) => t.data.image.startsWith('/data/local-files/?d=')).length).toBe(1);

    const backend = await ls.api<{ id: number; state: string; model_version: string }>('POST', '/api/ml', {
      project: projectId,
      url: `${ASM_URL}/label-studio`,
      title: 'asm-fer',
      auth_method: 'BASIC_AUTH',
      basic_auth_user: 'label-studio',
      basic_auth_pass: SECRET,
      is_interactive: false,
    });
    expect(backend.state).toBe('CO');
    const models = await asmJson<{ models: { name: string; version: string }[] }>('/v1/models');
    expect(backend.model_version).toBe(`${models.models[0]?.name}-${models.models[0]?.version}`);
    // Connecting the backend makes Label Studio add a webhook to <backend>/webhook for every action, without headers.
    // It gets the secret header; a second webhook for the annotation actions means every event arrives twice.
    const hooks = await ls.api<{ id: number; url: string }[]>('GET', `/api/webhooks?project=${projectId}`);
    for (const h of hooks.filter((x) => x.url === `${ASM_URL}/label-studio/webhook`)) {
      await ls.api('PATCH', `/api/webhooks/${h.id}`, { headers: { Authorization: `Bearer ${SECRET}` } });
    }
    await ls.api('POST', '/api/webhooks', {
      project: projectId,
      url: `${ASM_URL}/label-studio/webhook`,
      send_payload: true,
      send_for_all_actions: false,
      actions: ['ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_DELETED'],
      headers: { Authorization: `Bearer ${SECRET}` },
    });
  });

  it('pre-annotates every task with the model’s choice and a stable model version', async () => {
    const res = await ls.api<{ processed_items?: number }>('POST', `/api/dm/actions?id=retrieve_tasks_predictions&project=${projectId}`, { selectedItems: { all: true, excluded: [] } });
    expect(res.processed_items).toBe(faces.length);
    const models = await asmJson<{ models: { name: string; version: string }[] }>('/v1/models');
    for (const [task, face] of taskFace) {
      const pre = (await predictionsOf(task)).filter((p) => !p.model_version.startsWith('asm-fer audit: '));
      expect(pre).toHaveLength(1);
      expect(pre[0]?.model_version).toBe(`${models.models[0]?.name}-${models.models[0]?.version}`);
      expect(pre[0]?.result[0]?.value.choices).toEqual([face.predicted]);
    }
  });

  it('audits each submitted annotation within seconds and writes the verdict back to its task', async () => {
    let i = 0;
    for (const [task, face] of taskFace) {
      const wrong = i++ % 2 === 1;
      const label = wrong ? face.least : face.predicted;
      const annotation = await ls.api<{ id: number; created_at: string }>('POST', `/api/tasks/${task}/annotations`, { result: choice(label) });
      given.set(annotation.id, { task, label, wrong });
      await until(async () => (await auditPredictions(task)).length > 0, 30_000);
      const [written] = await auditPredictions(task);
      // Label Studio's own clocks: when it saved the annotation and when asm-fer's prediction reached it.
      latencies.push(Date.parse((written as LsPrediction).created_at) - Date.parse(annotation.created_at));
    }
    const records = await trail();
    for (const [annotation, g] of given) {
      const mine = records.filter((r) => r.itemId === `task ${g.task} annotation ${annotation}`);
      expect(mine, `annotation ${annotation}`).toHaveLength(1);
      const record = mine[0] as AuditRecord;
      expect(record.label).toBe(g.label);
      expect(record.annotatorId).toMatch(/^\d+$/);
      const written = await auditPredictions(g.task);
      expect(written).toHaveLength(1);
      const p = written[0] as LsPrediction;
      expect(p.model_version).toMatch(new RegExp(`^asm-fer audit: ${record.verdict} \\(quality \\d\\.\\d\\d\\)$`));
      expect(p.score).toBeCloseTo(record.labelProbability, 6);
      expect(p.result[0]?.value.choices).toEqual([record.predicted]);
      // A deliberately wrong label (the class the model finds least likely) is noisy; the model's own choice is not.
      if (g.wrong) expect(record.verdict).toBe('noisy');
      else expect(record.verdict).not.toBe('noisy');
    }
    // Every event came twice (two webhooks) and was queued once.
    expect(await metric('asm_fer_label_studio_queue_depth')).toBe(0);
  });

  it('loses and repeats nothing when stopped mid-queue (Label Studio unreachable, killed, annotated while down, restarted)', async () => {
    // asm-fer restarts pointed at an address where nothing listens: events arrive and queue, audits cannot proceed.
    asm.child.kill('SIGTERM');
    await asm.exited;
    asm = await startAsm(NOWHERE, LS_TOKEN);
    const annotations = [...given.keys()];
    const updated = annotations.slice(0, 3);
    const deleted = annotations[3] as number;
    for (const id of updated) {
      const g = given.get(id) as { task: number; label: string; wrong: boolean };
      const face = taskFace.get(g.task) as Face;
      const label = g.wrong ? face.predicted : face.least;
      await ls.api('PATCH', `/api/annotations/${id}`, { result: choice(label) });
      given.set(id, { task: g.task, label, wrong: !g.wrong });
    }
    await ls.api('DELETE', `/api/annotations/${deleted}`);
    await until(async () => (await metric('asm_fer_label_studio_queue_depth')) === updated.length + 1, 15_000);
    await until(async () => (await metric('asm_fer_label_studio_event_failures_total{reason="ls-unreachable"}')) > 0, 15_000);
    // Killed outright, mid-queue.
    asm.child.kill('SIGKILL');
    await asm.exited;
    // Annotated while asm-fer is down: Label Studio's webhook fails and is never resent; the start-up sweep finds it.
    const gone = given.get(deleted) as { task: number };
    const missedFace = taskFace.get(gone.task) as Face;
    const missed = await ls.api<{ id: number }>('POST', `/api/tasks/${gone.task}/annotations`, { result: choice(missedFace.least) });
    given.set(missed.id, { task: gone.task, label: missedFace.least, wrong: true });
    asm = await startAsm(ls.url, LS_TOKEN);
    await until(async () => (await metric('asm_fer_label_studio_queue_depth')) === 0, 60_000);

    const records = await trail();
    for (const [annotation, g] of given) {
      const mine = records.filter((r) => r.itemId === `task ${g.task} annotation ${annotation}`);
      const written = await auditPredictions(g.task);
      if (annotation === deleted) {
        // Its record stays, marked withdrawn; its verdict left the task, where only the missed annotation's is (checked below).
        expect(mine).toHaveLength(1);
        expect(mine[0]?.withdrawnAt).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT/));
        continue;
      }
      expect(mine, `annotation ${annotation}`).toHaveLength(updated.includes(annotation) ? 2 : 1);
      const latest = mine[0] as AuditRecord;
      expect(latest.label).toBe(g.label);
      expect(latest.withdrawnAt, `annotation ${annotation}`).toBeNull();
      expect(written).toHaveLength(1);
      expect((written[0] as LsPrediction).model_version).toMatch(new RegExp(`^asm-fer audit: ${latest.verdict} `));
      if (g.wrong) expect(latest.verdict).toBe('noisy');
      else expect(latest.verdict).not.toBe('noisy');
    }
  });

  it('never logs a Label Studio token', () => {
    const logs = started.map((p) => p.out() + p.err()).join('\n');
    expect(logs).toMatch(/label studio event done/);
    expect(logs).not.toContain(pat);
    expect(logs).not.toContain(LS_TOKEN);
  });

  it('shows the audit in the Data Manager (screenshot on request) and reports the latency', async () => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.ceil(f * sorted.length) - 1)] as number;
    const summary = { n: sorted.length, medianMs: q(0.5), p95Ms: q(0.95), maxMs: sorted.at(-1), all: latencies };
    process.stdout.write(`label studio e2e: submit -> prediction written back ${JSON.stringify(summary)}\n`);
    expect(summary.p95Ms).toBeLessThan(10_000);
    if (process.env.ASM_FER_E2E_LATENCY) writeFileSync(process.env.ASM_FER_E2E_LATENCY, JSON.stringify(summary, null, 2));
    const shot = process.env.ASM_FER_E2E_SCREENSHOT;
    if (shot) await screenshotDataManager({ url: ls.url, user: LS_USER, password: LS_PASSWORD, projectId, api: ls.api }, shot);
  }, 120_000);
});
