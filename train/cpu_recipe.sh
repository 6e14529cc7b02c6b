#!/usr/bin/env bash
# Issue 11's recipe on a CPU, as a resumable background job: run it again in every session and it
# continues where it stopped (each run checkpoints every epoch and resumes exactly).
#
#   nohup bash train/cpu_recipe.sh DATA.zip [MINUTES] > runs/recipe.log 2>&1 &
#
# MINUTES (default 150) bounds this invocation; each fit stops before an epoch that would pass it.
# Stages, each skipped once done:
#   1. member 1, vgg-m-pool, bf16: the first 10 epochs;
#   2. the same run in float32 for 10 epochs, to check bf16 costs no accuracy (issue 11 asks);
#   3. member 1 continues in bf16, unless float32 led by more than 1 point at epoch 10, in which
#      case the float32 run continues instead (the choice is written to runs/m1-precision.txt);
#   4. member 2, resnet18-n, after member 1 has finished.
set -euo pipefail
DATA=${1:?usage: cpu_recipe.sh DATA.zip [MINUTES]}
MINUTES=${2:-150}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
deadline=$(( $(date +%s) + MINUTES * 60 ))
left() { echo $(( (deadline - $(date +%s)) / 60 )); }
epochs_done() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['epoch'])" "$1/state.json" 2>/dev/null || echo 0; }
val_at() { python3 -c "import csv,sys; rows=list(csv.DictReader(open(sys.argv[1]))); print(rows[int(sys.argv[2])-1]['val_accuracy'])" "$1/history.csv" "$2"; }

. train/recipe_members.sh

fit() {  # fit OUT MINUTES ARGS...: start or resume the run in OUT
    local out=$1 minutes=$2; shift 2
    [ "$minutes" -ge 5 ] || { echo "recipe: $(left) min left, not starting $out"; exit 0; }
    local resume=(); [ -f "$out/state.json" ] && resume=(--resume)
    emocam-train fit "$@" --out "$out" "${resume[@]}" --max-minutes "$minutes"
}

mkdir -p runs
if [ "$(epochs_done runs/m1-bf16)" -lt 10 ] && [ ! -f runs/m1-precision.txt ]; then
    fit runs/m1-bf16 "$(left)" "${M1[@]}" --precision mixed_bfloat16 --stop-at-epoch 10
fi
if [ ! -f runs/m1-precision.txt ] && [ "$(epochs_done runs/m1-fp32)" -lt 10 ]; then
    fit runs/m1-fp32 "$(left)" "${M1[@]}" --precision float32 --stop-at-epoch 10
fi
if [ ! -f runs/m1-precision.txt ]; then
    [ "$(epochs_done runs/m1-fp32)" -ge 10 ] || exit 0
    bf16=$(val_at runs/m1-bf16 10) fp32=$(val_at runs/m1-fp32 10)
    choice=$(python3 -c "print('float32' if $fp32 - $bf16 > 0.01 else 'mixed_bfloat16')")
    echo "epoch 10 validation accuracy: mixed_bfloat16 $bf16, float32 $fp32 -> $choice" | tee runs/m1-precision.txt
fi
if grep -q "> float32" runs/m1-precision.txt; then M1_RUN=runs/m1-fp32 M1_PREC=float32; else M1_RUN=runs/m1-bf16 M1_PREC=mixed_bfloat16; fi
if [ "$(epochs_done $M1_RUN)" -lt "$M1_EPOCHS" ]; then
    fit "$M1_RUN" "$(left)" "${M1[@]}" --precision "$M1_PREC"
fi
if [ "$(epochs_done runs/m2-resnet)" -lt "$M2_EPOCHS" ]; then
    fit runs/m2-resnet "$(left)" "${M2[@]}" --precision "$M1_PREC"
fi
echo "recipe: both members are trained"
