// The durable queue of Label Studio annotation events between the webhook (which only enqueues) and the worker (which
// fetches, audits and writes back): what an event is, what the worker needs of a queue, and what the backend keeps per
// project (its label map, whether its webhook is heard). queue-sqlite.ts keeps it in SQLite; another store
// (PostgreSQL) implements the same interface.

export type AnnotationAction = 'ANNOTATION_CREATED' | 'ANNOTATION_UPDATED' | 'ANNOTATION_DELETED';

/** One annotation event as the worker needs it: what Label Studio sent, reduced to ids and the submitted result. */
export interface AnnotationEvent {
  action: AnnotationAction;
  annotationId: number;
  taskId: number;
  projectId: number;
  /** The annotator (the annotation's `completed_by`), null when Label Studio did not say. */
  completedBy: number | null;
  /** The annotation's `updated_at` (or `created_at`) as sent: with the action, what makes a delivery the same event. */
  updatedAt: string;
  /** The annotation's result regions (created / updated events); [] for a deletion. */
  result: unknown[];
}

/** The unique key of an event: a redelivery of it has the same key and is dropped. */
export function eventKey(e: Pick<AnnotationEvent, 'annotationId' | 'action' | 'updatedAt'>): string {
  return `${e.annotationId}:${e.action}:${e.updatedAt}`;
}

/** A queued event the worker has claimed. */
export interface QueuedEvent {
  seq: number;
  key: string;
  event: AnnotationEvent;
  receivedMs: number;
  /** Attempts made before this one. */
  attempts: number;
}

/** What became of an event: audited (with the record and the prediction written back), skipped, or deleted. */
export interface EventOutcome {
  kind: 'audited' | 'skipped' | 'deleted';
  auditId?: string;
  predictionId?: number;
  verdict?: string;
  /** Why it was skipped (e.g. the annotation has no choice for the audited question). */
  reason?: string;
}

/** Where each annotation stands: its latest audit record and the prediction written back for it. */
export interface AnnotationState {
  annotationId: number;
  taskId: number;
  auditId: string | null;
  predictionId: number | null;
  deletedMs: number | null;
}

/**
 * What the store keeps of one Label Studio project: its own label map, and what tells a connected project from one
 * whose webhook is silent.
 */
export interface ProjectState {
  projectId: number;
  /** Choice → model class for this project (PUT /label-studio/projects/{id}/label-map); null: the environment's map applies. */
  labelMap: Record<string, string> | null;
  /** When the label map was last set; null while it has none. */
  labelMapMs: number | null;
  /** When /setup last accepted the project's labeling config (Label Studio connected the backend); null if never. */
  connectedMs: number | null;
  /** When a sweep last went through all of the project's tasks; null if none has. */
  sweptMs: number | null;
  /** When a webhook first named the project; null while none has. */
  firstWebhookMs: number | null;
  /** Since when the project is silent: a sweep found annotation changes no webhook announced, and none has come since. */
  silentSinceMs: number | null;
  /** Annotation changes the sweeps found while the project is silent. */
  missed: number;
}

export interface QueueStats {
  /** Events not yet done (waiting or retrying). */
  depth: number;
  /** Age in ms of the oldest event not yet done; 0 when none. */
  oldestMs: number;
  /** Events given up on (a permanent failure), all time. */
  failed: number;
}

/**
 * The queue the webhook writes and the worker reads. `enqueue` returns once the event is durable (committed and
 * synced); events of one annotation are claimed in arrival order, one at a time, so an update is never applied before
 * the creation it follows.
 */
export interface EventQueue {
  /** false when an event with the same key is already queued or done (a redelivery). */
  enqueue(event: AnnotationEvent, nowMs: number): { queued: boolean };
  /** The oldest due event whose annotation has no earlier unfinished event, or undefined. */
  claim(nowMs: number): QueuedEvent | undefined;
  /** When the next event falls due, or undefined when nothing is waiting. */
  nextDueMs(): number | undefined;
  complete(seq: number, outcome: EventOutcome, nowMs: number): void;
  /** A transient failure: tried again at `atMs`. `reason` is a short slug (never a message that may hold secrets). */
  retry(seq: number, reason: string, atMs: number): void;
  /** A permanent failure: not tried again. */
  fail(seq: number, reason: string, nowMs: number): void;
  annotation(annotationId: number): AnnotationState | undefined;
  saveAnnotation(state: AnnotationState): void;
  /** Projects to sweep: those of the events queued so far and those connected through /setup. */
  projects(): number[];
  /** What the store keeps of project `projectId`, or undefined when it keeps nothing. */
  project(projectId: number): ProjectState | undefined;
  /** Every project the store keeps a state of, by id. */
  projectStates(): ProjectState[];
  /** Sets (or, with null, removes) the project's own label map. */
  setLabelMap(projectId: number, labelMap: Readonly<Record<string, string>> | null, nowMs: number): void;
  /** /setup accepted the project's config: from now on it is swept. */
  markConnected(projectId: number, nowMs: number): void;
  /** A webhook named the project: it is not silent (any more). Writes only when that changes what is stored. */
  noteWebhook(projectId: number, nowMs: number): void;
  /** A sweep went through all of the project's tasks. */
  markSwept(projectId: number, nowMs: number): void;
  /** A sweep found `missed` annotation changes of the project that no webhook announced, and none came meanwhile. */
  markSilent(projectId: number, missed: number, nowMs: number): void;
  /** Whether a creation or update of the annotation with this `updated_at` was ever queued. */
  hasEvent(annotationId: number, updatedAt: string): boolean;
  /** Annotations of the task with an audit and no deletion yet. */
  liveAnnotationsOfTask(taskId: number): number[];
  /** The annotation whose audit prediction `predictionId` is, if any. */
  predictionOwner(predictionId: number): number | undefined;
  /** Every event with its state, oldest first (tests and operators; small queues). */
  events(): { key: string; state: 'pending' | 'done' | 'failed'; attempts: number; lastError: string | null; outcome: EventOutcome | null; receivedMs: number; doneMs: number | null }[];
  stats(nowMs: number): QueueStats;
  close(): void;
}
