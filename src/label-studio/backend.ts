// asm-fer as a Label Studio ML backend, as plain functions: setup (check a project's labeling config), predict
// (pre-annotate tasks), a project's own label map (get, set, remove), receive a webhook (queue its annotation events
// durably), sweep the connected projects (and tell which are silent), and process one queued event (fetch the task and
// image, audit the submitted choice into the trail, write the verdict back as a prediction).
import { createHash } from 'node:crypto';
import { auditFaces } from '../audit/audit-face.js';
import type { NewAuditRecord } from '../audit/judge.js';
import type { AuditTrail } from '../audit/trail.js';
import { AppError, BadRequest, LabelMapRefused } from '../errors.js';
import { findFaces, pickFace, type FindOptions, type FoundFace, type ImageFaces } from '../faces/find-faces.js';
import type { FaceDetector } from '../faces/detector.js';
import type { PixelBudget, PixelLease } from '../image/pixel-budget.js';
import { classifyFaces } from '../inference/classify-faces.js';
import type { Classification } from '../inference/classify.js';
import type { ModelHost, ServedModel } from '../inference/model-host.js';
import type { Metrics } from '../metrics.js';
import { LabelStudioError, type LabelStudioClient } from './client.js';
import { choiceQuestion, LabelConfigError, type ChoiceQuestion } from './label-config.js';
import type { AnnotationEvent, EventOutcome, EventQueue } from './queue.js';

/** Everything the backend's use cases run on; service.ts builds it once. */
export interface BackendDeps {
  host: ModelHost;
  trail: AuditTrail;
  client: LabelStudioClient;
  queue: EventQueue;
  /**
   * Label Studio choice → model class, for choices not named like a class (ASM_FER_LABEL_STUDIO_LABEL_MAP): the map of
   * every project that has none of its own (PUT /label-studio/projects/{id}/label-map).
   */
  labelMap: Readonly<Record<string, string>>;
  /** How images are searched for their face, as /v1/audit does with ?detect=auto. */
  faces: { maxPixels: number; autoMaxSide: number; detector: FaceDetector; pixels: PixelBudget };
  /** Keep audited images in the trail (ASM_FER_AUDIT_STORE_IMAGES). */
  storeImages: boolean;
  metrics: Pick<Metrics, 'recordVerdict' | 'recordPrediction'>;
}

/** The model_version Label Studio shows for pre-annotations: stable for a bundle, from its name and version. */
export function modelVersion(manifest: Pick<ServedModel['manifest'], 'name' | 'version'>): string {
  return `${manifest.name}-${manifest.version}`;
}

/** A failure of one event, with a fixed reason slug and whether retrying may help. */
export class EventFailure extends Error {
  override name = 'EventFailure';
  constructor(
    readonly reason: string,
    readonly transient: boolean,
    detail: string,
  ) {
    super(detail);
  }
}

/** Any error met while processing an event, as an EventFailure: 503-type service errors and Label Studio outages retry. */
export function asEventFailure(err: unknown): EventFailure {
  if (err instanceof EventFailure) return err;
  if (err instanceof LabelStudioError) return new EventFailure(err.reason, err.transient, err.message);
  if (err instanceof LabelConfigError) return new EventFailure('label-config', false, err.message);
  if (err instanceof AppError) return new EventFailure(err.slug, err.status === 503, err.message);
  return new EventFailure('internal', true, err instanceof Error ? err.message : String(err));
}

// ---- setup and predict -------------------------------------------------------------------------------------------

/**
 * The project id in what Label Studio sends as `project` to /setup and /predict ("<id>.<created-at seconds>"), or in a
 * bare id; undefined when there is none.
 */
export function projectIdOf(project: unknown): number | undefined {
  if (typeof project === 'number') return Number.isSafeInteger(project) && project > 0 ? project : undefined;
  const m = typeof project === 'string' ? /^\s*(\d{1,15})(?:\.\d*)?\s*$/.exec(project) : null;
  const id = m ? Number(m[1]) : 0;
  return id > 0 ? id : undefined;
}

/** The label map a project's choices are read with: its own when it has one, else the environment's. */
export async function labelMapFor(deps: Pick<BackendDeps, 'queue' | 'labelMap'>, projectId: number | undefined): Promise<Readonly<Record<string, string>>> {
  return (projectId === undefined ? undefined : (await deps.queue.project(projectId))?.labelMap) ?? deps.labelMap;
}

