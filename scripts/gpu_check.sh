#!/usr/bin/env bash
# GPU paths end to end, for a session that is lent an NVIDIA GPU (about 3-5 minutes):
#   1. what the machine has (nvidia-smi, torch.cuda, ONNX Runtime providers);
#   2. genbench run on CUDA: training, export, ONNX Runtime CUDA provider with IOBinding, torch eager
#      on CUDA (synchronised), peak GPU memory; the smoke profile with the default timing loop;
#   3. a short report of the ORT/torch ratios on GPU.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (installs onnxruntime-gpu into the active environment)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-/tmp/genbench-gpu}}"
mkdir -p "$OUT"
nvidia-smi | tee "$OUT/nvidia-smi.txt" || { echo "no NVIDIA GPU here"; exit 2; }
if [ -z "${VIRTUAL_ENV:-}" ]; then python3 -m venv .venv-gpu && source .venv-gpu/bin/activate; fi
python -m pip install -q --upgrade pip
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
  || pip install -q torch  # a CUDA build where the CPU one is installed
pip install -q -e . -e plugins/gan -e plugins/vae -e plugins/autoregressive
pip uninstall -q -y onnxruntime || true
pip install -q onnxruntime-gpu
python - <<'PY' | tee "$OUT/providers.txt"
import onnxruntime as ort, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("onnxruntime", ort.__version__, ort.get_available_providers())
PY
# quality on the GPU (all models, digits and text), then the default timing loop for gan-mlp and vae-mlp
genbench run --all --task digits --task text --profile smoke --device cuda --out "$OUT/runs" --no-baselines \
  | tee "$OUT/smoke.txt"
genbench run gan-mlp vae-mlp --task digits --device cuda --steps 200 --out "$OUT/runs" --no-baselines \
  | tee "$OUT/timing.txt"
RUN=$(ls -d "$OUT"/runs/*/ | tail -1)
python - "$RUN" <<'PY' | tee "$OUT/summary.txt"
import sys
import genbench
from genbench.reports import perf_summary
run = genbench.load_run(sys.argv[1])
print("device", run.config["device"], "gpus", run.environment["gpus"])
for j in run.jobs:
    for g in sorted({p.graph for p in j.performance}):
        s = perf_summary(j, g)
        print(f"{j.model:12} {g:7} ORT p50@b1 {s['ort_p50_ms_b1']} ms  torch {s['torch_p50_ms_b1']} ms  "
              f"b1 speed-up {s.get('latency_speedup_b1')}  best ORT {s['ort_best_throughput']} "
              f"torch {s['torch_best_throughput']}  valid {s['valid']}  gpu peak MB {j.memory.get('gpu_peak_allocated_mb')}")
PY
