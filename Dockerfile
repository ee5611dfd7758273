# asm-fer: the inference service with models/default. Two images from one file:
#   docker build -t asm-fer .                          CPU image (the default, last stage)
#   docker build --target cuda -t asm-fer:cuda .       CUDA 12 image: onnxruntime-node's CUDA provider installed,
#                                                      ASM_FER_EXECUTION_PROVIDERS=cuda,cpu (untested here: docs/deployment.md, "Container")
#   docker run --rm -p 8080:8080 asm-fer
# Both run as a non-root user and report health from GET /v2/health/ready.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# Compiles TypeScript with the dev dependencies. better-sqlite3 (the audit trail) is a native module: npm ci uses its
# prebuilt binary when one can be fetched and compiles it otherwise, so the compiler stays in this stage and never
# reaches a runtime image.
FROM ${NODE_IMAGE} AS build
# The toolchain's versions follow the pinned base image (its Debian release); they never reach a runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# onnxruntime-node's install script would download CUDA binaries; the CPU build ships inside the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json openapi.yaml ./
COPY src ./src
RUN npm run build

# Production dependencies only, CPU onnxruntime; pruned from the build stage so better-sqlite3 is compiled once.
# onnxruntime-node ships its binaries for every platform (288 MB): only this one's Linux folder stays (44 MB), and
# better-sqlite3 keeps its compiled module but not its SQLite sources and object files (about 26 MB when compiled
# here). node_modules goes from 385 MB to 105 MB, the CPU image to 311 MB (docs/results.md, "The container image
# (issue 31)").
FROM build AS deps
RUN npm prune --omit=dev --no-audit --no-fund && npm cache clean --force \
  && ort=node_modules/onnxruntime-node/bin/napi-v6 && arch="$(node -p process.arch)" \
  && test -f "$ort/linux/$arch/libonnxruntime.so.1" \
  && find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
  && find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} + \
  && sqlite=node_modules/better-sqlite3 \
  && mv "$sqlite/build/Release/better_sqlite3.node" /tmp/ \
  && rm -rf "$sqlite/build" "$sqlite/deps" "$sqlite/src" \
  && mkdir -p "$sqlite/build/Release" && mv /tmp/better_sqlite3.node "$sqlite/build/Release/"

# The same dependencies plus onnxruntime-node's CUDA 12 execution provider (needs network at build time).
FROM deps AS deps-cuda
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js

# CUDA runtime image: NVIDIA's CUDA + cuDNN base with the Node binary from the official image.
FROM ${NODE_IMAGE} AS node-binary
FROM ${CUDA_IMAGE} AS cuda
COPY --from=node-binary /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 asmfer && useradd --system --uid 10001 --gid 10001 --home-dir /app asmfer
WORKDIR /app
ENV NODE_ENV=production PORT=8080 ASM_FER_EXECUTION_PROVIDERS=cuda,cpu
COPY --from=deps-cuda /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY models ./models
# The audit trail (ASM_FER_DATA_DIR, ./data) is the one folder the unprivileged user may write; mount a volume here
# to keep it.
RUN install -d -o 10001 -g 10001 /app/data
VOLUME /app/data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]

# CPU runtime image (the default target).
FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
ENV NODE_ENV=production PORT=8080
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
COPY models ./models
# The audit trail (ASM_FER_DATA_DIR, ./data) is the one folder the unprivileged user may write; mount a volume here
# to keep it.
RUN install -d -o 1000 -g 1000 /app/data
VOLUME /app/data
# The official image's unprivileged "node" user (uid 1000).
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]