/**
 * POST /setup: the project's question, or LabelConfigError saying why the config cannot be audited. An accepted
 * project is connected: it is swept from now on, so its annotations are audited even while its webhook is silent.
 */
export async function setup(deps: Pick<BackendDeps, 'host' | 'labelMap' | 'queue'>, schema: string, projectId: number | undefined, nowMs: number): Promise<{ question: ChoiceQuestion; modelVersion: string }> {
  const { manifest } = deps.host.current;
  const question = choiceQuestion(schema, manifest.classes, await labelMapFor(deps, projectId));
  if (projectId !== undefined) await deps.queue.markConnected(projectId, nowMs);
  return { question, modelVersion: modelVersion(manifest) };
}

/** A project's label map as the API shows it: its own, or the environment's default. */
export interface LabelMapView {
  projectId: number;
  labelMap: Readonly<Record<string, string>>;
  source: 'project' | 'default';
  /** When the project's own map was set; null for the default. */
  updatedMs: number | null;
}

/** GET /label-studio/projects/{id}/label-map: the map the project's choices are read with. */
export async function getLabelMap(deps: Pick<BackendDeps, 'queue' | 'labelMap'>, projectId: number): Promise<LabelMapView> {
  const own = await deps.queue.project(projectId);
  if (own?.labelMap) return { projectId, labelMap: own.labelMap, source: 'project', updatedMs: own.labelMapMs };
  return { projectId, labelMap: deps.labelMap, source: 'default', updatedMs: null };
}

/**
 * PUT /label-studio/projects/{id}/label-map: the project's own map, which replaces the environment's for it (choices
 * named like a class still match by name). Every class must be one of the served model's, else LabelMapRefused; the
 * contract bounds the map's size and its names. Applies from the next /setup, prediction or event of the project.
 */
export async function putLabelMap(deps: Pick<BackendDeps, 'host' | 'queue' | 'labelMap'>, projectId: number, labelMap: Readonly<Record<string, string>>, nowMs: number): Promise<LabelMapView> {
  const { classes } = deps.host.current.manifest;
  const unknown = [...new Set(Object.values(labelMap))].filter((c) => !classes.includes(c));
  if (unknown.length > 0) {
    const choices = Object.keys(labelMap).filter((k) => unknown.includes(labelMap[k] as string));
    throw new LabelMapRefused(
      `class(es) ${unknown.map((c) => JSON.stringify(c)).join(', ')} (of choice(s) ${choices.map((c) => JSON.stringify(c)).join(', ')}) are not classes of the served model (${classes.join(', ')})`,
      unknown,
      classes,
    );
  }
  await deps.queue.setLabelMap(projectId, { ...labelMap }, nowMs);
  return getLabelMap(deps, projectId);
}

/** DELETE /label-studio/projects/{id}/label-map: the project goes back to the environment's map. */
export async function deleteLabelMap(deps: Pick<BackendDeps, 'queue' | 'labelMap'>, projectId: number, nowMs: number): Promise<LabelMapView> {
  if ((await deps.queue.project(projectId))?.labelMap) await deps.queue.setLabelMap(projectId, null, nowMs);
  return getLabelMap(deps, projectId);
}

/** A connected project whose webhook is silent: annotations changed and no webhook said so. */
export interface SilentProject {
  projectId: number;
  sinceMs: number;
  /** Annotation changes the sweeps found since, which no webhook brought. */
  missed: number;
}

/** The projects that are silent now (GET /label-studio/health, asm_fer_label_studio_silent_projects). */
export async function silentProjects(deps: Pick<BackendDeps, 'queue'>): Promise<SilentProject[]> {
  return (await deps.queue.projectStates())
    .filter((p) => p.silentSinceMs !== null)
    .map((p) => ({ projectId: p.projectId, sinceMs: p.silentSinceMs as number, missed: p.missed }));
}

/** The one face in `image`, searched as /v1/audit does with ?detect=auto; its pixels are reserved from `lease`. */
async function findOneFace(deps: Pick<BackendDeps, 'faces'>, served: ServedModel, image: Buffer, lease: PixelLease): Promise<{ found: ImageFaces; pick: { index: number; face: FoundFace } }> {
  const opts: FindOptions = { mode: 'auto', spec: served.manifest.input, maxPixels: deps.faces.maxPixels, autoMaxSide: deps.faces.autoMaxSide, detector: deps.faces.detector, pixels: lease };
  const [found] = await findFaces([{ image }], opts);
  if (!found) throw new Error('findFaces returned no result for one image');
  return { found, pick: pickFace(found, undefined, 0) };
}

