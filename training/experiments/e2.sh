#!/usr/bin/env bash
# E2 of ../shared/spec/evaluation.md on FER+: labels x methods at one fixed budget.
# Resumable queue: a finished row (final.pt) is skipped, an interrupted one resumes from last.pt.
# The two-network rows of one label set share their CE warm-up: `ce2` keeps its checkpoint at the end
# of the warm-up (epoch-02.pt) and the ASM rows start from it (--warm-start), which gives the same
# weights as running them from scratch (training/tests/test_train.py) for 2 fewer epochs each.
# Rows run in priority order (the shipped model and the issue's targets first). Usage:
#   training/experiments/e2.sh [DATA] [RUNS]     # defaults: ../shared/data/ferplus training/runs/e2
# Then: training/.venv/bin/asm-fer report training/runs/e2
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/ferplus}
RUNS=${2:-training/runs/e2}
# The fixed budget of every row: a half-width ResNet (two of them stay under 10 MB as ONNX),
# 12 epochs with 2 of warm-up, seed 0, the default augmentation and schedule.
WARMUP=2
BUDGET=(--widths 16 32 64 128 --epochs 12 --warmup-epochs "$WARMUP" --seed 0)
# <labels>:<method>[:<variant>]; a variant names ASM options beyond the spec's defaults (see VARIANTS)
ROWS=(
  sym-0.3:ce none:ce crowd-1:ce
  sym-0.3:ce2 sym-0.3:asm sym-0.3:asm:norm-none sym-0.3:asm-fixed
  crowd-1:ce2 crowd-1:asm crowd-1:asm:norm-none crowd-1:asm-fixed
  none:ce2 none:asm none:asm:norm-none none:asm-fixed
  sym-0.1:ce sym-0.1:ce2 sym-0.1:asm sym-0.1:asm:norm-none sym-0.1:asm-fixed
  sym-0.2:ce sym-0.2:ce2 sym-0.2:asm sym-0.2:asm:norm-none sym-0.2:asm-fixed
)
declare -A VARIANTS=(
  [norm-none]="--normalisation none"
)
for row in "${ROWS[@]}"; do
  IFS=: read -r noise method variant <<< "$row"
  dir="$RUNS/$noise-$method${variant:+-$variant}"
  if [[ -f $dir/final.pt ]]; then echo "done: $dir"; continue; fi
  args=(--data "$DATA" --noise "$noise" --method "$method" "${BUDGET[@]}" --run-dir "$dir")
  extra=()
  if [[ -n $variant ]]; then read -r -a extra <<< "${VARIANTS[$variant]}"; fi
  warm=$RUNS/$noise-ce2/epoch-$(printf %02d "$WARMUP").pt
  if [[ $method == ce2 ]]; then
    args+=(--keep-epochs "$WARMUP")
  elif [[ -f $dir/last.pt ]]; then
    # an interrupted row resumes as it began, forked or not
    warm=$(training/.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("warm_start", ""))' "$dir/config.json")
    args+=(${warm:+--warm-start "$warm"})
  elif [[ $method != ce && -f $warm ]]; then
    args+=(--warm-start "$warm")
  fi
  echo "=== $(date -u +%FT%TZ) $dir"
  training/.venv/bin/asm-fer train "${args[@]}" "${extra[@]}"
done
echo "=== $(date -u +%FT%TZ) queue finished"
