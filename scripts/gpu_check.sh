#!/usr/bin/env bash
# genbench's GPU paths, end to end, on a bare machine that reaches no package index.
#
# Written for the lent GPU machine (one H200; Python 3.12 at /opt/torch/.venv with torch 2.11 + CUDA 13,
# the CPU build of onnxruntime 1.30, onnx, onnxscript, scipy, scikit-learn, matplotlib, click, pluggy, rich,
# psutil, threadpoolctl, pytest-benchmark and the nvidia-* CUDA 13 libraries preinstalled; no jsonschema;
# the repository plus at most 64 MiB of carried files per call, 10 minutes per call, 15 minutes of device
# time per session, warm for only 30 s after a call). It uses the preinstalled torch and installs nothing
# from an index there: everything comes from wheels built or downloaded HERE, carried in .gpu-carry/.
#
#   here, once, with a package index:   bash scripts/gpu_check.sh prepare
#       .gpu-carry/wheels/   genbench and its three plugins (pip wheel --no-deps), and jsonschema,
#                            jsonschema-specifications, referencing, rpds-py (cp312): about 1 MiB
#       .gpu-carry/ort-N/    onnxruntime-gpu 1.30.0 for CUDA 13 (PyPI: cp312 manylinux_2_28, 246.7 MB as a
#                            wheel, needs libcublas/libcudart .so.13, which torch's nvidia-* packages hold),
#                            unpacked and recompressed as one tar.xz, split into parts of at most 48 MiB
#                            (4 parts of 48, 48, 48 and 42 MiB), sha256 in .gpu-carry/ort.sha256
#   there, one call per part, back to back (the machine keeps carried files only while it stays warm,
#   30 s after each call), each carrying .gpu-carry/wheels and that part:
#                                       bash scripts/gpu_check.sh stage
#   there, the last call:               bash scripts/gpu_check.sh run "$OUT"
#       reassembles and checks the onnxruntime-gpu parts (if every part is there), installs everything with
#       pip --no-deps --no-index --target, then prints the GPU, torch and ONNX Runtime versions, the
#       providers ONNX Runtime lists and the ones a probe session really ran on, genbench's device choice
#       (and why auto fell back, if it did), the math mode, and runs genbench on the GPU: every model on
#       digits, ring8 and text (smoke profile), then gan-mlp, vae-conv and ar-pixel on digits with the
#       default timing; it keeps going past a failed job and prints every figure the runs claim
#       (provider read back per record, math mode, clock, CUDA-event times, per-sample cost, GPU memory).
#
# What stays unverified even then:
#   - TensorRT: the onnxruntime-gpu wheel's TensorRT provider needs TensorRT 10 (libnvinfer.so.10,
#     libnvonnxparser.so.10), which the machine does not have and which is far over 64 MiB per call to carry
#     (the tensorrt-cu13 wheels are over 1 GB). genbench's TensorRT path (engine cache, profile shapes, the
#     read-back that labels a session that fell back to CUDA) is covered by fakes on CPU only
#     (tests/test_speed.py); on this machine a TensorRT session is expected to fall back to the CUDA
#     provider, and genbench then leaves TensorRT out and says so in the job's warnings.
#   - Without every onnxruntime-gpu part (a session that cannot carry them all in time), ONNX Runtime's
#     CUDA provider stays unverified: the run then checks that --device auto falls back to CPU and says why,
#     and times torch on CUDA alone (CUDA events beside the host clock, TF32 off, peak memory).
#   - No GPU was lent to the session that wrote this script: nothing below has run on a GPU yet. What ran
#     there, without a GPU: 'prepare' (185.4 MiB of tar.xz in 4 parts), and the reassembly, sha256 check and
#     unpacking of 'run' under Python 3.12, where the real onnxruntime-gpu 1.30.0 listed the TensorRT and
#     CUDA providers, failed to load the CUDA one (libcublasLt.so.13 missing), and genbench's probe read
#     back the CPU provider: auto fell back to CPU and said why; a TensorRT session fell back and was not
#     timed under TensorRT's name.
#
# Exit status: 0 when the check ran (failed jobs are reported, not fatal), 2 when there is no NVIDIA GPU or
# the carried files are missing or corrupt.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu-carry
ORT_VERSION=1.30.0
PART_MIB=48

