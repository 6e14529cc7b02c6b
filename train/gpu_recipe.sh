#!/usr/bin/env bash
# Train the candidate models of issue 5 in parallel on one GPU with Keras on JAX, then keep the
# one with the best VALIDATION accuracy (never the test split). Used on a GPU machine that has JAX
# but no TensorFlow:
#
#   bash train/gpu_recipe.sh DATA.zip OUT_DIR [MINUTES]
#
# The keras wheel (plus namex and optree) must be in .whl/ when the machine lacks Keras.
# Each run is an ordinary `emocam-train fit`; the commands below are the exact recipe.
set -uo pipefail
DATA=${1:?usage: gpu_recipe.sh DATA OUT_DIR [MINUTES]}
OUT_DIR=${2:?usage: gpu_recipe.sh DATA OUT_DIR [MINUTES]}
MINUTES=${3:-7}
EXTRA=${EMOCAM_RECIPE_EXTRA:-}   # e.g. "--limit-per-class 50 --architecture tiny" for a dry run
mkdir -p "$OUT_DIR"
if ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # three trainers share one GPU
nvidia-smi -L 2>/dev/null || true

common=(--data "$DATA" --batch-size 64 --seed 1337 --quiet)
# Each run is hard-capped a minute past its own limit (compilation and the final scoring happen
# outside --max-minutes), and its log is streamed with a prefix, so a caller that is killed at a
# deadline still sees how far every run got.
fit() {
    local name=$1; shift
    timeout $(( ${MINUTES%.*} * 60 + 90 )) python3 -m train.cli fit "${common[@]}" --out "$OUT_DIR/$name" "$@" $EXTRA 2>&1 \
        | tee "$OUT_DIR/$name.log" | grep --line-buffered "INFO train\|WARNING train\|Error" | sed -u "s/^/[$name] /"
}
fit six-cosine --architecture vgg-l --classes six --schedule cosine --epochs 90 --learning-rate 0.02 \
    --patience 30 --max-minutes "$MINUTES" &
fit six-plateau --architecture vgg-l --classes six --schedule plateau --epochs 400 --learning-rate 0.01 \
    --patience 15 --max-minutes "$MINUTES" &
fit seven-cosine --architecture vgg-l --classes seven --schedule cosine --epochs 90 --learning-rate 0.02 \
    --patience 30 --max-minutes "$MINUTES" &
wait
python3 - "$OUT_DIR" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
scores = {}
for run in sorted(out.glob("*/state.json")):  # written every epoch, so a killed run still counts
    scores[run.parent.name] = json.loads(run.read_text())["best_val_accuracy"]
print("validation accuracy:", json.dumps(scores))
six = max((k for k in scores if k.startswith("six")), key=scores.get, default=None)
print("selected six-class run:", six)
(out / "selected.txt").write_text(f"{six}\n")
PY
