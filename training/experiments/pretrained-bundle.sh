#!/usr/bin/env bash
# Issue 29 §3: a finished row of pretrained.sh exported as a bundle and measured the way the shipped one was, so the
# two can sit side by side in docs/results.md: E1 (FER+ Valid, per class: in the export's output and model.json's
# metrics), E4 (the service's audit verdict vs fixed, argmax and cleanlab on the same probabilities, seeds 0-2), E5
# (raw limit, 32 connections, concurrency 1) and the photo-consistency bench. Run it with the training queue's core
# left alone (about 15 min on the dlib ensemble). Usage:
#   training/experiments/pretrained-bundle.sh [ROW] [OUT] [DATA]
#     ROW   a row folder under training/runs/pretrained (default none-asm-norm-none)
#     OUT   where the bundle and the bench outputs go (default training/runs/pretrained/ROW/bundle)
#   EXPORT=0 skips the export and benches the bundle already in OUT.
# Ship it by copying OUT's model.json and model.onnx to models/default (models/README.md says when).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROW=${1:-none-asm-norm-none}
OUT=${2:-training/runs/pretrained/$ROW/bundle}
DATA=${3:-../shared/data/ferplus}
PORT=${PORT:-18090}
ASM_FER=training/.venv/bin/asm-fer

if [[ ${EXPORT:-1} != 0 ]]; then
  $ASM_FER export --run "training/runs/pretrained/$ROW" --out "$OUT" --name ferplus --data "$DATA" \
    --weights float16 --tta flip --noisy-base fitted | tee "$OUT.export.log"
fi

# E4 against a service on this bundle (loopback only). It runs in a process group of its own (npx -> tsx -> node),
# and the whole group is stopped however the bench ends: killing npx alone left the server holding the port.
if curl -s -o /dev/null "localhost:$PORT"; then echo "port $PORT is taken: stop what listens there or set PORT" >&2; exit 1; fi
ASM_FER_MODEL_DIR=$OUT ASM_FER_HOST=127.0.0.1 PORT=$PORT ASM_FER_DATA_DIR=$(mktemp -d) \
  setsid npx tsx src/main.ts > "$OUT.service.log" 2>&1 &
service=$!
stop_service() { kill -- -"$service" 2>/dev/null || true; }
trap stop_service EXIT
until curl -sf "localhost:$PORT/v2/health/ready" > /dev/null; do
  kill -0 "$service" 2>/dev/null || { echo "the service did not start: $OUT.service.log" >&2; exit 1; }
  sleep 1
done
npx tsx bench/audit-eval.ts --data "$DATA" --url "http://localhost:$PORT" --bundle "$OUT" --json "$OUT.e4.json" | tee "$OUT.e4.log"
stop_service
npx tsx bench/e5-speed.ts --model-dir "$OUT" | tee "$OUT.e5.log"
npx tsx bench/detect-consistency.ts --data "$DATA" --count 500 --model "$OUT" | tee "$OUT.photos.log"
