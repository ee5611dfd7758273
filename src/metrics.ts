// Every Prometheus metric the service exports, on a private registry, with small record/observe helpers.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const PREFIX = 'asm_fer_';

/** Latency buckets in seconds: sub-millisecond queueing up to multi-second uploads. */
const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128];

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * What the audit gauges read at scrape time, declared here rather than imported from src/audit/: the trail's
 * statsNow() (a LiveSnapshot and a DriftReport) fits it as it is, and metrics.ts, which the faces and inference
 * modules import, then depends on nothing of the audit (an import of audit types here closed a circle through judge.ts).
 */
export interface AuditStatsView {
  live: {
    classes: readonly {
      label: string;
      sinceStart: { meanLabelProbability: number | null };
      window: { count: number; meanLabelProbability: number | null; verdictRates: Readonly<Record<string, number>> };
    }[];
  };
  drift: { classes: readonly { label: string; shift: number | null; drifted: boolean }[] };
}

/** One registry per app instance, so tests never share counters. */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: PREFIX });

  const requestDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'End-to-end HTTP request time, by route template, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: `${PREFIX}queue_wait_seconds`,
    help: 'Time an image waited in the batcher before its batch started.',
    buckets: SECONDS,
    registers: [registry],
  });
  const inferenceDuration = new Histogram({
    name: `${PREFIX}inference_duration_seconds`,
    help: 'Time of one batched onnxruntime run, including the hop to the worker thread.',
    buckets: SECONDS,
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: `${PREFIX}batch_size`,
    help: 'Images per inference batch.',
    buckets: BATCH_SIZES,
    registers: [registry],
  });
  const inferenceRequests = new Counter({
    name: `${PREFIX}inference_requests_total`,
    help: 'Requests that reached the batcher (one per HTTP request, whatever its image count).',
    registers: [registry],
  });
  const batchExecutions = new Counter({
    name: `${PREFIX}batch_executions_total`,
    help: 'Batched onnxruntime runs; fewer than inference_requests_total when batching merges requests.',
    registers: [registry],
  });
  const detectionDuration = new Histogram({
    name: `${PREFIX}detection_duration_seconds`,
    help: 'Face detection per image: letterboxing, the detector run (including the hop to its worker thread) and decoding.',
    buckets: SECONDS,
    registers: [registry],
  });
  const detectedFaces = new Histogram({
    name: `${PREFIX}detected_faces`,
    help: 'Faces found per image the detector ran on.',
    buckets: [0, 1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const cancelledRequests = new Counter({
    name: `${PREFIX}cancelled_requests_total`,
    help: 'Requests whose work was cancelled before it finished, by reason: timeout (answered 503 request-timeout) or client-gone (the connection closed first).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const cancelledImages = new Counter({
    name: `${PREFIX}cancelled_images_total`,
    help: 'Work skipped because its request was cancelled, in images (faces for inference), by the stage that skipped it: decode, detection or inference.',
    labelNames: ['stage'] as const,
    registers: [registry],
  });
  let pixelsInUse: () => number = () => 0;
  new Gauge({
    name: `${PREFIX}decoded_pixels_reserved`,
    help: 'Decoded pixels reserved by requests in progress against ASM_FER_PROCESS_PIXEL_BUDGET.',
    registers: [registry],
    collect() {
      this.set(pixelsInUse());
    },
  });
  let queued: () => number = () => 0;
  new Gauge({
    name: `${PREFIX}queue_depth`,
    help: 'Images waiting in the batcher for a batch.',
    registers: [registry],
    collect() {
      this.set(queued());
    },
  });
  const rejected = new Counter({
    name: `${PREFIX}rejected_requests_total`,
    help: 'Requests answered with a problem, by reason (the problem type slug; a fixed set).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const workerRestarts = new Counter({
    name: `${PREFIX}worker_restarts_total`,
    help: 'Session worker threads that died and were respawned.',
    registers: [registry],
  });
  const reloads = new Counter({
    name: `${PREFIX}model_reloads_total`,
    help: 'Model reload attempts, by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const predictions = new Counter({
    name: `${PREFIX}predictions_total`,
    help: 'Predicted labels, by class (predict and audit).',
    labelNames: ['class'] as const,
    registers: [registry],
  });
  const auditVerdicts = new Counter({
    name: `${PREFIX}audit_verdicts_total`,
    help: 'Audit verdicts, by submitted class and verdict.',
    labelNames: ['class', 'verdict'] as const,
    registers: [registry],
  });
  let auditStats: (() => AuditStatsView) | undefined;
  const liveGauge = (name: string, help: string, labelNames: readonly string[], fill: (g: Gauge, s: AuditStatsView) => void) =>
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const s = auditStats?.();
        if (s) fill(this, s);
      },
    });
  liveGauge('audit_window_label_probability_mean', "Live window (this process's, or every replica's with a shared PostgreSQL trail): mean probability of the submitted label (mu_k), by class; absent before the class's first audit.", ['class'], (g, s) => {
    for (const c of s.live.classes) if (c.window.meanLabelProbability !== null) g.set({ class: c.label }, c.window.meanLabelProbability);
  });
  liveGauge('audit_since_start_label_probability_mean', 'Since this process started (or the last model change; in memory, a restart empties it): mean probability of the submitted label, by class.', ['class'], (g, s) => {
    for (const c of s.live.classes) if (c.sinceStart.meanLabelProbability !== null) g.set({ class: c.label }, c.sinceStart.meanLabelProbability);
  });
  liveGauge('audit_window_verdict_ratio', 'Live window: share of each verdict, by class.', ['class', 'verdict'], (g, s) => {
    for (const c of s.live.classes) {
      if (c.window.count === 0) continue;
      for (const [verdict, rate] of Object.entries(c.window.verdictRates)) g.set({ class: c.label, verdict }, rate);
    }
  });
  liveGauge('audit_drift_shift', "Live window mean minus the bundle's training-time class mean, by class.", ['class'], (g, s) => {
    for (const c of s.drift.classes) if (c.shift !== null) g.set({ class: c.label }, c.shift);
  });
  liveGauge('audit_drift_detected', 'Whether the class has drifted (1) or not (0), by class.', ['class'], (g, s) => {
    for (const c of s.drift.classes) g.set({ class: c.label }, c.drifted ? 1 : 0);
  });
  let lsQueue: (() => Promise<{ depth: number; oldestMs: number }>) | undefined;
  // A queue that cannot be read now (its database down) keeps the last figures rather than failing the scrape.
  new Gauge({
    name: `${PREFIX}label_studio_queue_depth`,
    help: 'Label Studio annotation events queued and not yet done (waiting or retrying); on a shared queue, every replica\'s.',
    registers: [registry],
    async collect() {
      const q = await lsQueue?.().catch(() => undefined);
      if (q || !lsQueue) this.set(q?.depth ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}label_studio_queue_lag_seconds`,
    help: 'Age of the oldest Label Studio annotation event not yet done; 0 when the queue is empty.',
    registers: [registry],
    async collect() {
      const q = await lsQueue?.().catch(() => undefined);
      if (q || !lsQueue) this.set((q?.oldestMs ?? 0) / 1000);
    },
  });
  const lsFailures = new Counter({
    name: `${PREFIX}label_studio_event_failures_total`,
    help: 'Failed attempts at a Label Studio annotation event, by reason (a fixed set of slugs: ls-unreachable, image-not-found, no-face, ...).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const lsRejectedWebhooks = new Counter({
    name: `${PREFIX}label_studio_rejected_webhooks_total`,
    help: 'Label Studio webhooks answered with a problem, by reason (the problem type slug: unauthorized, bad-request, ...); Label Studio does not resend them, the next sweep finds their annotations.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const lsSwept = new Counter({
    name: `${PREFIX}label_studio_swept_events_total`,
    help: 'Label Studio annotation events a sweep queued because no webhook had brought them (lost, refused, or sent while the service was down).',
    registers: [registry],
  });
  let lsSilent: (() => Promise<number>) | undefined;
  new Gauge({
    name: `${PREFIX}label_studio_silent_projects`,
    help: 'Connected Label Studio projects whose annotations changed with no webhook since (its webhook lost or refused, e.g. saved without the secret); GET /label-studio/health names them.',
    registers: [registry],
    async collect() {
      const n = await lsSilent?.().catch(() => undefined);
      if (n !== undefined || !lsSilent) this.set(n ?? 0);
    },
  });
  const lsEvents = new Histogram({
    name: `${PREFIX}label_studio_event_seconds`,
    help: 'From webhook receipt to the end of a Label Studio annotation event (verdict written back), by outcome.',
    labelNames: ['outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [registry],
  });
  const modelInfo = new Gauge({
    name: `${PREFIX}model_info`,
    help: 'The served model; always 1.',
    labelNames: ['name', 'version', 'execution_provider'] as const,
    registers: [registry],
  });

  return {
    registry,
    contentType: registry.contentType,
    observeRequest(route: string, method: string, status: number, seconds: number) {
      requestDuration.observe({ route, method, status: String(status) }, seconds);
    },
    observeBatch(size: number, queueWaitSeconds: readonly number[]) {
      batchExecutions.inc();
      batchSize.observe(size);
      for (const s of queueWaitSeconds) queueWait.observe(s);
    },
    observeInference(seconds: number) {
      inferenceDuration.observe(seconds);
    },
    observeDetection(seconds: number, faces: number) {
      detectionDuration.observe(seconds);
      detectedFaces.observe(faces);
    },
    recordInferenceRequest() {
      inferenceRequests.inc();
    },
    /** `depth` is read at scrape time (the current model's batcher). */
    trackQueueDepth(depth: () => number) {
      queued = depth;
    },
    recordCancelledRequest(reason: 'timeout' | 'client-gone') {
      cancelledRequests.inc({ reason });
    },
    recordCancelledImages(stage: 'decode' | 'detection' | 'inference', n: number) {
      if (n > 0) cancelledImages.inc({ stage }, n);
    },
    /** `inUse` is read at scrape time (the pixel budget). */
    trackPixels(inUse: () => number) {
      pixelsInUse = inUse;
    },
    recordRejection(reason: string) {
      rejected.inc({ reason });
    },
    recordWorkerRestart() {
      workerRestarts.inc();
    },
    recordReload(result: 'ok' | 'failed') {
      reloads.inc({ result });
    },
    recordPrediction(label: string) {
      predictions.inc({ class: label });
    },
    recordVerdict(label: string, verdict: string) {
      auditVerdicts.inc({ class: label, verdict });
    },
    setModelInfo(name: string, version: string, executionProvider: string) {
      modelInfo.reset();
      modelInfo.set({ name, version, execution_provider: executionProvider }, 1);
    },
    /**
   * `read` gives the live audit statistics and drift of the served model at scrape time (O(classes), no scan; a
   * shared trail's last windows read, never a wait on the database).
   */
    trackAuditStats(read: () => AuditStatsView) {
      auditStats = read;
    },
    /** `read` gives the Label Studio queue's depth and oldest age at scrape time. */
    trackLabelStudioQueue(read: () => Promise<{ depth: number; oldestMs: number }>) {
      lsQueue = read;
    },
    recordLabelStudioFailure(reason: string) {
      lsFailures.inc({ reason });
    },
    recordLabelStudioRejectedWebhook(reason: string) {
      lsRejectedWebhooks.inc({ reason });
    },
    recordLabelStudioSwept(events: number) {
      if (events > 0) lsSwept.inc(events);
    },
    /** `read` gives how many connected projects are silent, at scrape time. */
    trackLabelStudioSilentProjects(read: () => Promise<number>) {
      lsSilent = read;
    },
    recordLabelStudioEvent(outcome: 'audited' | 'skipped' | 'deleted' | 'failed', seconds: number) {
      lsEvents.observe({ outcome }, seconds);
    },
    render(): Promise<string> {
      return registry.metrics();
    },
    reset() {
      registry.resetMetrics();
    },
  };
}
