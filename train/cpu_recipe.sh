#!/usr/bin/env bash
# Issue 11's recipe on a CPU, as a resumable background job: run it again in every session and it
# continues where it stopped (each run checkpoints every epoch and resumes exactly).
#
#   nohup bash train/cpu_recipe.sh DATA.zip [MINUTES] > runs/recipe.log 2>&1 &
#
# MINUTES (default 150) bounds this invocation; each fit stops before an epoch that would pass it.
# It first restores the runs kept in git (train/recipe_checkpoints.sh restore), where they are
# further on than runs/; keep them again at the end of the session. Stages, each skipped once done:
#   1. member 1, vgg-m-pool;
#   2. member 2, resnet18-n, after member 1 has finished.
set -euo pipefail
DATA=${1:?usage: cpu_recipe.sh DATA.zip [MINUTES]}
MINUTES=${2:-150}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
deadline=$(( $(date +%s) + MINUTES * 60 ))
left() { echo $(( (deadline - $(date +%s)) / 60 )); }

. train/recipe_members.sh

fit() {  # fit OUT MINUTES ARGS...: start or resume the run in OUT
    local out=$1 minutes=$2; shift 2
    [ "$minutes" -ge 5 ] || { echo "recipe: $(left) min left, not starting $out"; exit 0; }
    local resume=(); [ -f "$out/state.json" ] && resume=(--resume)
    emocam-train fit "$@" --out "$out" "${resume[@]}" --precision "$PRECISION" --max-minutes "$minutes"
}

mkdir -p runs
bash train/recipe_checkpoints.sh restore
if [ "$(epochs_done "$M1_RUN")" -lt "$M1_EPOCHS" ]; then
    fit "$M1_RUN" "$(left)" "${M1[@]}"
fi
if [ "$(epochs_done "$M2_RUN")" -lt "$M2_EPOCHS" ]; then
    fit "$M2_RUN" "$(left)" "${M2[@]}"
fi
echo "recipe: both members are trained"
