#!/usr/bin/env bash
# The recipe's runs, kept in git so that a session on a fresh machine resumes them instead of
# starting over (the machine under a session is not always handed back: on 2026-12-02 one came
# back without runs/, and 8 hours of member 1 were lost with it).
#
#   bash train/recipe_checkpoints.sh keep       runs/RUN -> checkpoints/RUN, for each recipe run; then commit
#   bash train/recipe_checkpoints.sh restore    checkpoints/RUN -> runs/RUN where the kept one is further on
#
# A run directory is what `emocam-train fit --resume` needs and nothing else: state, last
# checkpoint (weights, optimizer, EMA), best weights, config, labels, history. Keep it at the end
# of a session, once a run has stopped by itself (--max-minutes), never while it writes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-}  # the member definitions are read for their run folders only
. train/recipe_members.sh
RUNS=("${M1_RUN#runs/}" "${M2_RUN#runs/}")
FILES=(state.json last.keras best.keras config.json labels.json history.csv)

copy_run() {  # copy_run FROM TO: the resumable files, the state last so a torn copy never looks newer
    local from=$1 to=$2 file
    mkdir -p "$to"
    for file in "${FILES[@]}"; do
        [ "$file" = state.json ] || [ ! -f "$from/$file" ] || cp "$from/$file" "$to/$file.tmp"
    done
    for file in "${FILES[@]}"; do
        [ "$file" = state.json ] || [ ! -f "$to/$file.tmp" ] || mv "$to/$file.tmp" "$to/$file"
    done
    cp "$from/state.json" "$to/state.json"
}

case ${1:-} in
keep)
    for run in "${RUNS[@]}"; do
        [ -f "runs/$run/state.json" ] || continue
        copy_run "runs/$run" "checkpoints/$run"
        echo "kept runs/$run at epoch $(epochs_done "runs/$run") in checkpoints/$run: git add checkpoints/$run"
    done ;;
restore)
    for run in "${RUNS[@]}"; do
        kept=$(epochs_done "checkpoints/$run") here=$(epochs_done "runs/$run")
        if [ "$kept" -gt "$here" ]; then
            copy_run "checkpoints/$run" "runs/$run"
            echo "restored runs/$run at epoch $kept from checkpoints/$run (runs/ had epoch $here)"
        fi
    done ;;
*)
    echo "usage: bash train/recipe_checkpoints.sh keep|restore" >&2
    exit 2 ;;
esac
