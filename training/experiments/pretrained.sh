#!/usr/bin/env bash
# Issue 29 §2: the paper's regime on two cores. Both networks start from dlib's face-recognition ResNet
# (--backbone dlib-resnet, weights from node_modules/@vladmandic/face-api), all of FER+ Train less the 10 %
# calibration split the bundles are calibrated on, Valid to select, seed 0. The recipe (docs/results.md, E6 and
# "A face-pretrained backbone"): 104 px inside the network, stem and first two stages frozen (one ASM epoch
# about 12 min on one AVX2 core in fp32, against about 30 min for the paper's everything-trained 112 px),
# batch 64, Adam 1e-3 head / 5e-5 backbone, 10 epochs on a 10-epoch schedule (lr x0.75 per epoch), a 2-epoch
# CE warm-up. fp32: bf16 is 25x slower on an AVX2-only CPU and a run keeps the precision it began in.
# Same resumable queue as E2 (queue.sh), rows in the issue's order, the first two decide what ships. Usage:
#   nice training/experiments/pretrained.sh [DATA] [RUNS]        (PRETRAINED_THREADS=1 PRETRAINED_ROWS="..." to override)
# Finished rows land in training/results/pretrained/<row>/ (commit them); the table:
#   training/.venv/bin/asm-fer report training/results/pretrained
# PRETRAINED_SEED=N (default 0) runs the same rows with another seed, which also draws another calibration split, into
# training/runs/pretrained-sN and training/results/pretrained-sN: how far one row moves between seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/experiments/queue.sh
DATA=${1:-../shared/data/ferplus}
SEED=${PRETRAINED_SEED:-0}
SUFFIX=$( ((SEED == 0)) || echo "-s$SEED")
RUNS=${2:-training/runs/pretrained$SUFFIX}
RESULTS=${RESULTS-training/results/pretrained$SUFFIX}
WARMUP=2
BUDGET=(--backbone dlib-resnet --backbone-size 104 --freeze-stages 2 --calibration 0.1 --epochs 10 --schedule-epochs 10
  --lr-decay 0.9716 --batch-size 64 --warmup-epochs "$WARMUP" --precision fp32 --seed "$SEED" --log-fit false
  --threads "${PRETRAINED_THREADS:-1}")
ROWS=(none:asm:norm-none none:ce2 sym-0.3:ce2 sym-0.3:asm:norm-none none:asm sym-0.3:asm)
if [[ -n ${PRETRAINED_ROWS:-} ]]; then read -r -a ROWS <<< "$PRETRAINED_ROWS"; fi
declare -A VARIANTS=([norm-none]="--normalisation none")
run_queue