prepare() {
  set -e
  rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$CARRY/build"
  python3 -m pip wheel -q --no-deps -w "$CARRY/wheels" . plugins/gan plugins/vae plugins/autoregressive plugins/diffusion plugins/flow
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$CARRY/wheels" jsonschema jsonschema-specifications referencing rpds-py
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$CARRY/build" "onnxruntime-gpu==$ORT_VERSION"
  # a wheel is a zip of the installed files: unpack it and recompress them (xz) to carry fewer parts
  python3 - "$CARRY" <<'PY'
import pathlib, sys, tarfile, zipfile
carry = pathlib.Path(sys.argv[1])
wheel = next((carry / "build").glob("onnxruntime_gpu-*.whl"))
tree = carry / "build" / "tree"
zipfile.ZipFile(wheel).extractall(tree)
with tarfile.open(carry / "build" / "ort.tar.xz", "w:xz", preset=9) as tar:
    for path in sorted(tree.rglob("*")):
        tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)
print(f"{wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB as a wheel, "
      f"{(carry / 'build' / 'ort.tar.xz').stat().st_size / 2**20:.1f} MiB as tar.xz")
PY
  (cd "$CARRY/build" && sha256sum ort.tar.xz > ../ort.sha256)
  split -b "${PART_MIB}M" -d -a 1 "$CARRY/build/ort.tar.xz" "$CARRY/build/ort.tar.xz.part-"
  for part in "$CARRY"/build/ort.tar.xz.part-*; do
    n=${part##*-}; mkdir -p "$CARRY/ort-$n"; mv "$part" "$CARRY/ort-$n/"
  done
  rm -rf "$CARRY/build"
  echo "carry, one call each: $(ls -d "$CARRY"/ort-* | tr '\n' ' ')(each with $CARRY/wheels); then 'run'"
  du -sh "$CARRY"/wheels "$CARRY"/ort-*
}

stage() {
  echo "carried so far: $(ls "$CARRY"/ort-*/ 2>/dev/null | grep part | tr '\n' ' ')"
  df -h /tmp | tail -1
}

install() {
  SITE=/tmp/genbench-site
  rm -rf "$SITE" && mkdir -p "$SITE"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$CARRY"/wheels/*.whl \
    || { echo "installing the carried wheels failed"; exit 2; }
  ORT_GPU=no
  if ls "$CARRY"/ort-*/ort.tar.xz.part-* >/dev/null 2>&1; then
    cat "$CARRY"/ort-*/ort.tar.xz.part-* > /tmp/ort.tar.xz
    if (cd /tmp && sha256sum -c "$OLDPWD/$CARRY/ort.sha256" --quiet 2>/dev/null); then
      python3 -c "import sys, tarfile; tarfile.open('/tmp/ort.tar.xz').extractall(sys.argv[1], filter='data')" "$SITE" \
        && ORT_GPU=yes
    else
      echo "onnxruntime-gpu parts: $(ls "$CARRY"/ort-*/ | grep -c part) carried, sha256 does not match: incomplete"
    fi
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" ORT_GPU
  echo "onnxruntime-gpu $ORT_VERSION installed from the carried parts: $ORT_GPU"
}

