#!/usr/bin/env bash
# E2 of ../shared/spec/evaluation.md on FER+: labels x methods at one fixed budget.
# Resumable queue with shared warm-ups (queue.sh); rows run in priority order (the shipped model and
# the issue's targets first). Usage:
#   training/experiments/e2.sh [DATA] [RUNS]     # defaults: ../shared/data/ferplus training/runs/e2
#   E2_ROWS="sym-0.2:ce2 sym-0.2:asm" training/experiments/e2.sh   # only these rows, in this order
#   E2_THREADS=1 training/experiments/e2.sh   # one torch thread, leaving a core to other work
#   E2_SEED=1 training/experiments/e2.sh ../shared/data/ferplus training/runs/e2-seed1   # a replicate
# Then: training/.venv/bin/asm-fer report training/results/e2   (the finished rows, kept by the queue)
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/experiments/queue.sh
DATA=${1:-../shared/data/ferplus}
RUNS=${2:-training/runs/e2}
RESULTS=${RESULTS-training/results/e2/seed${E2_SEED:-0}}  # finished rows kept here for the tables (RESULTS= to skip)
# The fixed budget of every row: a half-width ResNet (two of them stay under 10 MB as ONNX),
# 12 epochs with 2 of warm-up, seed 0 (E2_SEED for replicates), the default augmentation and schedule.
WARMUP=2
BUDGET=(--widths 16 32 64 128 --epochs 12 --warmup-epochs "$WARMUP" --seed "${E2_SEED:-0}"
  --threads "${E2_THREADS:-2}")  # E2_THREADS=1 beside other heavy work: two threads that wait on each other stall
# the four methods of every label set first (the issue's table), then the variants; a variant names
# ASM options beyond the spec's defaults
ROWS=(
  sym-0.3:ce none:ce crowd-1:ce
  sym-0.3:ce2 sym-0.3:asm sym-0.3:asm:norm-none sym-0.3:asm-fixed
  crowd-1:ce2 crowd-1:asm crowd-1:asm:norm-none crowd-1:asm-fixed
  none:ce2 none:asm none:asm-fixed
  sym-0.1:ce sym-0.1:ce2 sym-0.1:asm sym-0.1:asm-fixed
  sym-0.2:ce sym-0.2:ce2 sym-0.2:asm sym-0.2:asm-fixed
  none:asm:norm-none sym-0.1:asm:norm-none sym-0.2:asm:norm-none
)
if [[ -n ${E2_ROWS:-} ]]; then read -r -a ROWS <<< "$E2_ROWS"; fi
declare -A VARIANTS=([norm-none]="--normalisation none")
run_queue
