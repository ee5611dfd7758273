// The durable queue of Label Studio annotation events between the webhook (which only enqueues) and the worker (which
// fetches, audits and writes back): what an event is, what the worker needs of a queue, and what the backend keeps per
// project (its label map, whether its webhook is heard). Two stores implement it: queue-sqlite.ts (label-studio.db,
// one process) and queue-postgres.ts (the audit database, shared by every replica). Asynchronous because the second
// one is: the SQLite store answers at once.
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

/**
 * A queued event the worker has claimed. The claim is a lease: until `leaseUntilMs` no other claimer (another replica,
 * on a shared store) is given the event; the holder renews it while it works, and a holder that stops renewing (it
 * died) loses it to the next claim after it runs out.
 */
export interface QueuedEvent {
  seq: number;
  key: string;
  event: AnnotationEvent;
  receivedMs: number;
  /** Attempts made before this one, a claim that ran out without an outcome counted as one. */
  attempts: number;
  /** The claim's token: what renew, complete, retry and fail name, so an outcome of a lost claim is not recorded. */
  claim: string;
  leaseUntilMs: number;
  /** The event's previous claim ran out without an outcome (its holder died or stalled): this is a reclaim. */
  reclaimed: boolean;
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
 * The queue the webhook writes and the worker reads. `enqueue` resolves once the event is durable (committed and
 * synced); events of one annotation are claimed in arrival order, one at a time, so an update is never applied before
 * the creation it follows. A claim is leased (QueuedEvent): on a shared store several replicas claim from the same
 * queue and each event is held by one of them at a time.
 */
export interface EventQueue {
  /** Where the queue is kept, for the log: a file, or a database URL without its password. */
  readonly location: string;
  /** Whether other processes claim from this queue too (PostgreSQL): the worker then also looks for work they queued. */
  readonly shared: boolean;
  /** false when an event with the same key is already queued or done (a redelivery). */
  enqueue(event: AnnotationEvent, nowMs: number): Promise<{ queued: boolean }>;
  /**
   * The oldest due event whose annotation has no earlier unfinished event and whose lease (if any) has run out, leased
   * to the caller until `nowMs + leaseMs`; undefined when there is none.
   */
  claim(nowMs: number, leaseMs: number): Promise<QueuedEvent | undefined>;
  /** Extends the claim to `untilMs`; false when it is no longer the caller's (it ran out and was claimed again). */
  renew(seq: number, claim: string, untilMs: number): Promise<boolean>;
  /**
   * When the next event falls due (a retry's time, or when a claim held elsewhere runs out), or undefined when nothing
   * is waiting.
   */
  nextDueMs(): Promise<number | undefined>;
  /** The event is done. These three record an outcome only under the caller's claim; false when it was lost. */
  complete(seq: number, claim: string, outcome: EventOutcome, nowMs: number): Promise<boolean>;
  /** A transient failure: tried again at `atMs`. `reason` is a short slug (never a message that may hold secrets). */
  retry(seq: number, claim: string, reason: string, atMs: number): Promise<boolean>;
  /** A permanent failure: not tried again. */
  fail(seq: number, claim: string, reason: string, nowMs: number): Promise<boolean>;
  /**
   * Calls `listener` when another process may have queued an event (a shared store's notification), so an idle worker
   * need not wait for its next poll. A store used by one process only never calls it.
   */
  onEnqueued(listener: () => void): void;
  annotation(annotationId: number): Promise<AnnotationState | undefined>;
  saveAnnotation(state: AnnotationState): Promise<void>;
  /** Projects to sweep: those of the events queued so far and those connected through /setup. */
  projects(): Promise<number[]>;
  /** What the store keeps of project `projectId`, or undefined when it keeps nothing. */
  project(projectId: number): Promise<ProjectState | undefined>;
  /** Every project the store keeps a state of, by id. */
  projectStates(): Promise<ProjectState[]>;
  /** Sets (or, with null, removes) the project's own label map. */
  setLabelMap(projectId: number, labelMap: Readonly<Record<string, string>> | null, nowMs: number): Promise<void>;
  /** /setup accepted the project's config: from now on it is swept. */
  markConnected(projectId: number, nowMs: number): Promise<void>;
  /** A webhook named the project: it is not silent (any more). Writes only when that changes what is stored. */
  noteWebhook(projectId: number, nowMs: number): Promise<void>;
  /**
   * Whether a webhook named the project at or after `sinceMs`: what tells a project whose webhook is lost or refused
   * from one that is merely quiet. On a shared store, a webhook any replica received.
   */
  heardSince(projectId: number, sinceMs: number): Promise<boolean>;
  /** A sweep went through all of the project's tasks. */
  markSwept(projectId: number, nowMs: number): Promise<void>;
  /** A sweep found `missed` annotation changes of the project that no webhook announced, and none came meanwhile. */
  markSilent(projectId: number, missed: number, nowMs: number): Promise<void>;
  /** Whether a creation or update of the annotation with this `updated_at` was ever queued. */
  hasEvent(annotationId: number, updatedAt: string): Promise<boolean>;
  /** Annotations of the task with an audit and no deletion yet. */
  liveAnnotationsOfTask(taskId: number): Promise<number[]>;
  /** The annotation whose audit prediction `predictionId` is, if any. */
  predictionOwner(predictionId: number): Promise<number | undefined>;
  /** Every event with its state, oldest first (tests and operators; small queues). */
  events(): Promise<QueueEventView[]>;
  stats(nowMs: number): Promise<QueueStats>;
  close(): Promise<void>;
}

/** One event as events() lists it. */
export interface QueueEventView {
  key: string;
  state: 'pending' | 'done' | 'failed';
  attempts: number;
  lastError: string | null;
  outcome: EventOutcome | null;
  receivedMs: number;
  doneMs: number | null;
}