/** The classification of the one face in `image`. */
async function classifyOne(deps: Pick<BackendDeps, 'faces'>, served: ServedModel, image: Buffer): Promise<Classification> {
  const lease = deps.faces.pixels.lease();
  try {
    const { pick } = await findOneFace(deps, served, image, lease);
    const [c] = await classifyFaces(served, [pick.face]);
    if (!c) throw new Error('classifyFaces returned no result for one face');
    return c;
  } finally {
    lease.release();
  }
}

/** The likeliest class that has a choice in the project (only those can be told to Label Studio), with its probability. */
function bestChoice(c: Classification, q: ChoiceQuestion): { choice: string; probability: number } {
  let best: { choice: string; probability: number } | undefined;
  for (const [cls, choice] of Object.entries(q.choiceOf)) {
    const p = c.probabilities[cls] ?? 0;
    if (!best || p > best.probability) best = { choice, probability: p };
  }
  return best ?? { choice: '', probability: 0 };
}

function choiceResult(q: ChoiceQuestion, choice: string): unknown[] {
  return [{ from_name: q.fromName, to_name: q.toName, type: 'choices', value: { choices: [choice] } }];
}

export interface PredictTask {
  id?: unknown;
  data?: unknown;
}

/**
 * POST /predict: one prediction per task, in task order. A task whose image cannot be fetched or has no single face
 * gets an entry without `result` (Label Studio skips such entries and keeps the order of the others).
 */
export async function predictTasks(
  deps: Pick<BackendDeps, 'host' | 'labelMap' | 'queue' | 'client' | 'faces'>,
  labelConfig: string,
  tasks: readonly PredictTask[],
  projectId: number | undefined,
  signal?: AbortSignal,
) {
  return deps.host.use(async (served) => {
    const question = choiceQuestion(labelConfig, served.manifest.classes, await labelMapFor(deps, projectId));
    const version = modelVersion(served.manifest);
    const results = [];
    // One task at a time: the batcher merges concurrent work from other requests, and Label Studio waits for the whole answer.
    for (const task of tasks) {
      // A request already answered (timed out) or abandoned stops between tasks.
      signal?.throwIfAborted();
      try {
        const url = imageUrl(task.data, question);
        const c = await classifyOne(deps, served, await deps.client.fetchImage(url));
        const best = bestChoice(c, question);
        results.push({ result: choiceResult(question, best.choice), score: best.probability, model_version: version });
      } catch (err) {
        const f = asEventFailure(err);
        results.push({ model_version: version, error: f.reason });
      }
    }
    return { results, model_version: version };
  });
}

function imageUrl(data: unknown, q: ChoiceQuestion): string {
  const url = (data as Record<string, unknown> | null | undefined)?.[q.dataKey];
  if (typeof url !== 'string' || url.length === 0) throw new EventFailure('no-image', false, `the task has no image URL in data.${q.dataKey}`);
  return url;
}

// ---- webhook -----------------------------------------------------------------------------------------------------

const AUDITED = new Set(['ANNOTATION_CREATED', 'ANNOTATION_UPDATED']);
/** Label Studio sends ANNOTATIONS_DELETED (a list of ids); ANNOTATION_DELETED is accepted as its one-id form. */
const DELETED = new Set(['ANNOTATIONS_DELETED', 'ANNOTATION_DELETED']);

const idOf = (v: unknown): number | undefined => {
  const id = typeof v === 'object' && v !== null ? (v as { id?: unknown }).id : v;
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : undefined;
};

