// Failures the service reports to clients, as typed values; src/http/problem.ts turns them into RFC 9457 problem+json.

const TYPE_BASE = 'https://asm-fer.dev/problems/';

/** A failure with an HTTP status and a stable problem `type` URI; `extras` become extra problem members. */
export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly slug: string;
  abstract readonly title: string;
  /** Seconds, sent as Retry-After. */
  readonly retryAfter: number | undefined = undefined;
  readonly extras: Record<string, unknown> = {};
  /** Extra response headers (e.g. WWW-Authenticate). */
  readonly headers: Record<string, string> = {};

  constructor(detail: string) {
    // Known failures are answered, never debugged, so no stack is captured: under overload the capture was the most
    // expensive part of a 503 (bench/overload.ts, docs/results.md).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail);
    Error.stackTraceLimit = limit;
  }

  get type(): string {
    return TYPE_BASE + this.slug;
  }
}

/** The request is malformed: missing parts, mismatched counts, fields the contract does not allow. */
export class BadRequest extends AppError {
  readonly status = 400;
  readonly slug = 'bad-request';
  readonly title = 'Bad request';
  override readonly extras: Record<string, unknown>;
  constructor(detail: string, errors?: { path: string; message: string }[]) {
    super(detail);
    this.extras = errors ? { errors } : {};
  }
}

/** A failure about one image of a request; `index` (its position among the image parts) becomes a problem member. */
abstract class ImageError extends AppError {
  override readonly extras: Record<string, unknown>;
  constructor(detail: string, index?: number) {
    super(detail);
    this.extras = index === undefined ? {} : { index };
  }
}

/** A submitted label is not one of the model's classes. */
export class UnknownLabel extends AppError {
  readonly status = 400;
  readonly slug = 'unknown-label';
  readonly title = 'Unknown label';
  override readonly extras: Record<string, unknown>;
  constructor(label: string, index: number, validLabels: readonly string[]) {
    super(`label ${JSON.stringify(label)} (part ${index}) is not a class of this model`);
    this.extras = { validLabels: [...validLabels], index };
  }
}

/** The bytes are not an image format the service decodes (decided from magic bytes, not the declared type). */
export class UnsupportedMedia extends ImageError {
  readonly status = 415;
  readonly slug = 'unsupported-media-type';
  readonly title = 'Unsupported media type';
}

/** The bytes start like a supported image but cannot be decoded (corrupt or truncated). */
export class UnreadableImage extends ImageError {
  readonly status = 422;
  readonly slug = 'unreadable-image';
  readonly title = 'Unreadable image';
}

/** The upload is too big: a part over the byte limit, too many parts, or an image over the pixel limit. */
export class PayloadTooLarge extends ImageError {
  readonly status = 413;
  readonly slug = 'payload-too-large';
  readonly title = 'Payload too large';
}

/** The images of a request decode to more pixels than ASM_FER_REQUEST_PIXEL_BUDGET; refused from their headers. */
export class PixelBudgetExceeded extends AppError {
  readonly status = 413;
  readonly slug = 'payload-too-large';
  readonly title = 'Payload too large';
  override readonly extras: Record<string, unknown>;
  constructor(detail: string, budget: string, limit: number, pixels: number) {
    super(detail);
    this.extras = { budget, limit, pixels };
  }
}

export class NotFound extends AppError {
  readonly status = 404;
  readonly slug = 'not-found';
  readonly title = 'Not found';
}

/** The path exists but not with this method; `allow` lists the methods it has (sent as Allow, RFC 9110 15.5.6). */
export class MethodNotAllowed extends AppError {
  readonly status = 405;
  readonly slug = 'method-not-allowed';
  readonly title = 'Method not allowed';
  override readonly headers: Record<string, string>;
  constructor(detail: string, allow: readonly string[]) {
    super(detail);
    this.headers = { Allow: allow.join(', ') };
  }
}

/** 503: the service cannot answer now; the client should retry after `retryAfter` seconds. */
abstract class Unavailable extends AppError {
  readonly status = 503;
  override readonly retryAfter: number;
  constructor(detail: string, retryAfter = 1) {
    super(detail);
    this.retryAfter = retryAfter;
  }
}

/** The inference queue is full. */
export class Overloaded extends Unavailable {
  readonly slug = 'overloaded';
  readonly title = 'Service overloaded';
}

/**
 * The service is shutting down (or, for the readiness probes, not yet warmed up). The service object only exists once
 * its model is loaded, so a request route refused with this is always one that reached a stopping process.
 */
export class NotReady extends Unavailable {
  readonly slug = 'not-ready';
  readonly title = 'Service not ready';
  constructor(detail = 'the service is stopping; send the request again (another replica takes it)', retryAfter = 5) {
    super(detail, retryAfter);
  }
}

