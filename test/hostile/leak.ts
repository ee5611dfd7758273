// What must never reach a client: stack frames, source locations, absolute paths, the checkout's own path.
export const LEAK = new RegExp(
  ['\\n\\s+at ', '\\bat [\\w$.<>]+ \\(', '\\.(?:ts|js|cjs|mjs):\\d+', 'node_modules', '/(?:work|home|tmp|usr|root|app|opt|var)/', process.cwd().replace(/[/.]/g, '\\$&')].join('|'),
);
