#!/usr/bin/env bash
# Prepare what training/experiments/gpu.sh needs on a lent CUDA machine, where ../shared does not travel
# and the working tree may carry 64 MiB in all: FER+ Valid whole and a class-stratified subset of Train
# (default 20,000 of 28,559 images, about 48 MB) copied into data/ferplus (ignored by git, never committed).
#   training/experiments/gpu-pack.sh [N_TRAIN] [DATA]
# Then, with the device tool: run  command="bash training/experiments/gpu.sh"  carry=["data/ferplus"]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20000}
DATA=${2:-../shared/data/ferplus}
OUT=data/ferplus
rm -rf "$OUT" && mkdir -p "$OUT/FER2013Train" "$OUT/FER2013Valid"
cp "$DATA"/FER2013Valid/*.png "$DATA/FER2013Valid/label.csv" "$OUT/FER2013Valid/"
training/.venv/bin/python - "$DATA" "$OUT" "$N" <<'PY'
import shutil, sys
from pathlib import Path
from asm_fer.data.dataset import stratified_limit
from asm_fer.data.ferplus import scan_ferplus

data, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
keep = {s.path.name for s in stratified_limit(scan_ferplus(data, "train"), n, seed=0)}
lines = (data / "FER2013Train" / "label.csv").read_text().splitlines()
rows = [line for line in lines if line.split(",")[0] in keep]
(out / "FER2013Train" / "label.csv").write_text("\n".join(rows) + "\n")
for name in sorted(keep):
    shutil.copyfile(data / "FER2013Train" / name, out / "FER2013Train" / name)
print(f"{len(keep)} Train images and all of Valid in {out}")
PY
du -sh --apparent-size "$OUT"
