#!/usr/bin/env bash
# Issue 29 §4: pretrained.sh's recipe on a lent CUDA machine (device tool), at the paper's scale: dlib's face-recognition
# ResNet at its own 150 px with every stage trained (--freeze-stages 0), 30 epochs on a 30-epoch schedule, bf16 autocast
# (--precision auto), all of FER+ Train less the 10 % calibration split, Valid to select, seed 0, batch 64. It replaces
# issue 16's from-scratch rows of this script (regime-gpu, paper-gpu): the device's minutes go to these.
#   here:   training/experiments/gpu-pack.sh     # data/gpu: all of FER+ losslessly, dlib's weights, wheels; < 64 MiB
#   device: run  command="bash training/experiments/gpu.sh"  carry=["data/gpu"]  timeout_s=600
#           then the same again within the machine's 30 s warm window: the rows resume by epoch
# The schedule: --lr-decay is per recipe epoch (config.epoch_lr_decay: lr_decay^(100 / schedule_epochs) per epoch), so
# 0.9716 ends any schedule at 0.9716^100 = 0.056 of the start: x0.908 per epoch over 30 here, x0.750 over 10 on the
# CPU. A 3-epoch CE warm-up: the paper's 10 of 100 (the CPU recipe's 2 of 10 are two epochs of a pretrained network).
# Rows, in the issue's order, PAR (2) at once on the one GPU: original labels asm --normalisation none and ce2 (the two
# the shipping rule needs), then sym-0.3 ce2 and asm --normalisation none. Each call:
#   - unpacks data/gpu once per machine (FER+ into data/ferplus, PNGs equal in pixels to the originals; the weights
#     into node_modules, where --backbone dlib-resnet looks; jsonschema into /tmp/site for export's schema check);
#   - trains until LIMIT - RESERVE seconds after its start, then stops the rows: an interrupted epoch is lost, the
#     last finished one is in RUN/last.pt and the next call resumes from it (run folders: training/runs/gpu, ignored,
#     kept on a warm machine between calls); a row that finishes exports, as the train command does: the two
#     original-labels rows as the shipped bundle (float16 weights, flip averaging, fitted base pair) into
#     training/runs/gpu/bundles/<row>; cut short, that export is redone by the next call (EXPORT_ONLY=1: a call that
#     only finishes exports and packs);
#   - packs into $OUT every 30 s and at its end: results.tgz (results/gpu/<row>/: config.json, metrics.jsonl and,
#     finished, final.json, as `asm-fer keep` writes them; logs/<row>*.log), bundles.tar.NN (15 MiB pieces of
#     bundles/<row>/{model.onnx,model.json}, about 22 MB a bundle) and log.txt.
# Here, from the files that came back (docs/training.md, "On a lent GPU"):  tar xzf results.tgz -C training results
#   (commit training/results/gpu) and  mkdir -p training/runs/gpu && cat bundles.tar.* | tar xf - -C training/runs/gpu.
# A smoke test on the CPU, minutes: DEVICE=cpu PY=training/.venv/bin/python EPOCHS=2 WARMUP=1 SIZE=104 FREEZE=2 \
#   EXTRA="--limit 300 --valid-limit 300" OUT=/tmp/gpu-out bash training/experiments/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-out}
PY=${PY:-python3}       # the device image's python3 holds PyTorch with CUDA (the repo's pinned CPU torch is not there)
DEVICE=${DEVICE:-cuda}  # cpu: a smoke test of this script
PACK=data/gpu           # and data/gpu-2 where gpu-pack.sh split the pack
DATA=${DATA:-data/ferplus}
RUNS=${RUNS:-training/runs/gpu}
LIMIT=${LIMIT:-585}     # seconds this call may take (the device tool stops a command at 600)
RESERVE=${RESERVE:-20}  # of them, for packing $OUT after the rows stop
MIN_ROW=${MIN_ROW:-60}  # a row is not started with less time left (data decoding alone takes a while)
PAR=${PAR:-2}
THREADS=${THREADS:-4}
EPOCHS=${EPOCHS:-30}
ROWS=${GPU_ROWS:-none:asm:norm-none none:ce2 sym-0.3:ce2 sym-0.3:asm:norm-none}
SHIPPED=${SHIPPED:-none-asm-norm-none none-ce2}  # rows exported as the shipped bundle
BUDGET="--backbone dlib-resnet --backbone-size ${SIZE:-150} --freeze-stages ${FREEZE:-0} --calibration 0.1 \
--epochs $EPOCHS --schedule-epochs ${SCHEDULE:-$EPOCHS} --lr-decay 0.9716 --batch-size 64 --warmup-epochs ${WARMUP:-3} \
--precision auto --seed 0 --log-fit false ${EXTRA:-}"
KEPT=$RUNS/_kept  # what results.tgz holds: results/gpu/<row>, logs
PACKED=$RUNS/.bundles-in-out-$START  # which bundles this call's $OUT holds
export PYTHONPATH=$PWD/training:/tmp/site PYTHONUNBUFFERED=1
export PY DEVICE DATA RUNS THREADS BUDGET SHIPPED KEPT MIN_ROW EXPORT_ONLY=${EXPORT_ONLY:-}
export TRAIN_UNTIL=$((START + LIMIT - RESERVE))
mkdir -p "$OUT" "$RUNS" "$KEPT/results/gpu" "$KEPT/logs"
exec > >(tee "$OUT/log.txt") 2>&1
TEE=$!
stamp() { echo "$(date -u +%T) +$(( $(date +%s) - START ))s"; }
export -f stamp
export START

