#!/usr/bin/env bash
# Fill .whl/ (ignored by git through .git/info/exclude) with what benchmarks/gpu_check.sh needs
# on a GPU machine that has no package registry: pure-Python or cp312 x86-64 wheels, and the
# learn2learn / gym sources (built there, with its cython). About 21 MB; run it here, then carry
# .whl to the device call:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"]).
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl open_clip_torch ftfy wcwidth faiss-cpu gym_notices
$PY -m pip download -q --no-deps --no-binary=:all: -d .whl learn2learn==0.2.0 gym==0.26.2
du -sh .whl && ls .whl
