// Open Inference Protocol (KServe v2) metadata and inference on pre-processed FP32 tensors, through the same batcher
// as /v1. The JSON tensor format: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
import { Router, type Request } from 'express';
import { BadRequest, NotFound, NotReady, PayloadTooLarge } from '../errors.js';
import type { ServedModel } from '../inference/model-host.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { signalOf } from './cancel.js';

type ServerMetadata = components['schemas']['V2ServerMetadata'];
type ModelMetadata = components['schemas']['V2ModelMetadata'];
type ModelReady = components['schemas']['V2ModelReady'];
type InferRequest = components['schemas']['V2InferRequest'];
type InferResponse = components['schemas']['V2InferResponse'];

/** ONNX Runtime models in KServe/Triton terms. */
const PLATFORM = 'onnxruntime_onnx';

/** The served model when `name` is its name; 404 otherwise. */
function named(req: Request, model: ServedModel): ServedModel {
  const name = String(req.params.name);
  if (name !== model.manifest.name) throw new NotFound(`no model named ${JSON.stringify(name)}; this server serves ${JSON.stringify(model.manifest.name)}`);
  return model;
}

/**
 * Checks the request tensor against the model's input and splits it into one (C, H, W) tensor per image.
 * Shape, datatype, names and data length are 400; a batch over ASM_FER_MAX_FILES is 413, like too many image parts.
 */
export function splitInput(body: InferRequest, model: ServedModel, maxImages: number): Float32Array[] {
  const { input, output } = model.manifest;
  const [tensor, ...rest] = body.inputs;
  if (!tensor || rest.length > 0) throw new BadRequest(`the model has one input, ${JSON.stringify(input.name)}; got ${body.inputs.length}`);
  if (tensor.name !== input.name) throw new BadRequest(`input is named ${JSON.stringify(tensor.name)}; the model's input is ${JSON.stringify(input.name)}`);
  if (tensor.datatype !== 'FP32') throw new BadRequest(`input datatype is ${tensor.datatype}; the model takes FP32`);
  const expected = [input.channels, input.height, input.width];
  const [batch, ...chw] = tensor.shape;
  if (batch === undefined || chw.length !== 3 || chw.some((d, i) => d !== expected[i]) || batch < 1) {
    throw new BadRequest(`input shape is [${tensor.shape.join(', ')}]; the model takes [B, ${expected.join(', ')}] with B >= 1`);
  }
  if (batch > maxImages) throw new PayloadTooLarge(`batch of ${batch} images; the limit is ${maxImages} (ASM_FER_MAX_FILES)`);
  const per = input.channels * input.height * input.width;
  if (tensor.data.length !== batch * per) {
    throw new BadRequest(`input data has ${tensor.data.length} values; shape [${tensor.shape.join(', ')}] needs ${batch * per}`);
  }
  for (const o of body.outputs ?? []) {
    if (o.name !== output.name) throw new BadRequest(`no output named ${JSON.stringify(o.name)}; the model's output is ${JSON.stringify(output.name)}`);
  }
  const data = Float32Array.from(tensor.data);
  // JSON numbers beyond float32's range become Infinity here, and the model would answer NaN.
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new BadRequest(`input data[${bad}] = ${tensor.data[bad]} is not a finite float32`);
  return Array.from({ length: batch }, (_, i) => data.slice(i * per, (i + 1) * per));
}

export function v2Router(deps: HttpDeps): Router {
  const { host, config, readiness, serverVersion } = deps;
  const router = Router();
  router.get('/v2', (_req, res) => {
    const body: ServerMetadata = { name: 'asm-fer', version: serverVersion, extensions: [] };
    res.json(body);
  });
  router.get('/v2/models/:name', (req, res) => {
    const { manifest: m, pool } = named(req, host.current);
    const body: ModelMetadata = {
      name: m.name,
      versions: [m.version],
      platform: PLATFORM,
      inputs: [{ name: m.input.name, datatype: 'FP32', shape: [-1, m.input.channels, m.input.height, m.input.width] }],
      outputs: [{ name: m.output.name, datatype: 'FP32', shape: [-1, m.classes.length] }],
      executionProvider: pool.executionProvider,
      classes: [...m.classes],
    };
    res.json(body);
  });
  router.get('/v2/models/:name/ready', (req, res) => {
    const { manifest } = named(req, host.current);
    if (!readiness.isReady()) throw new NotReady('the model is not loaded and warmed up, or the service is stopping');
    const body: ModelReady = { name: manifest.name, ready: true };
    res.json(body);
  });
  router.post('/v2/models/:name/infer', async (req, res) => {
    if (!readiness.isServing()) throw new NotReady();
    const request = req.body as InferRequest;
    const body = await host.use(async (model): Promise<InferResponse> => {
      const { manifest, inference } = named(req, model);
      const tensors = splitInput(request, model, config.ASM_FER_MAX_FILES);
      const rows = await inference.probabilities(tensors, signalOf(res));
      const k = manifest.classes.length;
      const data: number[] = new Array<number>(rows.length * k);
      rows.forEach((row, i) => row.forEach((p, j) => (data[i * k + j] = p)));
      return {
        model_name: manifest.name,
        model_version: manifest.version,
        ...(request.id === undefined ? {} : { id: request.id }),
        outputs: [{ name: manifest.output.name, shape: [rows.length, k], datatype: 'FP32', data }],
      };
    });
    res.json(body);
  });
  return router;
}