echo "=== $(stamp) gpu.sh on $(uname -n), LIMIT ${LIMIT}s, rows: $ROWS"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# --- what data/gpu brings, once per machine
MODEL=node_modules/@vladmandic/face-api/model
if [[ ! -f $MODEL/face_recognition_model-weights_manifest.json ]]; then
  mkdir -p "$MODEL"  # with Python's lzma: the image may have no xz program for tar -J
  if ! "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' "$PACK/face-api.tar.xz" "$MODEL"; then
    echo "no dlib weights: run gpu-pack.sh and carry $PACK"
    exit 2
  fi
fi
if ! "$PY" -c 'import jsonschema' 2> /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$PACK"/wheels/*.whl \
    || echo "warning: jsonschema did not install; exports will fail"
fi
if [[ $DATA == data/ferplus && ! -f $DATA/.unpacked ]]; then  # (another DATA is a folder of FER+ to use as it is)
  # the pack's parts (gpu-pack.sh splits it in two when one call cannot carry it): data/gpu, then data/gpu-2
  if ! (cd data && sha256sum --quiet -c "../$PACK/parts"); then
    echo "=== the pack is not all here (see $PACK/parts): carry data/gpu-2 in the next call, within 30 s"
    exit 3
  fi
  echo "=== $(stamp) unpacking FER+ into $DATA"
  rm -rf "$DATA" && mkdir -p "$DATA"
  shopt -s nullglob
  cat data/gpu/ferplus.npz.* data/gpu-2/ferplus.npz.* > /tmp/ferplus.npz
  if ! "$PY" -m asm_fer.data.pack unpack /tmp/ferplus.npz "$DATA"; then echo "unpack failed"; exit 2; fi
  touch "$DATA/.unpacked"
  rm -f /tmp/ferplus.npz
elif [[ ! -f $DATA/FER2013Train/label.csv ]]; then
  echo "no FER+ under $DATA"
  exit 2
fi
if ! git rev-parse HEAD > /dev/null 2>&1; then  # a copy without .git: the bundles name the commit gpu-pack.sh packed
  ASM_FER_REVISION=$(cat "$PACK/revision" 2> /dev/null) && export ASM_FER_REVISION && echo "revision (packed): $ASM_FER_REVISION"
fi

dedupe() {  # metrics.jsonl with one row per epoch, the last (an epoch logged by a run stopped before its checkpoint is redone)
  "$PY" - "$1" << 'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    try:
        rows[json.loads(line)["epoch"]] = line.rstrip("\n") + "\n"
    except (ValueError, KeyError):
        pass  # a line being written
sys.stdout.write("".join(rows[e] for e in sorted(rows)))
PY
}
export -f dedupe