/** A session worker died while running this request's batch; it is being respawned. */
export class InferenceInterrupted extends Unavailable {
  readonly slug = 'inference-interrupted';
  readonly title = 'Inference interrupted';
}

/** The request ran past ASM_FER_REQUEST_TIMEOUT_MS. 503, not 504: no upstream gateway timed out, this service is busy. */
export class RequestTimeout extends Unavailable {
  readonly slug = 'request-timeout';
  readonly title = 'Request timed out';
  constructor(ms: number, retryAfter = 1) {
    super(`the request was not answered within ${ms} ms (ASM_FER_REQUEST_TIMEOUT_MS)`, retryAfter);
  }
}

/** The audit trail cannot be written or read (disk full, read-only, size cap reached, unopenable); predictions still work. */
export class AuditStoreUnavailable extends Unavailable {
  readonly slug = 'audit-store-unavailable';
  readonly title = 'Audit store unavailable';
  constructor(detail: string, retryAfter = 30) {
    super(detail, retryAfter);
  }
}

/**
 * The client sent its request too slowly: headers or body still arriving when the time ran out (a stalled upload, a
 * slowloris). The rest is never read, so the connection closes after the answer.
 */
export class SlowRequest extends AppError {
  readonly status = 408;
  readonly slug = 'request-too-slow';
  readonly title = 'Request too slow';
  override readonly headers = { Connection: 'close' };
}

/** The bytes on the connection are not an HTTP request Node can parse; answered before routing. */
export class MalformedHttp extends AppError {
  readonly status = 400;
  readonly slug = 'malformed-http';
  readonly title = 'Malformed HTTP request';
}

/** The request's headers are larger than the server accepts (Node's --max-http-header-size). */
export class HeadersTooLarge extends AppError {
  readonly status = 431;
  readonly slug = 'headers-too-large';
  readonly title = 'Request header fields too large';
}

/** A face box does not lie inside its image. */
export class BoxOutsideImage extends ImageError {
  readonly status = 422;
  readonly slug = 'box-outside-image';
  readonly title = 'Face box outside the image';
}

/** An audited image has no face to audit: the detector found none, or the `face` index is past the faces found. */
export class NoFace extends ImageError {
  readonly status = 422;
  readonly slug = 'no-face';
  readonly title = 'No such face in the image';
}

/** An audited image has several faces and the request did not say which one the label belongs to. */
export class SeveralFaces extends ImageError {
  readonly status = 422;
  readonly slug = 'several-faces';
  readonly title = 'Several faces; say which one';
}

/** A Label Studio labeling config asm-fer cannot audit: no single-choice image question, or choices that map onto no class. */
export class LabelConfigRefused extends AppError {
  readonly status = 422;
  readonly slug = 'label-config';
  readonly title = 'Labeling config not supported';
  override readonly extras: Record<string, unknown>;
  constructor(detail: string, unmappedChoices: readonly string[], validLabels: readonly string[]) {
    super(detail);
    this.extras = { unmappedChoices: [...unmappedChoices], validLabels: [...validLabels] };
  }
}

/** A project's label map names classes the served model does not have. */
export class LabelMapRefused extends AppError {
  readonly status = 422;
  readonly slug = 'label-map';
  readonly title = 'Label map names unknown classes';
  override readonly extras: Record<string, unknown>;
  constructor(detail: string, unknownClasses: readonly string[], validLabels: readonly string[]) {
    super(detail);
    this.extras = { unknownClasses: [...unknownClasses], validLabels: [...validLabels] };
  }
}

/** The audit or admin routes need `Authorization: Bearer <ASM_FER_API_KEY>`. */
export class Unauthorized extends AppError {
  readonly status = 401;
  readonly slug = 'unauthorized';
  readonly title = 'Unauthorized';
  override readonly headers = { 'WWW-Authenticate': 'Bearer realm="asm-fer"' };
}

/** The admin endpoint is disabled because no ASM_FER_API_KEY is configured. */
export class Forbidden extends AppError {
  readonly status = 403;
  readonly slug = 'forbidden';
  readonly title = 'Forbidden';
}

/** Another reload is still running. */
export class Conflict extends AppError {
  readonly status = 409;
  readonly slug = 'conflict';
  readonly title = 'Conflict';
}

/**
 * The bundle in ASM_FER_MODEL_DIR failed validation or warm-up; the previous model keeps serving. 422 because the
 * request was understood but the bundle it asks to load cannot be used.
 */
export class ReloadFailed extends AppError {
  readonly status = 422;
  readonly slug = 'reload-failed';
  readonly title = 'Reload failed; the previous model is still serving';
}

/** The model bundle on disk is invalid or inconsistent; the service must not start with it. */
export class BundleError extends Error {
  override name = 'BundleError';
}