check() {
  local out="${1:-${OUT:-/tmp/genbench-gpu}}"
  mkdir -p "$out"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt" \
    || { echo "no NVIDIA GPU here"; exit 2; }
  install
  export GENBENCH_CACHE_DIR=/tmp/genbench-cache PYTHONUNBUFFERED=1
  python3 - <<'PY' 2>&1 | tee "$out/environment.txt"
import onnxruntime as ort, torch
if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* packages torch brought
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("onnxruntime", ort.__version__, "from", ort.__file__)
print("providers listed:", ort.get_available_providers())
from genbench.runtime import choose_device, cuda_problem, math_mode
print("cuda_problem():", cuda_problem())
print("choose_device('auto'):", choose_device("auto"))
print("math mode on cuda:", math_mode("cuda", "onnxruntime"), "|", math_mode("cuda", "torch-eager"))
if torch.cuda.is_available():  # torch on CUDA alone: the host clock and CUDA events side by side
    import numpy as np
    from genbench.perf import TimingPolicy, measure_interleaved
    from genbench.runtime import apply_math_mode
    from genbench.timing import GpuMemory, torch_call
    from genbench.types import GraphSpec, TensorSpec
    apply_math_mode("cuda")
    print("torch TF32:", torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    gpu = GpuMemory.start("cuda")
    lin = torch.nn.Linear(4096, 4096).cuda().eval()
    spec = GraphSpec("sample", "x.onnx", (TensorSpec("z", ("batch", 4096), source="normal"),),
                     (TensorSpec("x", ("batch", 4096)),))
    call, sync, after, times = torch_call(lin, spec, {"z": np.ones((256, 4096), np.float32)}, "cuda", torch.device("cuda"))
    m = measure_interleaved({"torch": call}, TimingPolicy(warmup=5, min_iterations=200, min_seconds=0.2),
                            {"torch": sync}, {"torch": after})["torch"]
    print(f"torch Linear 4096 b256: host p50 {np.median(m.samples) * 1e3:.4f} ms, CUDA events p50 "
          f"{np.median(times):.4f} ms, {len(m.samples)} calls, stop: {m.stop_reason}; memory {gpu.figures(None)}")
PY
  local steps=(
    "run --all --task digits --task ring8 --task text --profile smoke --device auto --no-baselines --out $out/runs"
    "run gan-mlp vae-conv ar-pixel --task digits --steps 200 --device auto --no-baselines --out $out/runs"
  )
  for args in "${steps[@]}"; do
    echo "== genbench $args"
    # shellcheck disable=SC2086
    timeout 240 python3 -m genbench $args 2>&1 | tee -a "$out/genbench.txt" || echo "(exit status $?: going on)"
  done
  python3 - "$out/runs" <<'PY' 2>&1 | tee "$out/figures.txt"
import pathlib, sys
import genbench
from genbench.reports import perf_summary
for run_dir in sorted(pathlib.Path(sys.argv[1]).glob("*/")):
    run = genbench.load_run(run_dir)
    print(f"# run {run.run_id}: device {run.config['device']} (asked {run.config.get('requested_device')}); "
          f"note: {run.config.get('device_note')}; providers listed {run.environment.get('onnxruntime_providers')}")
    for j in run.jobs:
        if j.status != "ok":
            print(f"  {j.model} on {j.task}: {j.status} {j.error.to_dict() if j.error else j.reason}")
            continue
        s = perf_summary(j)
        print(f"  {j.model} on {j.task}: per sample ORT p50 {s['ort_p50_ms_b1']} ms, torch {s['torch_p50_ms_b1']} ms; "
              f"best ORT {s['ort_best_throughput']} {s['unit']} (b{s['ort_best_batch']}), torch "
              f"{s['torch_best_throughput']} (b{s['torch_best_batch']}); valid {s['valid']}, noisy {s['noisy']}; "
              f"memory {dict(j.memory)}; warnings {list(j.warnings)}")
        for p in j.performance:
            print(f"    {p.graph:7} {p.scenario:8} {p.runtime:22} b{p.batch_size:<5} provider {p.provider} "
                  f"(nodes {dict(p.providers_used or {})}) math {p.math_mode!r} clock {p.clock!r} "
                  f"p50 {p.latency_ms.get('p50')} ms, {p.throughput_per_s:.4g} {p.unit}, cuda events "
                  f"{dict(p.device_time_ms or {})}, first call {p.first_call_ms}, session {p.session_create_ms}, "
                  f"valid {p.valid} {dict(p.figure_validity or {})}, noisy {p.noisy}, stop {p.stop_reason!r}")
PY
  cp "$(ls -d "$out"/runs/*/ | tail -1)report.md" "$out/report.md" 2>/dev/null || true
}

case "${1:-run}" in
  prepare) prepare ;;
  stage) stage ;;
  run) shift || true; check "$@" ;;
  *) echo "usage: bash scripts/gpu_check.sh prepare|stage|run [OUT_DIR]"; exit 2 ;;
esac