run_row() {
  local noise method variant row dir left rc
  local -a extra=() export_args=()
  IFS=: read -r noise method variant <<< "$1"
  row=$noise-$method${variant:+-$variant}
  dir=$RUNS/$row
  [[ $variant == norm-none ]] && extra=(--normalisation none)
  # a finished row's own export (train exports when it ends): the shipped rows as shipped, the others nowhere useful
  if [[ " $SHIPPED " == *" $row "* ]]; then
    export_args=(--export "$RUNS/bundles/$row" --weights float16 --tta flip --noisy-base fitted)
  else
    export_args=(--export "$dir/bundle")
  fi
  if [[ -f $dir/final.pt && ( ${export_args[1]} == "$dir/bundle" || -f ${export_args[1]}/model.json ) ]]; then
    echo "=== $(stamp) done: $row"
  elif [[ -n $EXPORT_ONLY && ! -f $dir/final.pt ]]; then
    echo "=== $(stamp) $row: not finished, not trained (EXPORT_ONLY)"
  else
    left=$(( TRAIN_UNTIL - $(date +%s) ))
    if (( left < MIN_ROW )); then echo "=== $(stamp) $row: not started, ${left}s left"; return 0; fi
    echo "=== $(stamp) start $row (${left}s left)"
    # shellcheck disable=SC2086
    timeout -k 10 "$left" "$PY" -m asm_fer train --data "$DATA" --noise "$noise" --method "$method" $BUDGET "${extra[@]}" \
      --device "$DEVICE" --threads "$THREADS" --run-dir "$dir" "${export_args[@]}" >> "$KEPT/logs/$row.log" 2>&1
    rc=$?
    echo "=== $(stamp) $row: rc $rc$( ((rc == 124)) && echo ' (stopped at the deadline: the next call resumes it)'),"\
      "$(grep -o '"epoch": [0-9]*' "$dir/metrics.jsonl" 2> /dev/null | tail -1), $(grep -o '"valid_accuracy": [0-9.]*' "$dir/metrics.jsonl" 2> /dev/null | tail -1)"
    ((rc == 0 || rc == 124)) || tail -5 "$KEPT/logs/$row.log"
  fi
  if [[ -f $dir/final.pt && ! $KEPT/results/gpu/$row/final.json -nt $dir/final.pt ]]; then  # a rerun finalises anew
    dedupe "$dir/metrics.jsonl" > "$dir/metrics.dedup" && mv "$dir/metrics.dedup" "$dir/metrics.jsonl"
    "$PY" -m asm_fer keep "$dir" --into "$KEPT/results/gpu/$row"
  fi
}
export -f run_row

pack_out() {  # what exists now into $OUT: results (unfinished rows: what they have so far), logs, finished bundles
  local m dir row
  for m in "$RUNS"/*/metrics.jsonl; do
    [[ -f $m ]] || continue
    dir=${m%/metrics.jsonl}
    row=${dir##*/}
    [[ -f $KEPT/results/gpu/$row/final.json ]] && continue
    mkdir -p "$KEPT/results/gpu/$row" && cp "$dir/config.json" "$KEPT/results/gpu/$row/" && dedupe "$m" > "$KEPT/results/gpu/$row/metrics.jsonl"
  done
  tar czf "$OUT/results.tgz.tmp" -C "$KEPT" results logs && mv "$OUT/results.tgz.tmp" "$OUT/results.tgz"
  local done=()
  for m in "$RUNS"/bundles/*/model.json; do [[ -f $m ]] && done+=("bundles/$(basename "$(dirname "$m")")"); done
  if (( ${#done[@]} )) && [[ ${done[*]} != "$(cat "$PACKED" 2> /dev/null)" ]]; then
    rm -f "$OUT"/bundles.tar.*
    tar cf - -C "$RUNS" "${done[@]}" | split -b 15M -d - "$OUT/bundles.tar."
    echo "${done[*]}" > "$PACKED"
    echo "=== $(stamp) packed ${done[*]}: $(du -cb "$OUT"/bundles.tar.* | tail -1 | cut -f1) bytes"
  fi
}

progress() {  # one line per row begun: its last logged epoch, Valid accuracy and seconds
  local m line=""
  for m in "$RUNS"/*/metrics.jsonl; do
    [[ -f $m ]] && line+=" $(basename "$(dirname "$m")") $(tail -1 "$m" | grep -o '"epoch": [0-9]*\|"valid_accuracy": [0-9.]\{1,6\}\|"seconds": [0-9.]*' | cut -d' ' -f2 | paste -sd/);"
  done
  echo "=== $(stamp) epoch/valid/seconds:${line:- none yet}"
}

STOP=$RUNS/.stop-$START  # the packer ends its loop, not killed halfway through a tar that holds the log's pipe
( while [[ ! -f $STOP ]]; do
    for _ in {1..30}; do [[ -f $STOP ]] && break; sleep 1; done
    [[ -f $STOP ]] || { pack_out; progress; }
  done ) &
PACKER=$!
tr ' ' '\n' <<< "$ROWS" | xargs -P "$PAR" -I{} bash -c 'run_row "$@"' _ {}
touch "$STOP"
wait "$PACKER"
pack_out
rm -f "$PACKED" "$STOP"
echo "=== $(stamp) end; in $OUT: $(find "$OUT" -maxdepth 1 -type f -printf '%f ')"
exec > /dev/null 2>&1  # log.txt whole before the command returns
for _ in {1..10}; do kill -0 "$TEE" 2> /dev/null || break; sleep 0.5; done
