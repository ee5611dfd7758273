// Worker-thread entry: owns one onnxruntime session and runs batches on it, so session.run never blocks the event loop.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { WorkerInit, WorkerReply, WorkerRequest } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('src/onnx/worker.ts must run in a worker thread');

async function createSession(): Promise<{ session: ort.InferenceSession; provider: string; failures: string[] }> {
  const failures: string[] = [];
  for (const provider of init.attempts) {
    try {
      const session = await ort.InferenceSession.create(init.modelPath, { ...init.sessionOptions, executionProviders: [provider] });
      return { session, provider, failures };
    } catch (err) {
      failures.push(`${provider}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
    }
  }
  throw new Error(`no execution provider could load the model (${failures.join('; ')})`);
}

try {
  const { session, provider, failures } = await createSession();
  // The lone-run session only where it pays: more threads help a CPU run, a GPU run has its own parallelism.
  const lone =
    init.loneSessionOptions && provider === 'cpu'
      ? await ort.InferenceSession.create(init.modelPath, { ...init.loneSessionOptions, executionProviders: ['cpu'] })
      : undefined;
  const ready: WorkerReply = {
    kind: 'ready',
    provider,
    failures,
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    lone: lone !== undefined,
  };
  port.postMessage(ready);
  let crashNext = false;
  port.on('message', (req: WorkerRequest) => {
    if (req.kind === 'crash-next') {
      crashNext = init.testHooks;
      return;
    }
    // Exit with the batch in hand, the way a native fault inside session.run takes the thread down.
    if (crashNext) process.exit(70);
    void (async () => {
      try {
        const feeds = { [init.inputName]: new ort.Tensor('float32', req.data, req.dims) };
        const results = await (req.lone && lone ? lone : session).run(feeds, init.outputNames);
        const outputs = init.outputNames.map((name) => {
          const out = results[name];
          if (!out) throw new Error(`session returned no ${name}`);
          return { data: Float32Array.from(out.data as Float32Array), dims: [...out.dims] };
        });
        const reply: WorkerReply = { kind: 'result', id: req.id, outputs };
        port.postMessage(reply, outputs.map((o) => o.data.buffer));
      } catch (err) {
        const reply: WorkerReply = { kind: 'error', id: req.id, message: err instanceof Error ? err.message : String(err) };
        port.postMessage(reply);
      }
    })();
  });
} catch (err) {
  const reply: WorkerReply = { kind: 'failed', message: err instanceof Error ? err.message : String(err) };
  port.postMessage(reply);
}
