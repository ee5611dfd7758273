#!/usr/bin/env bash
# Issue 16's most valuable rows on a lent CUDA machine (device tool), about 9 minutes of it:
#   here:   training/experiments/gpu-pack.sh          # data/ferplus: Valid + 20,000 Train images (< 64 MiB)
#   device: run  command="bash training/experiments/gpu.sh"  carry=["data/ferplus"]  timeout_s=600
# There: the image's own python3 (PyTorch with CUDA; the repo's pinned CPU torch is not installed), the
# package from the working tree (PYTHONPATH), PAR rows at once (the views are made on the CPU, 16 cores).
# Rows, in order until DEADLINE seconds have passed (rows started by then run to their end or the limit):
#   regime-gpu: the regime budget of regime.sh (1,500 images drawn from the packed subset, so not the
#               CPU rows' images) for sym-0.3 x ce2, asm, oracle, asm-fixed at seeds 0, 1, 2, then ce;
#   paper-gpu:  the paper's scale as far as the data travels: all packed images, the full-width ResNet,
#               40 epochs of the recipe's schedule (10 warm-up), sym-0.3 x ce2 and asm, seed 0.
# Output: $OUT/results.tgz holding results/<table>/seed<N>/<row>/{config.json,metrics.jsonl[,final.json]}
# (unfinished rows keep their metrics); unpack it into training/ here and commit. $OUT/log.txt: the log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}
DATA=${DATA:-data/ferplus}
PAR=${PAR:-4}
DEADLINE=${DEADLINE:-420}
DEVICE=${DEVICE:-cuda}  # cpu: a smoke test of this script here
WORK=$(mktemp -d)
export PYTHONPATH=$PWD/training WORK DATA DEVICE END=$(( $(date +%s) + DEADLINE ))
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
test -f "$DATA/FER2013Train/label.csv" || { echo "no $DATA: run training/experiments/gpu-pack.sh and carry it"; exit 2; }

REGIME="--limit 1500 --valid-limit 0 --widths 16 32 64 128 --epochs 60 --warmup-epochs 10 --batch-size 32 --lr-decay 0.97"
PAPER="--widths 32 64 128 256 --epochs 40 --warmup-epochs 10"
ROWS=()
for seed in 0 1 2; do
  for method in ce2 asm oracle asm-fixed; do ROWS+=("regime-gpu|$seed|sym-0.3|$method|$REGIME"); done
done
ROWS+=("paper-gpu|0|sym-0.3|ce2|$PAPER" "paper-gpu|0|sym-0.3|asm|$PAPER")
for seed in 0 1 2; do ROWS+=("regime-gpu|$seed|sym-0.3|ce|$REGIME"); done

run_row() {
  IFS='|' read -r table seed noise method budget <<< "$1"
  local name="$noise-$method" run="$WORK/runs/$table/seed$seed/$noise-$method"
  local keep="$WORK/results/$table/seed$seed/$name"
  if (( $(date +%s) > END )); then echo "skipped (deadline): $table seed $seed $name"; return 0; fi
  echo "=== $(date -u +%T) start $table seed $seed $name"
  # shellcheck disable=SC2086
  python3 -m asm_fer train --data "$DATA" --noise "$noise" --method "$method" $budget --seed "$seed" \
    --device "$DEVICE" --threads 4 --run-dir "$run" > "$run.log" 2>&1
  local rc=$?
  mkdir -p "$keep"
  if (( rc == 0 )); then
    python3 -m asm_fer keep "$run" --into "$keep" > /dev/null
  else
    cp "$run/config.json" "$run/metrics.jsonl" "$keep/" 2>/dev/null
    tail -3 "$run.log"
  fi
  echo "=== $(date -u +%T) end $table seed $seed $name rc=$rc: $(tail -c 300 "$run/metrics.jsonl" 2>/dev/null | grep -o '"valid_accuracy": [0-9.]*' | tail -1)"
}
export -f run_row
mkdir -p "$WORK/runs/regime-gpu/seed0" "$WORK/runs/regime-gpu/seed1" "$WORK/runs/regime-gpu/seed2" "$WORK/runs/paper-gpu/seed0"
# pack what exists every 30 s, so a run cut off at the tool's limit still brings its rows back
( while sleep 30; do
    for m in "$WORK"/runs/*/*/*/metrics.jsonl; do
      [[ -f $m ]] || continue
      d=${m%/metrics.jsonl}; k=$WORK/results/${d#"$WORK"/runs/}
      [[ -f $k/final.json ]] || { mkdir -p "$k" && cp "$d/config.json" "$m" "$k/"; }
    done
    tar czf "$OUT/results.tgz.tmp" -C "$WORK" results 2>/dev/null && mv "$OUT/results.tgz.tmp" "$OUT/results.tgz"; done ) &
PACKER=$!
printf '%s\n' "${ROWS[@]}" | xargs -P "$PAR" -I{} bash -c 'run_row "$@"' _ {}
kill "$PACKER" 2>/dev/null
tar czf "$OUT/results.tgz" -C "$WORK" results && echo "results: $OUT/results.tgz"
