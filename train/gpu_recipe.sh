#!/usr/bin/env bash
# Issue 11's two ensemble members on one GPU with Keras on JAX, side by side: the same runs as
# train/cpu_recipe.sh (train/recipe_members.sh), in minutes instead of days. Run on a GPU machine
# that has JAX but no TensorFlow; the run directories come back and convert on the workstation.
#
#   bash train/gpu_recipe.sh DATA.zip OUT_DIR [MINUTES]
#
# The keras wheel (plus namex and optree) must be in .whl/ when the machine lacks Keras. Runs
# resume: call it again with the same OUT_DIR and each continues where it stopped. bf16 is the
# GPU's native fast path, so both members train in mixed_bfloat16 here.
set -uo pipefail
DATA=${1:?usage: gpu_recipe.sh DATA OUT_DIR [MINUTES]}
OUT_DIR=${2:?usage: gpu_recipe.sh DATA OUT_DIR [MINUTES]}
MINUTES=${3:-8}
EXTRA=${EMOCAM_RECIPE_EXTRA:-}   # e.g. "--limit-per-class 50 --epochs 2" for a dry run
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
if ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # two trainers share one GPU
nvidia-smi -L 2>/dev/null || true
. train/recipe_members.sh

# Each run is hard-capped a minute and a half past its own limit (compilation and the final
# scoring happen outside --max-minutes), and its log is streamed with a prefix, so a caller that
# is killed at a deadline still sees how far every run got.
fit() {
    local name=$1; shift
    local resume=(); [ -f "$OUT_DIR/$name/state.json" ] && resume=(--resume)
    timeout $(( ${MINUTES%.*} * 60 + 90 )) python3 -m emocam.train.cli fit "$@" --out "$OUT_DIR/$name" "${resume[@]}" \
        --precision mixed_bfloat16 --max-minutes "$MINUTES" $EXTRA 2>&1 \
        | tee -a "$OUT_DIR/$name.log" | grep --line-buffered "INFO emocam.train\|WARNING emocam.train\|Error" | sed -u "s/^/[$name] /"
}
fit m1-vgg-m-pool "${M1[@]}" &
fit m2-resnet "${M2[@]}" &
wait
for run in "$OUT_DIR"/*/state.json; do echo "$run: $(cat "$run")"; done
