#!/usr/bin/env bash
# E2 of ../shared/spec/evaluation.md on FER+: labels x methods at one fixed budget.
# Resumable queue: a finished row (final.pt) is skipped, an interrupted one resumes from last.pt.
# Rows run in priority order (the shipped model and the issue's targets first). Usage:
#   training/experiments/e2.sh [DATA] [RUNS]     # defaults: ../shared/data/ferplus training/runs/e2
# Then: training/.venv/bin/asm-fer report training/runs/e2
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/ferplus}
RUNS=${2:-training/runs/e2}
# The fixed budget of every row: a half-width ResNet (two of them stay under 10 MB as ONNX),
# 12 epochs with 2 of warm-up, seed 0, the default augmentation and schedule.
BUDGET=(--widths 16 32 64 128 --epochs 12 --warmup-epochs 2 --seed 0)
ROWS=(
  sym-0.3:ce none:asm sym-0.3:asm crowd-1:ce crowd-1:asm none:ce
  sym-0.3:asm-fixed crowd-1:asm-fixed none:asm-fixed
  sym-0.3:ce2 crowd-1:ce2 none:ce2
  sym-0.1:ce sym-0.1:asm sym-0.2:ce sym-0.2:asm
  sym-0.1:asm-fixed sym-0.2:asm-fixed sym-0.1:ce2 sym-0.2:ce2
)
for row in "${ROWS[@]}"; do
  noise=${row%%:*} method=${row##*:}
  dir="$RUNS/$noise-$method"
  if [[ -f $dir/final.pt ]]; then echo "done: $dir"; continue; fi
  echo "=== $(date -u +%FT%TZ) $dir"
  training/.venv/bin/asm-fer train --data "$DATA" --noise "$noise" --method "$method" \
    "${BUDGET[@]}" --run-dir "$dir"
done
echo "=== $(date -u +%FT%TZ) queue finished"
