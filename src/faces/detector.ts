// The face detector: BlazeFace in its own session worker (session.run would otherwise block the event loop), fed a
// letterboxed image and answered with faces in the image's pixels. Images wait for the worker in a queue of their own
// (a Batcher of one), so those of a cancelled request leave it instead of running after their answer.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BundleError } from '../errors.js';
import { letterbox, type Letterbox, type RgbImage } from '../image/decode.js';
import { Batcher } from '../inference/batcher.js';
import type { OutputTensor } from '../onnx/protocol.js';
import { SessionPool, type PoolOptions } from '../onnx/session-pool.js';
import type { Metrics } from '../metrics.js';
import { anchors, decodeDetections, DETECTOR_SOURCE, KEYPOINTS, type Detection, type DetectorVariant, type Point } from './blazeface.js';
import type { Face } from './framing.js';
import { suppress } from './nms.js';

export interface DetectorSettings {
  minScore: number;
  iouThreshold: number;
  maxFaces: number;
}

/** What FaceDetector.start needs: which BlazeFace, its session settings, and the detection settings. */
export interface DetectorOptions extends DetectorSettings {
  variant: DetectorVariant;
  preferredProviders: readonly string[];
  intraOpThreads: number;
}

/** What GET /v1/models reports about the detector. */
export interface DetectorInfo extends DetectorSettings {
  name: string;
  source: string;
  inputSize: number;
  executionProvider: string;
}

/** BlazeFace was trained on pixels scaled to [-1, 1] (MediaPipe's image-to-tensor range). */
const INPUT_LOW = -1;
const INPUT_HIGH = 1;

/** NHWC float32 in [INPUT_LOW, INPUT_HIGH] from interleaved 8-bit RGB: (S, S, 3) → (1, S, S, 3). */
export function detectorInput(img: RgbImage): Float32Array {
  const out = new Float32Array(img.data.length);
  const k = (INPUT_HIGH - INPUT_LOW) / 255;
  for (let i = 0; i < img.data.length; i++) out[i] = (img.data[i] as number) * k + INPUT_LOW;
  return out;
}

/** A detection in letterboxed input coordinates (0..1) → a Face in pixels of the image the letterbox was made from. */
export function toImageFace(d: Detection, lb: Letterbox): Face {
  const px = (p: Point): Point => ({ x: (p.x * lb.size - lb.padX) / lb.scaleX, y: (p.y * lb.size - lb.padY) / lb.scaleY });
  const topLeft = px({ x: d.cx - d.w / 2, y: d.cy - d.h / 2 });
  const keypoints = Object.fromEntries(KEYPOINTS.map((name, k) => [name, px(d.keypoints[k] as Point)])) as Face['keypoints'];
  return { score: d.score, box: { x: topLeft.x, y: topLeft.y, width: (d.w * lb.size) / lb.scaleX, height: (d.h * lb.size) / lb.scaleY }, keypoints };
}

/** Faces ordered left to right by box centre (then top to bottom), so a face index reads like a caption. */
export function readingOrder(faces: Face[]): Face[] {
  const cx = (f: Face) => f.box.x + f.box.width / 2;
  const cy = (f: Face) => f.box.y + f.box.height / 2;
  return [...faces].sort((a, b) => cx(a) - cx(b) || cy(a) - cy(b));
}

async function verifySha256(variant: DetectorVariant): Promise<void> {
  const digest = createHash('sha256').update(await readFile(variant.modelPath)).digest('hex');
  if (digest !== variant.sha256) throw new BundleError(`${variant.modelPath} has sha256 ${digest}, expected ${variant.sha256}`);
}

/** Letterboxed images allowed to wait for the detector; admission and the pixel budget bound it long before this. */
const MAX_DETECTOR_QUEUE = 100_000;

type DetectorMetrics = Pick<Metrics, 'observeDetection' | 'recordCancelledImages'>;

export class FaceDetector {
  private readonly anchorPoints: Point[];
  /** Letterboxed 8-bit images (a quarter of their float input's size) waiting for the one session worker. */
  private readonly queue: Batcher<RgbImage, Detection[]>;

  private constructor(
    private readonly pool: SessionPool,
    readonly variant: DetectorVariant,
    readonly settings: DetectorSettings,
    private readonly metrics?: Partial<DetectorMetrics>,
  ) {
    this.anchorPoints = anchors(variant.layers);
    this.queue = new Batcher(
      async ([image]) => [await this.run(detectorInput(image as RgbImage))],
      { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueue: MAX_DETECTOR_QUEUE, maxInFlight: 1 },
      { onCancelled: (n) => this.metrics?.recordCancelledImages?.('detection', n) },
    );
  }

  /** Verifies the model file, starts one session worker and warms it with a black image. */
  static async start(opts: DetectorOptions, metrics?: Partial<DetectorMetrics>, extra: Partial<PoolOptions> = {}): Promise<FaceDetector> {
    const { variant } = opts;
    await verifySha256(variant);
    const [first, ...rest] = variant.outputs.flatMap((o) => [o.scores, o.boxes]) as [string, ...string[]];
    const pool = await SessionPool.start({
      modelPath: variant.modelPath,
      inputName: variant.inputName,
      outputName: first,
      extraOutputs: rest,
      preferredProviders: opts.preferredProviders,
      // The model takes one image per run (its batch dimension is fixed at 1); one worker keeps it off the event loop.
      workers: 1,
      intraOpThreads: opts.intraOpThreads,
      ...extra,
    });
    const settings = { minScore: opts.minScore, iouThreshold: opts.iouThreshold, maxFaces: opts.maxFaces };
    const detector = new FaceDetector(pool, variant, settings, metrics);
    try {
      await detector.run(new Float32Array(variant.size * variant.size * 3));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return detector;
  }

  get info(): DetectorInfo {
    return { name: this.variant.name, source: DETECTOR_SOURCE, inputSize: this.variant.size, executionProvider: this.pool.executionProvider, ...this.settings };
  }

  /**
   * Faces in `img` (upright RGB at its own size), at most maxFaces of the best, in reading order. Once `signal` aborts
   * the image is not letterboxed or leaves the queue, and the promise rejects with its reason.
   */
  async detect(img: RgbImage, signal?: AbortSignal): Promise<Face[]> {
    if (signal?.aborted) {
      this.metrics?.recordCancelledImages?.('detection', 1);
      throw signal.reason;
    }
    const started = performance.now();
    const { image, box } = await letterbox(img, this.variant.size);
    const [detections] = (await this.queue.run([image], signal)) as [Detection[]];
    const faces = readingOrder(suppress(detections, this.settings.iouThreshold, this.settings.maxFaces).map((d) => toImageFace(d, box)));
    this.metrics?.observeDetection?.((performance.now() - started) / 1000, faces.length);
    return faces;
  }

  /** One NHWC input through the session; the raw detections above minScore, before suppression. */
  private async run(input: Float32Array): Promise<Detection[]> {
    const { size } = this.variant;
    const outputs = await this.pool.runAll(input, [1, size, size, 3]);
    // Outputs come as (scores, boxes) per layer; anchors run through the layers in the same order.
    const layer = (k: number) => outputs[k] as OutputTensor;
    const scores = concat(this.variant.outputs.map((_, l) => layer(2 * l).data));
    const boxes = concat(this.variant.outputs.map((_, l) => layer(2 * l + 1).data));
    return decodeDetections(scores, boxes, this.anchorPoints, size, this.settings.minScore);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
