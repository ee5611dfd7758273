#!/usr/bin/env bash
# The regime ASM exists for (issue 16, section 2): a class-stratified 1,500-image subset of FER+ Train
# (validated on the whole of FER+ Valid), the half-width ResNet for 60 epochs in batches of 32 with a slow
# lr decay (x0.97 per epoch), 10 warm-up epochs. There plain cross-entropy memorises: at sym-0.3 `ce`
# fits 8 % of the wrong labels at epoch 10 and half of them by epoch 54 while Valid accuracy stops
# rising at about epoch 33 (a 30-epoch, 4,000-image budget still fitted under 10 % at epoch 17).
# Same resumable queue as E2 (queue.sh: finished rows skipped, interrupted ones resumed, the two-network
# rows of a label set forked from the ce2 warm-up). Usage:
#   REGIME_THREADS=1 training/experiments/regime.sh [DATA] [RUNS]   # defaults: ../shared/data/ferplus training/runs/regime-seed0
#   REGIME_ROWS="sym-0.3:ce2 sym-0.3:asm" REGIME_SEED=1 training/experiments/regime.sh
# Each finished row's config.json, metrics.jsonl and final.json land in training/results/regime/seed<N>/<row>/
# (commit them); the table and plot are built from those files:
#   training/.venv/bin/asm-fer report training/results/regime --table regime --plot docs/img/regime.png
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/experiments/queue.sh
DATA=${1:-../shared/data/ferplus}
SEED=${REGIME_SEED:-0}
RUNS=${2:-training/runs/regime-seed$SEED}
RESULTS=${RESULTS-training/results/regime/seed$SEED}  # finished rows are kept here (RESULTS= to skip)
WARMUP=10
BUDGET=(--limit 1500 --valid-limit 0 --widths 16 32 64 128 --epochs 60 --warmup-epochs "$WARMUP" --batch-size 32 --lr-decay 0.97 --seed "$SEED"
  --threads "${REGIME_THREADS:-2}")  # 1 beside other heavy work: two threads that wait on each other stall
ROWS=(
  sym-0.3:ce2 sym-0.3:asm sym-0.3:oracle sym-0.3:asm:norm-none sym-0.3:asm-fixed sym-0.3:ce sym-0.3:codivision
  crowd-1:ce2 crowd-1:asm crowd-1:oracle crowd-1:asm:norm-none crowd-1:asm-fixed crowd-1:ce crowd-1:codivision
)
if [[ -n ${REGIME_ROWS:-} ]]; then read -r -a ROWS <<< "$REGIME_ROWS"; fi
# the spec's named option that kept E2's clean subset from collapsing (docs/results.md, E2)
declare -A VARIANTS=([norm-none]="--normalisation none")
run_queue
