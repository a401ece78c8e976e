#!/usr/bin/env bash
# One short device check (under 5 minutes) for when an accelerator is lent: micro-benchmarks with torch on
# CUDA, the chip's efficiencies fitted on them, and the validation cases of that chip before -> after.
# Installs nothing (no network there): needs torch, numpy, pydantic and PyYAML on the machine's python, else it
# says what is missing and stops (exit 0, SKIPPED.txt). Everything goes under $OUT (at most 8 files):
#   env.txt profile.yaml bench.log fit.txt catalog/efficiency.yaml catalog/residuals.txt compare.txt compare.json
# Usage (repo root): OUT=/tmp/out [HW=nvidia_h200_sxm] [QUICK=1] [PYTHON=python3] scripts/device_calibrate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder to write into}
HW=${HW:-nvidia_h200_sxm}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

missing=$("$PY" -c 'import importlib.util as u; print(" ".join(m for m in ("torch", "numpy", "pydantic", "yaml") if u.find_spec(m) is None))')
if [ -n "$missing" ]; then
  echo "device_calibrate: skipped: not installed on this machine: $missing (this script installs nothing)" | tee "$OUT/SKIPPED.txt"
  exit 0
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "device_calibrate: skipped: torch sees no CUDA device" | tee "$OUT/SKIPPED.txt"
  exit 0
fi

FW=("$PY" -c 'import sys; from fleetwise.cli.main import main; sys.exit(main(sys.argv[1:]))')
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), "devices", torch.cuda.device_count())'
} > "$OUT/env.txt"
t0=$(date +%s)
timeout 240 "${FW[@]}" calibrate bench --backend torch --device cuda --hardware "$HW" --out "$OUT/profile.yaml" \
  ${QUICK:+--quick} 2> "$OUT/bench.log"
echo "bench: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/env.txt"
"${FW[@]}" calibrate fit "$OUT/profile.yaml" --hardware "$HW" --out "$OUT/catalog" > "$OUT/fit.txt" 2>&1 \
  || { cat "$OUT/fit.txt"; exit 1; }
"${FW[@]}" calibrate compare "$OUT/catalog" > "$OUT/compare.txt"
"${FW[@]}" calibrate compare "$OUT/catalog" --json > "$OUT/compare.json"
cat "$OUT/fit.txt"
tail -n 4 "$OUT/compare.txt"
echo "device_calibrate: done in $(( $(date +%s) - t0 )) s; files under $OUT"
