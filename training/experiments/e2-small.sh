#!/usr/bin/env bash
# E2, small-data regime: does ASM help once the networks start to memorise wrong labels?
# At the main E2 budget (12 epochs over all of FER+ Train) CE fits only ~47 % of the sym-0.3 training
# labels, far below the 70 % that are right, so it never reaches the memorisation ASM exists to prevent.
# Here a 5,000-image class-stratified subset of Train is seen 30 times. Same queue as e2.sh. Usage:
#   training/experiments/e2-small.sh [DATA] [RUNS]   # defaults: ../shared/data/ferplus training/runs/e2-small
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/experiments/queue.sh
DATA=${1:-../shared/data/ferplus}
RUNS=${2:-training/runs/e2-small}
WARMUP=5
BUDGET=(--widths 16 32 64 128 --limit 5000 --epochs 30 --warmup-epochs "$WARMUP" --seed 0)
ROWS=(sym-0.3:ce2 sym-0.3:asm:norm-none sym-0.3:asm sym-0.3:ce crowd-1:ce2 crowd-1:asm:norm-none crowd-1:asm crowd-1:ce)
declare -A VARIANTS=([norm-none]="--normalisation none")
run_queue
