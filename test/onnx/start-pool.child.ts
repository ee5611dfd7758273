// Starts a SessionPool in a process of its own and prints what it loaded as one JSON line, so that a test can read
// what onnxruntime's native code writes to stderr: that goes straight to file descriptor 2, past vitest's console
// capture, and an expected failure (cuda on a machine without it) would otherwise print as a red error in the log.
// Usage: node --import tsx test/onnx/start-pool.child.ts '<PoolOptions as JSON>' '[batch dims as JSON]'
import { SessionPool, type PoolOptions } from '../../src/onnx/session-pool.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as PoolOptions;
const dims = process.argv[3] ? (JSON.parse(process.argv[3]) as number[]) : undefined;
const pool = await SessionPool.start(opts);
try {
  const out = dims ? await pool.run(new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) : undefined;
  console.log(JSON.stringify({ executionProvider: pool.executionProvider, attempts: pool.plan.attempts, failures: pool.failures, dims: out?.dims }));
} finally {
  await pool.close();
}
