#!/usr/bin/env bash
# One command for the first GPU: the Pallas kernels compiled by the real Triton compiler,
# the rasterizer against gsplat's CUDA, speak at 512x512 and the avatar renderer, all in
# about 8 minutes on one H100. Writes everything under OUT:
#   env.json            jax/jaxlib/torch/gsplat versions, devices, nvidia-smi
#   kernel_tests.xml    pytest (JUnit) of the kernel + rasterize tests, FLASHTALKER_KERNEL_MODE=compiled
#   bench_raster.json   flashtalker bench raster --backends pallas,gsplat
#   bench_avatar.json   flashtalker bench avatar (fresh avatars + the trained one, 256 and 512)
#   bench_speak.json    flashtalker bench speak --size 512 (bundled motion prior)
#   steps.jsonl         per step: name, exit code, wall seconds, time limit
#   summary.json, summary.md   the table (launch/gpu_check_summary.py)
# Usage, from the repository root, with the venv that has jax[cuda] (+ torch/gsplat):
#   launch/gpu_check.sh OUT            (PYTHON=/path/to/python to pick the interpreter)
# Every step runs under its own time limit and the script goes on after a failed step;
# the exit code is non-zero when any step failed. BENCHMARKS.md "GPU check" documents it.
set -u -o pipefail

OUT=${1:?usage: launch/gpu_check.sh OUT_DIR}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
FT=("$PYTHON" -m flashtalker_jax.cli.main)
: > "$OUT/steps.jsonl"
failed=0

step() {   # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*" >&2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' "$name" "$rc" \
    $((SECONDS - t0)) "$limit" >> "$OUT/steps.jsonl"
  [ "$rc" -eq 0 ] || { failed=1; echo "   $name failed (rc $rc): see $OUT/$name.log" >&2; }
  return "$rc"
}

# 0. The device (stops here when JAX sees no GPU: nothing below would measure one).
step env 30 "$PYTHON" - "$OUT/env.json" <<'PY' || { "$PYTHON" launch/gpu_check_summary.py "$OUT"; exit 1; }
import json, subprocess, sys
import jax, jaxlib
info = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()]}
for name in ("torch", "gsplat"):
    try:
        module = __import__(name)
        info[name] = module.__version__
    except Exception as e:  # reported, not hidden: the gsplat rows will say why they are missing
        info[name] = f"not importable: {e!r}"
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                         "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except FileNotFoundError:
    info["nvidia_smi"] = "nvidia-smi not found"
json.dump(info, open(sys.argv[1], "w"), indent=1)
print(json.dumps(info, indent=1))
sys.exit(0 if info["backend"] == "gpu" else 3)
PY

# 1. Kernel tests with the real Triton compiler (Mosaic is TPU-only: deselected), and the
#    rasterize() tests, whose "pallas" backend is compiled Triton on a GPU.
FLASHTALKER_KERNEL_MODE=compiled step kernel_tests 110 "$PYTHON" -m pytest -q -p no:cacheprovider \
  kernels/rasterize/tests tests/render/test_rasterize_pallas.py -k "not mosaic" \
  --junitxml="$OUT/kernel_tests.xml"

# 2. Rasterizer: Pallas (Triton) vs gsplat CUDA on the same scenes.
step bench_raster 110 "${FT[@]}" bench raster --backends pallas,gsplat --sizes 10k,100k,1m \
  --batch 1,16 --width 512 --height 512 --runs 10 --report "$OUT/bench_raster.json"

# 3. An avatar on the procedural head (the bundled motion prior's head): 4 s identity at
#    256x256, 50 adaptation steps (enough to export a folder; speed does not depend on
#    training), then the avatar renderer and speak at 512x512.
step avatar_data 40 "${FT[@]}" data synth --out "$OUT/work/data" --identities 1 --seconds 4 --seed 0 \
  --config.render.width=256 --config.render.height=256 --config.render.workers=8
step avatar_adapt 70 "${FT[@]}" adapt --data "$OUT/work/data/identity_000" --out "$OUT/work/avatar" \
  --config adapt_flashtalker.py:cpu --config.task.resolution=256 --config.train.steps=50 \
  --config.train.checkpoint_every=50
step bench_avatar 60 "${FT[@]}" bench avatar --data "$OUT/work/data/identity_000" \
  --avatar "$OUT/work/avatar" --sizes 256,512 --batch 1,16 --runs 10 --report "$OUT/bench_avatar.json"
step bench_speak 60 "${FT[@]}" bench speak --avatar "$OUT/work/avatar" --seconds 20 --size 512 \
  --batch 1,16 --report "$OUT/bench_speak.json"

"$PYTHON" launch/gpu_check_summary.py "$OUT" || failed=1
exit "$failed"
