#!/usr/bin/env bash
# The prepared GPU check of issue #20, for a fresh GPU machine with no package registry.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine; results in $OUT (or ./gpu-check)
#   GPU_CHECK_CPU=1 bash benchmarks/gpu_check.sh  # dry run of every part on the CPU, tiny sizes
#
# What it measures (each part writes $OUT/<part>.json, one line each in $OUT/summary.txt):
#   label      fewshot label images/s with ViT-B-32 (random weights from open_clip's config:
#              the speed does not depend on them) against a bare forward (benchmarks/bench_label.py);
#              goal >= 2,500 images/s on an H100/H200-class GPU
#   embed      fewshot embed images/s, ViT-B-32 and the micro CLIP, local engine
#   maml       MAML meta-step against learn2learn, every strategy (benchmarks/bench_maml.py);
#              goal >= 3x learn2learn
#   protonet   ProtoNet evaluation episodes/s (shipped Omniglot Conv-4 on the bundled digits)
#   ray        fewshot embed --engine ray with one GPU actor (ViT-B-32)
#
# The machine has python3 with torch/CUDA, timm, pyarrow, numpy, scikit-learn, cython, typer,
# safetensors, but no registry: whatever else is needed travels in .whl/ (made here by
# benchmarks/gpu_wheels.sh: open_clip_torch, ftfy, wcwidth, faiss-cpu, the learn2learn and gym
# sources). Ray's wheel (79 MB) is over the 64 MiB a call may carry: the ray part runs only where
# Ray is installed already, and says so otherwise. A part that cannot run prints one line
# 'gpu_check: PART skipped/FAILED: why' and the others go on. Budget: under 8 minutes.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
PY=${PYTHON:-python3}
CPU=${GPU_CHECK_CPU:-0}
export PYTHONUNBUFFERED=1 FEWSHOT_PROGRESS=0 TQDM_DISABLE=1
note() { echo "gpu_check: $*" | tee -a "$SUMMARY"; }

if [ "$CPU" = 1 ]; then
    DEVICE=cpu; IMAGES=64; L2L_REPS=2; EPISODES=200; LIMIT=300
else
    DEVICE=cuda; IMAGES=10000; L2L_REPS=10; EPISODES=5000; LIMIT=150
fi

# -- setup: carried wheels, then the project itself (no dependencies, no index) ----------------
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
        || note "setup: the carried wheels did not install"
fi
if [ "$CPU" != 1 ]; then
    $PY -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/fewshot-site . \
        >/tmp/gpu-check-install.log 2>&1 && export PYTHONPATH=/tmp/fewshot-site:${PYTHONPATH:-} \
        || { note "setup: pip install . failed (see below); running from the source tree"; \
             tail -3 /tmp/gpu-check-install.log; export PYTHONPATH=$PWD:$PWD/cli:${PYTHONPATH:-}; }
    for src in gym-0.26.2 learn2learn-0.2.0; do  # sdists built here: no index needed
        [ -f ".whl/$src.tar.gz" ] || continue
        (cd /tmp && tar xzf "$OLDPWD/.whl/$src.tar.gz" && cd "$src" \
            && if [ "$src" = learn2learn-0.2.0 ]; then for n in task_dataset meta_dataset transforms; do \
                   $PY -m cython -3 -q "learn2learn/data/$n.pyx"; done; fi \
            && $PY -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .) \
            >/tmp/gpu-check-$src.log 2>&1 || note "setup: building $src failed: $(tail -1 /tmp/gpu-check-$src.log)"
    done
fi
$PY - <<'EOF' | tee -a "$SUMMARY"
import importlib.util as u, platform
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
have = {m: u.find_spec(m) is not None for m in ("fewshot", "open_clip", "faiss", "learn2learn", "ray", "pyarrow")}
print(f"gpu_check: torch {torch.__version__}, {gpu}, python {platform.python_version()}; modules: {have}")
EOF
if ! $PY -c "import fewshot, open_clip" 2>/dev/null; then
    note "setup FAILED: fewshot or open_clip does not import; carry .whl (benchmarks/gpu_wheels.sh)"
    exit 1
fi

run_part() {  # run_part NAME SECONDS COMMAND... : the command's output in $OUT/NAME.log
    local name=$1 seconds=$2; shift 2
    local start=$SECONDS
    if timeout "$seconds" "$@" >"$OUT/$name.log" 2>&1; then
        note "$name done in $((SECONDS - start)) s"
    else
        note "$name FAILED (exit $?, $((SECONDS - start)) s): $(tail -1 "$OUT/$name.log")"
    fi
}

# -- the parts ---------------------------------------------------------------------------------
run_part label $LIMIT $PY benchmarks/bench_label.py --model ViT-B-32 --pretrained none \
    --images $IMAGES --batch-size 256 --device $DEVICE --rounds 2
grep -E "images/s|label" "$OUT/label.log" | tail -3 >>"$SUMMARY"

IMGDIR=/tmp/gpu-check-images
$PY - "$IMGDIR" "$IMAGES" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
for i in range(n):
    d = root / f"c{i % 10}"
    d.mkdir(parents=True, exist_ok=True)
    if not (d / f"{i}.jpg").exists():
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=85)
EOF
for model in ViT-B-32 micro-clip; do
    run_part "embed-$model" $LIMIT $PY -m fewshot embed "$IMGDIR" --out "/tmp/gpu-check-emb-$model" --restart \
        --encoder clip --model "$model" --pretrained none --batch-size 256 --device $DEVICE --json
    tail -1 "$OUT/embed-$model.log" >"$OUT/embed-$model.json"
    echo "embed $model: $(tail -1 "$OUT/embed-$model.log")" >>"$SUMMARY"
done

if $PY -c "import learn2learn" 2>/dev/null; then
    run_part maml $LIMIT $PY benchmarks/bench_maml.py --inside --device $DEVICE --reps $L2L_REPS \
        --out "$OUT/maml.json"
    grep -E '"(learn2learn|fewshot [a-z0-9 ]+)"|speedup' "$OUT/maml.log" | tr -d ' ' | paste -sd' ' | cut -c1-600 >>"$SUMMARY"
else
    note "maml skipped: learn2learn does not import (carry its source: benchmarks/gpu_wheels.sh)"
fi

run_part protonet $LIMIT $PY -m fewshot eval --dataset digits --episodes $EPISODES --ways 5 --shots 1 \
    --device $DEVICE --json
tail -1 "$OUT/protonet.log" >"$OUT/protonet.json"
$PY - "$OUT/protonet.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    n, s = r.get("n_episodes") or r.get("episodes"), r.get("seconds")
    print(f"protonet: {n} episodes in {s} s = {n / s:.0f} episodes/s" if n and s else f"protonet: {r}")
except Exception as err:
    print(f"protonet: no JSON result ({err})")
EOF

if $PY -c "import ray, pyarrow" 2>/dev/null; then
    run_part ray $LIMIT $PY -m fewshot embed "$IMGDIR" --out /tmp/gpu-check-ray --restart --engine ray \
        --encoder clip --model ViT-B-32 --pretrained none --batch-size 256 --device $DEVICE --json
    tail -1 "$OUT/ray.log" >"$OUT/ray.json"
    echo "ray: $(tail -1 "$OUT/ray.log")" >>"$SUMMARY"
else
    note "ray skipped: Ray is not installed here (its wheel is over the 64 MiB a device call carries)"
fi
echo "gpu_check: total $SECONDS s" | tee -a "$SUMMARY"
