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
fit() { python3 -m train.cli fit "${common[@]}" "$@" $EXTRA; }
fit --out "$OUT_DIR/six-cosine" --architecture vgg-l --classes six --schedule cosine --epochs 90 --learning-rate 0.02 \
    --patience 30 --max-minutes "$MINUTES" >"$OUT_DIR/six-cosine.log" 2>&1 &
fit --out "$OUT_DIR/six-plateau" --architecture vgg-l --classes six --schedule plateau --epochs 400 --learning-rate 0.01 \
    --patience 15 --max-minutes "$MINUTES" >"$OUT_DIR/six-plateau.log" 2>&1 &
fit --out "$OUT_DIR/seven-cosine" --architecture vgg-l --classes seven --schedule cosine --epochs 90 --learning-rate 0.02 \
    --patience 30 --max-minutes "$MINUTES" >"$OUT_DIR/seven-cosine.log" 2>&1 &
wait
grep -h "INFO train.fit: \(best\|epoch 1/\|vgg\)" "$OUT_DIR"/*.log
tail -n 3 "$OUT_DIR"/*.log
python3 - "$OUT_DIR" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
scores = {}
for run in sorted(out.glob("*/metrics.json")):
    scores[run.parent.name] = json.loads(run.read_text())["accuracy"]
print("validation accuracy:", json.dumps(scores))
six = max((k for k in scores if k.startswith("six")), key=scores.get, default=None)
print("selected six-class run:", six)
(out / "selected.txt").write_text(f"{six}\n")
PY