/** The annotation events of one webhook body; other actions give none. Throws BadRequest on a malformed event. */
export function webhookEvents(body: Record<string, unknown>): AnnotationEvent[] {
  const action = String(body.action ?? '');
  if (AUDITED.has(action) || action === 'ANNOTATIONS_CREATED') {
    const annotations = Array.isArray(body.annotation) ? body.annotation : [body.annotation];
    return annotations.map((a: unknown, i) => {
      const ann = (a ?? {}) as Record<string, unknown>;
      const annotationId = idOf(ann.id);
      const taskId = idOf(ann.task) ?? idOf(Array.isArray(body.task) ? body.task[i] : body.task);
      const projectId = idOf(ann.project) ?? idOf(body.project);
      const updatedAt = typeof ann.updated_at === 'string' ? ann.updated_at : typeof ann.created_at === 'string' ? ann.created_at : undefined;
      if (!annotationId || !taskId || !projectId || !updatedAt || !Array.isArray(ann.result)) {
        throw new BadRequest(`${action}: annotation ${i} needs id, task, project, updated_at and result as Label Studio sends them`);
      }
      return {
        action: action === 'ANNOTATIONS_CREATED' ? 'ANNOTATION_CREATED' : (action as 'ANNOTATION_CREATED' | 'ANNOTATION_UPDATED'),
        annotationId,
        taskId,
        projectId,
        completedBy: idOf(ann.completed_by) ?? null,
        updatedAt,
        result: ann.result as unknown[],
      };
    });
  }
  if (DELETED.has(action)) {
    const list = Array.isArray(body.annotations) ? body.annotations : [body.annotation];
    return list.map((a: unknown, i) => {
      const annotationId = idOf(a);
      if (!annotationId) throw new BadRequest(`${action}: annotation ${i} has no id`);
      // A deletion happens once: its key needs no time (Label Studio sends none).
      return { action: 'ANNOTATION_DELETED', annotationId, taskId: 0, projectId: idOf(body.project) ?? 0, completedBy: null, updatedAt: '', result: [] };
    });
  }
  return [];
}

/** What one sweep did: annotations seen, events queued, projects found silent, projects it could not sweep. */
export interface SweepResult {
  annotations: number;
  queued: number;
  /** Projects whose changes this sweep found although no webhook named them meanwhile, with how many it found. */
  silent: { projectId: number; missed: number }[];
  /** Projects it could not sweep for a reason retrying will not cure (e.g. the project is gone), with that reason. */
  failed: { projectId: number; reason: string }[];
}

/**
 * Catches up with what Label Studio did while asm-fer was not listening (it does not resend a webhook that failed):
 * every annotation of the projects to sweep (seen in an event or connected through /setup) whose current version
 * (`updated_at`) was never queued is queued as a creation or an update, and every audited annotation that is gone, as
 * a deletion. One task-list page per 100 tasks and one annotation list per task with annotations.
 *
 * A project whose changes were found so, with no webhook naming it since `sinceMs` (the start of the previous sweep),
 * is marked silent until its next webhook: its webhook is lost or refused (Label Studio creates it without the
 * secret). The first sweep of a process has no previous one: it marks only projects no webhook ever named, so what
 * changed while the service was down does not count against a project whose webhook works. Annotations that predate
 * the project's connection (/setup) are no webhook's to announce: until a sweep has gone through the project once,
 * only those updated after /setup accepted it (and deletions of audited ones) count. A project that fails with
 * a permanent reason is reported and the others are swept; a transient failure is thrown once all were tried, so the
 * worker sweeps again after a back-off.
 */
export async function sweep(deps: Pick<BackendDeps, 'client' | 'queue'>, nowMs: number, sinceMs?: number): Promise<SweepResult> {
  const PAGE = 100;
  const result: SweepResult = { annotations: 0, queued: 0, silent: [], failed: [] };
  let retry: EventFailure | undefined;
  for (const projectId of await deps.queue.projects()) {
    const before = await deps.queue.project(projectId);
    const afterConnect = (e: AnnotationEvent) => before?.connectedMs != null && Date.parse(e.updatedAt) >= before.connectedMs;
    let queued = 0;
    let missed = 0;
    const enqueue = async (e: AnnotationEvent) => {
      if (!(await deps.queue.enqueue(e, nowMs)).queued) return;
      queued++;
      if (before?.sweptMs != null || e.action === 'ANNOTATION_DELETED' || afterConnect(e)) missed++;
    };
    try {
      for (let page = 1, seen = 0; ; page++) {
        const { tasks, total } = await deps.client.listTasks(projectId, page, PAGE);
        for (const task of tasks) {
          const present = (task.total_annotations ?? 1) > 0 ? await deps.client.listAnnotations(task.id) : [];
          const ids = new Set<number>();
          for (const a of present) {
            const id = idOf(a.id);
            if (id === undefined) continue;
            ids.add(id);
            result.annotations++;
            const known = (await deps.queue.annotation(id)) !== undefined;
            let events: AnnotationEvent[];
            try {
              events = webhookEvents({ action: known ? 'ANNOTATION_UPDATED' : 'ANNOTATION_CREATED', annotation: { task: task.id, ...a }, project: { id: projectId } });
            } catch {
              continue;
            }
            for (const e of events) if (!(await deps.queue.hasEvent(e.annotationId, e.updatedAt))) await enqueue(e);
          }
          for (const gone of await deps.queue.liveAnnotationsOfTask(task.id)) {
            if (!ids.has(gone)) await enqueue({ action: 'ANNOTATION_DELETED', annotationId: gone, taskId: task.id, projectId, completedBy: null, updatedAt: '', result: [] });
          }
        }
        seen += tasks.length;
        if (tasks.length === 0 || seen >= total) break;
      }
    } catch (err) {
      const f = asEventFailure(err);
      if (f.transient) retry ??= f;
      else result.failed.push({ projectId, reason: f.reason });
      continue;
    } finally {
      result.queued += queued;
    }
    await deps.queue.markSwept(projectId, nowMs);
    // Read after the project's sweep: a webhook that came while it ran was heard.
    const heard = sinceMs === undefined ? (await deps.queue.project(projectId))?.firstWebhookMs != null : await deps.queue.heardSince(projectId, sinceMs);
    if (missed > 0 && !heard) {
      await deps.queue.markSilent(projectId, missed, nowMs);
      result.silent.push({ projectId, missed });
    }
  }
  if (retry) throw retry;
  return result;
}

/**
 * Enqueues every event of the body (durably, before the webhook answers); returns how many were new. The projects it
 * names are heard from: none of them is silent any more.
 */
export async function receiveWebhook(deps: Pick<BackendDeps, 'queue'>, body: Record<string, unknown>, nowMs: number): Promise<{ events: number; queued: number }> {
  const events = webhookEvents(body);
  let queued = 0;
  for (const e of events) if ((await deps.queue.enqueue(e, nowMs)).queued) queued++;
  const projects = new Set([...events.map((e) => e.projectId), idOf(body.project) ?? 0]);
  projects.delete(0);
  for (const p of projects) await deps.queue.noteWebhook(p, nowMs);
  return { events: events.length, queued };
}

// ---- one queued event --------------------------------------------------------------------------------------------

/** The audit record id of an event: derived from its key, so a retry after a crash finds the record it wrote. */
export function auditIdOf(key: string): string {
  const h = createHash('sha256').update(`label-studio:${key}`).digest('hex');
  // Formatted as a version-8 (custom) RFC 9562 UUID, as the trail's ids are UUIDs.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16] as string, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The model_version of an audit prediction: the Data Manager shows it in its "Prediction model versions" column, which
 * filters ("contains noisy") and sorts (by verdict, then quality). Not the bundle's version: the Data Manager's own
 * "Prediction score" column averages only the predictions of the project's selected model version, which is the
 * backend's title, so the verdict has to travel in the tag to be seen at all.
 */
export function auditTag(verdict: string, quality: number): string {
  return `asm-fer audit: ${verdict} (quality ${quality.toFixed(2)})`;
}

/** The submitted choice of `question` in an annotation's result, or undefined when it has none. */
function submittedChoice(result: readonly unknown[], q: ChoiceQuestion): string | undefined {
  for (const r of result) {
    const region = r as { from_name?: unknown; to_name?: unknown; type?: unknown; value?: { choices?: unknown } };
    if (region.from_name !== q.fromName || region.to_name !== q.toName) continue;
    const choices = region.value?.choices;
    if (Array.isArray(choices) && typeof choices[0] === 'string') return choices[0];
  }
  return undefined;
}

/**
 * Runs one queued event to its end; throws (asEventFailure tells whether to retry) when it cannot. `attempts`: how many
 * times it was tried before. `stillHeld`, called just before anything is written to Label Studio, throws when the
 * event's claim is no longer the caller's (another replica took it over), so two replicas never write one event back.
 */
export async function processEvent(deps: BackendDeps, key: string, e: AnnotationEvent, nowMs: () => number, attempts = 0, stillHeld: () => Promise<void> = async () => {}): Promise<EventOutcome> {
  const before = await deps.queue.annotation(e.annotationId);
  if (e.action === 'ANNOTATION_DELETED') {
    await stillHeld();
    // The trail's record of the annotation's current verdict is marked first: a trail that cannot be written now throws
    // AuditStoreUnavailable (transient), and the retry finds the prediction still there. Marking is idempotent.
    if (before?.auditId) await deps.trail.withdraw(before.auditId, nowMs());
    if (before?.predictionId != null) await deps.client.deletePrediction(before.predictionId);
    await deps.queue.saveAnnotation({ annotationId: e.annotationId, taskId: before?.taskId ?? e.taskId, auditId: before?.auditId ?? null, predictionId: null, deletedMs: nowMs() });
    return { kind: 'deleted', ...(before?.auditId ? { auditId: before.auditId } : {}) };
  }
  const auditId = auditIdOf(key);
  const task = await deps.client.getTask(e.taskId);
  const question = choiceQuestion(await deps.client.getLabelConfig(e.projectId), deps.host.current.manifest.classes, await labelMapFor(deps, e.projectId));
  const choice = submittedChoice(e.result, question);
  if (choice === undefined) return { kind: 'skipped', reason: 'no-choice' };
  const label = question.classOf[choice];
  if (label === undefined) throw new EventFailure('unknown-choice', false, `the submitted choice ${JSON.stringify(choice)} is not in the project's labeling config`);

  // Written once: a retry (after a crash, or a failed write-back) finds the record by its derived id.
  let record: Pick<NewAuditRecord, 'verdict' | 'quality' | 'mistakenness' | 'predicted' | 'confidence' | 'probabilities' | 'labelProbability'> | undefined = await deps.trail.store.get(auditId);
  if (!record) {
    const image = await deps.client.fetchImage(imageUrl(task.data, question));
    const judged = await deps.host.use(async (served) => {
      // The image's pixels stay reserved until its audit is committed, as a /v1/audit request's do.
      const lease = deps.faces.pixels.lease();
      try {
        const { found, pick } = await findOneFace(deps, served, image, lease);
        const face = {
          label,
          itemId: `task ${e.taskId} annotation ${e.annotationId}`,
          annotatorId: e.completedBy === null ? null : String(e.completedBy),
          datasetId: `label-studio project ${e.projectId}`,
          image,
          found,
          pick,
        };
        const [r] = await auditFaces(deps, served, [face], { ids: [auditId], nowMs });
        if (!r) throw new Error('auditFaces returned no record for one face');
        return r;
      } finally {
        lease.release();
      }
    });
    record = judged;
  }

  // The prediction written back, unless a previous attempt of this event wrote it and saved its id.
  let predictionId = before?.auditId === auditId ? before.predictionId : null;
  if (predictionId === null) {
    const prediction = {
      task: e.taskId,
      result: choiceResult(question, question.choiceOf[record.predicted] ?? bestChoice({ label: record.predicted, confidence: record.confidence, probabilities: record.probabilities }, question).choice),
      score: record.labelProbability,
      model_version: auditTag(record.verdict, record.quality),
      mislabeling: record.mistakenness,
    };
    await stillHeld();
    // A previous attempt may have written it and lost Label Studio's answer (a timeout, a crash or a replica killed
    // before the id was saved): on a retry, a prediction of this task with this tag and score that no other annotation
    // owns is that one.
    if (attempts > 0) {
      for (const p of await deps.client.listPredictions(e.taskId)) {
        if (p.model_version === prediction.model_version && p.score === prediction.score && (await deps.queue.predictionOwner(p.id)) === undefined) {
          predictionId = p.id;
          break;
        }
      }
    }
    predictionId ??= await deps.client.createPrediction(prediction);
    // The annotation's previous verdict (an update replaces it) leaves the task, so the Data Manager shows the current
    // one; deleted before the new id is saved, so that a failure here retries the deletion too.
    if (before?.predictionId != null && before.predictionId !== predictionId) await deps.client.deletePrediction(before.predictionId);
    await deps.queue.saveAnnotation({ annotationId: e.annotationId, taskId: e.taskId, auditId, predictionId, deletedMs: null });
  }
  return { kind: 'audited', auditId, predictionId, verdict: record.verdict };
}

